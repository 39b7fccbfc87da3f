/**
 * The gateway for a bench run, in its own process. The config comes as JSON
 * in LIVERY_BENCH_CONFIG (access log off unless it says otherwise).
 * LIVERY_BENCH_FRESH_HITS=0 turns the fresh-hit fast path off, for A/B runs.
 */
import { parseConfig } from '../../src/config/load.ts'
import { createLogger } from '../../src/log.ts'
import { Gateway } from '../../src/server/gateway.ts'

const raw = JSON.parse(process.env.LIVERY_BENCH_CONFIG ?? '{}') as Record<string, unknown>
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LIVERY_')))
const config = parseConfig({ log: { access: false, level: 'warn' }, listen: { host: '127.0.0.1', port: 0 }, ...raw }, env, process.cwd())
const gateway = await Gateway.create(config, { logger: createLogger({ level: config.log.level }), freshHits: process.env.LIVERY_BENCH_FRESH_HITS !== '0' })
const address = await gateway.listen()
console.log(`LISTENING http://127.0.0.1:${address.port}`)
process.on('SIGTERM', () => { gateway.close().then(() => process.exit(0), () => process.exit(1)) })
