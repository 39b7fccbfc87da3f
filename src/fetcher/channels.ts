/**
 * diagnostics_channel publishers for the fetch pool. The channel list and
 * message shapes are documented in `index.ts`; `src/metrics` subscribes.
 */
import { channel } from 'node:diagnostics_channel'

export const channels = {
  jobStart: channel('livery:fetch:job_start'),
  jobEnd: channel('livery:fetch:job_end'),
  deduplicated: channel('livery:fetch:deduplicated'),
  timeout: channel('livery:fetch:timeout'),
  error: channel('livery:fetch:error'),
  staleServed: channel('livery:fetch:stale_served'),
  circuitOpen: channel('livery:fetch:circuit_open'),
  circuitHalfOpen: channel('livery:fetch:circuit_half_open'),
  circuitClose: channel('livery:fetch:circuit_close'),
  persistError: channel('livery:fetch:persist_error'),
  corrupt: channel('livery:fetch:corrupt'),
} as const

export type TimeoutPhase = 'connect' | 'firstByte' | 'betweenBytes' | 'total'
export type StaleReason = 'wait' | 'error' | 'backoff' | 'circuit' | 'queue'
