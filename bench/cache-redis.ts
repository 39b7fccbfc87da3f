/**
 * bench/cache-redis: Redis as the only shared tier (issue 6). The gateway's
 * memory tier holds one 60 KB page (cache.memory 64KB), disk is off, so with
 * 1,000 distinct pre-warmed URLs nearly every hit comes from Redis. Then the
 * same load with Redis stopped (SIGSTOP: it holds its socket and answers
 * nothing) and killed (SIGKILL: connection refused): every request must still
 * be answered, from the upstream. Redis is a bench-owned redis-server on a
 * free port (no persistence), pinned to the server core with the gateway and
 * the origin; autocannon runs on the other core.
 * Run: npm run bench -- cache-redis   (or: npm exec -- node bench/cache-redis.ts [--duration S] [--connections N] [--urls N])
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { createClient } from '@redis/client'
import { Agent, request } from 'undici'
import { load, pinSelf, printTable, serverCpu, startChild, writeResults, type Figures, freePort } from './harness.ts'

const { values } = parseArgs({ options: { duration: { type: 'string', default: '10' }, connections: { type: 'string', default: '50' }, urls: { type: 'string', default: '1000' } } })
const duration = Number(values.duration)
const connections = Number(values.connections)
const distinct = Number(values.urls)
const prefix = 'livery-bench:'
pinSelf()

const paths = Array.from({ length: distinct }, (_, i) => `/page/${i}?v=${i}`)

async function startRedis (port: number): Promise<ChildProcess> {
  const proc = spawn('taskset', ['-c', serverCpu, 'redis-server', '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] })
  await new Promise<void>((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error('redis-server did not start within 10 s')), 10_000)
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
      if (out.includes('Ready to accept connections')) { clearTimeout(timer); resolve() }
    })
    proc.once('exit', code => { clearTimeout(timer); reject(new Error(`redis-server exited with ${String(code)}: ${out}`)) })
  })
  proc.stdout!.resume()
  return proc
}

/** Requests every path (16 at a time); resolves the X-Cache counts. */
async function sweep (base: string, list: readonly string[], parallel = 16): Promise<Record<string, number>> {
  const agent = new Agent({ connections: parallel })
  const seen: Record<string, number> = {}
  try {
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < list.length) {
        const r = await request(base + list[next++], { dispatcher: agent })
        await r.body.dump()
        const x = `${r.statusCode} ${String(r.headers['x-cache'])}`
        seen[x] = (seen[x] ?? 0) + 1
      }
    }
    await Promise.all(Array.from({ length: parallel }, worker))
  } finally {
    await agent.close()
  }
  return seen
}

async function entriesInRedis (url: string): Promise<number> {
  const c = createClient({ url })
  await c.connect()
  try {
    let n = 0
    let cursor = '0'
    do {
      const r = await c.sendCommand(['SCAN', cursor, 'MATCH', `${prefix}e:*`, 'COUNT', '1000']) as [string, string[]]
      cursor = String(r[0])
      n += r[1].length
    } while (cursor !== '0')
    return n
  } finally {
    c.destroy()
  }
}

const port = await freePort()
const redisUrl = `redis://127.0.0.1:${port}`
let redis = await startRedis(port)
const dir = mkdtempSync(join(tmpdir(), 'livery-bench-redis-'))
const origin = await startChild('bench/servers/origin.ts', ['--cache-control', 'public, max-age=3600'])
const rows: Figures[] = []
const checks: Record<string, unknown> = {}
try {
  const gateway = await startChild('bench/servers/gateway.ts', [], {
    LIVERY_BENCH_CONFIG: JSON.stringify({
      cache: { directory: dir, memory: { maxSize: '64KB', maxEntrySize: '64KB' }, disk: { maxSize: 0 }, redis: { url: redisUrl, prefix, timeout: '50ms' } },
      sites: [{ name: 'bench', upstream: origin.url }],
    }),
  })
  try {
    // A write-through that misses the 50 ms deadline is skipped (and three in
    // a row open the breaker for 1 s): sweep until every page reached Redis.
    const sweeps: Array<{ xcache: Record<string, number>, inRedis: number }> = []
    for (let i = 0; i < 10 && (sweeps.at(-1)?.inRedis ?? 0) < distinct; i++) {
      sweeps.push({ xcache: await sweep(gateway.url, paths, 4), inRedis: await entriesInRedis(redisUrl) })
    }
    checks.warm = sweeps
    checks.entriesInRedis = sweeps.at(-1)?.inRedis
    checks.afterWarm = await sweep(gateway.url, paths)
    if (checks.entriesInRedis !== distinct) throw new Error(`expected ${distinct} entries in Redis after warming, found ${String(checks.entriesInRedis)}`)
    await load('warm-up', { url: paths.map(p => gateway.url + p), duration: 2, connections })
    rows.push(await load(`Redis tier, ${distinct} URLs (memory 64KB, disk off)`, { url: paths.map(p => gateway.url + p), duration, connections }))

    redis.kill('SIGSTOP')
    try {
      rows.push(await load(`Redis stopped (SIGSTOP), ${distinct} URLs`, { url: paths.map(p => gateway.url + p), duration, connections }))
    } finally {
      redis.kill('SIGCONT')
    }
    const exited = once(redis, 'exit')
    redis.kill('SIGKILL')
    await exited
    rows.push(await load(`Redis down (SIGKILL), ${distinct} URLs`, { url: paths.map(p => gateway.url + p), duration, connections }))
    checks.whileDown = await sweep(gateway.url, paths.slice(0, 100))
    redis = await startRedis(port)
  } finally {
    await gateway.stop()
  }
} finally {
  await origin.stop()
  if (redis.exitCode === null && redis.signalCode === null) {
    const exited = once(redis, 'exit')
    redis.kill('SIGKILL')
    await exited
  }
  rmSync(dir, { recursive: true, force: true })
}
printTable(`bench/cache-redis: 60 KB page, ${connections} connections, ${duration}s; gateway, origin and redis-server on core ${serverCpu}, autocannon on the other`, rows)
console.log('checks (status and X-Cache counts of sequential sweeps):', JSON.stringify(checks))
const unanswered = rows.slice(1).reduce((n, r) => n + r.errors + r.non2xx, 0)
console.log(unanswered === 0 ? 'with Redis stopped or down, every request was answered' : `FAILED: ${unanswered} requests failed with Redis stopped or down`)
console.log(`results: ${writeResults('cache-redis', { rows, checks, unanswered })}`)
if (unanswered > 0) process.exitCode = 1
