/**
 * The worker tier's metrics (issue 13), for the gateway and for `livery
 * worker` alike: queue depth by job kind (what the worker HPA scales on),
 * job durations, failures, retries and dead letters from
 * `livery:worker:job`, and theme refresh and check results from
 * `livery:worker:theme`.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { Gauge } from 'prom-client'
import type { Metrics } from './metrics.ts'

export interface InstrumentedTier {
  depth (): Promise<Record<string, { waiting: number, delayed: number, active: number }>>
}

/** A scrape never waits on a slow Redis longer than this; the depth is then left out. */
export const depthTimeout = 1000

export function instrumentWorker (metrics: Metrics, tier: InstrumentedTier): () => void {
  const subs: [string, (m: unknown) => void][] = []
  const on = (name: string, fn: (m: Record<string, unknown>) => void): void => {
    const handler = (m: unknown): void => fn(m as Record<string, unknown>)
    subscribe(name, handler)
    subs.push([name, handler])
  }
  const kind = (m: Record<string, unknown>): string => typeof m.kind === 'string' ? m.kind : 'unknown'

  let pending: Promise<unknown> | undefined
  /** A query went unanswered for `depthTimeout`, and none has answered since. */
  let stalled = false
  new Gauge({
    name: 'livery_worker_queue_depth',
    help: 'Jobs in the worker tier\'s queues, by job kind and state (waiting, delayed for a retry, active)',
    labelNames: ['kind', 'state'],
    registers: [metrics.registry],
    async collect () {
      this.reset()
      // A query Redis has not answered yet means Redis is stalled: the depth is
      // left out at once rather than asked again. Each scrape of a stalled
      // Redis would otherwise wait the whole timeout in every process (a
      // cluster scrape then drops late processes' gauges) and queue one more
      // query behind the stall.
      if (pending !== undefined) return
      const query = tier.depth().then(d => { stalled = false; return d }, () => undefined).finally(() => { if (pending === query) pending = undefined })
      pending = query
      // Stalled and the last query given up (the queue's own deadline): ask
      // again in the background, but no scrape waits until one answers.
      if (stalled) return
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<undefined>(resolve => { timer = setTimeout(() => resolve(undefined), depthTimeout); timer.unref() })
      const depth = await Promise.race([query, timeout])
      clearTimeout(timer)
      if (depth === undefined) { stalled = true; return }
      for (const [k, d] of Object.entries(depth)) {
        this.set({ kind: k, state: 'waiting' }, d.waiting)
        this.set({ kind: k, state: 'delayed' }, d.delayed)
        this.set({ kind: k, state: 'active' }, d.active)
      }
    },
  })
  const duration = metrics.histogram('livery_worker_job_duration_seconds', 'Time a successful job took, by kind', ['kind'], [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30])
  const completed = metrics.counter('livery_worker_jobs_completed_total', 'Jobs that succeeded, by kind', ['kind'])
  const failures = metrics.counter('livery_worker_job_failures_total', 'Job attempts that failed, by kind', ['kind'])
  const retries = metrics.counter('livery_worker_job_retries_total', 'Failed attempts followed by a retry, by kind', ['kind'])
  const dead = metrics.counter('livery_worker_dead_letters_total', 'Jobs that failed their last attempt and were dead-lettered, by kind', ['kind'])
  const dedup = metrics.counter('livery_worker_jobs_deduplicated_total', 'Enqueues that were no-ops because the same job was waiting or running, by kind', ['kind'])
  on('livery:worker:job', m => {
    switch (m.event) {
      case 'done':
        completed.inc({ kind: kind(m) })
        duration.observe({ kind: kind(m) }, typeof m.durationMs === 'number' ? m.durationMs / 1000 : 0)
        break
      case 'retry':
        failures.inc({ kind: kind(m) })
        retries.inc({ kind: kind(m) })
        break
      case 'dead':
        failures.inc({ kind: kind(m) })
        dead.inc({ kind: kind(m) })
        break
      case 'deduplicated':
        dedup.inc({ kind: kind(m) })
    }
  })
  const refreshFailures = metrics.counter('livery_theme_refresh_failures_total', 'Background theme refreshes that failed, by site (pages stay themed from the copies in hand)', ['site'])
  const refreshOk = metrics.counter('livery_theme_refreshes_total', 'Background theme refreshes that succeeded, by site', ['site'])
  const lastCheck = { ok: 1 }
  metrics.gauge('livery_theme_check_ok', '1 when the last periodic theme check found no problem', [], set => set({}, lastCheck.ok))
  on('livery:worker:theme', m => {
    const site = typeof m.site === 'string' ? m.site : ''
    if (m.check === true) lastCheck.ok = m.ok === true ? 1 : 0
    else if (m.ok === true) refreshOk.inc({ site })
    else refreshFailures.inc({ site })
  })
  return () => {
    for (const [name, fn] of subs) unsubscribe(name, fn)
  }
}
