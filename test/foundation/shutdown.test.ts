// SIGTERM with a request in flight: the request completes, then the process exits 0 (issue 2).
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { ServerResponse } from 'node:http'
import { Agent, request } from 'undici'
import { startUpstream } from '../helpers/servers.ts'

const bin = fileURLToPath(new URL('../../bin/livery.js', import.meta.url))

t.test('SIGTERM lets the in-flight request finish, then exits 0', async t => {
  let slow: ServerResponse | undefined
  let arrived: () => void = () => {}
  const slowArrived = new Promise<void>(resolve => { arrived = resolve })
  const up = await startUpstream(t, (req, res) => {
    if (req.url === '/slow') {
      slow = res
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 200_000 })
      res.write('a'.repeat(100_000)) // half now, half after the signal
      arrived()
      return
    }
    res.end('fast')
  })
  const dir = t.testdir({})
  const file = join(dir, 'livery.yaml')
  writeFileSync(file, [
    'listen: { host: 127.0.0.1, port: 0 }',
    'log: { level: info }',
    'shutdownTimeout: 20s',
    'processes: 1',
    `cache: { directory: ${JSON.stringify(join(dir, 'cache'))} }`,
    'sites:',
    '  - name: slow',
    `    upstream: ${up.url}`,
    '',
  ].join('\n'))
  const child = spawn(process.execPath, [bin, 'serve', '--config', file], { env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  let stderr = ''
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })

  // The log lines on stdout say when it listens and when it starts draining.
  const lines: Record<string, unknown>[] = []
  const waiters: [string, (l: Record<string, unknown>) => void][] = []
  let partial = ''
  child.stdout.on('data', (c: Buffer) => {
    const parts = (partial + c.toString()).split('\n')
    partial = parts.pop() ?? ''
    for (const p of parts) {
      if (!p.startsWith('{')) continue
      const line = JSON.parse(p) as Record<string, unknown>
      lines.push(line)
      for (const [msg, resolve] of waiters) if (String(line.msg).startsWith(msg)) resolve(line)
    }
  })
  const logged = (msg: string): Promise<Record<string, unknown>> => {
    const seen = lines.find(l => String(l.msg).startsWith(msg))
    return seen !== undefined ? Promise.resolve(seen) : new Promise(resolve => waiters.push([msg, resolve]))
  }

  const listening = await Promise.race([logged('livery is listening'), exited.then(([code]) => { throw new Error(`livery exited ${code}: ${stderr}`) })])
  const port = listening.port as number
  const agent = new Agent()
  t.teardown(() => agent.destroy())

  const pending = request(`http://127.0.0.1:${port}/slow`, { dispatcher: agent }).then(async res => ({ status: res.statusCode, body: await res.body.text() }))
  await slowArrived
  child.kill('SIGTERM')
  const draining = await logged('shutting down')
  t.equal(draining.inFlight, 1, 'one request in flight when the signal came')
  slow!.end('b'.repeat(100_000))

  const res = await pending
  t.equal(res.status, 200)
  t.equal(res.body.length, 200_000, 'the full response arrived')
  t.ok(res.body.endsWith('b'.repeat(100_000)), 'including the part sent after the signal')
  const [code, signal] = await exited
  t.equal(signal, null)
  t.equal(code, 0, 'exit 0')
  t.ok(lines.some(l => l.msg === 'stopped'), 'logged that it stopped')
})
