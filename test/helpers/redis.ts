/**
 * Redis for tests. `sharedRedisUrl` is the shared server at 127.0.0.1:6379;
 * tests touch it only under a unique prefix (`uniquePrefix`) and delete
 * that prefix at teardown. `startRedis` runs a test-owned `redis-server` on
 * a free port, which a test may stop (SIGSTOP), kill and restart.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { createClient } from '@redis/client'

export interface Teardown { teardown: (fn: () => unknown) => void }

export const sharedRedisUrl = process.env.LIVERY_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'

/** A prefix no other test uses; every key under it is deleted at teardown. */
export function uniquePrefix (t: Teardown, label = 'test'): string {
  const prefix = `livery-test:${label}:${process.pid}:${randomBytes(4).toString('hex')}:`
  t.teardown(() => deletePrefix(sharedRedisUrl, prefix))
  return prefix
}

export async function deletePrefix (url: string, prefix: string): Promise<void> {
  const c = createClient({ url })
  c.on('error', () => { /* a failed cleanup connection is reported by connect() below */ })
  await c.connect()
  try {
    let cursor = '0'
    do {
      const r = await c.sendCommand(['SCAN', cursor, 'MATCH', prefix.replace(/[*?[\]\\]/g, '\\$&') + '*', 'COUNT', '1000']) as [string, string[]]
      cursor = String(r[0])
      if (r[1].length > 0) await c.sendCommand(['UNLINK', ...r[1]])
    } while (cursor !== '0')
  } finally {
    await c.close()
  }
}

/** A free TCP port: bind port 0, read it, close (redis-server cannot take port 0). */
export async function freePort (): Promise<number> {
  const srv = createServer()
  srv.listen(0, '127.0.0.1')
  await once(srv, 'listening')
  const addr = srv.address()
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0
  await new Promise<void>((resolve) => srv.close(() => resolve()))
  return port
}

export interface OwnedRedis {
  readonly port: number
  readonly url: string
  /** The current child; replaced by `restart()`. */
  readonly child: ChildProcess
  /** SIGSTOP: the server keeps its socket but answers nothing (slow). */
  pause (): void
  resume (): void
  /** SIGKILL and wait for exit (down). */
  kill (): Promise<void>
  /** Starts a fresh server on the same port. */
  restart (): Promise<void>
}

/** A test-owned redis-server without persistence, killed at teardown. */
export async function startRedis (t: Teardown): Promise<OwnedRedis> {
  const port = await freePort()
  let child = await spawnRedis(port)
  const owned: OwnedRedis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    get child () { return child },
    pause () { child.kill('SIGSTOP') },
    resume () { child.kill('SIGCONT') },
    async kill () {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = once(child, 'exit')
      child.kill('SIGKILL')
      await exited
    },
    async restart () {
      await owned.kill()
      child = await spawnRedis(port)
    }
  }
  t.teardown(() => owned.kill())
  return owned
}

async function spawnRedis (port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'notice'], { stdio: ['ignore', 'pipe', 'inherit'] })
  // "Ready to accept connections" is logged at notice level, once listening.
  let out = ''
  const ready = new Promise<void>((resolve, reject) => {
    const onData = (d: Buffer): void => {
      out += d.toString()
      if (out.includes('Ready to accept connections')) { child.stdout?.off('data', onData); resolve() }
    }
    child.stdout?.on('data', onData)
    child.once('exit', (code) => reject(new Error(`redis-server exited with ${String(code)}: ${out}`)))
    child.once('error', reject)
  })
  await ready
  child.stdout?.resume()
  return child
}
