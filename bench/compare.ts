/**
 * bench/compare: Livery against its anchors in one run (issue 15). The server
 * under test runs pinned to core 0; wrk, the origins and the theme server run
 * on core 1. For each path it prints req/s, p50, p99 (wrk's own figures),
 * the server's CPU microseconds per request (from /proc: on a shared machine
 * req/s swings with other load, CPU per request much less) and the largest
 * event-loop delay seen during the load (Node servers only).
 *
 *   hit-1     one cached 60 KB URL            bare node:http · nginx proxy_cache · Livery
 *   hit-1000  1,000 cached URLs               bare node:http · bare node:http (one body) · nginx proxy_cache · Livery
 *   pass      uncacheable 60 KB pages         minimal undici proxy · nginx proxy_pass · Livery
 *   miss      a new cacheable URL per request minimal undici proxy · nginx proxy_cache · Livery
 *   themed    a new themed URL per request    Livery (theme + 2 rules)
 *
 * The hit-1000 anchor, 'bare node:http', holds 1,000 distinct 60 KB bodies
 * (bench/servers/origin.ts --distinct 1000, a Map from path to its own
 * Buffer), as any Node cache of 1,000 pages must: a 60 MB working set that
 * does not stay in the CPU caches. 'bare node:http (one body)' is the old
 * anchor, the same buffer on every path (one hot buffer), kept in the table
 * for comparison; the ratio 'hit-1000 cpu Livery/bare' uses the distinct-bodies
 * anchor. hit-1 uses the one-body server, which is exact for one URL.
 *
 * nginx runs when it is installed (Debian's nginx-light), as one process
 * (master_process off) so its CPU is one /proc entry.
 * Run: npm run bench -- compare [--duration S] [--connections N] [--only hit,miss,pass,themed] [--livery-flags=--max-semi-space-size=2]
 * [--livery-env=NAME=VALUE,...] [--rounds N]
 * (--livery-flags: extra Node flags for the Livery processes only, to try a V8 setting against the same anchors;
 * --livery-env: environment variables for them only, e.g. a malloc tunable; --rounds: run every server N times,
 * alternating, and report medians, with each ratio the median of the rounds' own ratios).
 * Writes bench/results/compare.json.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { request } from 'undici'
import { nodeFlags } from '../src/node-flags.ts'
import { median, writeResults } from './harness.ts'

const { values } = parseArgs({ options: { duration: { type: 'string', default: '10' }, connections: { type: 'string', default: '50' }, only: { type: 'string' }, 'livery-flags': { type: 'string', default: '' }, 'livery-env': { type: 'string', default: '' }, rounds: { type: 'string', default: '1' } } })
const liveryFlags = values['livery-flags'].split(/\s+/).filter(f => f !== '')
const liveryEnv: Record<string, string> = Object.fromEntries(values['livery-env'].split(',').filter(e => e !== '').map(e => {
  const i = e.indexOf('=')
  if (i < 1) throw new Error(`--livery-env: "${e}" is not NAME=VALUE`)
  return [e.slice(0, i), e.slice(i + 1)]
}))
// --only hit,miss,pass,themed runs those paths (with their anchors) and skips the rest.
const pathNames = new Set(['hit', 'miss', 'pass', 'themed'])
const only = values.only === undefined ? pathNames : new Set(values.only.split(','))
for (const p of only) if (!pathNames.has(p)) throw new Error(`--only: unknown path "${p}"; use any of ${[...pathNames].join(', ')}`)
const want = (path: string): boolean => only.has(path)
const duration = Number(values.duration)
const connections = Number(values.connections)
const rounds = Number(values.rounds)
if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds: "${values.rounds}" is not a whole number of at least 1`)
const serverCore = '0'
const otherCore = cpus().length > 1 ? '1' : '0'
const dir = mkdtempSync(join(tmpdir(), 'livery-compare-'))
// bin/livery.js runs Livery with Node's compile cache, so that no process keeps Node's TypeScript stripper (25-30 MB of
// RSS); the bench starts bench/servers/*.ts directly, so it gives every child the same cache, primed before round 1.
process.env.NODE_COMPILE_CACHE = join(dir, 'node-compile-cache')
const children: ChildProcess[] = []

interface Proc { readonly url: string, readonly pid: number, readonly node: boolean }

async function start (core: string, cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Proc & { proc: ChildProcess }> {
  const proc = spawn('taskset', ['-c', core, cmd, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
  children.push(proc)
  const url = await new Promise<string>((resolve, reject) => {
    let buf = ''
    const timer = setTimeout(() => reject(new Error(`${args.join(' ')} did not start within 30s`)), 30_000)
    proc.stdout!.on('data', (c: Buffer) => {
      buf += c.toString()
      const m = /LISTENING (\S+)/.exec(buf)
      if (m !== null) { clearTimeout(timer); resolve(m[1]) }
    })
    proc.once('exit', code => { clearTimeout(timer); reject(new Error(`${args.join(' ')} exited with ${String(code)}`)) })
  })
  proc.stdout!.resume()
  return { url, pid: proc.pid!, node: cmd === process.execPath, proc }
}

/** The anchors and helpers (bare node:http, the undici proxy, origins, theme server) run with Node's defaults; Livery with its own flags. */
const node = (core: string, script: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): ReturnType<typeof start> =>
  start(core, process.execPath, [script, ...args], env)

async function stop (p: { proc: ChildProcess }): Promise<void> {
  if (p.proc.exitCode !== null || p.proc.signalCode !== null) return
  p.proc.kill('SIGTERM')
  await once(p.proc, 'exit')
}

function cpuSeconds (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12])) / 100
}

function rssMb (pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m === null ? 0 : Math.round(Number(m[1]) / 1024)
}

async function get (url: string, headers: Record<string, string> = {}): Promise<{ status: number, headers: Record<string, unknown>, body: string }> {
  const r = await request(url, { headers })
  return { status: r.statusCode, headers: r.headers, body: await r.body.text() }
}

/** Event-loop delay max (ms) since the previous read: `/__eld` on the bench servers, prom-client's gauge on Livery. */
async function eventLoopMax (p: Proc, livery: boolean): Promise<number | null> {
  if (!p.node) return null
  if (!livery) return Number((await get(`${p.url}/__eld`)).body)
  const m = /^nodejs_eventloop_lag_max_seconds (\S+)/m.exec((await get(`${p.url}/_livery/metrics`)).body)
  return m === null ? null : Math.round(Number(m[1]) * 1000 * 10) / 10
}

/** A wrk Lua script: the same path, one of `n` paths in turn, or a new path per request. */
function script (kind: 'one' | 'many' | 'unique', prefix: string): string {
  const file = join(dir, `${kind}-${prefix.replace(/\W/g, '')}.lua`)
  const body = kind === 'one'
    ? `request = function() return wrk.format("GET", "${prefix}") end\n`
    : kind === 'many'
      ? `local i = 0\nrequest = function() i = (i + 1) % 1000; return wrk.format("GET", "${prefix}" .. i) end\n`
      : `local i = 0\nrequest = function() i = i + 1; return wrk.format("GET", "${prefix}" .. i) end\n`
  writeFileSync(file, body)
  return file
}

interface Row {
  path: string, server: string, 'req/s': number, 'p50 ms': number, 'p99 ms': number, 'cpu µs/req': number,
  'loop max ms': number | null, errors: number, 'rss MB': number
}

const ms = (v: string, unit: string): number => Number(v) * ({ us: 0.001, ms: 1, s: 1000 } as Record<string, number>)[unit]

async function wrk (p: Proc, label: string, server: string, lua: string, livery = false): Promise<Row> {
  await eventLoopMax(p, livery)
  const cpu0 = cpuSeconds(p.pid)
  const r = spawnSync('taskset', ['-c', otherCore, 'wrk', '-t1', `-c${connections}`, `-d${duration}s`, '--latency', '-s', lua, p.url], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`wrk failed: ${r.stderr}`)
  const cpu = cpuSeconds(p.pid) - cpu0
  const out = r.stdout
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0)
  const pct = (q: string): number => { const m = new RegExp(`\\s${q}%\\s+([\\d.]+)(us|ms|s)`).exec(out); return m === null ? NaN : Math.round(ms(m[1], m[2]) * 100) / 100 }
  const errs = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0)
  const errors = non2xx + (errs === null ? 0 : errs.slice(1).reduce((a, b) => a + Number(b), 0))
  return {
    path: label, server, 'req/s': Math.round(requests / duration), 'p50 ms': pct('50'), 'p99 ms': pct('99'),
    'cpu µs/req': requests > 0 ? Math.round(cpu / requests * 1e6) : NaN, 'loop max ms': await eventLoopMax(p, livery), errors, 'rss MB': rssMb(p.pid),
  }
}

async function warm (base: string, paths: readonly string[], livery: boolean): Promise<void> {
  for (let i = 0; i < paths.length; i += 25) await Promise.all(paths.slice(i, i + 25).map(async p => { await get(base + p) }))
  if (livery) {
    const r = await get(base + paths[0])
    if (r.headers['x-cache'] !== 'HIT') throw new Error(`${paths[0]} is not a hit after warming: ${String(r.headers['x-cache'])}`)
  }
}

function nginxAvailable (): boolean {
  return spawnSync('nginx', ['-v']).status === 0
}

/** nginx as one process on the server core, in front of `upstream`, caching when `cache` says so. */
async function startNginx (name: string, upstream: string, cache: boolean): Promise<Proc & { proc: ChildProcess }> {
  const root = join(dir, `nginx-${name}`)
  spawnSync('mkdir', ['-p', join(root, 'cache'), join(root, 'tmp')])
  const port = 20_000 + Math.floor(Math.random() * 20_000)
  const conf = join(root, 'nginx.conf')
  writeFileSync(conf, `daemon off; master_process off; worker_processes 1; error_log ${root}/error.log warn; pid ${root}/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off; client_body_temp_path ${root}/tmp; proxy_temp_path ${root}/tmp; fastcgi_temp_path ${root}/tmp; uwsgi_temp_path ${root}/tmp; scgi_temp_path ${root}/tmp;
  ${cache ? `proxy_cache_path ${root}/cache levels=1:2 keys_zone=z:64m max_size=2g inactive=1h use_temp_path=off;` : ''}
  upstream origin { server ${new URL(upstream).host}; keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection "";
      ${cache ? 'proxy_cache z; proxy_cache_lock on; proxy_cache_valid 200 1h;' : ''}
    }
  }
}
`)
  const proc = spawn('taskset', ['-c', serverCore, 'nginx', '-c', conf, '-p', root], { stdio: ['ignore', 'ignore', 'inherit'] })
  children.push(proc)
  const url = `http://127.0.0.1:${port}`
  for (let i = 0; i < 100; i++) {
    try { await get(`${url}/__up`); return { url, pid: proc.pid!, node: false, proc } } catch { await new Promise(resolve => setTimeout(resolve, 50)) }
  }
  throw new Error(`nginx did not start: see ${root}/error.log`)
}

const rules = `<rules xmlns="http://namespaces.plone.org/diazo" xmlns:css="http://namespaces.plone.org/diazo/css">
  <theme href="theme.html"/>
  <replace css:theme="title" css:content="title"/>
  <replace css:theme="#content" css:content="#content"/>
</rules>
`

async function livery (config: Record<string, unknown>): Promise<Proc & { proc: ChildProcess }> {
  return await start(serverCore, process.execPath, [...nodeFlags, ...liveryFlags, 'bench/servers/gateway.ts'], { ...liveryEnv, LIVERY_BENCH_CONFIG: JSON.stringify(config) })
}

interface Fill { pages: number, onDisk: number, share: number, rssMb: number, settledRssMb: number }
const perRound: Row[][] = []
const fills: Fill[] = []

/** One row per (path, server): the median of each figure over the rounds, except the event-loop delay: its largest. */
function medianRows (rounds: readonly Row[][]): Row[] {
  return rounds[0].map(first => {
    const same = rounds.flatMap(rs => rs.filter(x => x.path === first.path && x.server === first.server))
    const m = (k: 'req/s' | 'p50 ms' | 'p99 ms' | 'cpu µs/req' | 'errors' | 'rss MB'): number => median(same.map(x => x[k]))
    const loops = same.flatMap(x => x['loop max ms'] ?? [])
    return {
      path: first.path, server: first.server, 'req/s': Math.round(m('req/s')), 'p50 ms': Math.round(m('p50 ms') * 100) / 100, 'p99 ms': Math.round(m('p99 ms') * 100) / 100,
      'cpu µs/req': Math.round(m('cpu µs/req')), 'loop max ms': loops.length === 0 ? null : Math.max(...loops), errors: m('errors'), 'rss MB': Math.round(m('rss MB')),
    }
  })
}
try {
  const cacheable = await node(otherCore, 'bench/servers/origin.ts', ['--cache-control', 'max-age=3600'])
  const uncacheable = await node(otherCore, 'bench/servers/origin.ts', ['--cache-control', 'no-store'])
  const theme = await node(otherCore, 'bench/servers/theme.ts')
  // Prime the compile cache: a gateway writes it when it exits.
  await stop(await livery({ sites: [{ name: 'bench', hosts: ['*'], upstream: cacheable.url }], cache: { directory: join(dir, 'livery-prime') } }))
  const hasNginx = nginxAvailable()
  const paths = Array.from({ length: 1000 }, (_, i) => `/page/${i}`)
  const one = script('one', '/page/0')
  const many = script('many', '/page/')

  // Rounds alternate the anchors and Livery, so a VM whose speed drifts during the run moves both (issue 15: ratios within one run).
  for (let round = 1; round <= rounds; round++) {
    const r = `r${round}`
    const roundRows: Row[] = []
    perRound.push(roundRows)
    // --- hits --------------------------------------------------------------
    if (want('hit')) {
      const bare = await node(serverCore, 'bench/servers/origin.ts', ['--cache-control', 'max-age=3600'])
      roundRows.push(await wrk(bare, 'hit-1', 'bare node:http', one))
      roundRows.push(await wrk(bare, 'hit-1000', 'bare node:http (one body)', many))
      await stop(bare)
      const bareDistinct = await node(serverCore, 'bench/servers/origin.ts', ['--cache-control', 'max-age=3600', '--distinct', String(paths.length)])
      roundRows.push(await wrk(bareDistinct, 'hit-1000', 'bare node:http', many))
      await stop(bareDistinct)
    }
    if (hasNginx && (want('hit') || want('miss'))) {
      const nx = await startNginx(`cache-${r}`, cacheable.url, true)
      await warm(nx.url, paths, false)
      if (want('hit')) roundRows.push(await wrk(nx, 'hit-1', 'nginx proxy_cache', one))
      if (want('hit')) roundRows.push(await wrk(nx, 'hit-1000', 'nginx proxy_cache', many))
      if (want('miss')) roundRows.push(await wrk(nx, 'miss', 'nginx proxy_cache', script('unique', `/nginx-cold-${r}/`)))
      await stop(nx)
    }
    if (want('hit') || want('miss')) {
      const gw = await livery({ sites: [{ name: 'bench', hosts: ['*'], upstream: cacheable.url }], cache: { directory: join(dir, `livery-cache-${r}`) } })
      await warm(gw.url, paths, true)
      if (want('hit')) roundRows.push(await wrk(gw, 'hit-1', 'Livery', one, true))
      if (want('hit')) roundRows.push(await wrk(gw, 'hit-1000', 'Livery', many, true))
      if (want('miss')) {
        const missRow = await wrk(gw, 'miss', 'Livery', script('unique', `/livery-cold-${r}/`), true)
        roundRows.push(missRow)
        // Issue 15: under a fill, at least 95% of the pages reach the disk tier. Writes finish after the load; wait until the count settles.
        let disk = -1
        for (let last = -2; disk !== last; await new Promise(resolve => setTimeout(resolve, 500))) {
          last = disk
          const status = JSON.parse((await get(`${gw.url}/_livery/status`)).body) as { cache: { tiers: Record<string, { entries: number }> } }
          disk = status.cache.tiers.disk?.entries ?? 0
        }
        // Shed or failed requests (non-2xx, socket errors) stored nothing: they are not pages of the fill.
        const filled = Math.max(1, missRow['req/s'] * duration - missRow.errors)
        // The tier is full and the writes are done: what the process holds for a full 256 MB memory tier.
        fills.push({ pages: filled, onDisk: disk - paths.length, share: Math.round((disk - paths.length) / filled * 1000) / 10, rssMb: missRow['rss MB'], settledRssMb: rssMb(gw.pid) })
      }
      await stop(gw)
    }

    // --- pass --------------------------------------------------------------
    if (want('pass')) {
      const proxy = await node(serverCore, 'bench/servers/undici-proxy.ts', ['--upstream', uncacheable.url])
      roundRows.push(await wrk(proxy, 'pass', 'undici proxy', one))
      await stop(proxy)
    }
    if (want('miss')) {
      const proxyMiss = await node(serverCore, 'bench/servers/undici-proxy.ts', ['--upstream', cacheable.url])
      roundRows.push(await wrk(proxyMiss, 'miss', 'undici proxy', script('unique', `/proxy-cold-${r}/`)))
      await stop(proxyMiss)
    }
    if (hasNginx && want('pass')) {
      const nx = await startNginx(`pass-${r}`, uncacheable.url, false)
      roundRows.push(await wrk(nx, 'pass', 'nginx proxy_pass', one))
      await stop(nx)
    }
    if (want('pass')) {
      const gwPass = await livery({ sites: [{ name: 'bench', hosts: ['*'], upstream: uncacheable.url }], cache: { directory: join(dir, `livery-pass-${r}`) } })
      roundRows.push(await wrk(gwPass, 'pass', 'Livery', one, true))
      await stop(gwPass)
    }

    // --- themed miss -------------------------------------------------------
    if (want('themed')) {
      const rulesFile = join(dir, 'rules.xml')
      writeFileSync(rulesFile, rules)
      const gwTheme = await livery({
        sites: [{ name: 'bench', hosts: ['*'], upstream: cacheable.url, theme: { rules: rulesFile, base: `${theme.url}/` } }],
        cache: { directory: join(dir, `livery-theme-${r}`) },
      })
      const sample = await get(`${gwTheme.url}/themed-${r}/warm`)
      if (!sample.body.includes('BENCH-THEME')) throw new Error(`the gateway does not theme: ${sample.status}`)
      roundRows.push(await wrk(gwTheme, 'themed', 'Livery', script('unique', `/themed-${r}/`), true))
      await stop(gwTheme)
    }
  }
  const rows = medianRows(perRound)

  console.log(`\nbench/compare: 60 KB pages, wrk -t1 -c${connections} -d${duration}s; server on core ${serverCore}, wrk and origins on core ${otherCore}; ${cpus()[0]?.model ?? ''}, ${cpus().length} cores`)
  if (rounds > 1) console.log(`medians of ${rounds} rounds (each round runs every server once, anchors first)`)
  console.table(rows)
  /** CPU per request of `a` over `b`: the median of the rounds' ratios, each taken within one round. */
  const ratio = (path: string, a: string, b: string): number | null => {
    const each = perRound.flatMap(rs => {
      const x = rs.find(r => r.path === path && r.server === a)?.['cpu µs/req']
      const y = rs.find(r => r.path === path && r.server === b)?.['cpu µs/req']
      return x === undefined || y === undefined ? [] : [x / y]
    })
    return each.length === 0 ? null : Math.round(median(each) * 100) / 100
  }
  const ratios = {
    'hit-1 cpu Livery/bare': ratio('hit-1', 'Livery', 'bare node:http'),
    'hit-1000 cpu Livery/bare': ratio('hit-1000', 'Livery', 'bare node:http'),
    'hit-1000 cpu Livery/bare (one body)': ratio('hit-1000', 'Livery', 'bare node:http (one body)'),
    'pass cpu Livery/undici proxy': ratio('pass', 'Livery', 'undici proxy'),
    'miss cpu Livery/undici proxy': ratio('miss', 'Livery', 'undici proxy'),
  }
  console.table(ratios)
  for (const [i, fill] of fills.entries()) {
    console.log(`Livery cold-miss fill${fills.length > 1 ? ` (round ${i + 1})` : ''}: ${fill.onDisk} of ${fill.pages} new pages reached the disk tier (${fill.share}%); RSS ${fill.rssMb} MB at the end of the load, ${fill.settledRssMb} MB once the disk writes settled (memory tier 256 MB)`)
  }
  console.log(`wrote ${writeResults('compare', { duration, connections, rounds, liveryFlags, liveryEnv, cpu: cpus()[0]?.model, cores: cpus().length, rows, ratios, perRound, fills })}`)
} finally {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM')
  rmSync(dir, { recursive: true, force: true })
}
