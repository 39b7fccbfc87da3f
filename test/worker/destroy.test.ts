/**
 * Gateway.destroy() tears the worker tier down too: with Redis, the warm
 * queue's BullMQ connections are closed, so the process can exit. (destroy()
 * used to skip the worker tier, and the watchdog, altogether.)
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { nodeFlags } from '../../src/node-flags.ts'
import { sharedRedisUrl, uniquePrefix } from '../helpers/redis.ts'
import { startUpstream } from '../helpers/servers.ts'

const fixture = fileURLToPath(new URL('./fixtures/destroy-child.ts', import.meta.url))

t.test('a destroyed gateway with Redis leaves nothing open that keeps its process alive', async t => {
  const upstream = await startUpstream(t, (_req, res) => { res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60' }).end('page') })
  const prefix = uniquePrefix(t, 'destroy')
  const dir = t.testdir({})
  const child = spawn(process.execPath, [...nodeFlags, fixture, upstream.url, sharedRedisUrl, prefix, dir], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (c: Buffer) => { out += String(c) })
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  // A safety net, not a speed bound: a process held open by a connection never exits at all.
  const net = setTimeout(() => { child.kill('SIGKILL') }, 60_000)
  t.teardown(() => { clearTimeout(net); child.kill('SIGKILL') })
  const [code, signal] = await exited
  clearTimeout(net)
  t.match(out, /^destroyed true$/m, 'the warm job was queued on Redis, then the gateway destroyed')
  t.same({ code, signal }, { code: 0, signal: null }, 'the process exited by itself after destroy()')
})
