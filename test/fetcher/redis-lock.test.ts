import t, { type Test } from 'tap'
import { createServer } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { FetchPool } from '../../src/fetcher/index.ts'
import { RedisFetchLock } from '../../src/fetcher/redis-lock.ts'
import type { FetchConfig } from '../../src/config/types.ts'
import { sharedRedisUrl, uniquePrefix, deletePrefix } from '../helpers/redis.ts'

const config: FetchConfig = {
  concurrency: 4, ttl: 60_000, minTtl: 1_000, staleWhileRevalidate: 86_400_000, staleIfError: 86_400_000,
  wait: 200, missWait: 5_000, maxSize: 10 * 1024 * 1024,
  timeouts: { connect: 2_000, firstByte: 5_000, betweenBytes: 5_000, total: 10_000 },
  circuit: { failures: 5, coolDown: 10_000, maxCoolDown: 300_000 },
}

async function origin (t: Test, delay: number): Promise<{ url: string, requests: () => number }> {
  let requests = 0
  const server = createServer((_req, res) => {
    requests++
    const timer = setTimeout(() => res.writeHead(200, { 'content-type': 'text/html', etag: '"t1"' }).end('<html>theme</html>'), delay)
    res.on('close', () => clearTimeout(timer))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/theme.html`, requests: () => requests }
}

async function instance (t: Test, prefix: string, redisUrl = sharedRedisUrl): Promise<{ pool: FetchPool, lock: RedisFetchLock }> {
  const lock = new RedisFetchLock({ url: redisUrl, prefix, timeout: 200, lockTtl: config.timeouts.total, pollInterval: 20 })
  const pool = new FetchPool(config, { directory: t.testdir({}), lock })
  t.teardown(async () => { await pool.destroy(); await lock.destroy() })
  return { pool, lock }
}

t.test('two instances sharing Redis fetch a cold resource once between them', async t => {
  const prefix = uniquePrefix(t, 'fetchlock')
  t.teardown(() => deletePrefix(sharedRedisUrl, prefix))
  const server = await origin(t, 300)
  const a = await instance(t, prefix)
  const b = await instance(t, prefix)
  await Promise.all([a.lock.whenReady(), b.lock.whenReady()])
  const [ra, rb] = await Promise.all([a.pool.get(server.url), b.pool.get(server.url)])
  t.equal(server.requests(), 1, 'exactly one request reached the origin')
  t.equal(ra.resource.body.toString(), '<html>theme</html>')
  t.equal(rb.resource.body.toString(), '<html>theme</html>')
  t.equal(ra.resource.version, rb.resource.version, 'both instances hold the same version')
})

t.test('with Redis unreachable each instance simply fetches itself', async t => {
  const server = await origin(t, 10)
  const a = await instance(t, 'livery-test:none:', 'redis://127.0.0.1:1')
  const r = await a.pool.get(server.url)
  t.equal(r.resource.body.toString(), '<html>theme</html>')
  t.equal(server.requests(), 1)
})
