/**
 * Upstreams, a theme server and log-line waits for the reload tests
 * (reload.test.ts: SIGHUP; watch.test.ts: watch: true).
 */
import { request as httpRequest, type Agent, type IncomingMessage, type ServerResponse } from 'node:http'
import type { LiveryProcess, LogLine } from '../helpers/livery-process.ts'
import { startUpstream, type Teardown } from '../helpers/servers.ts'

export const rules = (theme: string): string => `<rules xmlns="http://namespaces.plone.org/diazo" xmlns:css="http://namespaces.plone.org/diazo/css">
  <theme href="${theme}" /><replace css:theme="#main" css:content="#content" /></rules>`

/**
 * `connection` numbers the client socket a reply came on (0: the request
 * failed). Not `req.reusedSocket`: Node's agent leaves that false for a
 * request that waited in its queue and was then handed the same kept-alive
 * socket, which is what happens when a health check is in flight as the
 * test's own request goes out (issue 10).
 */
export interface Got { status: number, body: string, connection: number }

const connections = new WeakMap<object, number>()
let lastConnection = 0
const connectionOf = (socket: object): number => {
  let id = connections.get(socket)
  if (id === undefined) { id = ++lastConnection; connections.set(socket, id) }
  return id
}

export function get (port: number, path: string, agent: Agent): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, agent }, res => {
      const connection = connectionOf(res.socket)
      let body = ''
      res.setEncoding('utf8').on('data', (c: string) => { body += c })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, connection }))
    })
    req.on('error', reject)
    req.end()
  })
}

export async function backends (t: Teardown): Promise<{ a: string, b: string, theme: string, slowArrived: Promise<void>, releaseSlow: () => void }> {
  let releaseSlow = (): void => {}
  let arrived = (): void => {}
  const slowArrived = new Promise<void>(resolve => { arrived = resolve })
  const page = (name: string) => (req: IncomingMessage, res: ServerResponse): void => {
    const send = (): void => { res.writeHead(200, { 'content-type': 'text/html', 'cache-control': 'no-store' }).end(`<html><body><div id="content">from ${name}</div></body></html>`) }
    if (req.url === '/slow') {
      releaseSlow = send
      arrived()
    } else send()
  }
  const [a, b, theme] = await Promise.all([
    startUpstream(t, page('A')),
    startUpstream(t, page('B')),
    startUpstream(t, (req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' }).end(`<html><body><p id="theme">theme ${req.url === '/two.html' ? 'two' : 'one'}</p><div id="main"></div></body></html>`)
    }),
  ])
  return { a: a.url, b: b.url, theme: theme.url, slowArrived, releaseSlow: () => releaseSlow() }
}

export const reloaded = (l: LogLine): boolean => l.msg === 'configuration reloaded'

/**
 * Waits until every process that serves has logged its reload: with the
 * default process count there is one per core, and a keep-alive connection
 * may belong to the one that reloads last.
 */
export function everyProcessReloaded (gw: LiveryProcess): Promise<LogLine> {
  const pids = new Set(gw.lines.filter(l => l.msg === 'livery is listening').map(l => l.pid))
  return gw.waitForLine(() => [...pids].every(pid => gw.lines.some(l => reloaded(l) && l.pid === pid)), 'every process to reload')
}

/**
 * Every serving process once it listens: in cluster mode the primary logs how
 * many it started, and with port 0 each worker listens on a port of its own.
 */
export async function everyProcessListening (gw: LiveryProcess): Promise<Array<{ pid: number, port: number }>> {
  const first = await gw.waitForLine(l => l.msg === 'livery is listening' || l.msg === 'livery primary started its worker processes')
  const count = first.msg === 'livery is listening' ? 1 : Number(first.processes)
  const listening = (): LogLine[] => gw.lines.filter(l => l.msg === 'livery is listening')
  await gw.waitForLine(() => listening().length >= count, `${count} processes listening`)
  return listening().slice(0, count).map(l => ({ pid: Number(l.pid), port: Number(l.port) }))
}

/**
 * A config line: the cold theme fetch at start-up may take its missWait
 * (3 s by default) on a busy machine, and the first page then goes out
 * unthemed (issue 10). These tests are about reloading, so they wait.
 */
export const slowMachineFetch = 'fetch: { missWait: 30s }\n'

/**
 * Requests `/_livery/healthz` on `agent` every 500 ms until stopped: the
 * gateway closes a keep-alive connection idle for 5 s, and on a busy machine
 * a reload (with `livery reload` spawning a process) can take longer than
 * that, so an idle connection was sometimes closed by its own timeout, not by
 * the reload (issue 10). Busy, it is closed only if the reload closes it.
 */
export function keepBusy (t: Teardown, port: number, agent: Agent): { stop: () => Promise<Got[]> } {
  const replies: Got[] = []
  let stopped = false
  const loop = (async () => {
    while (!stopped) {
      try {
        replies.push(await get(port, '/_livery/healthz', agent))
      } catch {
        // A failed request is a dropped connection: the assertion on the replies says so.
        replies.push({ status: 0, body: '', connection: 0 })
        return
      }
      await new Promise(resolve => { setTimeout(resolve, 500) })
    }
  })()
  const stop = async (): Promise<Got[]> => { stopped = true; await loop; return replies }
  t.teardown(stop)
  return { stop }
}
