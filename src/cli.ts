/**
 * The `livery` command. Exit codes: 0 success, 1 a check found problems,
 * 2 a usage or configuration error (message on stderr).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { readFileSync, unlinkSync } from 'node:fs'
import { resolve as resolvePath } from 'node:path'
import { isLiveryError, liveryError } from './errors.ts'
import { loadConfig } from './config/load.ts'
import type { Config } from './config/types.ts'
import { createLogger, type Logger } from './log.ts'
import { Gateway } from './server/gateway.ts'
import cluster from 'node:cluster'

const version: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version

export const usage = `livery ${version} — a caching reverse proxy and theming gateway

Usage:
  livery serve --config FILE [--port N] [--host H] [--pid-file F]
                                                     run the gateway (SIGHUP reloads, SIGTERM drains)
  livery reload [--pid-file F | --pid N] [--config FILE]
                                                     reload a running gateway's configuration and rules;
                                                     with --config, validate the file first
  livery demo [--port N]                             demo CMS + theme server + gateway on loopback
  livery demo --only cms|theme [--port N] [--host H] one demo backend alone (the compose file's services)
  livery check --config FILE                         validate the config, fetch and compile every theme
  livery theme --rules R --content C [options]       theme one page to stdout (see livery theme --help)
  livery purge --url U | --prefix P | --tag T | --site S | --all [--soft] [--server URL] [--token T]
                                                     purge the cache through the admin API
  livery worker --config FILE [--dead-letters]     run background jobs from Redis (or print the dead letters)
  livery warm --config FILE --site S [--sitemap URL | --urls FILE]
                                                     enqueue a prefetch of a site's pages for the workers
  livery --help | --version

Options:
  --config FILE   the YAML configuration (or LIVERY_CONFIG)
  --port N        listen port, overriding listen.port
  --host H        listen address, overriding listen.host
  --pid-file F    serve: write the process id there (the primary's in cluster mode)
  --only WHAT     demo: serve only the demo CMS (default port 8081) or theme server (8082)

Every configuration key can be set by environment: pool.maxConcurrent is
LIVERY_POOL_MAX_CONCURRENT, sites[0].upstream is LIVERY_SITES_0_UPSTREAM.
Durations take units (250ms, 5s, 1d), sizes too (64KB, 256MB).
The configuration reference is in docs/configuration.md.

Exit status: 0 success, 1 check found problems, 2 usage or configuration error.
`

/** Errors that mean the operator must fix the command line, the config or the rules: exit 2. */
const configErrors: ReadonlySet<string> = new Set(['LIVERY_ERR_USAGE', 'LIVERY_ERR_CONFIG', 'LIVERY_ERR_CONFIG_FILE', 'LIVERY_ERR_RULES', 'LIVERY_ERR_SELECTOR', 'LIVERY_ERR_LISTEN', 'LIVERY_ERR_CACHE_DIRECTORY'])

export interface CliIo {
  readonly stdout: NodeJS.WritableStream
  readonly stderr: NodeJS.WritableStream
  readonly env: NodeJS.ProcessEnv
}

const serveOptions = {
  config: { type: 'string' },
  port: { type: 'string' },
  host: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  'pid-file': { type: 'string' },
} satisfies ParseArgsConfig['options']

const reloadOptions = {
  config: { type: 'string' },
  'pid-file': { type: 'string' },
  pid: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} satisfies ParseArgsConfig['options']

const demoOptions = { ...serveOptions, only: { type: 'string' } } satisfies ParseArgsConfig['options']

function parse<O extends ParseArgsConfig['options']> (args: string[], options: O): ReturnType<typeof parseArgs<{ options: O, allowPositionals: false, strict: true }>>['values'] {
  try {
    return parseArgs({ args, options, allowPositionals: false, strict: true }).values
  } catch (err) {
    throw liveryError('LIVERY_ERR_USAGE', (err as Error).message)
  }
}

function portOption (value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  const n = Number(value)
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw liveryError('LIVERY_ERR_USAGE', `--port: "${value}" is not a port number (0-65535)`)
  return n
}

function configFrom (values: { config?: string }, io: CliIo): Config {
  const file = values.config ?? io.env.LIVERY_CONFIG
  if (file === undefined) throw liveryError('LIVERY_ERR_USAGE', 'no configuration: give --config FILE or set LIVERY_CONFIG')
  return loadConfig({ file, env: io.env })
}

/**
 * Runs the gateway until SIGTERM/SIGINT, then drains and resolves with the
 * exit code. SIGHUP reloads: `reload` reads the configuration again (by
 * default the running one is reused, which still re-reads the rules files).
 */
export async function serveUntilSignal (config: Config, logger: Logger, listen: { port?: number, host?: string } = {}, reload?: () => Config, configFile?: string): Promise<{ gateway: Gateway, done: Promise<number> }> {
  let metricsSource: (() => Promise<string>) | undefined
  let link: import('./pool/cluster-link.ts').ClusterLink | undefined
  if (cluster.isWorker) {
    // In cluster mode the metrics route answers with the sum over all processes.
    const { requestClusterMetrics } = await import('./pool/cluster.ts')
    metricsSource = () => requestClusterMetrics()
    // Purges reach the sibling processes and a cold miss is fetched once per gateway (docs/architecture.md).
    const { ClusterLink } = await import('./pool/cluster-link.ts')
    link = ClusterLink.create({ lockTimeout: config.cache.lockTimeout, logger })
  }
  // watch: true reloads on a change of the config or a rules file; the set of files follows each reload.
  // Watching starts before the gateway reads them: a file replaced while it starts (a deploy writing the
  // rules as a worker process comes up) would otherwise be missed until the next change.
  const { watchFiles } = await import('./server/file-watch.ts')
  const watched = (c: Config): string[] => [...(configFile === undefined ? [] : [configFile]), ...c.sites.flatMap(s => s.theme === undefined ? [] : [s.theme.rules])]
  let changedWhileStarting = false
  const changedEarly = (): void => { changedWhileStarting = true; logger.info('a watched file changed while starting: reloading once listening') }
  let unwatch = config.watch ? watchFiles({ files: watched(config), logger, onChange: changedEarly }) : () => false
  const gateway = await Gateway.create(config, { logger, metricsSource, cluster: link })
  if (cluster.isWorker) {
    const { setupWorkerMetrics } = await import('./pool/cluster.ts')
    setupWorkerMetrics([gateway.metrics.registry])
  }
  const address = await gateway.listen(listen.port ?? config.listen.port, listen.host ?? config.listen.host)
  logger.info({ address: address.address, port: address.port, sites: config.sites.map(s => s.name) }, 'livery is listening')
  const { createReloader } = await import('./server/reloader.ts')
  const reloader = createReloader({ gateway, logger, load: reload ?? (() => gateway.config) })
  const changed = (): void => { logger.info('a watched file changed'); reloadNow() }
  const rewatch = (): boolean => {
    const pending = unwatch()
    unwatch = () => false
    if (gateway.config.watch) unwatch = watchFiles({ files: watched(gateway.config), logger, onChange: changed })
    return pending
  }
  const reloadNow = (): void => { reloader().then(() => { if (rewatch()) changed() }, (err: unknown) => logger.error({ err }, 'reload failed')) }
  const onHup = (): void => { reloadNow() }
  // A change seen while starting, or one still in its debounce, is reloaded now; later ones are the new watcher's.
  if (rewatch() || changedWhileStarting) changed()
  process.on('SIGHUP', onHup)
  const done = new Promise<number>(resolve => {
    const stop = (signal: NodeJS.Signals): void => {
      process.off('SIGTERM', stop)
      process.off('SIGINT', stop)
      process.off('SIGHUP', onHup)
      unwatch()
      logger.info({ signal, inFlight: gateway.inFlight }, 'shutting down: finishing in-flight requests')
      gateway.close().then(() => {
        logger.info('stopped')
        resolve(0)
      }, (err: unknown) => {
        logger.error({ err }, 'shutdown failed')
        resolve(1)
      })
    }
    process.on('SIGTERM', stop)
    process.on('SIGINT', stop)
  })
  return { gateway, done }
}

export async function main (argv: string[], io: CliIo): Promise<number> {
  const [command, ...rest] = argv
  try {
    switch (command) {
      case undefined:
      case '--help':
      case '-h':
      case 'help':
        // No command is a usage error: the usage goes to stderr with exit 2.
        ;(command === undefined ? io.stderr : io.stdout).write(usage)
        return command === undefined ? 2 : 0
      case '--version':
      case '-v':
        io.stdout.write(`${version}\n`)
        return 0
      case 'serve': {
        const values = parse(rest, serveOptions)
        if (values.help === true) { io.stdout.write(usage); return 0 }
        const config = configFrom(values, io)
        // With combined access lines on stdout, the rest of the log goes to stderr (nginx's access.log / error.log).
        const logger = createLogger({ level: config.log.level, destination: config.log.format === 'combined' ? process.stderr : undefined })
        const listen = { port: portOption(values.port), host: values.host }
        const { resolveProcesses } = await import('./pool/cluster.ts')
        if (cluster.isPrimary && resolveProcesses(config.processes) > 1) {
          // Checked once here: otherwise every worker fails the same way and is restarted forever.
          const { checkCacheDirectory, checkPort } = await import('./server/preflight.ts')
          await checkCacheDirectory(config.cache.directory)
          await checkPort(listen.port ?? config.listen.port, listen.host ?? config.listen.host)
          // The primary only supervises: each worker process runs this same command and serves.
          // The modules only a worker loads, compiled here first, are in the compile cache when the workers start
          // (bin/livery.js), so that no worker loads Node's TypeScript stripper, even on a machine's first start.
          await Promise.all([import('./pool/cluster-link.ts'), import('./server/file-watch.ts'), import('./server/reloader.ts')])
          const { runPrimary } = await import('./pool/cluster.ts')
          const primary = runPrimary({ processes: config.processes, shutdownTimeout: config.shutdownTimeout + 5_000, logger, lockTimeout: config.cache.lockTimeout })
          // Each worker reads the file again and reloads itself; the primary only passes the signal on.
          process.on('SIGHUP', () => {
            const pids = primary.pids()
            logger.info({ workers: pids.length }, 'SIGHUP: asking every worker to reload')
            for (const pid of pids) process.kill(pid, 'SIGHUP')
          })
          await writePidFile(values['pid-file'])
          logger.info({ processes: primary.pids().length }, 'livery primary started its worker processes')
          return await new Promise<number>(() => { /* runPrimary exits the process after a graceful shutdown */ })
        }
        const reread = (): Config => configFrom(values, io)
        const { done } = await serveUntilSignal(config, logger, listen, reread, resolvePath(values.config ?? io.env.LIVERY_CONFIG ?? '.'))
        if (!cluster.isWorker) await writePidFile(values['pid-file'])
        const code = await done
        if (!cluster.isWorker) removePidFile(values['pid-file'])
        // A cluster worker stays alive on its IPC channel: let go of it so the primary sees a clean exit, not a kill.
        if (cluster.isWorker) cluster.worker?.disconnect()
        return code
      }
      case 'demo': {
        const values = parse(rest, demoOptions)
        if (values.help === true) { io.stdout.write(usage); return 0 }
        if (values.only !== undefined) {
          const { serveDemoBackend } = await import('./demo/demo.ts')
          return await serveDemoBackend({ only: values.only, port: portOption(values.port), host: values.host, stderr: io.stderr })
        }
        const { startDemoBackends } = await import('./demo/demo.ts')
        const demo = await startDemoBackends({ port: portOption(values.port) ?? 8080, env: io.env })
        const logger = createLogger({ level: demo.config.log.level })
        const { gateway, done } = await serveUntilSignal(demo.config, logger, { host: values.host })
        const port = (gateway.server.address() as { port: number }).port
        io.stderr.write(`\nLivery demo\n  open        http://127.0.0.1:${port}/\n  demo CMS    ${demo.cmsUrl}/\n  theme       ${demo.themeUrl}/\n  metrics     http://127.0.0.1:${port}${demo.config.admin.prefix}/metrics\n  stop with Ctrl-C\n\n`)
        const code = await done
        await demo.close()
        return code
      }
      case 'check': {
        const values = parse(rest, serveOptions)
        if (values.help === true) { io.stdout.write(usage); return 0 }
        const config = configFrom(values, io)
        const { checkThemes } = await import('./server/check.ts')
        return await checkThemes(config, io)
      }
      case 'reload': {
        const values = parse(rest, reloadOptions)
        if (values.help === true) { io.stdout.write(usage); return 0 }
        return await sendReload(values, io)
      }
      case 'purge': {
        const { runPurgeCommand } = await import('./cache/purge-cli.ts')
        return await runPurgeCommand(rest, io)
      }
      case 'worker': {
        const { runWorkerCommand } = await import('./worker/cli.ts')
        return await runWorkerCommand(rest, io)
      }
      case 'warm': {
        const { runWarmCommand } = await import('./worker/cli.ts')
        return await runWarmCommand(rest, io)
      }
      case 'theme': {
        const { runThemeCommand } = await import('./theme/cli.ts')
        return await runThemeCommand(rest, io)
      }
      default:
        throw liveryError('LIVERY_ERR_USAGE', `unknown command "${command}"`)
    }
  } catch (err) {
    if (isLiveryError(err) && configErrors.has(err.code)) {
      io.stderr.write(`livery: ${err.message}\n`)
      return 2
    }
    throw err
  }
}

async function writePidFile (file: string | undefined): Promise<void> {
  if (file === undefined) return
  const { writeFile } = await import('node:fs/promises')
  await writeFile(file, `${process.pid}\n`)
}

function removePidFile (file: string | undefined): void {
  if (file === undefined) return
  try {
    if (readFileSync(file, 'utf8').trim() === String(process.pid)) unlinkSync(file)
  } catch {
    // Gone already, or replaced by a newer gateway's: nothing of ours to remove.
  }
}

/** `livery reload`: validate (with --config), then SIGHUP the gateway named by --pid or --pid-file. */
async function sendReload (values: { config?: string, 'pid-file'?: string, pid?: string }, io: CliIo): Promise<number> {
  if (values.config !== undefined) configFrom(values, io)
  let text: string
  if (values.pid !== undefined) text = values.pid
  else if (values['pid-file'] !== undefined) {
    try {
      text = readFileSync(values['pid-file'], 'utf8').trim()
    } catch (err) {
      throw liveryError('LIVERY_ERR_USAGE', `--pid-file: cannot read ${values['pid-file']}: ${(err as Error).message}`)
    }
  } else throw liveryError('LIVERY_ERR_USAGE', 'reload: give --pid-file FILE (as given to livery serve) or --pid N')
  const pid = Number(text)
  if (!Number.isInteger(pid) || pid <= 0) throw liveryError('LIVERY_ERR_USAGE', `reload: "${text}" is not a process id`)
  try {
    process.kill(pid, 'SIGHUP')
  } catch (err) {
    throw liveryError('LIVERY_ERR_USAGE', `reload: cannot signal process ${pid}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
  io.stdout.write(`livery: asked process ${pid} to reload; its log says whether the new configuration was applied\n`)
  return 0
}
