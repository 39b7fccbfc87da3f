// WebSocket upgrades are proxied (http-proxy-3): an echo round trip through the gateway (issue 2).
import t from 'tap'
import { once } from 'node:events'
import { createServer, type IncomingMessage } from 'node:http'
import { WebSocketServer, WebSocket, type RawData } from 'ws'
import { listenHttp, startGateway } from '../helpers/servers.ts'
import { rawRequest } from '../helpers/raw-http.ts'

t.test('WebSocket echo through the gateway', async t => {
  const server = createServer((_req, res) => res.end('plain'))
  const wss = new WebSocketServer({ server })
  const upgrades: IncomingMessage[] = []
  wss.on('connection', (socket, req) => {
    upgrades.push(req)
    socket.on('message', (data: RawData, isBinary: boolean) => socket.send(data, { binary: isBinary }))
  })
  t.teardown(() => new Promise<void>(resolve => {
    for (const c of wss.clients) c.terminate()
    wss.close(() => resolve())
  }))
  const up = await listenHttp(t, server)
  const gw = await startGateway(t, { upstream: up.url })

  const ws = new WebSocket(`ws://127.0.0.1:${gw.port}/socket?room=1`, { headers: { host: 'chat.test' } })
  t.teardown(() => ws.terminate())
  await once(ws, 'open')
  const next = (): Promise<[RawData, boolean]> => once(ws, 'message') as Promise<[RawData, boolean]>

  let reply = next()
  ws.send('hello through livery')
  const [text, textBinary] = await reply
  t.equal(text.toString(), 'hello through livery')
  t.equal(textBinary, false)

  const blob = Buffer.alloc(200_000, 7)
  reply = next()
  ws.send(blob)
  const [bin, binBinary] = await reply
  t.equal(binBinary, true)
  t.same(Buffer.from(bin as Buffer), blob, 'a 200 KB binary frame comes back intact')

  t.equal(upgrades.length, 1)
  t.equal(upgrades[0].url, '/socket?room=1')
  t.equal(upgrades[0].headers.host, 'chat.test', 'Host preserved')
  t.match(upgrades[0].headers['x-forwarded-for'], /127\.0\.0\.1/)

  ws.close(1000, 'done')
  const [code] = await once(ws, 'close') as [number]
  t.equal(code, 1000, 'clean close')
})

t.test('an upgrade that is not a WebSocket is served as a plain request (issue 11, item 12)', async t => {
  const gw = await startGateway(t, { upstream: 'http://127.0.0.1:1' })
  const res = await rawRequest(gw.port, 'GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n')
  t.equal(res.status, 502, 'the request went to the (dead) upstream instead of a 400')
  t.ok(res.closed)
})

t.test('a WebSocket to a dead upstream closes the client socket, the gateway lives', async t => {
  const gw = await startGateway(t, { upstream: 'http://127.0.0.1:1' })
  const ws = new WebSocket(`ws://127.0.0.1:${gw.port}/socket`)
  t.teardown(() => ws.terminate())
  const failed = await new Promise<string>(resolve => {
    ws.once('error', err => resolve(err.message))
    ws.once('unexpected-response', (_req, res) => resolve(`status ${res.statusCode ?? 0}`))
  })
  t.type(failed, 'string', `the client saw the failure (${failed})`)
  await gw.logs.waitFor({ msg: 'WebSocket proxying failed' })
  const res = await rawRequest(gw.port, 'GET /_livery/healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
  t.equal(res.status, 200)
})
