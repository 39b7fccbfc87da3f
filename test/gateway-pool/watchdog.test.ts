/**
 * The overload watchdog through the real gateway. The gateway runs in this
 * process, so blocking this event loop for ~300 ms (a bounded busy loop, the
 * one place the tests allow one) is blocking the gateway's: new requests are
 * shed with 503 before any work, readyz reports not ready, and both recover
 * once the loop is healthy again.
 */
import t from 'tap'
import { startUpstream, startGateway } from '../helpers/servers.ts'
import { get, header, metricValue, nextMessage } from './fixture.ts'

/** Holds the event loop for `ms` — the stall the watchdog must notice. */
function blockEventLoop (ms: number): void {
  const end = performance.now() + ms
  while (performance.now() < end) { /* blocking on purpose */ }
}

t.test('a blocked event loop sheds new requests and fails readyz, then recovers', async t => {
  let upstreamRequests = 0
  const up = await startUpstream(t, (_req, res) => {
    upstreamRequests++
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' }).end('ok')
  })
  const fx = await startGateway(t, {
    raw: {
      log: { level: 'info', access: false },
      pool: { maxEventLoopDelay: '100ms' },
      sites: [{ name: 'one', hosts: ['*'], upstream: up.url }],
    },
  })
  // Starting the gateway (and, on a busy machine, other processes) can itself
  // stall this loop past 100 ms: begin from a healthy verdict.
  if (fx.gateway.watchdog.overloaded() !== undefined) {
    await nextMessage<{ reason: string | undefined }>('livery:pool:overload', m => m.reason === undefined)
  }
  t.equal((await get(fx.agent, fx.url, 'one.test', '/before')).status, 200)
  t.equal((await get(fx.agent, fx.url, 'one.test', '/_livery/readyz')).status, 200, 'ready before the stall')

  const overloaded = nextMessage<{ reason: string | undefined }>('livery:pool:overload', m => m.reason !== undefined)
  blockEventLoop(300)
  // On a loaded machine a stall of its own may have tripped the watchdog just
  // before the block: its verdict is then already "overloaded" and no new
  // message comes, so take the current verdict when there is one.
  const reason = fx.gateway.watchdog.overloaded() ?? (await overloaded).reason
  t.match(reason, /^event-loop delay \d+(ms|s|\.\d+s) > 100ms$/, `the watchdog saw the stall (${String(reason)})`)
  const recovered = nextMessage<{ reason: string | undefined }>('livery:pool:overload', m => m.reason === undefined)

  // Both at once: the verdict holds for one 500 ms sampling window.
  const before = upstreamRequests
  const [shed, notReady] = await Promise.all([
    get(fx.agent, fx.url, 'one.test', '/during'),
    get(fx.agent, fx.url, 'one.test', '/_livery/readyz'),
  ])
  t.equal(shed.status, 503, 'a new request is shed')
  t.equal(header(shed, 'x-livery-error'), 'LIVERY_ERR_OVERLOADED')
  t.equal(header(shed, 'retry-after'), '1', 'with Retry-After')
  t.equal(upstreamRequests, before, 'before any work: nothing went upstream')
  t.equal(notReady.status, 503, 'readyz reports not ready so a load balancer steers away')
  t.match(notReady.body, /event-loop delay/)

  await recovered
  t.equal((await get(fx.agent, fx.url, 'one.test', '/after')).status, 200, 'requests are admitted again')
  t.equal((await get(fx.agent, fx.url, 'one.test', '/_livery/readyz')).status, 200, 'ready again')
  const metrics = (await get(fx.agent, fx.url, 'one.test', '/_livery/metrics')).body
  t.equal(metricValue(metrics, 'livery_requests_shed_total', { reason: 'overloaded' }), 1, 'the shed is counted')
  t.ok(fx.logs.find({ msg: 'overloaded: shedding new requests' }).length >= 1, 'the overload is logged')
  t.ok(fx.logs.find({ msg: 'recovered from overload: admitting new requests' }).length >= 1, 'and the recovery')
})
