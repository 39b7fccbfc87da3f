/**
 * Warm after purge through the in-process runner (issue 13): no Redis, so
 * the gateway runs the warm jobs itself. Pages that were hot when purged
 * are fetched again and the next visitor gets a HIT; `"warm": true` in the
 * purge body warms the URLs it names. Synchronised on `livery:worker:job`.
 */
import t from 'tap'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { request } from 'undici'
import type { JobMessage } from '../../src/worker/channels.ts'
import { startGateway, startUpstream } from '../helpers/servers.ts'

function nextJob (pred: (m: JobMessage) => boolean): Promise<JobMessage> {
  return new Promise(resolve => {
    const fn = (m: unknown): void => {
      if (!pred(m as JobMessage)) return
      unsubscribe('livery:worker:job', fn)
      resolve(m as JobMessage)
    }
    subscribe('livery:worker:job', fn)
  })
}

t.test('hot pages are warmed after a purge, and warm: true warms the named URLs', async t => {
  const hits = new Map<string, number>()
  const up = await startUpstream(t, (req, res) => {
    hits.set(req.url ?? '', (hits.get(req.url ?? '') ?? 0) + 1)
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=300' })
    res.end(`page ${req.url ?? ''} #${hits.get(req.url ?? '')}`)
  })
  const g = await startGateway(t, {
    upstream: up.url,
    site: { hosts: ['warm.test'], warm: { afterPurge: true, hotHits: 2 } },
    raw: { admin: { token: 'secret' }, worker: { rate: 0, themeCheck: '0s' } },
  })
  const get = async (path: string): Promise<{ cache: string, body: string }> => {
    const r = await request(g.url + path, { headers: { host: 'warm.test' }, dispatcher: g.agent })
    return { cache: String(r.headers['x-cache']), body: await r.body.text() }
  }
  const purge = async (body: unknown): Promise<number> => {
    const r = await request(`${g.url}/_livery/purge`, { method: 'POST', headers: { authorization: 'Bearer secret', 'content-type': 'application/json' }, body: JSON.stringify(body), dispatcher: g.agent })
    await r.body.dump()
    return r.statusCode
  }

  for (let i = 0; i < 3; i++) await get('/hot')
  t.equal((await get('/cold')).cache, 'MISS')
  t.equal(hits.get('/hot'), 1)

  const warmed = nextJob(m => m.kind === 'warm' && m.key === 'http://warm.test/hot' && m.event === 'done')
  t.equal(await purge({ prefixes: ['http://warm.test/'] }), 200)
  await warmed
  t.equal(hits.get('/hot'), 2, 'the hot page was fetched again by the warm job')
  t.match(await get('/hot'), { cache: 'HIT', body: 'page /hot #2' }, 'the next visitor gets a HIT on the fresh copy')
  t.equal(hits.get('/cold'), 1, 'the cold page was not warmed')
  t.equal((await get('/cold')).cache, 'MISS')

  const named = nextJob(m => m.kind === 'warm' && m.key === 'http://warm.test/cold' && m.event === 'done')
  t.equal(await purge({ urls: ['http://warm.test/cold'], warm: true }), 200)
  await named
  t.match(await get('/cold'), { cache: 'HIT', body: 'page /cold #3' }, 'warm: true warmed the named URL')
  const jobs = await request(`${g.url}/_livery/jobs`, { dispatcher: g.agent })
  t.match(await jobs.body.json(), { depth: { warm: { waiting: 0, active: 0 } }, deadLetters: [] }, 'the in-process queue is empty')
})
