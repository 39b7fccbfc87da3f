/**
 * A coarse shared clock (STYLE §2.10): one unref'd timer refreshes `now`
 * a few times a second, so the hot path reads a number instead of calling
 * Date.now(), and `Age` headers are computed from it. Precision is
 * `resolution` ms, which is well inside `Age`'s one-second granularity.
 */

const resolution = 100
let current = Date.now()
let timer: NodeJS.Timeout | undefined

function start (): void {
  timer = setInterval(() => { current = Date.now() }, resolution)
  timer.unref()
}

/** Milliseconds since the epoch, accurate to about 100 ms. */
export function coarseNow (): number {
  if (timer === undefined) {
    // The first reader may come long after this module loaded (seen 6.5 s):
    // read the time now, not at load.
    current = Date.now()
    start()
  }
  return current
}

/** Seconds since the epoch, as `Age` arithmetic wants them. */
export function coarseSeconds (): number {
  return Math.floor(coarseNow() / 1000)
}
