/** `npm run bench -- NAME [args]`: runs bench/NAME.ts. */
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'

const [name, ...args] = process.argv.slice(2)
const file = `bench/${name ?? ''}.ts`
if (name === undefined || !existsSync(file)) {
  console.error('usage: npm run bench -- compare|hit-path|proxy|cache|cache-redis|coherence|theme|slow-theme|isolation|parser-compare|warm|transform-abuse [--duration S]')
  process.exit(2)
}
const r = spawnSync(process.execPath, [file, ...args], { stdio: 'inherit' })
process.exit(r.status ?? 1)
