/**
 * bench/proxy: the gateway in pass mode (no cache) against a bare node:http
 * server serving the same 60 KB page, in one run.
 * Run: npm run bench -- proxy   (or: npm exec -- node bench/proxy.ts [--duration S])
 */
import { parseArgs } from 'node:util'
import { load, pinSelf, printTable, startChild, writeResults, type Figures } from './harness.ts'

const { values } = parseArgs({ options: { duration: { type: 'string', default: '10' }, connections: { type: 'string', default: '50' } } })
const duration = Number(values.duration)
const connections = Number(values.connections)
pinSelf()

const origin = await startChild('bench/servers/origin.ts')
const rows: Figures[] = []
try {
  await load('warm-up', { url: origin.url, duration: 2, connections })
  rows.push(await load('bare node:http', { url: `${origin.url}/page`, duration, connections }))
  const gateway = await startChild('bench/servers/gateway.ts', [], {
    LIVERY_BENCH_CONFIG: JSON.stringify({ sites: [{ name: 'bench', upstream: origin.url }] }),
  })
  try {
    await load('warm-up', { url: gateway.url, duration: 2, connections })
    rows.push(await load('livery pass (no cache)', { url: `${gateway.url}/page`, duration, connections }))
  } finally {
    await gateway.stop()
  }
} finally {
  await origin.stop()
}
printTable(`bench/proxy: 60 KB page, ${connections} connections, ${duration}s; servers on core 0, autocannon on core 1`, rows)
const ratio = rows[1].reqPerSec / rows[0].reqPerSec
console.log(`gateway / bare = ${ratio.toFixed(2)} (the gateway shares core 0 with its upstream, so ~0.5 is the ceiling)`)
console.log(`results: ${writeResults('proxy', { rows, ratio })}`)
