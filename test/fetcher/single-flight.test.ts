// One job per key, shared by every caller; its result is kept even when
// every caller gave up.
import t from 'tap'
import type { ServerResponse } from 'node:http'
import { collect, config, makePool, next, ok, startServer } from './helpers.ts'

t.test('500 concurrent gets of one cold URL: exactly one request reaches the server', async t => {
  const server = await startServer(t, ok('<html>theme</html>', { etag: '"abc"' }))
  const pool = makePool(t, config())
  const dedup = collect(t, 'livery:fetch:deduplicated')
  const outcomes = await Promise.all(Array.from({ length: 500 }, () => pool.get(server.url('/theme.html'))))
  t.equal(server.requests.length, 1, 'one request')
  t.equal(dedup.length, 499, 'every other caller joined the job')
  t.ok(outcomes.every(o => o.state === 'fetched' && o.resource === outcomes[0].resource), 'all share one result')
  t.equal(outcomes[0].resource.version, '"abc"', 'the strong ETag is the version')
  const again = await pool.get(server.url('/theme.html#fragment'))
  t.equal(again.state, 'fresh', 'served from the copy; the fragment does not split the key')
  t.equal(server.requests.length, 1)
})

t.test('a job finishes and is stored even when every caller gave up', async t => {
  const held: ServerResponse[] = []
  const server = await startServer(t, (_req, res) => { held.push(res) })
  const pool = makePool(t, config({ missWait: 50 }))
  const url = server.url('/slow.html')

  const ac = new AbortController()
  const aborted = pool.get(url, { signal: ac.signal })
  const expired = pool.get(url)
  ac.abort(new Error('client went away'))
  await t.rejects(aborted, { message: 'client went away' }, 'the caller that aborted gets its own reason')
  await t.rejects(expired, { code: 'LIVERY_ERR_FETCH_WAIT' }, 'the other caller stops waiting at missWait')
  t.equal(pool.peek(url), undefined, 'nothing stored yet')
  t.equal(pool.stats().jobsInFlight, 1, 'the job still runs')

  const ended = next('livery:fetch:job_end')
  // missWait (50 ms) can run out before the request has even reached the server on a busy machine.
  await server.requestCount(1)
  held[0].writeHead(200, { 'content-type': 'text/css' })
  held[0].end('body{}')
  t.match(await ended, { ok: true })
  t.equal(pool.peek(url)?.body.toString(), 'body{}', 'the result was stored')
  const loaded = await pool.loader(url)
  t.same({ body: loaded.body.toString(), contentType: loaded.contentType }, { body: 'body{}', contentType: 'text/css' }, 'loader serves it')
  t.match(loaded.version, /^sha256:[0-9a-f]{64}$/, 'no ETag: the version is a content hash')
  t.equal(server.requests.length, 1)
})
