// Issue 15 (memory): a gateway without Redis never loads @redis/client or BullMQ, which cost a bare Node 39 MB of RSS.
import t from 'tap'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'
import { nodeFlags } from '../../src/node-flags.ts'
import { startUpstream } from '../helpers/servers.ts'

const run = promisify(execFile)
const fixture = fileURLToPath(new URL('./fixtures/deps-child.ts', import.meta.url))

t.test('a gateway without Redis loads neither @redis/client nor BullMQ, and loads @redis/client when asked', async t => {
  const upstream = await startUpstream(t, (_req, res) => { res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60' }).end('page') })
  const { stdout } = await run(process.execPath, [...nodeFlags, fixture, upstream.url])
  const r = JSON.parse(stdout) as { status: number, before: string[], after: string[] }
  t.equal(r.status, 200, 'the gateway served the page')
  t.same(r.before, [], 'nothing of @redis/client or BullMQ was loaded')
  t.same(r.after, ['@redis/client'], 'the first use loads @redis/client')
})
