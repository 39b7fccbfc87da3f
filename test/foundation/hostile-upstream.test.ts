// Hostile upstream answers: the client gets a 502 or a closed connection, never a crash (issue 2, "Bad input").
import t from 'tap'
import type { Socket } from 'node:net'
import { request } from 'undici'
import { readRequestHead, startGateway, startRawUpstream } from '../helpers/servers.ts'
import { rawRequest } from '../helpers/raw-http.ts'

/** Raw answers by request path, each on its own connection (the raw upstream reads one request per connection); `/ok` is a well-formed one. */
const answers: Record<string, (s: Socket) => void> = {
  '/ok': s => s.end('HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok'),
  '/longer': s => s.end('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhelloEXTRA-BYTES-BEYOND-THE-LENGTH'),
  '/shorter': s => s.end('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort'),
  '/bad-status': s => s.end('HTTP/1.1 2OO OK\r\ncontent-length: 2\r\n\r\nok'),
  '/no-status': s => s.end('this is not http\r\n\r\n'),
  '/nul-header': s => s.end('HTTP/1.1 200 OK\r\nx-bad: a\x00b\r\ncontent-length: 2\r\n\r\nok'),
  '/nul-header-name': s => s.end('HTTP/1.1 200 OK\r\nx-b\x00ad: ab\r\ncontent-length: 2\r\n\r\nok'),
  '/bad-length': s => s.end('HTTP/1.1 200 OK\r\ncontent-length: 12abc\r\n\r\nok'),
  '/two-lengths': s => s.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok!'),
  '/bad-chunk': s => s.end('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n'),
  '/header-line-folding': s => s.end('HTTP/1.1 200 OK\r\nx-a: b\r\n folded\r\ncontent-length: 2\r\n\r\nok'),
  '/response-splitting': s => s.end('HTTP/1.1 200 OK\r\nx-a: b\rSet-Cookie: evil=1\r\ncontent-length: 2\r\n\r\nok'),
}

t.test('hostile answers give 502 or a closed connection, and the gateway keeps serving', async t => {
  const raw = await startRawUpstream(t, socket => {
    readRequestHead(socket).then(head => {
      const path = head.split(' ')[1]
      ;(answers[path] ?? answers['/ok'])(socket)
    }, () => socket.destroy())
  })
  const gw = await startGateway(t, { upstream: raw.url, site: { timeouts: { connect: '1s', firstByte: '2s', betweenBytes: '2s' } } })
  for (const path of Object.keys(answers).filter(p => p !== '/ok')) {
    const res = await rawRequest(gw.port, `GET ${path} HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n`)
    const [head, body = ''] = res.text.split('\r\n\r\n')
    if (res.status === 502) {
      t.match(head, /\r\nx-livery-error: LIVERY_ERR_UPSTREAM_RESPONSE\r\n/i, `${path}: 502 for an invalid upstream response`)
    } else if (res.status === 0) {
      // The upstream failed before the gateway flushed its headers: nothing was sent but the close.
      t.ok(res.closed, `${path}: connection closed without an answer`)
    } else {
      t.equal(res.status, 200, `${path}: either 502 or the headers went out`)
      t.ok(res.closed, `${path}: connection closed`)
      const declared = /content-length: (\d+)/i.exec(head)
      if (declared !== null) t.ok(Buffer.byteLength(body, 'latin1') <= Number(declared[1]), `${path}: never more than declared`)
    }
    t.notMatch(res.text, /EXTRA|evil=1|\x00/, `${path}: nothing hostile reaches the client`)
    t.not(res.status, 500, `${path}: not an internal error`)
    const ok = await request(`${gw.url}/ok`, { dispatcher: gw.agent })
    t.equal(await ok.body.text(), 'ok', `${path}: the gateway still serves`)
  }
})

t.test('a response shorter than its Content-Length is never presented as complete', async t => {
  const raw = await startRawUpstream(t, socket => {
    readRequestHead(socket).then(() => answers['/shorter'](socket), () => socket.destroy())
  })
  const gw = await startGateway(t, { upstream: raw.url })
  const res = await rawRequest(gw.port, 'GET /shorter HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n')
  t.ok(res.closed)
  t.ok(res.status === 502 || Buffer.byteLength(res.text.split('\r\n\r\n')[1] ?? '', 'latin1') < 100)
  const line = await gw.logs.waitFor({ site: 'test', level: 40 })
  t.equal(line.upstream, raw.url, 'the failure is logged with its upstream')
})
