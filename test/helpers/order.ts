/**
 * Time bounds as orderings (issue 10): a test that compares elapsed wall
 * time with a bound measures the machine as much as the code, and fails on
 * a busy one. Comparing against a timer of the same length does not.
 */

/**
 * Whether `p` settles before a timer of `ms`, started now, fires. Node runs
 * due timers in order of their due time, and after each callback it runs the
 * microtasks that callback queued, so a promise that a Livery timer of at
 * most `ms` settles (one started before this call, with no I/O after it) wins
 * however late both timers fire. An ordering fact, where an elapsed-time
 * bound fails on a loaded machine (issue 10).
 */
export function settlesWithin (p: Promise<unknown>, ms: number): Promise<boolean> {
  let settled = false
  const mark = (): void => { settled = true }
  p.then(mark, mark)
  return new Promise(resolve => { setTimeout(() => { resolve(settled) }, ms) })
}
