/**
 * Runs inside every transform thread. piscina calls the default export with
 * `{ name, input }`; it calls the named export of the caller's worker module
 * (`workerData.module`, a file URL) and returns an envelope rather than
 * throwing, because structured clone keeps only an Error's name, message and
 * stack: the `code` a caller branches on would be lost at the thread boundary.
 * A task may return `transferring(value, buffers)` (transfer.ts) to move
 * large buffers back instead of copying them.
 */
import { workerData, type MessagePort } from 'node:worker_threads'
import { move, transferableSymbol, valueSymbol } from 'piscina'
import { isTransferring } from './transfer.ts'

export interface Task {
  readonly name: string
  readonly input: unknown
  /** Posted to (once) as the task starts: the caller's budget runs from then. */
  readonly started?: MessagePort
}

export type Envelope =
  | { readonly ok: true, readonly value: unknown }
  | { readonly ok: false, readonly code: string | undefined, readonly message: string, readonly stack: string | undefined }

type Loaded = { readonly exports: Record<string, unknown> } | { readonly error: unknown }

const moduleUrl = (workerData as { module: string }).module
// Awaited at the top level, so piscina announces a thread as ready only once
// the module is loaded: a replacement for a thread terminated past its budget
// takes no task while it loads (hundreds of ms for the theme modules), so that
// time is never charged to a task's budget, which would time out and
// terminate the replacement in turn, forever. Settled into a value, never a
// rejection: a load failure is reported by each task.
const loaded: Loaded = await import(moduleUrl).then(
  (exports: Record<string, unknown>) => ({ exports }),
  (error: unknown) => ({ error }),
)

export default async function run (task: Task): Promise<Envelope> {
  task.started?.postMessage(0)
  task.started?.close()
  if ('error' in loaded) return failure(loaded.error, `cannot load worker module ${moduleUrl}: `)
  const fn = loaded.exports[task.name]
  if (typeof fn !== 'function') {
    return { ok: false, code: undefined, message: `worker module ${moduleUrl} exports no function named ${task.name}`, stack: undefined }
  }
  try {
    const value = await (fn as (input: unknown) => unknown)(task.input)
    if (!isTransferring(value)) return { ok: true, value }
    // piscina posts a movable result's transferables moved rather than cloned.
    const envelope: Envelope = { ok: true, value: value.value }
    return move({ [transferableSymbol]: value.list, [valueSymbol]: envelope }) as unknown as Envelope
  } catch (err) {
    return failure(err, '')
  }
}

function failure (err: unknown, prefix: string): Envelope {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code
    return { ok: false, code: typeof code === 'string' ? code : undefined, message: prefix + err.message, stack: err.stack }
  }
  return { ok: false, code: undefined, message: prefix + String(err), stack: undefined }
}
