/**
 * The minimal undici proxy that bench/compare holds Livery's pass mode
 * against: stream the upstream's answer back, nothing else. It also reports
 * its event-loop delay at GET /__eld (max since the last call, in ms).
 * Usage: node bench/servers/undici-proxy.ts --upstream URL
 */
import { createServer } from 'node:http'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { Agent, request } from 'undici'

const { values } = parseArgs({ options: { upstream: { type: 'string' } } })
const upstream = values.upstream ?? 'http://127.0.0.1:8081'
const agent = new Agent({ connections: 128 })
const eld = monitorEventLoopDelay({ resolution: 10 })
eld.enable()

const server = createServer((req, res) => {
  if (req.url === '/__eld') { res.end(String(eld.max / 1e6)); eld.reset(); return }
  request(upstream + (req.url ?? '/'), { dispatcher: agent, method: 'GET' }).then(up => {
    res.writeHead(up.statusCode, up.headers as Record<string, string>)
    up.body.pipe(res)
  }, () => { res.statusCode = 502; res.end() })
})
server.keepAliveTimeout = 30_000
server.listen(0, '127.0.0.1', () => {
  console.log(`LISTENING http://127.0.0.1:${(server.address() as { port: number }).port}`)
})
process.on('SIGTERM', () => { server.close(); server.closeAllConnections(); void agent.close() })
