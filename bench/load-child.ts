/**
 * One autocannon run in a process of its own, so a second, concurrent load
 * does not share the measuring process's event loop (whose delays would be
 * counted as the other site's latency). Usage: node bench/load-child.ts
 * '<json: { name, url, duration, connections }>'; prints the figures as JSON.
 */
import { load, pinSelf } from './harness.ts'

pinSelf()
const opts = JSON.parse(process.argv[2] ?? '{}') as { name: string, url: string[], duration: number, connections: number }
const figures = await load(opts.name, opts)
process.stdout.write(JSON.stringify(figures) + '\n')
