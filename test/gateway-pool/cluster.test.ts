/**
 * A process per core through the real CLI: `bin/livery.js serve` with
 * `processes: 2` runs a primary and two gateway workers. Requests are spread
 * over both and /_livery/metrics sums their counters; a SIGKILLed worker is
 * replaced while the survivor keeps answering; SIGTERM to the primary drains
 * everything and exits 0.
 */
import t from 'tap'
import { alive } from '../helpers/process.ts'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { startUpstream } from '../helpers/servers.ts'
import { metricValue } from './fixture.ts'

const bin = fileURLToPath(new URL('../../bin/livery.js', import.meta.url))

type Line = Record<string, unknown>

/** One GET on a fresh connection, so the primary hands it to the next worker. */
async function fetchOnce (port: number, path: string): Promise<{ status: number, body: string }> {
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    httpRequest({ host: '127.0.0.1', port, path, agent: false, headers: { host: 'site.test' } }, resolve).on('error', reject).end()
  })
  let body = ''
  for await (const chunk of res) body += String(chunk)
  return { status: res.statusCode ?? 0, body }
}


t.test('a crashed worker is replaced, requests keep being answered, metrics sum over the processes', async t => {
  const up = await startUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' }).end('hello')
  })
  const dir = t.testdir({})
  const configFile = join(dir, 'livery.yaml')
  writeFileSync(configFile, [
    'listen: { host: 127.0.0.1, port: 0 }',
    'processes: 2',
    'shutdownTimeout: 1s',
    'log: { level: info, access: true }',
    `cache: { directory: ${JSON.stringify(join(dir, 'cache'))}, disk: { maxSize: 0 } }`,
    'sites:',
    `  - { name: site, hosts: ["*"], upstream: ${JSON.stringify(up.url)} }`,
    '',
  ].join('\n'))

  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LIVERY_')))
  const t0 = performance.now()
  const mark = (what: string): void => { t.comment(`${what} at ${(performance.now() - t0).toFixed(0)} ms`) }
  const child = spawn(process.execPath, [bin, 'serve', '--config', configFile], { env, stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })

  // Primary and workers share the child's stdout; every line is pino JSON.
  const lines: Line[] = []
  const waiters = new Set<{ match: (l: Line) => boolean, resolve: (l: Line) => void }>()
  createInterface({ input: child.stdout }).on('line', text => {
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
  const listening = (pid: number): Promise<Line> => waitFor(l => l.msg === 'livery is listening' && l.pid === pid)
  const servedBy = (pid: number): number => lines.filter(l => l.type === 'access' && l.pid === pid && l.site === 'site').length

  const started = await Promise.all([0, 1].map(slot => waitFor(l => l.msg === 'worker started' && l.slot === slot)))
  const [a, b] = started.map(l => l.workerPid as number)
  const [la, lb] = await Promise.all([listening(a), listening(b)])
  const port = la.port as number
  t.equal(lb.port, port, 'both workers listen on the one port')
  mark('both workers listening')

  const n = 10
  for (let i = 0; i < n; i++) {
    const r = await fetchOnce(port, `/spread/${i}`)
    t.equal(r.status, 200)
  }
  // Each request is counted when its response ends; the access log line is written then too.
  await waitFor(() => servedBy(a) + servedBy(b) >= n)
  t.ok(servedBy(a) > 0 && servedBy(b) > 0, `both workers served requests (${servedBy(a)} + ${servedBy(b)})`)
  const metrics = (await fetchOnce(port, '/_livery/metrics')).body
  t.equal(metricValue(metrics, 'livery_http_requests_total', { site: 'site', status: '200' }), n,
    'livery_http_requests_total in /_livery/metrics is the sum over both processes')

  mark('metrics read')
  process.kill(a, 'SIGKILL')
  const exited = await waitFor(l => l.workerPid === a && typeof l.msg === 'string' && l.msg.startsWith('worker exited unexpectedly'))
  t.match(exited, { signal: 'SIGKILL' })
  // Requests keep being answered while the replacement starts.
  for (let i = 0; i < 4; i++) t.equal((await fetchOnce(port, `/survivor/${i}`)).status, 200, 'answered during the restart')
  const replacement = (await waitFor(l => l.msg === 'worker started' && l.slot === exited.slot && l.workerPid !== a)).workerPid as number
  await listening(replacement)
  mark('replacement listening')
  t.notOk(alive(a), 'the killed worker is gone')
  for (let i = 0; i < 6; i++) t.equal((await fetchOnce(port, `/after/${i}`)).status, 200, 'answered after the restart')
  await waitFor(() => servedBy(replacement) > 0)
  t.pass('the replacement worker takes requests')

  child.kill('SIGTERM')
  const [code] = await once(child, 'exit') as [number | null]
  mark('primary exited')
  t.equal(code, 0, 'the primary exits 0 after a graceful shutdown')
  t.notOk(alive(b) || alive(replacement), 'the workers are gone')
  // Known gap (reported, src/cli.ts): a worker whose gateway has closed stays
  // alive on its cluster IPC channel, so the primary SIGKILLs it after
  // shutdownTimeout + 5 s. Shown here rather than hidden:
  const killed = lines.filter(l => typeof l.msg === 'string' && l.msg.startsWith('worker did not stop within')).length
  t.comment(`workers the primary had to SIGKILL at shutdown: ${killed}`)
})
