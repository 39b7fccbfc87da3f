import t from 'tap'
import { alive } from '../helpers/process.ts'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { get } from 'node:http'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const fixture = fileURLToPath(new URL('./fixtures/cluster-app.ts', import.meta.url))

interface Line { readonly event?: string, readonly msg?: string, readonly pid?: number, readonly workerPid?: number, readonly port?: number }

/** Starts the fixture primary and turns its stdout into awaitable events. */
function startCluster (t: { teardown: (fn: () => void) => void }, env: Record<string, string> = {}): {
  child: ChildProcess
  lines: Line[]
  waitFor: (match: (line: Line) => boolean) => Promise<Line>
} {
  const child = spawn(process.execPath, [fixture], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  const lines: Line[] = []
  const waiters: Array<{ match: (line: Line) => boolean, resolve: (line: Line) => void }> = []
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', text => {
    const line = JSON.parse(text) as Line
    lines.push(line)
    for (const waiter of [...waiters]) {
      if (!waiter.match(line)) continue
      waiters.splice(waiters.indexOf(waiter), 1)
      waiter.resolve(line)
    }
  })
  const waitFor = (match: (line: Line) => boolean): Promise<Line> => {
    const seen = lines.find(match)
    if (seen !== undefined) return Promise.resolve(seen)
    return new Promise(resolve => { waiters.push({ match, resolve }) })
  }
  return { child, lines, waitFor }
}

/** One request on a fresh connection, so the primary picks a worker for it. */
async function fetchText (port: number, path = '/'): Promise<string> {
  const res = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
    get({ host: '127.0.0.1', port, path, agent: false }, resolve).on('error', reject)
  })
  let body = ''
  for await (const chunk of res) body += String(chunk)
  return body
}


t.test('a crashed worker is replaced; requests keep being answered; SIGTERM exits 0', async t => {
  const { child, lines, waitFor } = startCluster(t)
  const first = await waitFor(l => l.event === 'listening')
  const second = await waitFor(l => l.event === 'listening' && l.pid !== first.pid)
  const port = first.port as number
  t.equal(second.port, port, 'the workers share one port')

  const served = new Set<string>()
  for (let i = 0; i < 4; i++) served.add(await fetchText(port))
  t.same([...served].sort(), [String(first.pid), String(second.pid)].sort(), 'both workers answer')
  t.match(await fetchText(port, '/metrics'), /fixture_workers_started_total 2\b/, 'metrics are summed over the workers')

  const victim = first.pid as number
  process.kill(victim, 'SIGKILL')
  const exited = await waitFor(l => l.workerPid === victim && l.msg?.startsWith('worker exited unexpectedly') === true)
  t.match(exited, { signal: 'SIGKILL', restartIn: 50 })
  t.equal(await fetchText(port), String(second.pid), 'the survivor answers meanwhile')
  const replacement = await waitFor(l => l.event === 'listening' && l.pid !== first.pid && l.pid !== second.pid)
  t.equal(replacement.port, port)
  const after = new Set<string>()
  for (let i = 0; i < 4; i++) after.add(await fetchText(port))
  t.ok(after.has(String(replacement.pid)), 'the replacement takes requests')

  child.kill('SIGTERM')
  const [code] = await once(child, 'exit') as [number | null]
  t.equal(code, 0, 'the primary exits 0 after a graceful shutdown')
  t.notOk(alive(second.pid as number) || alive(replacement.pid as number), 'the workers are gone')
  t.ok(lines.some(l => l.msg === 'shutting down workers'))
})

t.test('a worker ignoring SIGTERM is killed after shutdownTimeout', async t => {
  const { child, waitFor } = startCluster(t, { IGNORE_SIGTERM: '1', SHUTDOWN_TIMEOUT: '300' })
  const first = await waitFor(l => l.event === 'listening')
  await waitFor(l => l.event === 'listening' && l.pid !== first.pid)
  const started = performance.now()
  child.kill('SIGTERM')
  const [code] = await once(child, 'exit') as [number | null]
  t.equal(code, 0)
  t.ok(performance.now() - started >= 290, 'the primary waited for the grace period')
  await waitFor(l => l.msg?.startsWith('worker did not stop within 300ms') === true)
  t.notOk(alive(first.pid as number))
})
