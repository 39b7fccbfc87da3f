/**
 * Logging with pino. One root logger per process; modules take a child
 * (`logger.child({ module: 'fetcher' })`) through their constructor.
 */
import { pino, type Logger } from 'pino'

export type { Logger }

export interface LogOptions {
  readonly level: string
  /** Where lines go; tests pass a stream to read them back. @default stdout */
  readonly destination?: NodeJS.WritableStream
}

export function createLogger (opts: LogOptions): Logger {
  return pino({ level: opts.level, base: { pid: process.pid } }, opts.destination as pino.DestinationStream | undefined)
}

/** A logger that drops everything, for library users and tests that do not care. */
export const silentLogger: Logger = pino({ level: 'silent' })
