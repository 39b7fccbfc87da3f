// A client that goes away while a pass or miss response streams: the upstream exchange is torn down, not
// left to finish, and nothing is stored or thrown (issue 15 replaced the streaming loop with an event pump).
import t from 'tap'
import { connect, type Socket } from 'node:net'
import { once } from 'node:events'
import { request } from 'undici'
import { readRequestHead, startGateway, startRawUpstream } from '../helpers/servers.ts'

/** An upstream that sends headers and the first 64 KB of a 10 MB body, then holds; resolves each connection's close. */
async function holdingUpstream (t: Parameters<typeof startRawUpstream>[0], cacheControl: string): Promise<{ url: string, closed: Array<Promise<void>>, requests: () => number }> {
  const closed: Array<Promise<void>> = []
  let requests = 0
  const raw = await startRawUpstream(t, (socket: Socket) => {
    closed.push(once(socket, 'close').then(() => undefined))
    readRequestHead(socket).then(() => {
      requests++
      socket.write(`HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncache-control: ${cacheControl}\r\ncontent-length: ${10 * 1024 * 1024}\r\n\r\n`)
      socket.write(Buffer.alloc(64 * 1024, 'a'))
    }, () => socket.destroy())
  })
  return { url: raw.url, closed, requests: () => requests }
}

/** Sends a GET, waits for the first body bytes, then destroys the connection. */
async function leaveMidBody (port: number, path: string): Promise<void> {
  const socket = connect(port, '127.0.0.1')
  socket.write(`GET ${path} HTTP/1.1\r\nHost: a.test\r\n\r\n`)
  let got = 0
  for await (const chunk of socket) {
    got += (chunk as Buffer).length
    if (got > 16 * 1024) break
  }
  socket.destroy()
}

for (const [kind, cacheControl] of [['pass (no-store)', 'no-store'], ['miss (cacheable)', 'max-age=60']] as const) {
  t.test(`${kind}: the client leaving mid-body closes the upstream connection`, async t => {
    const up = await holdingUpstream(t, cacheControl)
    const gw = await startGateway(t, { upstream: up.url })
    await leaveMidBody(gw.port, '/big')
    await up.closed[0]
    t.pass('the gateway closed its upstream connection')
    const line = await gw.logs.access('/big')
    t.equal(line.completed, false, 'the access log says the response did not complete')
    t.equal(line.status, 200)
    // Nothing was stored: the next request goes upstream again.
    await leaveMidBody(gw.port, '/big')
    await up.closed[1]
    t.equal(up.requests(), 2, 'the broken-off body was not stored')
    const status = await request(`${gw.url}/_livery/healthz`, { dispatcher: gw.agent })
    await status.body.dump()
    t.ok(status.statusCode < 500, 'the gateway still answers')
  })
}
