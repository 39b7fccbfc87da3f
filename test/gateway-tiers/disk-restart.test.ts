// Issue 6 acceptance through the gateway: the disk tier under
// <cache.directory>/http survives a restart. A page cached by one gateway is
// a HIT on the next one started on the same directory, with the upstream gone.
import t, { type Test } from 'tap'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { countingUpstream, fetchTimed, newAgent, startTierGateway, tempDir, tierConfig } from './helpers.ts'

const host = 'disk.test'

t.test('restart on the same cache.directory: a cached page is still a HIT with the upstream stopped', async (t: Test) => {
  const up = await countingUpstream(t, {
    '/bin': (_req, res, n) => {
      const body = Buffer.from([0, 255, 13, 10, 0x80, n])
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'cache-control': 'max-age=300', 'x-origin': 'kept' }).end(body)
    },
  })
  const dir = tempDir(t, 'disk')
  const raw = tierConfig(up.url, dir, { cache: { disk: { maxSize: '10MB' } } })
  const agent = newAgent(t)

  const first = await startTierGateway(t, raw, dir)
  const get = (base: string, path: string) => fetchTimed(agent, base, path, { headers: { host } })
  const page = await get(first.url, '/article')
  t.equal(page.headers['x-cache'], 'MISS', 'first answer from the upstream')
  const bin = await fetchTimed(agent, first.url, '/bin', { headers: { host } })
  t.equal((await get(first.url, '/article')).headers['x-cache'], 'HIT', 'cached in the first gateway')
  // close() lets the background writes to disk finish before the tiers close.
  await first.gateway.close()
  t.ok(existsSync(join(dir, 'http')), 'the disk tier lives under <cache.directory>/http')
  await up.close()

  const second = await startTierGateway(t, raw, dir)
  const again = await get(second.url, '/article')
  t.equal(again.status, 200, 'answered')
  t.equal(again.headers['x-cache'], 'HIT', 'a HIT after restart')
  t.equal(again.body, page.body, 'the same page')
  t.equal(again.headers['content-type'], 'text/html; charset=utf-8', 'with its stored headers')
  const bin2 = await fetchTimed(agent, second.url, '/bin', { headers: { host } })
  t.equal(bin2.headers['x-cache'], 'HIT', 'a binary page too')
  t.same(bin2.bytes, bin.bytes, 'byte for byte')
  t.same([...bin2.bytes], [0, 255, 13, 10, 0x80, 1], 'the bytes the upstream sent')
  t.equal(bin2.headers['x-origin'], 'kept', 'with the upstream\'s own header')
  t.equal(up.hits('/article'), 1, 'the upstream saw one request')
  const uncached = await get(second.url, '/never-cached')
  t.equal(uncached.status, 502, 'the upstream really is down: an uncached page fails')
  t.equal((await get(second.url, '/article')).headers['x-cache'], 'HIT', 'and the cached page is still served (now from memory)')
})
