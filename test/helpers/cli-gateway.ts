/**
 * A whole gateway through the real CLI (`bin/livery.js serve`), usually with
 * several processes: the primary and its workers share the child's stdout,
 * where every line is pino JSON, so tests synchronise on log lines. Each
 * request goes on a fresh connection, so the primary hands consecutive
 * requests to its workers in turn.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const bin = fileURLToPath(new URL('../../bin/livery.js', import.meta.url))

export type Line = Record<string, unknown>

export interface Teardown { teardown: (fn: () => unknown) => void }

export interface CliReply {
  readonly status: number
  readonly headers: Record<string, string | string[] | undefined>
  readonly body: string
}

export interface CliGateway {
  readonly port: number
  readonly proc: ChildProcess
  /** Pids of the workers that logged "livery is listening", in slot order at start. */
  readonly workers: number[]
  readonly lines: Line[]
  waitFor (match: (l: Line) => boolean): Promise<Line>
  /** One request on a fresh connection. */
  request (path: string, opts?: { method?: string, headers?: Record<string, string>, body?: string }): Promise<CliReply>
  /** SIGTERM and wait for the primary to exit. */
  stop (): Promise<void>
}

/** Starts `livery serve` with `yaml` (lines of livery.yaml) and waits until `processes` workers listen. */
/** Extra environment (a variable set to undefined is removed) and Node arguments before the script. */
export interface CliSpawn { readonly env?: NodeJS.ProcessEnv, readonly nodeArgs?: readonly string[] }

export async function startCliGateway (t: Teardown, dir: string, name: string, yaml: readonly string[], processes: number, extra: CliSpawn = {}): Promise<CliGateway> {
  const configFile = join(dir, `${name}.yaml`)
  writeFileSync(configFile, [...yaml, ''].join('\n'))
  const env = Object.fromEntries(Object.entries({ ...process.env, ...extra.env }).filter(([k, v]) => !k.startsWith('LIVERY_') && v !== undefined))
  const proc = spawn(process.execPath, [...(extra.nodeArgs ?? []), bin, 'serve', '--config', configFile], { env, stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return
    const exited = once(proc, 'exit')
    proc.kill('SIGKILL')
    await exited
  })
  const lines: Line[] = []
  const waiters = new Set<{ match: (l: Line) => boolean, resolve: (l: Line) => void }>()
  createInterface({ input: proc.stdout! }).on('line', text => {
    let line: Line
    try { line = JSON.parse(text) as Line } catch { return }
    lines.push(line)
    for (const w of [...waiters]) {
      if (!w.match(line)) continue
      waiters.delete(w)
      w.resolve(line)
    }
  })
  const waitFor = (match: (l: Line) => boolean): Promise<Line> => {
    const seen = lines.find(match)
    if (seen !== undefined) return Promise.resolve(seen)
    return new Promise(resolve => { waiters.add({ match, resolve }) })
  }
  const exited = new Promise<never>((_resolve, reject) => {
    proc.once('exit', code => { reject(new Error(`livery serve (${name}) exited with ${String(code)} before it listened`)) })
  })
  exited.catch(() => { /* reported through the race below when it matters */ })
  const listening = await Promise.race([
    Promise.all(Array.from({ length: processes }, (_, slot) =>
      waitFor(l => l.msg === 'worker started' && l.slot === slot).then(s => waitFor(l => l.msg === 'livery is listening' && l.pid === s.workerPid)))),
    exited,
  ])
  const port = listening[0].port as number
  const request = async (path: string, opts: { method?: string, headers?: Record<string, string>, body?: string } = {}): Promise<CliReply> => {
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path, method: opts.method ?? 'GET', agent: false, headers: { host: 'site.test', ...opts.headers } }, resolve)
      req.on('error', reject)
      req.end(opts.body)
    })
    let body = ''
    for await (const chunk of res) body += String(chunk)
    return { status: res.statusCode ?? 0, headers: res.headers, body }
  }
  return {
    port,
    proc,
    workers: listening.map(l => l.pid as number),
    lines,
    waitFor,
    request,
    async stop () {
      if (proc.exitCode !== null || proc.signalCode !== null) return
      const done = once(proc, 'exit')
      proc.kill('SIGTERM')
      await done
    },
  }
}
