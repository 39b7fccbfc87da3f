// 50 MB up and 50 MB down stream through while the gateway's RSS grows by less than 30 MB (issue 2).
import t from 'tap'
import { fork, type ChildProcess } from 'node:child_process'
import { nodeFlags } from '../../src/node-flags.ts'
import { createHash, type Hash } from 'node:crypto'
import { once } from 'node:events'
import { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { Agent, request } from 'undici'
import { startUpstream } from '../helpers/servers.ts'

const size = 50 * 1024 * 1024
const limit = 30 * 1024 * 1024
const fixture = fileURLToPath(new URL('./fixtures/gateway-child.ts', import.meta.url))

/** `total` bytes of a varying pattern, generated chunk by chunk and hashed as they go. */
function generated (total: number, hash: Hash): Readable {
  let sent = 0
  const block = Buffer.alloc(64 * 1024)
  return new Readable({
    read () {
      if (sent >= total) { this.push(null); return }
      const n = Math.min(block.length, total - sent)
      block.fill(sent % 251)
      const chunk = Buffer.from(block.subarray(0, n))
      hash.update(chunk)
      sent += n
      this.push(chunk)
    },
  })
}

interface Stats { rss: number, peak: number, arrayBuffers: number }

function ask (child: ChildProcess, cmd: string): Promise<Stats> {
  const reply = once(child, 'message') as Promise<[Stats]>
  child.send({ cmd })
  return reply.then(([m]) => m)
}

t.test('50 MB upload and 50 MB download, measured in the gateway\'s process', async t => {
  const seen = { uploadBytes: 0, uploadHash: '', downloadHash: '' }
  const up = await startUpstream(t, (req, res) => {
    if (req.method === 'POST') {
      const hash = createHash('sha256')
      let bytes = 0
      req.on('data', (c: Buffer) => { bytes += c.length; hash.update(c) })
      req.on('end', () => {
        seen.uploadBytes = bytes
        seen.uploadHash = hash.digest('hex')
        res.end(JSON.stringify({ bytes }))
      })
      return
    }
    const n = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('n'))
    const hash = createHash('sha256')
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n })
    const body = generated(n, hash)
    body.on('end', () => { seen.downloadHash = hash.digest('hex') })
    body.pipe(res)
  })

  const raw = { sites: [{ name: 'big', upstream: up.url }], log: { level: 'silent', access: false } }
  // Without tap's --import hooks: the child is the gateway alone.
  const child = fork(fixture, [JSON.stringify(raw)], { execArgv: [...nodeFlags], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const exited = once(child, 'exit') as Promise<[number | null]>
  t.teardown(async () => {
    if (child.exitCode === null && child.connected) child.send({ cmd: 'close' })
    await exited
  })
  const [{ port }] = await once(child, 'message') as [{ port: number }]
  const agent = new Agent()
  t.teardown(() => agent.close())
  const url = `http://127.0.0.1:${port}`

  const upload = async (n: number): Promise<{ status: number, hash: string }> => {
    const hash = createHash('sha256')
    const res = await request(`${url}/upload`, { method: 'POST', body: generated(n, hash), headers: { 'content-type': 'application/octet-stream' }, dispatcher: agent })
    await res.body.text()
    return { status: res.statusCode, hash: hash.digest('hex') }
  }
  const download = async (n: number): Promise<{ status: number, bytes: number, hash: string }> => {
    const hash = createHash('sha256')
    let bytes = 0
    const res = await request(`${url}/download?n=${n}`, { dispatcher: agent })
    for await (const chunk of res.body) { bytes += (chunk as Buffer).length; hash.update(chunk as Buffer) }
    return { status: res.statusCode, bytes, hash: hash.digest('hex') }
  }

  // Warm up so code loading and first-use allocations are not counted as growth.
  await upload(2 * 1024 * 1024)
  await download(2 * 1024 * 1024)
  const base = await ask(child, 'reset')

  const u = await upload(size)
  t.equal(u.status, 200)
  t.equal(seen.uploadBytes, size, 'the upstream received every byte')
  t.equal(seen.uploadHash, u.hash, 'and the same bytes')

  const d = await download(size)
  t.equal(d.status, 200)
  t.equal(d.bytes, size, 'the client received every byte')
  t.equal(d.hash, seen.downloadHash, 'and the same bytes')

  const after = await ask(child, 'stats')
  const growth = after.peak - base.rss
  t.comment(`gateway RSS: ${(base.rss / 2 ** 20).toFixed(1)} MB before, peak ${(after.peak / 2 ** 20).toFixed(1)} MB, growth ${(growth / 2 ** 20).toFixed(1)} MB`)
  t.ok(growth < limit, `peak RSS growth ${(growth / 2 ** 20).toFixed(1)} MB is under 30 MB`)
  // Tells retained bodies apart from garbage V8 has not collected yet.
  const collected = await ask(child, 'gcstats')
  t.comment(`array buffers: ${(after.arrayBuffers / 2 ** 20).toFixed(1)} MB before a full GC, ${(collected.arrayBuffers / 2 ** 20).toFixed(1)} MB after`)
  t.ok(collected.arrayBuffers < 8 * 2 ** 20, 'no body is retained: after a full GC under 8 MB of buffers remain')
})
