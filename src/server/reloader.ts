/**
 * SIGHUP → reload (as nginx does): read the configuration file again, and
 * hand it to the gateway, which swaps its site layer without dropping a
 * connection. A configuration that does not validate, or rules that do not
 * compile, leave the running configuration in place, and every problem is
 * logged on its own line so an operator sees all of them at once.
 */
import type { Config } from '../config/types.ts'
import { hasCode } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { Gateway } from './gateway.ts'
import type { ReloadResult } from './reload-result.ts'

export interface ReloaderOptions {
  readonly gateway: Gateway
  /** Reads and validates the configuration again; throws a LiveryError when it is invalid. */
  readonly load: () => Config
  readonly logger: Logger
}

/** The problems inside a LIVERY_ERR_CONFIG message, one per line. */
function problemsOf (err: unknown): string[] {
  const message = err instanceof Error ? err.message : String(err)
  if (!hasCode(err, 'LIVERY_ERR_CONFIG')) return [message]
  const lines = message.split('\n').slice(1).map(l => l.trim()).filter(l => l !== '')
  return lines.length === 0 ? [message] : lines
}

export function createReloader (opts: ReloaderOptions): () => Promise<ReloadResult> {
  const { gateway, logger } = opts
  return async () => {
    logger.info('reloading the configuration and rules files')
    let config: Config
    try {
      config = opts.load()
    } catch (err) {
      return refuse(logger, problemsOf(err))
    }
    const result = await gateway.reload(config)
    if (!result.applied) return refuse(logger, result.problems)
    for (const key of result.restartNeeded) logger.warn({ key }, `${key} changed: it takes effect only after a restart`)
    logger.info({ sites: config.sites.map(s => s.name), restartNeeded: result.restartNeeded }, 'configuration reloaded')
    return result
  }
}

function refuse (logger: Logger, problems: readonly string[]): ReloadResult {
  for (const problem of problems) logger.error({ problem }, `reload refused: ${problem}`)
  logger.error({ problems: problems.length }, 'reload refused: the previous configuration keeps running')
  return { applied: false, problems, restartNeeded: [] }
}
