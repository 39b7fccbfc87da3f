/**
 * The transform threads' task module: runs on a transform thread (loaded by
 * src/pool/task-worker.ts). Plain data in, plain data out; the compiled theme
 * comes as a shared buffer read once per version (shared-theme.ts).
 */
import { transformCompiled, type EncodedOutcome, type TransformContext, type TransformOutcome } from '../theme/index.ts'
import { transferring, type Transferring } from '../pool/transfer.ts'
import { ThreadThemes, type SharedTheme } from './shared-theme.ts'
import { threadCpuMs } from './thread-cpu.ts'

export interface TransformTask {
  /** A thread holds one compiled version per site. */
  readonly site: string
  readonly theme: SharedTheme
  readonly html: string
  readonly ctx: TransformContext
}

export interface ThreadedOutcome {
  /** A themed page comes back encoded, its buffer moved: the event loop neither copies nor encodes it. */
  readonly outcome: Exclude<TransformOutcome, { kind: 'html' }> | EncodedOutcome
  /** This thread deserialised the theme's version for this page (it did not hold it). */
  readonly loaded: boolean
  /** CPU time the transform itself took on the thread, ms: not the wait for a thread, not reading the theme. */
  readonly ms: number
}

const themes = new ThreadThemes()
const utf8 = new TextEncoder()

export function transform (task: TransformTask): ThreadedOutcome | Transferring<ThreadedOutcome> {
  const { compiled, loaded } = themes.get(task.site, task.theme)
  const started = threadCpuMs()
  const outcome = transformCompiled(compiled, task.html, task.ctx)
  const ms = threadCpuMs() - started
  if (outcome.kind !== 'html') return { outcome, loaded, ms }
  // TextEncoder gives the bytes a buffer of their own, which can be moved (a small Buffer.from would share the pool's).
  const body = utf8.encode(outcome.html)
  return transferring({ outcome: { kind: 'encoded', body, theme: outcome.theme }, loaded, ms }, [body.buffer])
}
