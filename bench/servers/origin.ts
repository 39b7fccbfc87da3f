/**
 * A bare node:http server serving the same 60 KB page on every path: the
 * baseline the gateway is compared with, and the upstream behind it.
 * With --distinct N it holds N distinct 60 KB bodies, one Buffer of its own
 * for each of /page/0 .. /page/N-1 (a Map filled at start, other paths get
 * the shared one): the fair bare-Node anchor for a cache serving N URLs,
 * whose working set is N bodies, not one hot buffer (bench/compare hit-1000).
 * GET /__eld answers the event loop's max delay (ms) since the last call.
 * Usage: node bench/servers/origin.ts [--cache-control VALUE] [--delay MS] [--distinct N]
 */
import { createServer } from 'node:http'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { page60k } from '../harness.ts'

const { values } = parseArgs({ options: { 'cache-control': { type: 'string' }, delay: { type: 'string' }, distinct: { type: 'string' }, port: { type: 'string' } } })
const body = page60k()
const bodies = new Map<string, Buffer>()
for (let i = 0; i < Number(values.distinct ?? 0); i++) bodies.set(`/page/${i}`, Buffer.from(body))
const delay = Number(values.delay ?? 0)
const headers: Record<string, string | number> = { 'content-type': 'text/html; charset=utf-8', 'content-length': body.length }
if (values['cache-control'] !== undefined) headers['cache-control'] = values['cache-control']

const eld = monitorEventLoopDelay({ resolution: 10 })
eld.enable()

const server = createServer((req, res) => {
  // bench/compare reads the event-loop delay of the bare server here (max ms since the last read).
  if (req.url === '/__eld') { res.end(String(eld.max / 1e6)); eld.reset(); return }
  if (delay > 0) {
    const timer = setTimeout(() => { res.writeHead(200, headers); res.end(body) }, delay)
    res.on('close', () => clearTimeout(timer))
    return
  }
  res.writeHead(200, headers)
  res.end(bodies.size === 0 ? body : (bodies.get(req.url!) ?? body))
})
server.keepAliveTimeout = 30_000
server.listen(Number(values.port ?? 0), '127.0.0.1', () => {
  const a = server.address() as { port: number }
  console.log(`LISTENING http://127.0.0.1:${a.port}`)
})
process.on('SIGTERM', () => { server.close(); server.closeAllConnections() })
