/**
 * V8 flags Livery is meant to run with; they must be given on Node's command
 * line (bin/livery.js's shebang, `npm start`, the Docker image, the bench and
 * test children all pass them).
 *
 * --max-semi-space-size=1: a streaming proxy turns every socket read into a
 * short-lived buffer. With V8's default young generation (16 MB semi-spaces)
 * those dead buffers pile up between scavenges and a single 50 MB stream
 * grows RSS by 40-70 MB; with 1 MB semi-spaces the same stream stays under
 * 20 MB (test/foundation/streaming.test.ts). Scavenges get more frequent but
 * stay cheap, since almost nothing on the request path survives one.
 */
export const nodeFlags: readonly string[] = ['--max-semi-space-size=1']
