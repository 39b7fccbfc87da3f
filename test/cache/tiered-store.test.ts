import t, { type Test } from 'tap'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { MemoryStore } from '../../src/cache/memory-store.ts'
import { DiskStore } from '../../src/cache/disk-store.ts'
import { RedisStore } from '../../src/cache/redis-store.ts'
import { TieredStore } from '../../src/cache/tiered-store.ts'
import type { CacheEntry } from '../../src/cache/entry.ts'
import type { CacheStore, PurgeSelector, TierStats } from '../../src/cache/store.ts'
import { storeConformance } from './store-conformance.ts'
import { makeEntry } from './helpers.ts'
import { sharedRedisUrl, uniquePrefix } from '../helpers/redis.ts'

interface Tiers { memory: MemoryStore, disk: DiskStore, redis: RedisStore, store: TieredStore }

async function makeTiers (t: Test, prefix = uniquePrefix(t, 'tiered')): Promise<Tiers> {
  const memory = new MemoryStore({ maxSize: 16 * 1024 * 1024, maxEntrySize: 1024 * 1024 })
  const disk = await DiskStore.open({ directory: t.testdir(), maxSize: 16 * 1024 * 1024 })
  const redis = new RedisStore({ url: sharedRedisUrl, prefix, timeout: 500 })
  await redis.whenReady()
  const store = new TieredStore({ tiers: [memory, disk, redis] })
  t.teardown(() => store.destroy())
  return { memory, disk, redis, store }
}

await storeConformance(t, 'tiered', async (t) => (await makeTiers(t)).store)

t.test('reads in order and promotes a hit into the faster tiers', async (t) => {
  const { memory, disk, redis, store } = await makeTiers(t)
  const e = makeEntry('http://a.test/p', 'promote')
  await store.put('k', e, 60_000)
  await store.settled()
  t.ok(await disk.get('k'), 'written through to disk')
  t.ok(await redis.get('k'), 'written through to redis')
  t.equal(store.getSync('k')?.body.toString(), 'promote', 'getSync answers from memory')

  await memory.clear()
  t.equal(store.getSync('k'), undefined, 'memory emptied')
  t.equal((await store.get('k'))?.tier, 'disk', 'answered by disk')
  t.equal(memory.getSync('k')?.body.toString(), 'promote', 'promoted into memory')

  await memory.clear()
  await disk.clear()
  t.equal((await store.get('k'))?.tier, 'redis', 'answered by redis')
  await store.settled()
  t.ok(memory.getSync('k'), 'promoted into memory')
  t.ok(await disk.get('k'), 'promoted into disk')

  const stats = store.stats()
  t.same(Object.keys(stats).sort(), ['disk', 'memory', 'redis'], 'stats per tier')
  t.ok(stats.memory.bytes > 0 && stats.disk.bytes > 0, 'bytes per tier')
})

t.test('a page cached by one instance is a hit on another sharing Redis', async (t) => {
  const prefix = uniquePrefix(t, 'shared')
  const a = await makeTiers(t, prefix)
  const b = await makeTiers(t, prefix)
  await a.store.put('page', makeEntry('http://a.test/page', 'shared'), 60_000)
  await a.store.settled()
  const got = await b.store.get('page')
  t.equal(got?.tier, 'redis', 'B found it in Redis')
  t.equal(got?.body.toString(), 'shared')
  t.ok(b.memory.getSync('page'), 'and now holds it in memory')
})

/** A tier whose writes hang until released: proves put does not wait for slow tiers. */
class SlowTier implements CacheStore {
  readonly name = 'slow'
  readonly syncComplete = false
  release: () => void = () => {}
  readonly #gate = new Promise<void>((resolve) => { this.release = resolve })
  writes = 0
  async get (): Promise<CacheEntry | undefined> { return undefined }
  async put (): Promise<boolean> { this.writes++; await this.#gate; throw new Error('slow tier failed') }
  async delete (): Promise<boolean> { return false }
  async * keys (): AsyncIterable<string> {}
  async purge (_sel: PurgeSelector): Promise<number> { return 0 }
  async clear (): Promise<void> {}
  stats (): Readonly<Record<string, TierStats>> { return { slow: { entries: 0, bytes: 0, maxBytes: 0, evictions: 0 } } }
  async close (): Promise<void> {}
  async destroy (): Promise<void> {}
}

t.test('slow-tier writes never delay the put, and their failures are counted', async (t) => {
  const memory = new MemoryStore({ maxSize: 1024 * 1024 })
  const slow = new SlowTier()
  const store = new TieredStore({ tiers: [memory, slow] })
  t.teardown(() => store.destroy())
  const errors: unknown[] = []
  const onError = (m: unknown): void => { errors.push(m) }
  subscribe('livery:cache:write_error', onError)
  t.teardown(() => unsubscribe('livery:cache:write_error', onError))
  t.equal(await store.put('k', makeEntry('http://a.test/k', 'k'), 60_000), true, 'put resolved while the slow tier hangs')
  t.equal(slow.writes, 1, 'the slow tier was asked')
  t.ok(store.getSync('k'), 'served from memory meanwhile')
  slow.release()
  await store.settled()
  t.equal(store.writeErrors, 1, 'the failure is counted')
  t.same(errors.map((e) => (e as { tier: string }).tier), ['slow'], 'and published with its tier')
})

t.test('a failing tier purge still purges the others and then reports the error', async (t) => {
  const memory = new MemoryStore({ maxSize: 1024 * 1024 })
  const broken = new SlowTier()
  broken.purge = async () => { throw new Error('redis unreachable') }
  const store = new TieredStore({ tiers: [memory, broken] })
  t.teardown(() => store.destroy())
  broken.release()
  await store.put('k', makeEntry('http://a.test/k', 'k'), 60_000)
  await store.settled()
  await t.rejects(store.purge({ all: true }), { code: 'LIVERY_ERR_CACHE_STORE', message: /slow: redis unreachable/ })
  t.equal(store.getSync('k'), undefined, 'memory was purged anyway')
})

t.test('rewriteShared: a fill written to Redis again, unless a purge came since it started (issue 12)', async (t) => {
  // The miss lock's winner writes its entry to Redis again when the
  // write-through timed out; a purge entered meanwhile must stop that write
  // as it stops a put, or the purged copy would land in Redis after the purge.
  const { memory, redis, store } = await makeTiers(t)
  const e = makeEntry('http://a.test/again', 'again', { requestTime: Date.now() - 1 })
  t.equal(await store.rewriteShared('k', e, 2000), true, 'stored')
  t.equal((await redis.get('k'))?.body.toString(), 'again', 'in Redis')
  t.equal(memory.getSync('k'), undefined, 'the shared tiers only')

  const old = makeEntry('http://a.test/banned', 'old', { requestTime: Date.now() - 1000 })
  await store.purge({ urls: ['http://a.test/banned'] })
  t.equal(await store.rewriteShared('b', old, 2000), false, 'a fill that started before a purge is not written')
  t.equal(await redis.get('b'), undefined, 'not in Redis')
})
