/**
 * Shared pieces of the autocannon scenarios. Servers run in child processes
 * pinned with taskset to core 0, autocannon runs here pinned to core 1, so
 * the load generator does not steal the server's CPU (on a 2-core machine it
 * is itself a Node process that can become the limit: each scenario prints
 * the generator's own CPU use so that is visible). Load goes to loopback
 * only, is bounded in time, and stops by itself.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { once } from 'node:events'
import { createServer } from 'node:http'
import autocannon from 'autocannon'
import { nodeFlags } from '../src/node-flags.ts'

export const serverCpu = '0'
export const loadCpu = cpus().length > 1 ? '1' : '0'

/** Pins this process (the load generator) to its core. */
export function pinSelf (): void {
  spawnSyncSafe(['taskset', '-pc', loadCpu, String(process.pid)])
}

function spawnSyncSafe (cmd: string[]): void {
  try {
    spawn(cmd[0], cmd.slice(1), { stdio: 'ignore' }).on('error', () => {})
  } catch {
    // taskset missing: the figures are then less trustworthy, and the table says so.
  }
}

export interface Child { readonly url: string, readonly proc: ChildProcess, stop (): Promise<void> }

/**
 * Starts `node script args…` on the server core. The script prints one line
 * `LISTENING <url>` when ready.
 */
export async function startChild (script: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Child> {
  const proc = spawn('taskset', ['-c', serverCpu, process.execPath, ...nodeFlags, script, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const url = await new Promise<string>((resolve, reject) => {
    let buf = ''
    const timer = setTimeout(() => reject(new Error(`${script} did not start within 20s`)), 20_000)
    proc.stdout!.on('data', (chunk: Buffer) => {
      buf += chunk.toString()
      const m = /LISTENING (\S+)/.exec(buf)
      if (m !== null) { clearTimeout(timer); resolve(m[1]) }
    })
    proc.once('exit', code => { clearTimeout(timer); reject(new Error(`${script} exited with ${code}`)) })
  })
  proc.stdout!.resume()
  return {
    url,
    proc,
    async stop () {
      if (proc.exitCode !== null) return
      proc.kill('SIGTERM')
      await once(proc, 'exit')
    },
  }
}

export interface Figures {
  readonly name: string
  readonly reqPerSec: number
  readonly p50: number
  readonly p99: number
  readonly max: number
  readonly errors: number
  readonly non2xx: number
  /** CPU seconds the load generator used per wall second (near 1.0: the generator is the limit). */
  readonly loadCpu: number
}

export async function load (name: string, opts: { url: string | string[], connections?: number, duration?: number, headers?: Record<string, string> }): Promise<Figures> {
  const urls = Array.isArray(opts.url) ? opts.url : [opts.url]
  const start = process.cpuUsage()
  const t0 = performance.now()
  const base = new URL(urls[0])
  const result = await autocannon({
    url: base.origin,
    connections: opts.connections ?? 50,
    duration: opts.duration ?? 10,
    headers: opts.headers,
    requests: urls.map(u => ({ method: 'GET', path: new URL(u).pathname + new URL(u).search })),
  })
  const used = process.cpuUsage(start)
  const wall = (performance.now() - t0) / 1000
  return {
    name,
    reqPerSec: Math.round(result.requests.average),
    p50: result.latency.p50,
    p99: result.latency.p99,
    max: result.latency.max,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
    loadCpu: Math.round(((used.user + used.system) / 1e6 / wall) * 100) / 100,
  }
}

/** `load()` in a child process on the load core: for a second load that must not share this event loop. */
export async function loadInChild (name: string, opts: { url: string[], connections: number, duration: number }): Promise<Figures> {
  const child = spawn(process.execPath, [new URL('./load-child.ts', import.meta.url).pathname, JSON.stringify({ name, ...opts })], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout!.on('data', (chunk: Buffer) => { out += chunk.toString() })
  const [code] = await once(child, 'exit') as [number | null]
  if (code !== 0) throw new Error(`the load for ${name} exited with ${String(code)}`)
  return JSON.parse(out.trim().split('\n').pop() ?? '{}') as Figures
}

export function printTable (title: string, rows: readonly Figures[]): void {
  console.log(`\n${title}`)
  console.table(rows.map(r => ({ scenario: r.name, 'req/s': r.reqPerSec, 'p50 ms': r.p50, 'p99 ms': r.p99, 'max ms': r.max, errors: r.errors, non2xx: r.non2xx, 'autocannon cpu': r.loadCpu })))
}

/** The median of the numbers that are not NaN (NaN when there are none); of an even count, the mean of the middle two. */
export function median (xs: readonly number[]): number {
  const v = xs.filter(x => !Number.isNaN(x)).sort((a, b) => a - b)
  if (v.length === 0) return NaN
  return v.length % 2 === 1 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2
}

export function writeResults (name: string, data: unknown): string {
  const dir = new URL('./results/', import.meta.url).pathname
  mkdirSync(dir, { recursive: true })
  const file = `${dir}${name}.json`
  writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), node: process.version, ...data as object }, null, 2) + '\n')
  return file
}

/** A port free on 127.0.0.1 just now, for a child that must be told its port up front. */
export async function freePort (): Promise<number> {
  const srv = createServer().listen(0, '127.0.0.1')
  await once(srv, 'listening')
  const port = (srv.address() as { port: number }).port
  await new Promise<void>(resolve => srv.close(() => resolve()))
  return port
}

/** A 60 KB HTML page, the size of a typical CMS page. */
export function page60k (): Buffer {
  const para = '<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua.</p>\n'
  let body = '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Bench page</title></head><body><main id="content">\n'
  while (body.length < 60 * 1024 - 40) body += para
  body = body.slice(0, 60 * 1024 - 30)
  body += '</main></body></html>\n'
  return Buffer.from(body.padEnd(60 * 1024, ' '))
}
