/**
 * Builds the tiered store from `cache`: memory always, disk when
 * `disk.maxSize` > 0, Redis (with the purge bus) when `redis` is set.
 * A Redis that is down at start-up does not stop the gateway: the tier is
 * skipped until it answers, and /_livery/status and `livery_redis_up` say so
 * (never readyz: an outage of Redis is not one of this instance).
 */
import { join } from 'node:path'
import type { CacheConfig } from '../config/types.ts'
import type { Logger } from '../log.ts'
import type { CacheStore } from './store.ts'
import { MemoryStore } from './memory-store.ts'
import { DiskStore } from './disk-store.ts'
import { RedisStore } from './redis-store.ts'
import { PurgeBus } from './purge-bus.ts'
import { TieredStore } from './tiered-store.ts'
import { MissLock } from './miss-lock.ts'
import type { GatewayLock, PurgePeers } from './peers.ts'
import { coarseNow } from '../clock.ts'
import { RedisHealth } from './redis-health.ts'

export interface BuiltStore {
  readonly store: CacheStore
  /** Whether Redis answers (status, `livery_redis_up`, log lines); never readiness. */
  readonly redisHealth?: RedisHealth
  /** The waiting list above this process, when there is a cluster primary or Redis. */
  readonly missLock?: MissLock
  /** The Redis tier and purge bus, for status and health. */
  readonly redis?: { readonly store: RedisStore, readonly bus: PurgeBus }
}

export interface CreateStoreOptions {
  /** In a cluster worker: the link to the primary (sibling purges, the gateway's waiting list). */
  readonly cluster?: PurgePeers & GatewayLock
}

export async function createCacheStore (config: CacheConfig, logger: Logger, opts: CreateStoreOptions = {}): Promise<BuiltStore> {
  const memory = new MemoryStore({ maxSize: config.memory.maxSize, maxEntrySize: config.memory.maxEntrySize })
  const tiers: CacheStore[] = [memory]
  if (config.disk.maxSize > 0) {
    tiers.push(await DiskStore.open({
      directory: join(config.directory, 'http'),
      maxSize: config.disk.maxSize,
      maxEntrySize: Math.min(config.memory.maxEntrySize, config.disk.maxSize),
      logger,
    }))
  }
  const link = opts.cluster
  // Bans are stamped with the HTTP cache's clock, the one fills are stamped with.
  const now = coarseNow
  if (config.redis === undefined) {
    if (link === undefined) return { store: tiers.length === 1 ? memory : new TieredStore({ tiers, logger, now }) }
    return {
      store: new TieredStore({ tiers, peers: [link], logger, now }),
      missLock: new MissLock({ gateway: link, lockTimeout: config.lockTimeout, logger }),
    }
  }
  const redis = new RedisStore({ url: config.redis.url, prefix: config.redis.prefix, timeout: config.redis.timeout, maxEntrySize: config.memory.maxEntrySize, logger })
  tiers.push(redis)
  const bus = new PurgeBus({ url: config.redis.url, prefix: config.redis.prefix, logger })
  // Bounded: a Redis that is down must not hold up start-up; the bus reconnects by itself.
  await bus.start(2_000).catch((err: unknown) => {
    logger.warn({ err: (err as Error).message }, 'the purge bus could not subscribe yet; purges from other instances arrive once Redis answers')
  })
  const redisHealth = new RedisHealth({ tier: redis, url: config.redis.url, logger })
  const stopHealth = { close: async () => { redisHealth.close() }, destroy: async () => { redisHealth.close() } }
  const store = new TieredStore({ tiers, peers: link === undefined ? [bus] : [link, bus], owned: [bus, stopHealth], logger, now })
  const missLock = new MissLock({
    gateway: link,
    redis: { url: config.redis.url, prefix: config.redis.prefix, timeout: config.redis.timeout, tier: redis, written: (key) => store.written(key), rewrite: (key, e, timeout) => store.rewriteShared(key, e, timeout) },
    lockTimeout: config.lockTimeout,
    logger,
  })
  return {
    store,
    missLock,
    redis: { store: redis, bus },
    redisHealth,
  }
}
