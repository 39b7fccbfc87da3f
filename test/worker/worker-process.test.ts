/**
 * `livery worker` as real processes on the shared Redis (issue 13): warm
 * jobs enqueued here are run by the workers, which fetch from a real
 * upstream and store through the gateway's cache tiers. Synchronised on the
 * workers' log lines and on requests reaching the upstream, never on time.
 */
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { randomBytes } from 'node:crypto'
import { createInterface } from 'node:readline'
import { request } from 'undici'
import { BullQueue } from '../../src/worker/bullmq-queue.ts'
import type { WarmJob } from '../../src/worker/tier.ts'
import { loadConfig } from '../../src/config/load.ts'
import { Gateway } from '../../src/server/gateway.ts'
import { deletePrefix, sharedRedisUrl } from '../helpers/redis.ts'
import { startUpstream } from '../helpers/servers.ts'
import { runCli } from '../helpers/cli.ts'
import { LogCapture } from '../helpers/logs.ts'

const bin = fileURLToPath(new URL('../../bin/livery.js', import.meta.url))
const safety = 60_000

type Line = Record<string, unknown>

// --- the upstream: counts requests per path and how many of one path ran at once ---
const counts = new Map<string, number>()
const inFlight = new Map<string, number>()
let maxSamePath = 0
let concurrent = 0
let latchOpen = false
const latchWaiters: (() => void)[] = []
let releaseSlow: () => void = () => {}
const slowReleased = new Promise<void>(resolve => { releaseSlow = resolve })
const upstreamWaiters: { pred: () => boolean, resolve: () => void }[] = []
function upstreamReaches (pred: () => boolean): Promise<void> {
  if (pred()) return Promise.resolve()
  return new Promise(resolve => upstreamWaiters.push({ pred, resolve }))
}
function poke (): void {
  for (const w of [...upstreamWaiters]) if (w.pred()) { upstreamWaiters.splice(upstreamWaiters.indexOf(w), 1); w.resolve() }
}

const upstream = await startUpstream(t, (req, res) => {
  const path = req.url ?? '/'
  counts.set(path, (counts.get(path) ?? 0) + 1)
  inFlight.set(path, (inFlight.get(path) ?? 0) + 1)
  maxSamePath = Math.max(maxSamePath, inFlight.get(path) ?? 0)
  concurrent++
  const answer = (): void => {
    inFlight.set(path, (inFlight.get(path) ?? 1) - 1)
    concurrent--
    if (path === '/fail') { res.writeHead(500, { 'content-type': 'text/plain' }); res.end('down'); return }
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=300' })
    res.end(`page ${path}`)
  }
  poke()
  if (path.startsWith('/latch/')) {
    // Held until 3 requests are in flight at once: more than one worker's
    // concurrency (2), so both workers must be taking jobs.
    if (concurrent >= 3) { latchOpen = true; for (const w of latchWaiters.splice(0)) w() }
    if (latchOpen) answer()
    else latchWaiters.push(answer)
    return
  }
  if (path.startsWith('/slow/')) { void slowReleased.then(answer); return }
  answer()
})

// --- config, Redis prefix, a producer ---
const dir = mkdtempSync(join(tmpdir(), 'livery-worker-'))
const prefix = `livery-test:worker-proc:${process.pid}:${randomBytes(4).toString('hex')}:`
const configFile = join(dir, 'livery.yaml')
writeFileSync(configFile, JSON.stringify({
  listen: { host: '127.0.0.1', port: 0 },
  log: { level: 'debug', access: false },
  cache: { directory: join(dir, 'cache'), redis: { url: sharedRedisUrl, prefix } },
  worker: { port: 0, concurrency: 2, attempts: 2, backoff: '20ms', rate: 0, themeCheck: '0s' },
  sites: [{ name: 's', hosts: ['warm.test'], upstream: upstream.url }],
}))
const producer = new BullQueue<WarmJob>({ kind: 'warm', url: sharedRedisUrl, prefix: `${prefix}worker`, attempts: 2, backoff: 20, rate: 0, maxDeadLetters: 100 })

interface WorkerProcess {
  readonly child: ChildProcess
  readonly lines: Line[]
  waitFor (pred: (l: Line) => boolean): Promise<Line>
}

const workers: WorkerProcess[] = []
function startWorker (): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [bin, 'worker', '--config', configFile], { stdio: ['ignore', 'pipe', 'inherit'] })
  const lines: Line[] = []
  const waiters: { pred: (l: Line) => boolean, resolve: (l: Line) => void }[] = []
  createInterface({ input: child.stdout! }).on('line', text => {
    let line: Line
    try { line = JSON.parse(text) as Line } catch { return }
    lines.push(line)
    for (const w of [...waiters]) if (w.pred(line)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(line) }
  })
  const w: WorkerProcess = {
    child,
    lines,
    waitFor: pred => {
      const seen = lines.find(pred)
      if (seen !== undefined) return Promise.resolve(seen)
      return new Promise(resolve => waiters.push({ pred, resolve }))
    },
  }
  workers.push(w)
  return w.waitFor(l => l.msg === 'livery worker is running').then(() => w)
}

t.teardown(async () => {
  for (const w of workers) if (w.child.exitCode === null) { const exited = once(w.child, 'exit'); w.child.kill('SIGKILL'); await exited }
  await producer.close()
  await deletePrefix(sharedRedisUrl, prefix)
  rmSync(dir, { recursive: true, force: true })
})

// Both workers start together: process start-up is most of this file's time.
await Promise.all([startWorker(), startWorker()])

const doneLines = (key: string): number => workers.reduce((n, w) => n + w.lines.filter(l => l.msg === 'job done' && l.key === key).length, 0)

t.test('a job that keeps failing is retried, then dead-lettered where livery worker --dead-letters reads it', { timeout: safety }, async t => {
  await producer.enqueue('http://warm.test/fail', { url: 'http://warm.test/fail' })
  await Promise.race(workers.map(w => w.waitFor(l => l.msg === 'job failed its last attempt; dead-lettered')))
  t.equal(counts.get('/fail'), 2, 'worker.attempts (2) requests upstream')
  const out = await runCli(['worker', '--config', configFile, '--dead-letters'])
  t.equal(out.code, 0)
  const letters = out.stdout.trim().split('\n').map(l => JSON.parse(l) as Line)
  t.match(letters, [{ kind: 'warm', key: 'http://warm.test/fail', attempts: 2, error: /cannot warm http:\/\/warm\.test\/fail/ }])
})

t.test('two workers never run one job at once, each job runs once, a second enqueue is a no-op', { timeout: safety }, async t => {
  const urls = Array.from({ length: 12 }, (_, i) => `http://warm.test/latch/${i}`)
  const first = await Promise.all(urls.map(url => producer.enqueue(url, { url })))
  t.ok(first.every(Boolean), 'every job added')
  // Nothing can finish before three requests are in flight, so these find every job waiting or running.
  const again = await Promise.all(urls.map(url => producer.enqueue(url, { url })))
  t.ok(again.every(added => !added), 'enqueueing the same keys again adds nothing')
  await Promise.all(urls.map(url => Promise.race(workers.map(w => w.waitFor(l => l.msg === 'job done' && l.key === url)))))
  t.ok(latchOpen, 'three jobs ran at once: both workers took jobs')
  t.equal(maxSamePath, 1, 'no path was fetched twice at the same time')
  t.same(urls.map(u => counts.get(new URL(u).pathname)), urls.map(() => 1), 'each page fetched exactly once')
  t.same(urls.map(doneLines), urls.map(() => 1), 'each job done exactly once over both workers')
  for (const [i, w] of workers.entries()) t.ok(w.lines.some(l => l.msg === 'job done' && String(l.key).includes('/latch/')), `worker ${i} ran some`)
})

t.test('SIGTERM with jobs in flight: they finish, none is lost or run twice, and the gateway then HITs them', { timeout: safety }, async t => {
  const [a] = workers
  const urls = Array.from({ length: 4 }, (_, i) => `http://warm.test/slow/${i}`)
  await Promise.all(urls.map(url => producer.enqueue(url, { url })))
  // Two workers of concurrency 2: all four run at once.
  await upstreamReaches(() => urls.every(u => (inFlight.get(new URL(u).pathname) ?? 0) === 1))
  const exited = once(a.child, 'exit')
  a.child.kill('SIGTERM')
  await a.waitFor(l => l.msg === 'livery worker stopping: finishing the jobs in flight')
  releaseSlow()
  const [code] = await exited as [number | null]
  t.equal(code, 0, 'the stopped worker exited cleanly')
  await Promise.all(urls.map(url => Promise.race(workers.map(w => w.waitFor(l => l.msg === 'job done' && l.key === url)))))
  t.same(urls.map(u => counts.get(new URL(u).pathname)), urls.map(() => 1), 'each page fetched once')
  t.same(urls.map(doneLines), urls.map(() => 1), 'each job done once')
  t.ok(a.lines.some(l => l.msg === 'job done' && String(l.key).includes('/slow/')), 'the stopped worker finished jobs it held')
  t.match(await producer.depth(), { waiting: 0, delayed: 0, active: 0 }, 'nothing left in the queue')

  const logs = new LogCapture('warn')
  const gateway = await Gateway.create(loadConfig({ file: configFile, env: {} }), { logger: logs.logger })
  t.teardown(() => gateway.destroy())
  const addr = await gateway.listen(0, '127.0.0.1')
  for (const u of urls) {
    const res = await request(`http://127.0.0.1:${addr.port}${new URL(u).pathname}`, { headers: { host: 'warm.test' } })
    t.equal(res.headers['x-cache'], 'HIT', `${u} is a HIT on the gateway`)
    t.equal(await res.body.text(), `page ${new URL(u).pathname}`)
  }
  t.same(urls.map(u => counts.get(new URL(u).pathname)), urls.map(() => 1), 'the gateway did not go upstream')
})
