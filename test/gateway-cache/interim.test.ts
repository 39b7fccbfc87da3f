// 1xx interim responses from the upstream: 103 Early Hints reach the client, an unsolicited 100 Continue is skipped, neither is cached.
import t from 'tap'
import { Agent, request } from 'undici'
import { parseConfig } from '../../src/config/load.ts'
import { Gateway } from '../../src/server/gateway.ts'
import { LogCapture } from '../helpers/logs.ts'
import { readRequestHead, startRawUpstream } from '../helpers/servers.ts'
import { cacheFixture, text } from './fixture.ts'

const link = '</style.css>; rel=preload; as=style'

t.test('103 Early Hints are forwarded; an unsolicited 100 Continue is skipped; 1xx are never cached', async t => {
  const f = await cacheFixture(t, {
    '/hints': (_q, res, n) => {
      res.writeEarlyHints({ link })
      res.writeHead(200, { ...text, 'cache-control': 'max-age=60' }).end(`h${n}`)
    },
    '/continue': (_q, res, n) => {
      res.writeContinue()
      res.writeContinue()
      res.writeEarlyHints({ link })
      res.writeHead(200, { ...text, 'cache-control': 'max-age=60' }).end(`c${n}`)
    },
    '/form': (req, res, n) => {
      req.resume()
      req.on('end', () => {
        res.writeContinue()
        res.writeEarlyHints({ link })
        res.writeHead(200, { ...text, 'cache-control': 'no-store' }).end(`f${n}`)
      })
    },
  })
  const get = async (path: string, method = 'GET', body?: string): Promise<{ status: number, body: string, xcache: unknown, info: Array<{ statusCode: number, link: unknown }> }> => {
    const info: Array<{ statusCode: number, link: unknown }> = []
    const r = await request(f.url + path, {
      method: method as 'GET',
      body,
      headers: { host: f.host },
      dispatcher: f.agent,
      onInfo: ({ statusCode, headers }) => { info.push({ statusCode, link: headers.link }) },
    })
    return { status: r.statusCode, body: await r.body.text(), xcache: r.headers['x-cache'], info }
  }
  const h = await get('/hints')
  t.equal(h.status, 200)
  t.same(h.info, [{ statusCode: 103, link }], 'the miss forwards the upstream\'s 103 Early Hints')
  const hit = await get('/hints')
  t.equal(hit.xcache, 'HIT')
  t.equal(hit.body, 'h1', 'the final response is what was stored')
  t.same(hit.info, [], 'a 1xx is never stored or replayed')

  const c = await get('/continue')
  t.equal(c.status, 200, 'an unsolicited 100 Continue is skipped, not a 502')
  t.equal(c.body, 'c1')
  t.same(c.info, [{ statusCode: 103, link }], 'the Early Hints after it still arrive')
  t.equal((await get('/continue')).xcache, 'HIT', 'and the final response is stored')
  const again = await f.get('/hints', { 'cache-control': 'no-cache' })
  t.equal(again.body, 'h2', 'the upstream connection is still usable after skipping')

  const p = await get('/form', 'POST', 'a=1')
  t.equal(p.status, 200, 'pass mode skips 100 Continue too')
  t.equal(p.body, 'f1')
  t.same(p.info, [{ statusCode: 103, link }], 'and forwards Early Hints')
})

t.test('an interim head split across TCP segments, and two requests on one upstream connection', async t => {
  let connections = 0
  const up = await startRawUpstream(t, socket => {
    connections++
    socket.setNoDelay(true)
    const pieces = (n: number): string[] => [
      'HTTP/1.1 1', '00 Continue\r\n', '\r\n', 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 2',
      `00 OK\r\ncontent-type: text/plain\r\ncache-control: no-store\r\ncontent-length: 2\r\n\r\nr${n}`,
    ]
    const serve = async (n: number): Promise<void> => {
      await readRequestHead(socket)
      // Each piece waits for the previous one to be flushed, so they usually arrive as separate segments.
      for (const p of pieces(n)) await new Promise<void>(resolve => socket.write(p, () => { setImmediate(resolve) }))
    }
    void serve(1).then(() => serve(2)).catch(() => socket.destroy())
  })
  const config = parseConfig({ listen: { host: '127.0.0.1', port: 0 }, cache: { directory: t.testdir() }, sites: [{ name: 'raw', hosts: ['*'], upstream: up.url, connections: 1 }] }, {}, process.cwd())
  const gateway = new Gateway(config, { logger: new LogCapture().logger })
  const addr = await gateway.listen(0, '127.0.0.1')
  const agent = new Agent({ keepAliveTimeout: 1_000 })
  t.teardown(async () => { await agent.destroy(); await gateway.destroy() })
  for (const want of ['r1', 'r2']) {
    const r = await request(`http://127.0.0.1:${addr.port}/x`, { dispatcher: agent })
    t.equal(r.statusCode, 200, `${want}: the 100s are skipped however they arrive`)
    t.equal(await r.body.text(), want)
  }
  t.equal(connections, 1, 'both over one upstream connection: the stream stayed in step')
})
