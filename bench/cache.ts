/**
 * bench/cache: cache-hit throughput of the gateway for a 60 KB page, one URL
 * and 1,000 distinct URLs (pre-warmed), against a bare node:http server
 * serving the same bytes, in one run, access log off. Target (issue 5):
 * gateway ≥ 0.9 × bare.
 * Run: npm run bench -- cache   (or: npm exec -- node bench/cache.ts [--duration S] [--connections N])
 * Profile the gateway child: LIVERY_BENCH_PROFILE=dir npm exec -- node bench/cache.ts
 */
import { parseArgs } from 'node:util'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent, request } from 'undici'
import { load, pinSelf, printTable, startChild, writeResults, type Child, type Figures } from './harness.ts'

const { values } = parseArgs({ options: { duration: { type: 'string', default: '10' }, connections: { type: 'string', default: '50' }, urls: { type: 'string', default: '1000' } } })
const duration = Number(values.duration)
const connections = Number(values.connections)
const distinct = Number(values.urls)
pinSelf()

const paths = Array.from({ length: distinct }, (_, i) => `/page/${i}?v=${i}`)

/** Fills the cache with every path (a few at a time) and checks the next answer is a hit. */
async function warm (base: string, list: readonly string[]): Promise<void> {
  const agent = new Agent({ connections: 16 })
  try {
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < list.length) {
        const p = list[next++]
        const r = await request(base + p, { dispatcher: agent })
        await r.body.dump()
      }
    }
    await Promise.all(Array.from({ length: 16 }, worker))
    for (const p of [list[0], list[list.length - 1]]) {
      const r = await request(base + p, { dispatcher: agent })
      await r.body.dump()
      if (r.headers['x-cache'] !== 'HIT') throw new Error(`${p} is not cached after warming (X-Cache: ${String(r.headers['x-cache'])})`)
    }
  } finally {
    await agent.close()
  }
}

/** CPU seconds (user + system) a child process has used, from /proc (clock ticks of 10 ms). */
function cpuOf (child: Child): number {
  const stat = readFileSync(`/proc/${child.proc.pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

/**
 * Runs one load and adds the server's CPU microseconds per request: on a
 * shared machine req/s swings with other processes' load on core 0, while
 * the server's own CPU per request is what a hit costs.
 */
async function measure (server: Child, name: string, url: string | string[]): Promise<Figures & { cpuPerRequestUs: number }> {
  const before = cpuOf(server)
  const f = await load(name, { url, duration, connections })
  const cpu = cpuOf(server) - before
  const requests = f.reqPerSec * duration
  return { ...f, cpuPerRequestUs: Math.round(cpu / requests * 1e6) }
}

const cacheDir = mkdtempSync(join(tmpdir(), 'livery-bench-cache-'))
const origin = await startChild('bench/servers/origin.ts', ['--cache-control', 'public, max-age=3600'])
const rows: Array<Figures & { cpuPerRequestUs: number }> = []
try {
  await load('warm-up', { url: origin.url, duration: 2, connections })
  rows.push(await measure(origin, 'bare node:http, one URL', `${origin.url}/page`))
  rows.push(await measure(origin, `bare node:http, ${distinct} URLs`, paths.map(p => origin.url + p)))
  const profile = process.env.LIVERY_BENCH_PROFILE
  const gateway = await startChild('bench/servers/gateway.ts', [], {
    // The memory tier only (issue 5); the cache directory is a temp dir, not the work tree.
    LIVERY_BENCH_CONFIG: JSON.stringify({ cache: { directory: cacheDir, disk: { maxSize: 0 } }, sites: [{ name: 'bench', upstream: origin.url }] }),
    ...(profile === undefined ? {} : { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profile}` }),
  })
  try {
    await warm(gateway.url, ['/page'])
    await load('warm-up', { url: `${gateway.url}/page`, duration: 2, connections })
    rows.push(await measure(gateway, 'livery cache hit, one URL', `${gateway.url}/page`))
    await warm(gateway.url, paths)
    rows.push(await measure(gateway, `livery cache hit, ${distinct} URLs`, paths.map(p => gateway.url + p)))
    await warm(gateway.url, [paths[0], paths[paths.length - 1]])
  } finally {
    await gateway.stop()
  }
} finally {
  await origin.stop()
  rmSync(cacheDir, { recursive: true, force: true })
}
printTable(`bench/cache: 60 KB page, ${connections} connections, ${duration}s; servers on core 0, autocannon on core 1`, rows)
const one = rows[2].reqPerSec / rows[0].reqPerSec
const many = rows[3].reqPerSec / rows[1].reqPerSec
console.table(rows.map(r => ({ scenario: r.name, 'server CPU µs/request': r.cpuPerRequestUs })))
const cpuOne = rows[0].cpuPerRequestUs / rows[2].cpuPerRequestUs
const cpuMany = rows[1].cpuPerRequestUs / rows[3].cpuPerRequestUs
console.log(`cache hit / bare req/s: one URL ${one.toFixed(2)}, ${distinct} URLs ${many.toFixed(2)} (target ≥ 0.90)`)
console.log(`bare CPU / cache-hit CPU per request (the throughput ratio a saturated core would give): one URL ${cpuOne.toFixed(2)}, ${distinct} URLs ${cpuMany.toFixed(2)}`)
console.log(`results: ${writeResults('cache', { rows, ratio: { oneUrl: one, manyUrls: many }, cpuRatio: { oneUrl: cpuOne, manyUrls: cpuMany }, target: 0.9 })}`)
