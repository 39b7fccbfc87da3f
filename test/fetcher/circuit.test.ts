// A failing origin: stale copy served, circuit opens after N failures, no
// request while open, one probe after the cool-down, recovery.
import t from 'tap'
import type { Handler } from './helpers.ts'
import { hasCode } from '../../src/errors.ts'
import { atOnce, collect, config, fakeClock, makePool, ok, startServer } from './helpers.ts'

const failing: Record<string, Handler> = {
  'answering 500': (_req, res) => { res.writeHead(500); res.end('boom') },
  resetting: req => { req.socket.destroy() },
}

for (const [name, failure] of Object.entries(failing)) {
  t.test(`a server ${name}`, async t => {
    const server = await startServer(t, ok('v1'))
    const clock = fakeClock()
    const cfg = config({ circuit: { failures: 3, coolDown: 1000, maxCoolDown: 1500 } })
    const pool = makePool(t, cfg, { now: clock.now })
    const opened = collect(t, 'livery:fetch:circuit_open')
    const closed = collect(t, 'livery:fetch:circuit_close')
    const url = server.url('/theme.html')
    await pool.get(url)

    server.handle(failure)
    for (let i = 1; i <= 3; i++) {
      clock.advance(cfg.ttl + cfg.minTtl) // past freshness and past the previous failure's backoff
      const o = await pool.get(url)
      t.equal(o.state, 'stale', `failure ${i}: stale copy served`)
      t.equal(o.resource.body.toString(), 'v1')
      t.equal(server.requests.length, 1 + i, `failure ${i} reached the server`)
      if (i === 1) {
        const backedOff = await atOnce(() => pool.get(url))
        t.ok(backedOff.value?.state === 'stale' && backedOff.settled, 'right after a failure: stale at once')
        t.equal(server.requests.length, 2, 'and the key is not retried before minTtl')
      }
    }
    t.equal(pool.stats().circuits[server.origin], 'open', 'circuit open after 3 failures')
    t.match(opened, [{ origin: server.origin, coolDown: 1000 }])

    clock.advance(cfg.minTtl) // the key's own backoff is over: only the circuit holds it now
    const whileOpen = await Promise.all(Array.from({ length: 20 }, () => atOnce(() => pool.get(url))))
    t.ok(whileOpen.every(r => r.value?.state === 'stale' && r.settled), 'stale at once while open')
    const cold = await atOnce(() => pool.get(server.url('/other.css')))
    t.ok(hasCode(cold.error, 'LIVERY_ERR_FETCH_CIRCUIT_OPEN'), 'no copy: immediate circuit-open error')
    t.ok(cold.settled, 'at once')
    t.equal(server.requests.length, 4, 'no request while open')

    // After the cool-down exactly one probe; it fails, the cool-down grows (capped at maxCoolDown).
    clock.advance(1000)
    const probe = await Promise.all([pool.get(url), pool.get(url), pool.get(server.url('/other.css')).catch((e: unknown) => e)])
    t.equal(server.requests.length, 5, 'one probe')
    t.ok(probe.slice(0, 2).every(o => typeof o === 'object' && o !== null && 'state' in o && o.state === 'stale'))
    t.ok(hasCode(probe[2], 'LIVERY_ERR_FETCH_CIRCUIT_OPEN'), 'other URLs are turned away during the probe')
    t.equal(pool.stats().circuits[server.origin], 'open', 'failed probe reopens')
    t.match(opened[1], { coolDown: 1500 }, 'doubled, capped at maxCoolDown')
    clock.advance(1000)
    await pool.get(url)
    t.equal(server.requests.length, 5, 'still open before the longer cool-down ends')

    // The server recovers: the next probe closes the circuit and refreshes the copy.
    server.handle(ok('v2'))
    clock.advance(500)
    const recovered = await pool.get(url)
    t.equal(recovered.state, 'refreshed')
    t.equal(recovered.resource.body.toString(), 'v2')
    t.equal(pool.stats().circuits[server.origin], 'closed')
    t.equal(closed.length, 1, 'circuit_close published')
    t.equal((await pool.get(server.url('/other.css'))).state, 'fetched', 'other URLs work again')
  })
}

t.test('a 404 fails the key but does not open the circuit', async t => {
  const server = await startServer(t, (_req, res) => { res.writeHead(404); res.end() })
  const clock = fakeClock()
  const cfg = config()
  const pool = makePool(t, cfg, { now: clock.now })
  for (let i = 0; i < 5; i++) {
    await t.rejects(pool.get(server.url(`/missing-${i}`)), { code: 'LIVERY_ERR_FETCH_STATUS', message: /answered 404/ })
  }
  t.equal(pool.stats().circuits[server.origin], 'closed')
  await t.rejects(pool.get(server.url('/missing-0')), { code: 'LIVERY_ERR_FETCH_STATUS' }, 'backed off: same error')
  t.equal(server.requests.length, 5, 'no new request within minTtl')
  clock.advance(cfg.minTtl)
  await t.rejects(pool.get(server.url('/missing-0')))
  t.equal(server.requests.length, 6, 'asked again after minTtl')
})
