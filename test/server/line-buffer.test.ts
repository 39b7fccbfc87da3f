// Issue 15, item 5: access lines are written in chunks, not one write(2) each,
// and none is lost when the gateway stops gracefully or the process exits.
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { Agent, request } from 'undici'
import { LineBuffer } from '../../src/server/line-buffer.ts'
import { LiveryProcess } from '../helpers/livery-process.ts'
import { startGateway, startUpstream } from '../helpers/servers.ts'

function recorder (): { writes: string[], write (chunk: string): void, next: () => Promise<string> } {
  const writes: string[] = []
  let wake: ((chunk: string) => void) | undefined
  return {
    writes,
    write (chunk) { writes.push(chunk); wake?.(chunk); wake = undefined },
    next: () => new Promise(resolve => { wake = resolve }),
  }
}

t.test('lines gather into one write: at maxBytes, after the interval, or on flush', async t => {
  const dest = recorder()
  const b = new LineBuffer(dest, { maxBytes: 64, interval: 20 })
  b.write('one\n')
  b.write('two\n')
  t.same(dest.writes, [], 'nothing written yet')
  t.equal(b.pending, 8)
  b.flush()
  t.same(dest.writes, ['one\ntwo\n'], 'one write for both')
  b.flush()
  t.equal(dest.writes.length, 1, 'an empty flush writes nothing')

  b.write('x'.repeat(40) + '\n')
  t.equal(dest.writes.length, 1)
  b.write('y'.repeat(40) + '\n')
  t.equal(dest.writes.length, 2, 'maxBytes reached: written at once')
  t.equal(dest.writes[1].length, 82)

  const timed = dest.next()
  b.write('late\n')
  // The buffer's timer is unref'd (it must not keep a stopping gateway alive), so with nothing else pending this
  // process could exit before it fires: a safety net holds the event loop open and fails if the write never comes.
  const net = setTimeout(() => { t.fail('the timer never wrote the line') }, 20_000)
  t.equal(await timed, 'late\n', 'written by the timer, with no further line')
  clearTimeout(net)

  b.close()
  b.write('after\n')
  t.equal(dest.writes.at(-1), 'after\n', 'after close, lines go straight through')
})

t.test('the exit event writes what is waiting (process.exit, with no timer run)', async t => {
  const dir = t.testdir({})
  const script = join(dir, 'exit.ts')
  writeFileSync(script, `import { LineBuffer } from ${JSON.stringify(new URL('../../src/server/line-buffer.ts', import.meta.url).pathname)}
const b = new LineBuffer(process.stdout, { interval: 60_000 })
for (let i = 0; i < 1000; i++) b.write('line ' + i + '\\n')
process.exit(0)
`)
  const r = spawnSync(process.execPath, [script], { encoding: 'utf8' })
  t.equal(r.status, 0, r.stderr)
  const lines = r.stdout.split('\n').filter(Boolean)
  t.equal(lines.length, 1000, 'every line')
  t.equal(lines[999], 'line 999')
})

t.test('a gateway that closes has written the access line of every request it answered', async t => {
  const up = await startUpstream(t, (_req, res) => { res.writeHead(200, { 'cache-control': 'max-age=60' }).end('page') })
  const { url, logs, gateway } = await startGateway(t, { upstream: up.url })
  const agent = new Agent({ keepAliveTimeout: 1_000 })
  t.teardown(() => agent.destroy())
  for (let i = 0; i < 20; i++) await (await request(`${url}/p${i % 4}`, { dispatcher: agent })).body.text()
  await agent.close()
  await gateway.close()
  t.equal(logs.find({ type: 'access' }).length, 20, 'all 20 lines, with no wait after close')
})

t.test('livery serve stopped with SIGTERM: every access line reaches stdout', async t => {
  const up = await startUpstream(t, (_req, res) => { res.writeHead(200, { 'cache-control': 'max-age=60' }).end('page') })
  const dir = t.testdir({})
  const file = join(dir, 'livery.yaml')
  writeFileSync(file, `listen: { host: 127.0.0.1, port: 0 }\ncache: { directory: ${JSON.stringify(join(dir, 'cache'))} }\nsites:\n  - { name: s, hosts: ['*'], upstream: ${JSON.stringify(up.url)} }\n`)
  const gateway = new LiveryProcess(['serve', '--config', file])
  t.teardown(() => gateway.stop())
  const port = Number((await gateway.waitForLine(l => l.msg === 'livery is listening')).port)
  const agent = new Agent({ keepAliveTimeout: 1_000 })
  t.teardown(() => agent.destroy())
  for (let i = 0; i < 50; i++) await (await request(`http://127.0.0.1:${port}/p${i % 5}`, { dispatcher: agent })).body.text()
  await agent.close()
  t.equal(await gateway.stop(), 0, 'a clean exit')
  t.equal(gateway.lines.filter(l => l.type === 'access').length, 50, 'all 50 access lines')
})
