/**
 * `livery worker`: consumes the worker tier's queues on Redis (warm and
 * prefetch jobs), storing what it fetches through the same cache tiers as
 * the gateway (memory, disk under cache.directory, Redis), so the gateway's
 * next request is a HIT. `worker.concurrency` jobs at once per process
 * (LIVERY_WORKER_CONCURRENCY), `worker.processes` processes
 * (LIVERY_WORKER_PROCESSES); SIGTERM stops taking jobs, lets the running
 * ones finish within shutdownTimeout and hands any left back to Redis.
 *
 * `livery warm --site S [--sitemap URL | --urls FILE]` enqueues a prefetch.
 * `livery worker --dead-letters` prints the dead letters as JSON lines.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { readFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import cluster from 'node:cluster'
import { liveryError } from '../errors.ts'
import { loadConfig } from '../config/load.ts'
import type { Config } from '../config/types.ts'
import { createLogger, type Logger } from '../log.ts'
import { Gateway } from '../server/gateway.ts'
import type { CliIo } from '../cli.ts'

function options (args: string[], extra: Record<string, { type: 'string' | 'boolean' }>): Record<string, string | boolean | undefined> {
  try {
    return parseArgs({ args, options: { config: { type: 'string' }, ...extra }, allowPositionals: false, strict: true }).values
  } catch (err) {
    throw liveryError('LIVERY_ERR_USAGE', (err as Error).message)
  }
}

function sharedConfig (values: Record<string, string | boolean | undefined>, io: CliIo, command: string): Config {
  const file = typeof values.config === 'string' ? values.config : io.env.LIVERY_CONFIG
  if (file === undefined) throw liveryError('LIVERY_ERR_USAGE', 'no configuration: give --config FILE or set LIVERY_CONFIG')
  const config = loadConfig({ file, env: io.env })
  if (config.cache.redis === undefined) {
    throw liveryError('LIVERY_ERR_USAGE', `livery ${command} needs cache.redis.url (the job queue is on Redis); without Redis, livery serve runs the jobs in-process`)
  }
  return config
}

export async function runWorkerCommand (args: string[], io: CliIo): Promise<number> {
  const values = options(args, { 'dead-letters': { type: 'boolean' } })
  const config = sharedConfig(values, io, 'worker')
  const logger = createLogger({ level: config.log.level })
  if (values['dead-letters'] === true) return await printDeadLetters(config, logger, io)
  if (cluster.isPrimary && config.worker.processes > 1) {
    const { runPrimary } = await import('../pool/cluster.ts')
    const primary = runPrimary({ processes: config.worker.processes, shutdownTimeout: config.shutdownTimeout + 5_000, logger })
    logger.info({ processes: primary.pids().length }, 'livery worker primary started its processes')
    return await new Promise<number>(() => { /* runPrimary exits the process after a graceful shutdown */ })
  }
  const gateway = await Gateway.create(config, { logger, workerRole: 'worker', metricsSource: cluster.isWorker ? await clusterMetrics() : undefined })
  if (cluster.isWorker) {
    const { setupWorkerMetrics } = await import('../pool/cluster.ts')
    setupWorkerMetrics([gateway.metrics.registry])
  }
  await gateway.ready()
  const admin = await listenAdmin(gateway, config)
  logger.info({ port: (admin.address() as AddressInfo).port, concurrency: config.worker.concurrency, pid: process.pid }, 'livery worker is running')
  const code = await new Promise<number>(resolve => {
    const stop = (signal: NodeJS.Signals): void => {
      process.off('SIGTERM', stop)
      process.off('SIGINT', stop)
      logger.info({ signal }, 'livery worker stopping: finishing the jobs in flight')
      gateway.close().then(() => {
        logger.info('livery worker stopped')
        resolve(0)
      }, (err: unknown) => {
        logger.error({ err }, 'livery worker shutdown failed')
        resolve(1)
      })
    }
    process.on('SIGTERM', stop)
    process.on('SIGINT', stop)
  })
  await new Promise<void>(resolve => { admin.close(() => resolve()); admin.closeAllConnections() })
  if (cluster.isWorker) cluster.worker?.disconnect()
  return code
}

async function clusterMetrics (): Promise<() => Promise<string>> {
  const { requestClusterMetrics } = await import('../pool/cluster.ts')
  return () => requestClusterMetrics()
}

/** The worker's own admin port: /metrics, /healthz, /readyz, /dead-letters (JSON). */
async function listenAdmin (gateway: Gateway, config: Config): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    const prefixed = path === '/dead-letters' ? '/jobs' : path
    gateway.admin.handle(req, res, gateway.admin.prefix + prefixed).catch((err: unknown) => {
      res.statusCode = 500
      res.end(String(err))
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(config.worker.port, config.listen.host, () => { server.off('error', reject); resolve() })
  })
  return server
}

async function printDeadLetters (config: Config, logger: Logger, io: CliIo): Promise<number> {
  const { BullQueue } = await import('./bullmq-queue.ts')
  const { sharedKinds } = await import('./tier.ts')
  const redis = config.cache.redis!
  for (const kind of sharedKinds) {
    const q = new BullQueue({ kind, url: redis.url, prefix: `${redis.prefix}worker`, attempts: 1, backoff: 0, rate: 0, maxDeadLetters: config.worker.maxDeadLetters, logger })
    try {
      for (const letter of await q.deadLetters()) io.stdout.write(JSON.stringify(letter) + '\n')
    } finally {
      await q.close()
    }
  }
  return 0
}

/** `livery warm --site S [--sitemap URL | --urls FILE]`: enqueues a prefetch for the workers. */
export async function runWarmCommand (args: string[], io: CliIo): Promise<number> {
  const values = options(args, { site: { type: 'string' }, sitemap: { type: 'string' }, urls: { type: 'string' } })
  const config = sharedConfig(values, io, 'warm')
  const siteName = values.site
  if (typeof siteName !== 'string') throw liveryError('LIVERY_ERR_USAGE', 'livery warm needs --site NAME')
  if (!config.sites.some(s => s.name === siteName)) throw liveryError('LIVERY_ERR_USAGE', `--site: no site is named "${siteName}"`)
  if (values.sitemap !== undefined && values.urls !== undefined) throw liveryError('LIVERY_ERR_USAGE', 'give --sitemap or --urls, not both')
  let urls: string[] | undefined
  if (typeof values.urls === 'string') {
    const text = await readFile(values.urls, 'utf8').catch((err: unknown) => { throw liveryError('LIVERY_ERR_USAGE', `--urls: cannot read ${String(values.urls)}: ${(err as Error).message}`) })
    urls = text.split('\n').map(l => l.trim()).filter(l => l !== '' && !l.startsWith('#'))
  }
  const sitemap = typeof values.sitemap === 'string' ? values.sitemap : undefined
  if (sitemap !== undefined && !URL.canParse(sitemap)) throw liveryError('LIVERY_ERR_USAGE', `--sitemap: "${sitemap}" is not an absolute URL`)
  const { BullQueue } = await import('./bullmq-queue.ts')
  const redis = config.cache.redis!
  const logger = createLogger({ level: config.log.level })
  const q = new BullQueue<{ site: string, sitemap?: string, urls?: string[] }>({ kind: 'prefetch', url: redis.url, prefix: `${redis.prefix}worker`, attempts: config.worker.attempts, backoff: config.worker.backoff, rate: 0, maxDeadLetters: config.worker.maxDeadLetters, logger })
  try {
    const key = `${siteName} ${sitemap ?? (urls === undefined ? 'configured' : `urls ${Date.now()}`)}`
    const added = await q.enqueue(key, { site: siteName, ...(sitemap === undefined ? {} : { sitemap }), ...(urls === undefined ? {} : { urls }) })
    io.stdout.write(added ? `prefetch of site ${siteName} enqueued\n` : `a prefetch of site ${siteName} from the same source is already waiting\n`)
  } finally {
    await q.close()
  }
  return 0
}
