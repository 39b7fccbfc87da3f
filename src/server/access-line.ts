/**
 * The JSON access line written from a template instead of through pino's
 * object serialiser. The line is what `logger.info(fields, 'request')` would
 * write (pino's level, time and bindings first, the fields in order, `msg`
 * last, undefined fields left out), but it is one string built by
 * concatenation and handed to the logger's destination: pino's generic path
 * walks and stringifies every field of every request, which cost about 9% of
 * a cache hit (issue 15, item 5). test/server/access-line.test.ts holds the
 * two outputs equal.
 */
import { pino } from 'pino'
import type { Logger } from '../log.ts'

/** A field's value: undefined ones are left out, as JSON.stringify does. */
export type AccessValue = string | number | boolean | undefined

export interface Destination { write (line: string): unknown }

/**
 * A function writing one access line through `logger`'s own destination:
 * `values[i]` is the field named `names[i]` (the names' JSON is built once,
 * and a line costs one array, not an array per field). Undefined when the
 * logger is not a plain pino logger that writes JSON lines (then the caller
 * uses `logger.info`). `through` may wrap that destination (the access log
 * buffers it: line-buffer.ts).
 */
export function accessLineWriter (logger: Logger, names: readonly string[], through?: (dest: Destination) => Destination): ((values: readonly AccessValue[]) => void) | undefined {
  const own = logger as unknown as Record<symbol, unknown>
  const stream = own[pino.symbols.streamSym] as Destination | undefined
  const bindings = own[pino.symbols.chindingsSym]
  const formatters = own[pino.symbols.formattersSym] as { log?: unknown } | undefined
  const time = own[pino.symbols.timeSym]
  // Only pino's defaults are reproduced (createLogger's): epoch time, no log formatter, no mixin.
  if (typeof stream?.write !== 'function' || typeof bindings !== 'string' || time !== pino.stdTimeFunctions.epochTime ||
    own[pino.symbols.mixinSym] !== undefined || formatters?.log !== undefined) {
    return undefined
  }
  const out = through === undefined ? stream : through(stream)
  const level = logger.levels.values.info
  const head = `{"level":${level}`
  const keys = names.map(name => `,${JSON.stringify(name)}:`)
  // Each field's last string value and its JSON: most repeat from one request to the next
  // (method, host, site, cache status, client, User-Agent), and JSON.stringify was the line's largest cost.
  const lastValue: Array<string | undefined> = names.map(() => undefined)
  const lastJson: string[] = names.map(() => '')
  return values => {
    if (!logger.isLevelEnabled('info')) return
    let line = head + pino.stdTimeFunctions.epochTime() + bindings
    for (let i = 0; i < keys.length; i++) {
      const value = values[i]
      if (value === undefined) continue
      if (typeof value === 'string') {
        if (value !== lastValue[i]) {
          lastValue[i] = value
          lastJson[i] = keys[i] + JSON.stringify(value)
        }
        line += lastJson[i]
      } else {
        line += keys[i] + (typeof value === 'number' && !Number.isFinite(value) ? 'null' : String(value))
      }
    }
    out.write(line + ',"msg":"request"}\n')
  }
}
