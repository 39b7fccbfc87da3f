/**
 * The JavaScript cost of a cache hit, without the kernel: gateways in this
 * process answer pipelined requests written into an in-memory socket (a
 * Duplex handed to the HTTP server as a connection), so a run measures
 * Node's parser and response writer plus Livery's request path, and nothing
 * of loopback TCP or of the load generator. Variants run in alternating
 * batches in one process, so a busy machine affects them alike; the figure is
 * this process's CPU time (user + system) per request.
 *
 * Variants: `fast` (the default: fresh hits on the synchronous path),
 * `general` (freshHits: false), `fast+log` (access log on, to /dev/null
 * through Livery's own logger).
 *
 * Each round runs a batch of `--requests` on every variant; the table gives
 * the median over rounds, and each variant's ratio to the general path in
 * the same round (median and range).
 *
 * Run: npm run bench -- hit-path [--requests N] [--rounds R] [--paths P]
 */
import { createServer } from 'node:http'
import { Duplex } from 'node:stream'
import type { AddressInfo } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { pino } from 'pino'
import { parseConfig } from '../src/config/load.ts'
import { Gateway } from '../src/server/gateway.ts'
import { createLogger } from '../src/log.ts'
import { median, page60k } from './harness.ts'

const { values } = parseArgs({ options: { requests: { type: 'string', default: '2000' }, rounds: { type: 'string', default: '41' }, paths: { type: 'string', default: '1' } } })
const perBatch = Number(values.requests)
const rounds = Number(values.rounds)
const paths = Number(values.paths)

/** A socket the HTTP server reads requests from and writes responses into; it counts what it is sent. */
class MemorySocket extends Duplex {
  received = 0
  remoteAddress = '127.0.0.1'
  remotePort = 40000
  onData: (() => void) | undefined
  override _read (): void {}
  override _write (chunk: Buffer, _enc: BufferEncoding, cb: () => void): void { this.received += chunk.length; this.onData?.(); cb() }
  override _writev (chunks: Array<{ chunk: Buffer }>, cb: () => void): void { for (const c of chunks) this.received += c.chunk.length; this.onData?.(); cb() }
  setTimeout (): this { return this }
  setNoDelay (): this { return this }
  setKeepAlive (): this { return this }
}

const body = page60k()
const upstream = createServer((_req, res) => { res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'max-age=3600', 'content-length': body.length }).end(body) })
await new Promise<void>(resolve => upstream.listen(0, '127.0.0.1', resolve))
const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`
const dir = mkdtempSync(join(tmpdir(), 'livery-hit-path-'))

interface Variant { readonly name: string, readonly gateway: Gateway, socket: MemorySocket, readonly samples: number[] }

async function variant (name: string, freshHits: boolean, accessLog: boolean): Promise<Variant> {
  const config = parseConfig({
    log: { access: accessLog, level: accessLog ? 'info' : 'warn' },
    listen: { host: '127.0.0.1', port: 0 },
    cache: { directory: join(dir, name) },
    // A busy machine must not make the watchdog shed (a shed is a 503, and the counts here assume 200s).
    pool: { maxEventLoopDelay: '1h' },
    sites: [{ name: 'bench', hosts: ['*'], upstream: upstreamUrl }],
  }, {}, dir)
  const logger = accessLog ? pino({ level: 'info', base: { pid: process.pid } }, pino.destination({ dest: '/dev/null', sync: true })) : createLogger({ level: 'warn' })
  const gateway = new Gateway(config, { logger, freshHits })
  await gateway.listen(0, '127.0.0.1')
  const port = (gateway.server.address() as AddressInfo).port
  for (let i = 0; i < paths; i++) await (await fetch(`http://127.0.0.1:${port}/page/${i}`)).arrayBuffer()
  const socket = new MemorySocket()
  gateway.server.emit('connection', socket)
  return { name, gateway, socket, samples: [] }
}

/** Writes `n` pipelined GETs, 50 at a time, and resolves once every response is in. */
async function drive (v: Variant, n: number, responseSize: number): Promise<void> {
  const s = v.socket
  let sent = 0
  while (sent < n) {
    const k = Math.min(50, n - sent)
    const target = s.received + k * responseSize
    let head = ''
    for (let i = 0; i < k; i++) head += `GET /page/${(sent + i) % paths} HTTP/1.1\r\nHost: bench.test\r\nUser-Agent: hit-path\r\n\r\n`
    await new Promise<void>(resolve => {
      s.onData = () => { if (s.received >= target) { s.onData = undefined; resolve() } }
      s.push(head)
    })
    sent += k
  }
}

const variants = [await variant('general', false, false), await variant('fast', true, false), await variant('fast+log', true, true)]
// One response's size, from a first exchange on each variant (the same bytes on all: the test suite checks that).
const sizes = new Map<Variant, number>()
for (const v of variants) {
  const before = v.socket.received
  await new Promise<void>(resolve => {
    v.socket.onData = () => { if (v.socket.received - before > body.length) { v.socket.onData = undefined; resolve() } }
    v.socket.push('GET /page/0 HTTP/1.1\r\nHost: bench.test\r\nUser-Agent: hit-path\r\n\r\n')
  })
  sizes.set(v, v.socket.received - before)
}
for (let r = 0; r < rounds; r++) {
  for (const v of r % 2 === 0 ? variants : [...variants].reverse()) {
    const c0 = process.cpuUsage()
    await drive(v, perBatch, sizes.get(v)!)
    const c = process.cpuUsage(c0)
    if (r > 0) v.samples.push((c.user + c.system) / perBatch) // round 0 warms the JIT
  }
}
// Per round, each variant against the general path in the same round: the median and range of those ratios.
const round2 = (x: number): number => Math.round(x * 100) / 100
console.log(`bench/hit-path: ${perBatch} requests per batch, ${rounds - 1} measured rounds, ${paths} path(s), 60 KB page, in-memory socket`)
console.table(variants.map(v => {
  const ratios = v.samples.map((x, i) => x / variants[0].samples[i])
  return { variant: v.name, 'cpu µs/req (median)': round2(median(v.samples)), 'vs general (median)': round2(median(ratios)), 'vs general (range)': `${round2(Math.min(...ratios))}-${round2(Math.max(...ratios))}` }
}))
for (const v of variants) { v.socket.destroy(); await v.gateway.destroy() }
upstream.close()
rmSync(dir, { recursive: true, force: true })
