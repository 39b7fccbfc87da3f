// Issue 15, item 8: the memory tier's byte bound must hold for the memory entries really cost, small or large.
import t from 'tap'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'

const run = promisify(execFile)
const fixture = fileURLToPath(new URL('./fixtures/memory-fill.ts', import.meta.url))
const maxSize = 32 * 1024 * 1024
/** What may stay above maxSize: a few entries' slack in V8's heap pages, stated in docs/caching.md. */
const slack = 8 * 1024 * 1024

for (const [label, bodySize, count] of [['100 B', 100, 60_000], ['1 MB', 1024 * 1024, 64]] as const) {
  t.test(`a full tier of ${label} entries holds its byte bound`, async t => {
    const { stdout } = await run(process.execPath, ['--expose-gc', fixture, String(maxSize), String(bodySize), String(count)])
    const r = JSON.parse(stdout) as { grown: number, accounted: number, entries: number }
    t.comment(`${r.entries} entries, accounted ${(r.accounted / 2 ** 20).toFixed(1)} MB, live memory grew ${(r.grown / 2 ** 20).toFixed(1)} MB`)
    t.ok(r.entries < count, 'the tier filled up and evicted')
    t.ok(r.accounted <= maxSize, 'the accounted bytes stay within maxSize')
    t.ok(r.grown <= maxSize + slack, `live memory grew by at most maxSize + 8 MB (${(r.grown / 2 ** 20).toFixed(1)} MB)`)
  })
}
