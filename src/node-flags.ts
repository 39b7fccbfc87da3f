/**
 * V8 flags Livery is meant to run with; they must be given on Node's command
 * line (bin/livery.js's shebang, `npm start`, the Docker image, the bench and
 * test children all pass them).
 *
 * --expose-gc: lets src/server/buffer-reclaimer.ts run a minor GC once dead
 * socket buffers pile up. A streaming proxy turns every socket read into a
 * 64 KB buffer outside V8's heap, and V8 collects them only after ~64 MB of
 * external growth: one 50 MB stream grew RSS by 40-70 MB. With the reclaimer
 * it grows by 13-20 MB, under 30 MB (test/foundation/streaming.test.ts), at
 * the cost of a sub-millisecond scavenge per 8 MB streamed. It never forces a
 * major GC, and asks for no scavenge while V8 is marking, which would make V8
 * finish the marking in one pause (see buffer-reclaimer.ts).
 *
 * --max-semi-space-size=2: a young generation near bare Node's (issue 15,
 * item 3). V8 grows the semi-spaces with the allocation rate, to 16 MB for
 * a busy gateway against about 3.5 MB for a bare node:http server, and a
 * scavenge then walks a young generation that no longer fits the caches.
 * Capped at 2 MB, RSS after warming 1,000 pages was 35-45 MB lower
 * (202-221 MB against 246-264 MB), and the CPU per request was no worse on
 * any path in paired runs of bench/compare on a loaded machine (Livery
 * µs/req without → with: hits 84-144 → 79-107, cold misses 804-1633 →
 * 770-1600, themed misses 2091-2533 → 2084-2114, pass 557-637 → 485-523).
 */
export const nodeFlags: readonly string[] = ['--expose-gc', '--max-semi-space-size=2']
