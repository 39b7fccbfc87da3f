/**
 * A real `livery` process for tests: its JSON log lines (stdout) and its
 * stderr are collected, and a test waits for a line instead of sleeping.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { nodeFlags } from '../../src/node-flags.ts'

export const liveryBin = new URL('../../bin/livery.js', import.meta.url).pathname
export const repoRoot = new URL('../../', import.meta.url).pathname

export type LogLine = Record<string, unknown>

export interface SpawnOptions {
  readonly env?: NodeJS.ProcessEnv
  readonly cwd?: string
  /** Run as nobody (uid 65534) when the test runs as root. */
  readonly unprivileged?: boolean
  /** The node arguments before the script; defaults to bin/livery.js's own shebang flags (src/node-flags.ts). */
  readonly nodeArgs?: readonly string[]
  /** The script; defaults to bin/livery.js. */
  readonly script?: string
}

export class LiveryProcess {
  readonly child: ChildProcess
  readonly lines: LogLine[] = []
  stderr = ''
  readonly exited: Promise<number | null>
  readonly #waiters = new Set<() => void>()
  #partial = ''

  constructor (args: readonly string[], opts: SpawnOptions = {}) {
    const argv = [process.execPath, ...(opts.nodeArgs ?? nodeFlags), opts.script ?? liveryBin, ...args]
    const drop = opts.unprivileged === true && process.getuid?.() === 0
    const env = { ...process.env, ...opts.env }
    // `env -u`: tap puts its coverage hooks in every child's NODE_OPTIONS, and
    // as nobody they could not write their report into the root-owned .tap folder.
    // --pdeathsig: a test file that tap kills on its timeout takes its gateways with it, instead of
    // leaving them to load the machine and hold ports for the files that run after it. setpriv execs
    // the command, so the child's pid is the gateway's.
    const user = drop ? ['--reuid=65534', '--regid=65534', '--clear-groups', 'env', '-u', 'NODE_OPTIONS'] : []
    this.child = spawn('setpriv', ['--pdeathsig', 'KILL', ...user, ...argv], { env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] })
    this.child.stdout?.setEncoding('utf8').on('data', (text: string) => this.#take(text))
    this.child.stderr?.setEncoding('utf8').on('data', (text: string) => { this.stderr += text; this.#wake() })
    this.exited = once(this.child, 'close').then(([code]) => { this.#wake(); return code as number | null })
  }

  get pid (): number {
    return this.child.pid ?? 0
  }

  #take (text: string): void {
    const parts = (this.#partial + text).split('\n')
    this.#partial = parts.pop() ?? ''
    for (const part of parts) {
      if (part.trim() === '') continue
      try {
        this.lines.push(JSON.parse(part) as LogLine)
      } catch {
        this.lines.push({ text: part })
      }
    }
    this.#wake()
  }

  #wake (): void {
    for (const w of [...this.#waiters]) w()
  }

  /** Resolves with the first log line (old or new) that matches; rejects if the process exits first. */
  waitForLine (match: (line: LogLine) => boolean, what = 'a log line'): Promise<LogLine> {
    return this.#until(() => this.lines.find(match), what)
  }

  /** Resolves with the stderr match once stderr matches. */
  waitForStderr (pattern: RegExp): Promise<RegExpExecArray> {
    return this.#until(() => pattern.exec(this.stderr) ?? undefined, `stderr matching ${pattern}`)
  }

  #until<T> (probe: () => T | undefined, what: string): Promise<T> {
    return new Promise((resolve, reject) => {
      let done = false
      const check = (): void => {
        if (done) return
        const found = probe()
        if (found !== undefined) {
          done = true
          this.#waiters.delete(check)
          resolve(found)
        } else if (this.child.exitCode !== null || this.child.signalCode !== null) {
          done = true
          this.#waiters.delete(check)
          reject(new Error(`the process exited before ${what}; stderr: ${this.stderr}`))
        }
      }
      this.#waiters.add(check)
      check()
    })
  }

  /** SIGTERM (unless already gone) and the exit code. */
  async stop (signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal)
    return await this.exited
  }
}
