/**
 * bench/coherence (issue 12): does a gateway of several processes, and a
 * deployment of several instances sharing Redis, act as one cache?
 *
 * Two set-ups, each through the real CLI (`livery serve`, `processes: 0`,
 * one per core): one gateway without Redis, and two instances sharing a
 * bench-owned redis-server. For each it prints:
 * - upstream requests for 1,000 concurrent cold requests (origin latency
 *   500 ms; target 1 per gateway without Redis, 1 in all with Redis);
 * - the same right after a hard purge of a hot URL under load;
 * - over 50 acknowledged purges under load, how many responses to requests
 *   sent after the purge was answered carried a purged copy (target 0);
 * - how long an acknowledged purge takes to answer, p50 / p99: the time
 *   until every other process and instance applied it (the propagation).
 * Run: npm run bench -- coherence   (or: npm exec -- node bench/coherence.ts [--cold N] [--purges N])
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { Agent, request } from 'undici'
import { writeResults, freePort } from './harness.ts'

const { values } = parseArgs({ options: { cold: { type: 'string', default: '1000' }, purges: { type: 'string', default: '50' }, clients: { type: 'string', default: '32' } } })
const coldN = Number(values.cold)
const purgesN = Number(values.purges)
const clients = Number(values.clients)
const token = 'bench-coherence'
const bin = new URL('../bin/livery.js', import.meta.url).pathname

/** The origin: counts requests per path and answers `v<n> <path>` after `latency` ms, cacheable for 5 minutes. */
async function startOrigin (latency: number): Promise<{ url: string, hits: (p: string) => number, close: () => void }> {
  const counts = new Map<string, number>()
  const srv = createHttpServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0]
    const n = (counts.get(path) ?? 0) + 1
    counts.set(path, n)
    const slow = path.startsWith('/cold') || path.startsWith('/hot')
    setTimeout(() => { res.writeHead(200, { 'content-type': 'text/html', 'cache-control': 'public, max-age=300' }).end(`v${n} ${path}`) }, slow ? latency : 0)
  })
  srv.listen(0, '127.0.0.1')
  await once(srv, 'listening')
  return { url: `http://127.0.0.1:${(srv.address() as { port: number }).port}`, hits: p => counts.get(p) ?? 0, close: () => { srv.close() } }
}

async function startRedis (): Promise<{ url: string, proc: ChildProcess }> {
  const port = await freePort()
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  await new Promise<void>((resolve, reject) => {
    proc.stdout!.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('Ready to accept connections')) resolve() })
    proc.once('exit', code => reject(new Error(`redis-server exited with ${String(code)}`)))
  })
  proc.stdout!.resume()
  return { url: `redis://127.0.0.1:${port}`, proc }
}

interface Gateway { readonly base: string, readonly proc: ChildProcess, stop (): Promise<void> }

async function startGateway (dir: string, name: string, origin: string, redis: string | undefined): Promise<Gateway> {
  const file = join(dir, `${name}.yaml`)
  writeFileSync(file, [
    'listen: { host: 127.0.0.1, port: 0 }',
    'processes: 0',
    'log: { level: info, access: false }',
    `admin: { token: ${token} }`,
    `cache: { directory: ${JSON.stringify(join(dir, name))}, disk: { maxSize: 0 }, lockTimeout: 30s${redis === undefined ? '' : `, redis: { url: ${JSON.stringify(redis)}, prefix: "bench-coherence:", timeout: 200ms }`} }`,
    'pool: { maxConcurrent: 4096, maxQueue: 4096 }',
    'sites:',
    `  - { name: site, hosts: ["*"], upstream: ${JSON.stringify(origin)}, pool: { maxConcurrent: 4096 } }`,
    '',
  ].join('\n'))
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LIVERY_')))
  const proc = spawn(process.execPath, [bin, 'serve', '--config', file], { env, stdio: ['ignore', 'pipe', 'inherit'] })
  const workers = availableParallelism() > 1 ? availableParallelism() : 1
  const port = await new Promise<number>((resolve, reject) => {
    let listening = 0
    createInterface({ input: proc.stdout! }).on('line', text => {
      let l: { msg?: string, port?: number }
      try { l = JSON.parse(text) as typeof l } catch { return }
      if (l.msg === 'livery is listening' && ++listening === workers) resolve(l.port ?? 0)
    })
    proc.once('exit', code => reject(new Error(`gateway ${name} exited with ${String(code)}`)))
  })
  return {
    base: `http://127.0.0.1:${port}`,
    proc,
    async stop () {
      if (proc.exitCode !== null) return
      proc.kill('SIGTERM')
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000)
      await once(proc, 'exit')
      clearTimeout(timer)
    },
  }
}

// Many connections: the primary hands connections to its workers in turn, so the requests spread over every process.
const agent = new Agent({ connections: 2048, keepAliveTimeout: 5_000, pipelining: 1 })

async function get (base: string, path: string): Promise<string> {
  const r = await request(base + path, { dispatcher: agent, headers: { host: 'site.test' } })
  return await r.body.text()
}

async function purge (base: string, path: string): Promise<{ ms: number, missing: number }> {
  const t0 = performance.now()
  const r = await request(base + '/_livery/purge', {
    method: 'POST', dispatcher: agent,
    headers: { host: 'site.test', authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ urls: [`http://site.test${path}`] }),
  })
  const body = JSON.parse(await r.body.text()) as { missing?: string[] }
  return { ms: performance.now() - t0, missing: body.missing?.length ?? 0 }
}

const version = (body: string): number => Number(/^v(\d+) /.exec(body)?.[1] ?? 0)

function quantile (xs: number[], q: number): number {
  if (xs.length === 0) return 0
  const s = [...xs].sort((a, b) => a - b)
  return Math.round(s[Math.min(s.length - 1, Math.floor(q * s.length))] * 10) / 10
}

interface Row { readonly setup: string, readonly cold: number, readonly afterPurge: number, readonly staleAfterAck: number, readonly errors: number, readonly purgeP50: number, readonly purgeP99: number, readonly notAcked: number }

async function scenario (setup: string, gateways: readonly Gateway[], origin: Awaited<ReturnType<typeof startOrigin>>): Promise<Row> {
  const bases = gateways.map(g => g.base)
  // 1. cold: coldN concurrent requests for one URL, spread over the instances.
  const cold = `/cold/${setup.replace(/\W+/g, '-')}`
  await Promise.all(Array.from({ length: coldN }, (_, i) => get(bases[i % bases.length], cold)))
  const coldHits = origin.hits(cold)

  // 2. hot under load, then a hard purge: upstream requests for it after the purge.
  const hot = `/hot/${setup.replace(/\W+/g, '-')}`
  await get(bases[0], hot)
  for (const b of bases) await get(b, hot)
  let stop = false
  const loop = async (i: number): Promise<void> => { while (!stop) await get(bases[i % bases.length], hot) }
  const loops = Array.from({ length: clients }, (_, i) => loop(i))
  await new Promise(resolve => setTimeout(resolve, 1000))
  const beforePurge = origin.hits(hot)
  await purge(bases[0], hot)
  // The refill takes one origin latency; the load keeps going for a while after it.
  await new Promise(resolve => setTimeout(resolve, 2000))
  const afterPurge = origin.hits(hot) - beforePurge
  stop = true
  await Promise.all(loops)

  // 3. acknowledged purges under load: responses to requests sent after an answer that carry a purged copy.
  const acked = `/acked/${setup.replace(/\W+/g, '-')}`
  let floor = -1
  let stale = 0
  let errors = 0
  let done = false
  const loop2 = async (i: number): Promise<void> => {
    while (!done) {
      const f = floor
      const body = await get(bases[i % bases.length], acked)
      const v = version(body)
      if (v === 0) { errors++; if (errors === 1) console.error(`an answer that is not a page: ${body.slice(0, 200)}`) } else if (f >= 0 && v <= f) stale++
    }
  }
  const loops2 = Array.from({ length: clients }, (_, i) => loop2(i))
  const times: number[] = []
  let notAcked = 0
  for (let i = 0; i < purgesN; i++) {
    await new Promise(resolve => setTimeout(resolve, 50))
    // Every origin answer so far is a copy this purge removes.
    const before = origin.hits(acked)
    const r = await purge(bases[i % bases.length], acked)
    floor = before
    times.push(r.ms)
    notAcked += r.missing
  }
  await new Promise(resolve => setTimeout(resolve, 200))
  done = true
  await Promise.all(loops2)
  return { setup, cold: coldHits, afterPurge, staleAfterAck: stale, errors, purgeP50: quantile(times, 0.5), purgeP99: quantile(times, 0.99), notAcked }
}

const dir = mkdtempSync(join(tmpdir(), 'livery-bench-coherence-'))
const origin = await startOrigin(500)
const rows: Row[] = []
try {
  const one = await startGateway(dir, 'one', origin.url, undefined)
  try {
    rows.push(await scenario(`1 instance × ${availableParallelism()} processes, no Redis`, [one], origin))
  } finally {
    await one.stop()
  }
  const redis = await startRedis()
  try {
    const [a, b] = await Promise.all([startGateway(dir, 'a', origin.url, redis.url), startGateway(dir, 'b', origin.url, redis.url)])
    try {
      // Let every process announce itself on the purge bus before purges are counted on it.
      await new Promise(resolve => setTimeout(resolve, 2000))
      rows.push(await scenario(`2 instances × ${availableParallelism()} processes, shared Redis`, [a, b], origin))
    } finally {
      await Promise.all([a.stop(), b.stop()])
    }
  } finally {
    redis.proc.kill('SIGKILL')
  }
} finally {
  origin.close()
  await agent.close()
  rmSync(dir, { recursive: true, force: true })
}

console.log(`\nbench/coherence: ${coldN} concurrent cold requests (origin 500 ms), ${purgesN} acknowledged purges under ${clients} looping clients`)
console.table(rows.map(r => ({
  setup: r.setup,
  'upstream, cold burst': r.cold,
  'upstream, after hard purge of hot URL': r.afterPurge,
  'purged copies served after the answer': r.staleAfterAck,
  'answers that were not the page': r.errors,
  'purge answered p50 ms': r.purgeP50,
  'purge answered p99 ms': r.purgeP99,
  'members not acknowledging': r.notAcked,
})))
console.log('targets: cold and after-purge 1 per gateway without Redis and 1 in all with Redis; 0 purged copies after the answer.')
console.log(`results: ${writeResults('coherence', { rows, coldN, purgesN, clients })}`)
