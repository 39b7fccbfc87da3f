/**
 * The calling thread's CPU time, in ms: what the transform cost estimate is
 * made of. Wall time counted whatever else ran on the core meanwhile, so on
 * a busy machine a 1 ms transform measured 20 ms and more, the estimate
 * crossed `theme.inlineBudget`, and every page of a cheap site went to the
 * threads. About 2 µs a call (getrusage).
 */
export function threadCpuMs (): number {
  const u = process.threadCpuUsage()
  return (u.user + u.system) / 1000
}
