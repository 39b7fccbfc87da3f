/**
 * The transform threads (DESIGN §2): CPU-heavy work such as theming runs
 * on a piscina pool so a large page cannot stall the event loop. The pool is
 * generic: it runs a named export of a worker module on plain data.
 *
 * A task past its time budget is aborted, and piscina terminates the thread
 * it runs on (a synchronous loop cannot be interrupted any other way); with
 * `minThreads` equal to `threads` piscina starts a replacement at once. The
 * budget runs from the moment a thread starts the task (it says so over a
 * MessagePort), not from run(): time spent waiting for a thread, such as a
 * replacement loading the theme modules after a termination, is not the
 * task's fault and must not time it out (and terminate the next thread in
 * turn). The wait is bounded by the caller's own deadline (`signal`) and the
 * queue's length; a task aborted while queued leaves the queue without
 * costing a thread.
 */
import { availableParallelism } from 'node:os'
import { MessageChannel } from 'node:worker_threads'
import { pathToFileURL } from 'node:url'
import { Piscina } from 'piscina'
import { errorSpecs, liveryError, wrapError, LiveryError, isLiveryError, type ErrorCode } from '../errors.ts'
import { formatDuration } from '../config/units.ts'
import { silentLogger, type Logger } from '../log.ts'
import { transformStartedChannel as startedChannel, transformTimeoutChannel } from './channels.ts'
import type { Envelope, Task } from './task-worker.ts'

export interface TransformPoolOptions {
  /** Threads in this process; 0 means one per core. */
  readonly threads: number
  /** The worker module (a file URL or path); run() calls its named exports. */
  readonly filename: string | URL
  /** @default silentLogger */
  readonly logger?: Logger
  /** Tasks waiting for a thread before run() fails with LIVERY_ERR_TRANSFORM_BUSY. @default threads × 32 */
  readonly maxQueue?: number
  /** V8 old-generation limit per thread, bytes; a thread above it dies and the task fails. @default 0 (Node's default) */
  readonly maxThreadHeap?: number
  /** How long close() and destroy() wait for stopped threads to exit before they log and return, ms. @default 5000 */
  readonly exitTimeout?: number
}

export interface RunOptions {
  /** The exported function of the worker module to call. */
  readonly name: string
  /** Budget in ms from the moment a thread starts the task; past it the thread is terminated. */
  readonly timeout: number
  /** The caller's abort (e.g. the client went away); also terminates a running task. */
  readonly signal?: AbortSignal
}

export interface TransformPoolStats {
  readonly threads: number
  /** Share of threads busy right now, 0..1 (livery_worker_pool_utilization). */
  readonly utilization: number
  /** Tasks waiting for a thread (livery_worker_pool_queue). */
  readonly queueSize: number
  readonly completed: number
  readonly timeouts: number
}

export function resolveThreads (threads: number): number {
  return threads > 0 ? threads : availableParallelism()
}

export class TransformPool {
  readonly #piscina: Piscina<Task, Envelope>
  readonly #threads: number
  readonly #maxQueue: number
  readonly #logger: Logger
  readonly #exitTimeout: number
  #pending = 0
  /** Resolved when #pending drops to 0 (close() waits for the tasks already given). */
  #idle: (() => void)[] = []
  #timeouts = 0
  #closed = false
  #closing: Promise<void> | undefined
  #stopping: Promise<void> | undefined

  constructor (opts: TransformPoolOptions) {
    this.#threads = resolveThreads(opts.threads)
    this.#maxQueue = opts.maxQueue ?? this.#threads * 32
    this.#logger = (opts.logger ?? silentLogger).child({ module: 'transform-pool' })
    this.#exitTimeout = opts.exitTimeout ?? 5000
    const filename = opts.filename
    const module = filename instanceof URL ? filename.href : filename.includes('://') ? filename : pathToFileURL(filename).href
    const heapMb = opts.maxThreadHeap !== undefined && opts.maxThreadHeap > 0 ? Math.ceil(opts.maxThreadHeap / 1048576) : undefined
    this.#piscina = new Piscina<Task, Envelope>({
      filename: new URL('./task-worker.ts', import.meta.url).href,
      workerData: { module },
      // Warm threads: a cold start would be charged to the first tasks' budget.
      minThreads: this.#threads,
      maxThreads: this.#threads,
      maxQueue: this.#maxQueue,
      // Idle threads wait for work on their event loop, not in Atomics.wait
      // (piscina's default): a thread terminated there soon after loading
      // the theme modules on a busy core stayed blocked for good (native
      // stack in V8's FutexEmulation::WaitSync), so close() never returned
      // and the process could not exit (issue 10; test/pool/thread-exit).
      // The cost is an event-loop wake-up per task instead of a futex one.
      atomics: 'disabled',
      resourceLimits: heapMb !== undefined ? { maxOldGenerationSizeMb: heapMb } : undefined,
    })
    // piscina emits 'error' for a thread that fails outside a task (e.g. while the pool closes
    // with a terminated thread's replacement still starting); unhandled, it would end the process.
    this.#piscina.on('error', (err: unknown) => {
      this.#logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'a transform thread failed outside a task')
    })
  }

  /**
   * Runs `name(input)` on a thread. Rejects with `LIVERY_ERR_TRANSFORM_TIMEOUT`
   * past the budget, `LIVERY_ERR_TRANSFORM_BUSY` when the queue is full, the
   * worker's own Livery error (code kept) when it throws one, otherwise
   * `LIVERY_ERR_TRANSFORM`; with the caller's abort reason when `signal` aborts.
   */
  async run<I, O> (input: I, opts: RunOptions): Promise<O> {
    if (this.#closed) throw liveryError('LIVERY_ERR_CLOSED', 'the transform pool')
    if (opts.signal?.aborted === true) throw abortReason(opts.signal)
    if (this.#piscina.queueSize >= this.#maxQueue) {
      throw liveryError('LIVERY_ERR_TRANSFORM_BUSY', this.#threads, this.#piscina.queueSize)
    }
    const controller = new AbortController()
    const timeoutError = liveryError('LIVERY_ERR_TRANSFORM_TIMEOUT', formatDuration(opts.timeout))
    let timer: NodeJS.Timeout | undefined
    // The thread posts once as it starts the task: that is when the budget begins.
    const { port1, port2 } = new MessageChannel()
    port1.once('message', () => {
      timer = setTimeout(() => { controller.abort(timeoutError) }, opts.timeout)
      timer.unref()
      if (startedChannel.hasSubscribers) startedChannel.publish({ name: opts.name })
    })
    port1.unref()
    const onAbort = (): void => { controller.abort(abortReason(opts.signal as AbortSignal)) }
    opts.signal?.addEventListener('abort', onAbort)
    this.#pending++
    let envelope: Envelope
    try {
      envelope = await this.#piscina.run({ name: opts.name, input, started: port2 }, { signal: controller.signal, transferList: [port2] })
    } catch (err) {
      if (controller.signal.aborted) {
        const reason: unknown = controller.signal.reason
        if (reason === timeoutError) this.#onTimeout(opts)
        throw reason
      }
      throw wrapError('LIVERY_ERR_TRANSFORM', err, err instanceof Error ? err.message : String(err))
    } finally {
      if (--this.#pending === 0) for (const resolve of this.#idle.splice(0)) resolve()
      clearTimeout(timer)
      port1.close()
      opts.signal?.removeEventListener('abort', onAbort)
    }
    if (envelope.ok) return envelope.value as O
    throw remoteError(envelope)
  }

  stats (): TransformPoolStats {
    const queueSize = this.#piscina.queueSize
    const busy = Math.min(this.#threads, Math.max(0, this.#pending - queueSize))
    return {
      threads: this.#threads,
      utilization: busy / this.#threads,
      queueSize,
      completed: this.#piscina.completed,
      timeouts: this.#timeouts,
    }
  }

  /** Lets queued and running tasks finish (each within its budget), then stops the threads. Idempotent. */
  close (): Promise<void> {
    this.#closed = true
    this.#closing ??= (async () => {
      if (this.#pending > 0) await new Promise<void>(resolve => { this.#idle.push(resolve) })
      await this.#stop()
    })()
    return this.#closing
  }

  /** Terminates every thread now; pending tasks reject. Idempotent. */
  destroy (): Promise<void> {
    this.#closed = true
    return this.#stop()
  }

  /**
   * Terminates the threads and waits for them to exit, but not forever: a
   * thread stuck where V8 cannot interrupt it (a blocking system call) never
   * exits, and piscina's destroy() would then never settle, nor would the
   * gateway's close(). Past exitTimeout this logs and returns; the process
   * itself may then not exit (Node joins its threads at exit), which is what
   * the primary's SIGKILL after shutdownTimeout is for.
   */
  #stop (): Promise<void> {
    this.#stopping ??= (async () => {
      let timer: NodeJS.Timeout | undefined
      const late = new Promise<'late'>(resolve => { timer = setTimeout(() => resolve('late'), this.#exitTimeout) })
      const outcome = await Promise.race([this.#piscina.destroy().then(() => 'exited' as const), late])
      clearTimeout(timer)
      if (outcome === 'late') {
        this.#logger.warn({ exitTimeout: this.#exitTimeout }, `a transform thread did not exit within ${formatDuration(this.#exitTimeout)} of being stopped; it is left behind`)
      }
    })()
    return this.#stopping
  }

  async [Symbol.asyncDispose] (): Promise<void> {
    await this.close()
  }

  #onTimeout (opts: RunOptions): void {
    this.#timeouts++
    this.#logger.warn({ task: opts.name, timeout: opts.timeout },
      'a transform ran past its budget; its thread was terminated and will be replaced')
    if (transformTimeoutChannel.hasSubscribers) transformTimeoutChannel.publish({ name: opts.name, timeout: opts.timeout })
  }
}

function abortReason (signal: AbortSignal): LiveryError {
  const reason: unknown = signal.reason
  return isLiveryError(reason) ? reason : wrapError('LIVERY_ERR_CLIENT_ABORTED', reason)
}

/** Rebuilds a worker's error on this side, keeping a Livery code when it has one. */
function remoteError (envelope: Extract<Envelope, { ok: false }>): LiveryError {
  const cause = new Error(envelope.message)
  if (envelope.stack !== undefined) cause.stack = envelope.stack
  const code = envelope.code
  if (code !== undefined && Object.hasOwn(errorSpecs, code)) {
    const err = new LiveryError(code as ErrorCode, [], { cause })
    err.message = envelope.message
    return err
  }
  return wrapError('LIVERY_ERR_TRANSFORM', cause, envelope.message)
}
