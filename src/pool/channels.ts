/**
 * The pool's diagnostics channels (STYLE §2.13). Message shapes are documented
 * in `index.ts`; publishers check `hasSubscribers` first so an unobserved
 * channel costs one property read.
 */
import { channel } from 'node:diagnostics_channel'

/** Why a request was refused before doing any work. */
export type ShedReason = 'queue_full' | 'queue_timeout' | 'overloaded'

export interface ShedMessage {
  readonly site: string | undefined
  readonly reason: ShedReason
  /** Human detail: which queue was full, which limit was crossed. */
  readonly detail: string
  /** Seconds it waited in the queue before it was shed (absent when shed before any queue, by the watchdog). */
  readonly seconds?: number
}

export interface KilledMessage {
  readonly site: string
  /** How long the killed request had run, in ms. */
  readonly ranMs: number
  readonly killAfter: number
}

export interface QueueWaitMessage {
  readonly site: string
  /** Seconds between acquire() and admission (0 when admitted at once). */
  readonly seconds: number
}

export interface DeadlineMessage {
  readonly site: string
  readonly requestTimeout: number
}

export interface OverloadMessage {
  /** The reason while overloaded; undefined when the gateway recovered. */
  readonly reason: string | undefined
}

export interface WatchdogSampleMessage {
  /** The longest event-loop stall in the window just ended, ms. */
  readonly eventLoopDelay: number
  /** The verdict after this sample; undefined when healthy. */
  readonly reason: string | undefined
}

export interface TransformTimeoutMessage {
  readonly name: string
  readonly timeout: number
}

export interface WorkerExitMessage {
  readonly pid: number | undefined
  readonly slot: number
  readonly code: number | null
  readonly signal: string | null
  /** Delay before the replacement is forked; undefined while shutting down. */
  readonly restartIn: number | undefined
}

export const shedChannel = channel('livery:pool:shed')
export const killedChannel = channel('livery:pool:killed')
export const queueWaitChannel = channel('livery:pool:queue-wait')
export const deadlineChannel = channel('livery:pool:deadline')
export const overloadChannel = channel('livery:pool:overload')
export const watchdogSampleChannel = channel('livery:pool:watchdog-sample')
export const transformTimeoutChannel = channel('livery:pool:transform-timeout')
export const workerExitChannel = channel('livery:pool:worker-exit')

/** `livery:pool:transform-started` `{ name }` — a thread started a task (its budget begins). */
export const transformStartedChannel = channel('livery:pool:transform-started')
