import t, { type Test } from 'tap'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { MemoryStore } from '../../src/cache/memory-store.ts'
import { RedisStore } from '../../src/cache/redis-store.ts'
import { TieredStore } from '../../src/cache/tiered-store.ts'
import { PurgeBus } from '../../src/cache/purge-bus.ts'
import { makeEntry } from './helpers.ts'
import { sharedRedisUrl, uniquePrefix } from '../helpers/redis.ts'

interface Instance { memory: MemoryStore, store: TieredStore, bus: PurgeBus }

async function instance (t: Test, prefix: string, id: string): Promise<Instance> {
  const memory = new MemoryStore({ maxSize: 1024 * 1024 })
  const redis = new RedisStore({ url: sharedRedisUrl, prefix, timeout: 500 })
  const bus = new PurgeBus({ url: sharedRedisUrl, prefix, instanceId: id })
  const store = new TieredStore({ tiers: [memory, redis], peers: [bus] })
  t.teardown(async () => { await store.destroy(); await bus.destroy() })
  await Promise.all([redis.whenReady(), bus.start()])
  return { memory, store, bus }
}

interface Received { from: string, to: string, soft: boolean, count: number }

function received (t: Test): { events: Received[], next: (to: string) => Promise<Received> } {
  const events: Received[] = []
  const waiters: Array<{ to: string, resolve: (r: Received) => void }> = []
  const fn = (m: unknown): void => {
    const r = m as Received
    events.push(r)
    for (const w of waiters.splice(0)) { if (w.to === r.to) w.resolve(r); else waiters.push(w) }
  }
  subscribe('livery:cache:purge_received', fn)
  t.teardown(() => unsubscribe('livery:cache:purge_received', fn))
  return { events, next: (to) => new Promise((resolve) => waiters.push({ to, resolve })) }
}

t.test('a purge on one instance reaches the other, acknowledged, and not its own sender', async (t) => {
  const prefix = uniquePrefix(t, 'bus')
  const a = await instance(t, prefix, 'A')
  const b = await instance(t, prefix, 'B')
  const rx = received(t)
  const e = makeEntry('http://a.test/news', 'news', { tags: ['news'] })
  await a.store.put('k', e, 60_000)
  await b.store.put('k', e, 60_000)
  await a.store.settled(); await b.store.settled()
  t.ok(b.memory.getSync('k'), 'B holds the page in memory')

  const atB = rx.next('B')
  const report = await a.store.purgeReport({ tags: ['news'] })
  t.equal(report.purged, 1, 'A purged one entry')
  t.same(report.acked, ['B'], 'B acknowledged before the purge resolved')
  t.same(report.missing, [], 'nobody missing')
  const msg = await atB
  t.equal(msg.from, 'A')
  t.equal(msg.count, 1, 'B purged its local copy')
  t.equal(b.memory.getSync('k'), undefined, 'gone from B memory')
  t.equal(await b.store.get('k'), undefined, 'gone from the shared Redis too')
  t.notOk(rx.events.some((r) => r.to === 'A' && r.from === 'A'), 'A did not apply its own echo')
})

t.test('a soft purge travels as soft, and the receiver marks it with its own clock', async (t) => {
  const prefix = uniquePrefix(t, 'bus-soft')
  const a = await instance(t, prefix, 'A')
  const b = await instance(t, prefix, 'B')
  const rx = received(t)
  const e = makeEntry('http://a.test/soft', 'soft')
  await b.store.put('k', e, 60_000)
  await b.store.settled()
  // A sender clock an hour behind: B must not keep the page fresh for that hour.
  const skewed = Date.now() - 3_600_000
  const atB = rx.next('B')
  const before = Date.now()
  await a.store.purge({ urls: ['http://a.test/soft'] }, { soft: true, now: skewed })
  const msg = await atB
  t.equal(msg.soft, true)
  const got = b.memory.getSync('k')
  t.ok(got, 'kept in B')
  t.ok(got !== undefined && got.meta.freshUntil >= before && got.meta.freshUntil <= Date.now(), 'stale as of B\'s own clock at receipt, not the sender\'s')
  t.ok(got !== undefined && got.meta.staleUntil > Date.now(), 'servable while refreshing')
})

t.test('malformed messages on the channel are ignored and counted', async (t) => {
  const prefix = uniquePrefix(t, 'bus-bad')
  const a = await instance(t, prefix, 'A')
  const b = await instance(t, prefix, 'B')
  const errors: unknown[] = []
  const waiting: Array<() => void> = []
  const fn = (m: unknown): void => { errors.push(m); for (const w of waiting.splice(0)) w() }
  subscribe('livery:cache:purge_bus_error', fn)
  t.teardown(() => unsubscribe('livery:cache:purge_bus_error', fn))
  await b.store.put('k', makeEntry('http://a.test/x', 'x'), 60_000)
  const seen = new Promise<void>((resolve) => waiting.push(resolve))
  const { createClient } = await import('@redis/client')
  const c = createClient({ url: sharedRedisUrl })
  await c.connect()
  t.teardown(() => c.close())
  await c.sendCommand(['PUBLISH', a.bus.channel, '{"v":2,"type":"purge","from":"X","id":"1","sel":{"urls":[1]},"soft":false}'])
  await seen
  t.ok(errors.length >= 1, 'counted on livery:cache:purge_bus_error')
  t.ok(b.memory.getSync('k'), 'nothing purged')
})
