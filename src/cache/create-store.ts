/**
 * Builds the tiered store from `cache`: memory always, disk when
 * `disk.maxSize` > 0, Redis (with the purge bus) when `redis` is set.
 * A Redis that is down at start-up does not stop the gateway: the tier is
 * skipped until it answers, and readyz says so.
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

export interface BuiltStore {
  readonly store: CacheStore
  /** Present when Redis is configured: undefined while it answers, else why not. */
  readonly redisProblem?: () => string | undefined
}

export async function createCacheStore (config: CacheConfig, logger: Logger): Promise<BuiltStore> {
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
  if (config.redis === undefined) return { store: tiers.length === 1 ? memory : new TieredStore({ tiers, logger }) }
  const redis = new RedisStore({ url: config.redis.url, prefix: config.redis.prefix, timeout: config.redis.timeout, maxEntrySize: config.memory.maxEntrySize, logger })
  tiers.push(redis)
  const bus = new PurgeBus({ url: config.redis.url, prefix: config.redis.prefix, logger })
  // Bounded: a Redis that is down must not hold up start-up; the bus reconnects by itself.
  await bus.start(2_000).catch((err: unknown) => {
    logger.warn({ err: (err as Error).message }, 'the purge bus could not subscribe yet; purges from other instances arrive once Redis answers')
  })
  return {
    store: new TieredStore({ tiers, bus, logger }),
    redisProblem: () => redis.ready ? undefined : `Redis at ${config.redis!.url} is not reachable`,
  }
}
