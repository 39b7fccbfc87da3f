/**
 * A theme server for bench/slow-theme whose behaviour can be switched while
 * it runs: `GET /__hang` makes it accept every later request and never answer
 * it, `GET /__ok` makes it healthy again, `GET /__stats` reports what it saw.
 * Otherwise it serves a 20 KB theme page (with `#content`) on every path.
 * Usage: node bench/servers/theme.ts [--port N]
 */
import { createServer } from 'node:http'
import type { Socket } from 'node:net'
import { parseArgs } from 'node:util'

const { values } = parseArgs({ options: { port: { type: 'string' } } })

function themePage (): Buffer {
  let aside = ''
  for (let i = 0; aside.length < 18 * 1024; i++) aside += `<section class="promo"><h3>Promo ${i}</h3><p>Theme copy with a <a href="promo/${i}.html">link</a>.</p></section>\n`
  return Buffer.from('<!DOCTYPE html><html><head><meta charset="utf-8"><title>Bench theme</title><link rel="stylesheet" href="css/main.css"></head>' +
    `<body><header id="banner">BENCH-THEME</header><main id="content">placeholder</main><aside id="side">${aside}</aside></body></html>`)
}

const page = themePage()
let hung = false
const stats = { requests: 0, answered: 0, hungRequests: 0, connections: 0, open: 0, maxOpen: 0 }
const sockets = new Set<Socket>()

const server = createServer((req, res) => {
  switch (req.url) {
    case '/__hang': hung = true; res.end('hung\n'); return
    case '/__ok': hung = false; res.end('ok\n'); return
    case '/__stats': res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(stats)); return
  }
  stats.requests++
  if (hung) {
    // Accept and never answer: the socket stays open until the client gives up.
    stats.hungRequests++
    return
  }
  stats.answered++
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': page.length })
  res.end(page)
})
server.on('connection', socket => {
  stats.connections++
  stats.open++
  stats.maxOpen = Math.max(stats.maxOpen, stats.open)
  sockets.add(socket)
  socket.on('close', () => { stats.open--; sockets.delete(socket) })
})
server.keepAliveTimeout = 30_000
server.listen(Number(values.port ?? 0), '127.0.0.1', () => {
  const a = server.address() as { port: number }
  console.log(`LISTENING http://127.0.0.1:${a.port}`)
})
process.on('SIGTERM', () => {
  server.close()
  for (const s of sockets) s.destroy()
})
