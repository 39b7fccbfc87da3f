/**
 * The overload watchdog through the real gateway. The gateway runs in this
 * process, so blocking this event loop for ~300 ms (a bounded busy loop, the
 * one place the tests allow one) is blocking the gateway's: new requests are
 * shed with 503 before any work, readyz reports not ready, and both recover
 * once the loop is healthy again.
 *
 * Issue 10: on a busy machine the loop also stalls on its own, past 100 ms,
 * at moments the test does not choose (readyz went 503 before the stall). The
 * test still creates the stall it measures (3× the limit), and every check
 * that expects a healthy gateway waits for a healthy verdict first and is
 * repeated when the machine's own lag trips the watchdog in between; sheds
 * that lag caused are counted, so the shed counter is still checked exactly.
 */
import t from 'tap'
import { startUpstream, startGateway } from '../helpers/servers.ts'
import { get, header, metricValue, nextMessage, type Reply } from './fixture.ts'
import type { Gateway } from '../../src/server/gateway.ts'

/** Holds the event loop for `ms` — the stall the watchdog must notice. */
function blockEventLoop (ms: number): void {
  const end = performance.now() + ms
  while (performance.now() < end) { /* blocking on purpose */ }
}

/** A reply the watchdog caused: a shed request, or readyz reporting the overload. */
function overloadReply (r: Reply): boolean {
  return r.status === 503 && (header(r, 'x-livery-error') === 'LIVERY_ERR_OVERLOADED' || /event-loop delay/.test(r.body))
}

/**
 * `send()` once the watchdog's verdict is healthy, repeated while the reply
 * is one the watchdog caused (the machine's own lag tripped it in between);
 * `lagSheds` counts the requests shed that way.
 */
async function whenHealthy (gateway: Gateway, send: () => Promise<Reply>, lagSheds: { n: number }): Promise<Reply> {
  for (;;) {
    if (gateway.watchdog.overloaded() !== undefined) {
      await nextMessage<{ reason: string | undefined }>('livery:pool:overload', m => m.reason === undefined)
    }
    const r = await send()
    if (!overloadReply(r)) return r
    if (header(r, 'x-livery-error') === 'LIVERY_ERR_OVERLOADED') lagSheds.n++
  }
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
  const lagSheds = { n: 0 }
  const healthy = (path: string): Promise<Reply> => whenHealthy(fx.gateway, () => get(fx.agent, fx.url, 'one.test', path), lagSheds)
  t.equal((await healthy('/before')).status, 200)
  t.equal((await healthy('/_livery/readyz')).status, 200, 'ready before the stall')

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
  t.equal((await healthy('/after')).status, 200, 'requests are admitted again')
  t.equal((await healthy('/_livery/readyz')).status, 200, 'ready again')
  // Admin routes are never shed; lag may still have shed one of the page requests above.
  const metrics = (await get(fx.agent, fx.url, 'one.test', '/_livery/metrics')).body
  t.equal(metricValue(metrics, 'livery_requests_shed_total', { reason: 'overloaded' }), 1 + lagSheds.n,
    `the shed is counted (plus ${lagSheds.n} that the machine's own lag caused)`)
  t.ok(fx.logs.find({ msg: 'overloaded: shedding new requests' }).length >= 1, 'the overload is logged')
  t.ok(fx.logs.find({ msg: 'recovered from overload: admitting new requests' }).length >= 1, 'and the recovery')
})
