/**
 * V8 flags Livery is meant to run with; they must be given on Node's command
 * line (bin/livery.js's shebang, `npm start`, the Docker image, the bench and
 * test children all pass them).
 *
 * --expose-gc: lets src/server/buffer-reclaimer.ts run a minor GC once dead
 * socket buffers pile up. A streaming proxy turns every socket read into a
 * 64 KB buffer outside V8's heap, and V8 collects them only after ~64 MB of
 * external growth: one 50 MB stream grew RSS by 40-70 MB. With the reclaimer
 * it grows by under 30 MB (test/foundation/streaming.test.ts), at the cost
 * of a sub-millisecond scavenge per 8 MB streamed. It never forces a major GC
 * (see buffer-reclaimer.ts for why that was measured to cost far more).
 */
export const nodeFlags: readonly string[] = ['--expose-gc']
