import t, { type Test } from 'tap'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { MemoryStore } from '../../src/cache/memory-store.ts'
import { DiskStore } from '../../src/cache/disk-store.ts'
import { RedisStore } from '../../src/cache/redis-store.ts'
import { TieredStore } from '../../src/cache/tiered-store.ts'
import type { CacheEntry } from '../../src/cache/entry.ts'
import type { CacheStore, PurgeSelector, TierStats } from '../../src/cache/store.ts'
import type { PurgeNotice, PurgePeers } from '../../src/cache/peers.ts'
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

t.test('a raced write-back promoted by another member is removed by identity, and no refill is banned (issue 12)', async (t) => {
  // Two members on one Redis, joined by an in-process transport whose
  // delivery to the writer is held until the test lets it go. The writer's
  // write-back of a fill older than the purge lands after the sender purged
  // Redis; the sender promotes it; then a refill overwrites it in Redis.
  // When the writer hears the purge, asking Redis whether its write is still
  // there says no, but the sender's copy must go all the same; and removing
  // it must not ban fills (purging again by URL banned the refill under way).
  const prefix = uniquePrefix(t, 'raced')
  const members: Array<{ name: string, apply?: (n: PurgeNotice) => Promise<number>, gate?: Promise<void> }> = [{ name: 'writer' }, { name: 'sender' }]
  let published = (): void => {}
  const publishing = new Promise<void>((resolve) => { published = resolve })
  const peersOf = (me: number): PurgePeers => ({
    onPurge (apply) { members[me].apply = apply },
    async publish (n) {
      // The sender's own tiers are purged, and its ban no longer pending, before it tells anyone.
      if (me === 1) published()
      const others = members.filter((_, i) => i !== me)
      await Promise.all(others.map(async (o) => { await o.gate; await o.apply?.(n) }))
      return { acked: others.map((o) => o.name), missing: [] }
    },
  })
  const make = async (me: number): Promise<{ store: TieredStore, memory: MemoryStore, redis: RedisStore }> => {
    const memory = new MemoryStore({ maxSize: 1024 * 1024, maxEntrySize: 64 * 1024 })
    const redis = new RedisStore({ url: sharedRedisUrl, prefix, timeout: 2000 })
    await redis.whenReady()
    const store = new TieredStore({ tiers: [memory, redis], peers: [peersOf(me)] })
    t.teardown(() => store.destroy())
    return { store, memory, redis }
  }
  const writer = await make(0)
  const sender = await make(1)
  const url = 'http://a.test/raced'
  const old = makeEntry(url, 'old', { requestTime: Date.now() - 1000 })
  await writer.store.put('k', old, 60_000)
  await writer.store.settled()
  let letGo = (): void => {}
  members[0].gate = new Promise<void>((resolve) => { letGo = resolve })
  const answered = sender.store.purgeReport({ urls: [url] })
  // The purge has left Redis: the late write-back lands now.
  await publishing
  await writer.redis.put('k', old, 60_000)
  t.equal((await sender.store.get('k'))?.body.toString(), 'old', 'the sender promoted the raced write-back (the hole)')
  await sender.redis.put('k', makeEntry(url, 'refill'), 60_000)
  const bans = sender.store.bans
  letGo()
  const r = await answered
  t.same(r.missing, [], 'acknowledged')
  t.not(sender.memory.getSync('k')?.body.toString(), 'old', 'the sender\'s copy of the raced write-back is gone')
  t.equal((await sender.store.get('k'))?.body.toString(), 'refill', 'the refill is served')
  t.equal(sender.store.bans, bans, 'no ban was added: fills under way are not banned')
})

