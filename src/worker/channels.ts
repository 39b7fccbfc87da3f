/**
 * The worker tier's diagnostics channel. One message per step of a job's
 * life; publishers check `hasSubscribers` first.
 *
 * `livery:worker:job` `{ kind, key, event, attempt, durationMs?, error?, pid }`
 * - `enqueued` — added to the queue;
 * - `deduplicated` — the key was already waiting or running: nothing added;
 * - `start` — an attempt began (`attempt` counts from 1);
 * - `done` — it succeeded (`durationMs`);
 * - `retry` — an attempt failed and another is scheduled (`error`);
 * - `dead` — the last attempt failed; the job is on the dead-letter list.
 *
 * `livery:worker:theme` `{ site, ok, check, refreshed?, error? }` — a theme
 * refresh or theme check finished (`check: true` for a check).
 */
import { channel } from 'node:diagnostics_channel'

export type JobEvent = 'enqueued' | 'deduplicated' | 'start' | 'done' | 'retry' | 'dead'

export interface JobMessage {
  readonly kind: string
  readonly key: string
  readonly event: JobEvent
  readonly attempt: number
  readonly durationMs?: number
  readonly error?: string
  readonly pid: number
}

export interface ThemeJobMessage {
  readonly site: string
  readonly ok: boolean
  readonly check: boolean
  /** Theme resources a successful refresh fetched (0: none was due yet). */
  readonly refreshed?: number
  readonly error?: string
}

export const jobChannel = channel('livery:worker:job')
export const themeJobChannel = channel('livery:worker:theme')

export function publishJob (msg: Omit<JobMessage, 'pid'>): void {
  if (jobChannel.hasSubscribers) jobChannel.publish({ ...msg, pid: process.pid })
}
