/**
 * One way to open and close Redis connections (the cache tier, the purge
 * bus and the fetch lock all use it). Redis is an optimisation everywhere
 * in Livery, so a connection fails fast instead of queueing commands while
 * disconnected, reconnects by itself with a backoff capped at 1 s (a
 * restarted Redis is picked up quickly), and only logs its errors at debug
 * level so a dead Redis does not flood the log.
 */
import { createRequire } from 'node:module'
import type * as RedisModule from '@redis/client'
import type { TypeMapping } from '@redis/client'
import type { Logger } from './log.ts'
import { liveryError } from './errors.ts'

export type RedisClient = ReturnType<typeof open>

const requireDep = createRequire(import.meta.url)
let redisModule: typeof RedisModule | undefined

/**
 * @redis/client, loaded on first use rather than imported: a gateway without
 * Redis never loads it. It and BullMQ (`src/worker/bullmq-queue.ts`, loaded
 * the same way) put 26 MB on a bare Node's heap and 39 MB on its RSS, about a
 * quarter of what issue 15 allows a gateway above `cache.memory.maxSize`.
 * Both are CommonJS, so a synchronous `require` keeps every constructor that
 * opens a connection synchronous.
 */
export function redis (): typeof RedisModule {
  redisModule ??= requireDep('@redis/client') as typeof RedisModule
  return redisModule
}

let bufferMapping: TypeMapping | undefined

/** The reply mapping that returns bulk strings as Buffers: cache entries are binary. */
export function bufferReplies (): TypeMapping {
  bufferMapping ??= { [redis().RESP_TYPES.BLOB_STRING]: Buffer }
  return bufferMapping
}

export interface RedisClientOptions {
  readonly url: string
  /** Connect timeout, ms (at least 1 s). */
  readonly connectTimeout?: number
  /** Fail commands at once while disconnected. @default true */
  readonly failFast?: boolean
  /** Most commands queued on the socket. */
  readonly maxQueue?: number
  readonly logger: Logger
  /** Names the connection in debug logs. */
  readonly role: string
}

function open (opts: RedisClientOptions) {
  return redis().createClient({
    url: opts.url,
    disableOfflineQueue: opts.failFast !== false,
    ...(opts.maxQueue === undefined ? {} : { commandsQueueMaxLength: opts.maxQueue }),
    socket: {
      connectTimeout: Math.max(1000, opts.connectTimeout ?? 1000),
      reconnectStrategy: (retries: number) => Math.min(20 * 2 ** retries, 1000),
    },
  })
}

export function createRedisClient (opts: RedisClientOptions): RedisClient {
  const client = open(opts)
  client.on('error', (err: unknown) => { opts.logger.debug({ err, role: opts.role }, 'redis connection error') })
  return client
}

/** Closes gracefully when connected, else destroys; never throws. */
export async function closeRedisClient (client: RedisClient, logger: Logger): Promise<void> {
  try {
    if (client.isOpen) await client.close()
    else client.destroy()
  } catch (err) {
    logger.debug({ err }, 'redis close failed; destroying the connection')
    destroyRedisClient(client, logger)
  }
}

export function destroyRedisClient (client: RedisClient, logger: Logger): void {
  try {
    if (client.isOpen) client.destroy()
  } catch (err) {
    logger.debug({ err }, 'redis destroy failed')
  }
}

/**
 * Runs one command with a deadline that holds even when the command was
 * already written to a stalled server: @redis/client's abortSignal only
 * withdraws commands still queued, so the deadline also races the reply.
 * Rejects with LIVERY_ERR_CACHE_TIMEOUT at `ms`.
 */
export async function withDeadline<T> (ms: number, what: string, send: (o: { abortSignal: AbortSignal }) => Promise<T>): Promise<T> {
  const ac = new AbortController()
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      const err = liveryError('LIVERY_ERR_CACHE_TIMEOUT', what, `${ms} ms`)
      ac.abort(err)
      reject(err)
    }, ms)
    timer.unref()
  })
  const work = send({ abortSignal: ac.signal })
  // The command's own late rejection, after the deadline won, is expected and dropped here.
  work.catch(() => {})
  try {
    return await Promise.race([work, deadline])
  } finally {
    clearTimeout(timer)
  }
}
