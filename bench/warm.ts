/**
 * bench/warm (issue 13): 200 hot pages are purged with warming on; how soon
 * afterwards are 95 % of the requests for them HITs again, with 1 and with 2
 * `livery worker` processes, and what peak request rate did the CMS see from
 * the workers compared with worker.rate?
 *
 * One gateway (this process) and N real `livery worker` processes share a
 * Redis (LIVERY_BENCH_REDIS_URL, default the local one, under a unique
 * prefix). The CMS answers after --cms-delay ms, so warming takes real time.
 * Clients keep requesting the 200 pages at random (--connections) from the
 * purge on; their misses are filled by the gateway as usual, so the figure is
 * what visitors see. The CMS rate is counted per 1 s sliding window from the
 * requests carrying the workers' User-Agent.
 * Run: npm run bench -- warm [--rate 50] [--cms-delay 50] [--connections 8]
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { Agent, request } from 'undici'
import { createClient } from '@redis/client'
import { loadConfig } from '../src/config/load.ts'
import { Gateway } from '../src/server/gateway.ts'
import { createLogger } from '../src/log.ts'
import { writeResults } from './harness.ts'

const { values } = parseArgs({ options: { rate: { type: 'string', default: '50' }, 'cms-delay': { type: 'string', default: '50' }, connections: { type: 'string', default: '8' }, pages: { type: 'string', default: '200' } } })
const rate = Number(values.rate)
const cmsDelay = Number(values['cms-delay'])
const connections = Number(values.connections)
const pages = Number(values.pages)
const redisUrl = process.env.LIVERY_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'
const bin = new URL('../bin/livery.js', import.meta.url).pathname

// --- the CMS: counts the workers' requests by time ---
let warmHits: number[] = []
let allHits = 0
const cms = createServer((req, res) => {
  allHits++
  if (req.headers['user-agent'] === 'livery-warm') warmHits.push(performance.now())
  setTimeout(() => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'public, max-age=3600' })
    res.end(`<!DOCTYPE html><html><head><title>${req.url ?? ''}</title></head><body><p>page ${req.url ?? ''}</p></body></html>`)
  }, cmsDelay)
})
cms.listen(0, '127.0.0.1')
await once(cms, 'listening')
const cmsUrl = `http://127.0.0.1:${(cms.address() as AddressInfo).port}`

const dir = mkdtempSync(join(tmpdir(), 'livery-bench-warm-'))
const prefix = `livery-bench:warm:${randomBytes(4).toString('hex')}:`
const configFile = join(dir, 'livery.yaml')
writeFileSync(configFile, JSON.stringify({
  listen: { host: '127.0.0.1', port: 0 },
  log: { level: 'info', access: false },
  admin: { token: 'bench' },
  cache: { directory: join(dir, 'cache'), redis: { url: redisUrl, prefix } },
  worker: { port: 0, concurrency: 8, rate, themeCheck: '0s' },
  sites: [{ name: 'bench', hosts: ['bench.test'], upstream: cmsUrl, warm: { afterPurge: true, hotHits: 1 } }],
}))
const gateway = await Gateway.create(loadConfig({ file: configFile, env: {} }), { logger: createLogger({ level: 'warn' }) })
const base = `http://127.0.0.1:${(await gateway.listen(0, '127.0.0.1')).port}`
const agent = new Agent({ connections: connections * 2 })
const get = async (path: string): Promise<string> => {
  const r = await request(base + path, { headers: { host: 'bench.test' }, dispatcher: agent })
  await r.body.dump()
  return String(r.headers['x-cache'])
}

function startWorker (): Promise<ChildProcess> {
  const child = spawn(process.execPath, [bin, 'worker', '--config', configFile], { stdio: ['ignore', 'pipe', 'inherit'] })
  return new Promise(resolve => {
    createInterface({ input: child.stdout! }).on('line', line => { if (line.includes('livery worker is running')) resolve(child) })
  })
}

interface Row { workers: number, rate: number, 'ms to 95% HIT': number | string, 'ms to queue drained': number | string, 'peak CMS req/s from workers': number, 'CMS requests during run': number }
const rows: Row[] = []
try {
  for (const n of [1, 2]) {
    // A fresh set of pages per round, so one round's warming cannot serve the next.
    const urls = Array.from({ length: pages }, (_, i) => `/r${n}/p/${i}`)
    const workers = await Promise.all(Array.from({ length: n }, () => startWorker()))
    // Make every page hot: a fill, then hits.
    for (const u of urls) { await get(u); await get(u) }
    warmHits = []
    const before = allHits
    const t0 = performance.now()
    const r = await request(`${base}/_livery/purge`, { method: 'POST', headers: { authorization: 'Bearer bench', 'content-type': 'application/json' }, body: JSON.stringify({ prefixes: [`http://bench.test/r${n}/p/`] }), dispatcher: agent })
    await r.body.dump()
    // Visitors from the purge on: X-Cache per request, by time since the purge.
    const samples: { at: number, hit: boolean }[] = []
    let stop = false
    const visitor = async (): Promise<void> => {
      while (!stop) {
        const x = await get(urls[Math.floor(Math.random() * urls.length)])
        samples.push({ at: performance.now() - t0, hit: x === 'HIT' })
      }
    }
    const visitors = Array.from({ length: connections }, () => visitor())
    const deadline = t0 + 60_000
    let at95: number | undefined
    let drainedAt: number | undefined
    let seenJobs = false
    while (performance.now() < deadline) {
      const d = (await gateway.worker.depth()).warm
      const queued = d.waiting + d.delayed + d.active
      // The purge enqueues its warm jobs just after it answers: drained counts once they were seen.
      if (queued > 0) seenJobs = true
      if (seenJobs && drainedAt === undefined && queued === 0) drainedAt = performance.now() - t0
      await new Promise(resolve => setTimeout(resolve, 100))
      // The first 250 ms window from which every later window is at least 95 % HITs, for a full second.
      const now = performance.now() - t0
      for (let w = 0; w + 1000 <= now; w += 50) {
        const windows: number[] = []
        for (let s = w; s + 250 <= now; s += 250) {
          const inside = samples.filter(x => x.at >= s && x.at < s + 250)
          windows.push(inside.length === 0 ? 1 : inside.filter(x => x.hit).length / inside.length)
        }
        if (windows.length >= 4 && windows.every(h => h >= 0.95)) { at95 = w; break }
      }
      if (at95 !== undefined && drainedAt !== undefined) break
    }
    stop = true
    await Promise.all(visitors)
    let peak = 0
    for (let i = 0, j = 0; j < warmHits.length; j++) {
      while (warmHits[j] - warmHits[i] > 1000) i++
      peak = Math.max(peak, j - i + 1)
    }
    rows.push({
      workers: n,
      rate,
      'ms to 95% HIT': at95 === undefined ? 'over 60 s' : Math.round(at95),
      'ms to queue drained': drainedAt === undefined ? 'over 60 s' : Math.round(drainedAt),
      'peak CMS req/s from workers': peak,
      'CMS requests during run': allHits - before,
    })
    await Promise.all(workers.map(async w => { const e = once(w, 'exit'); w.kill('SIGTERM'); await e }))
  }
  console.log(`\nbench/warm: ${pages} hot pages purged with warm.afterPurge, worker.rate ${rate}/s, CMS delay ${cmsDelay} ms, ${connections} visitors`)
  console.table(rows)
  console.log(`results: ${writeResults('warm', { rate, cmsDelay, connections, pages, rows })}`)
} finally {
  await gateway.close()
  await agent.close()
  cms.close()
  const c = createClient({ url: redisUrl })
  await c.connect()
  for await (const keys of c.scanIterator({ MATCH: prefix + '*', COUNT: 1000 })) if (keys.length > 0) await c.unlink(keys)
  await c.close()
  rmSync(dir, { recursive: true, force: true })
}
