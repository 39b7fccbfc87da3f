// Issue 16: the image and the compose file start. No Docker engine runs on
// these machines, so the test does what the image does: it reads the
// Dockerfile, checks the directories it prepares, and runs the compose
// services' commands through the image's ENTRYPOINT as an unprivileged user
// against the shipped deploy/livery.yaml. Only what Docker's DNS would
// provide is remapped (service names → loopback ports), by LIVERY_* variables
// and --port/--host, as an operator would.
import t from 'tap'
import { chownSync, existsSync, mkdirSync, readFileSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { parse } from 'yaml'
import { loadConfig } from '../../src/config/load.ts'
import { LiveryProcess, repoRoot } from '../helpers/livery-process.ts'
import { sharedRedisUrl, uniquePrefix } from '../helpers/redis.ts'

const deploy = join(repoRoot, 'deploy')
const dockerfile = readFileSync(join(deploy, 'Dockerfile'), 'utf8').split('\n').filter(l => !l.startsWith('#') && l.trim() !== '')
const instruction = (name: string): string[] => dockerfile.filter(l => l.startsWith(name + ' ')).map(l => l.slice(name.length + 1).trim())
const jsonArray = (name: string): string[] => JSON.parse(instruction(name).at(-1) ?? '[]') as string[]

const entrypoint = jsonArray('ENTRYPOINT')
// ["node", ...flags, script]: the flags are whatever the image passes (--expose-gc, --max-semi-space-size, ...).
const nodeFlags = entrypoint.slice(1, -1)
const script = entrypoint.at(-1)
const cmd = jsonArray('CMD')
const workdir = instruction('WORKDIR').at(-1) ?? '/'
const user = instruction('USER').at(-1) ?? 'root'
const shipped = loadConfig({ file: join(deploy, 'livery.yaml'), env: {} })

/** An image path (under WORKDIR) as a path in this checkout. */
const inRepo = (path: string): string => path.startsWith(workdir + '/') ? join(repoRoot, path.slice(workdir.length + 1)) : path

t.test('the image prepares what the shipped configuration needs', async t => {
  t.equal(user, 'node', 'runs unprivileged')
  const userAt = dockerfile.findIndex(l => l.startsWith('USER '))
  const prepared = dockerfile.slice(0, userAt).filter(l => l.startsWith('RUN ')).join('\n')
  t.match(prepared, new RegExp(`mkdir -p [^&]*${shipped.cache.directory}`), `creates ${shipped.cache.directory} before USER`)
  t.match(prepared, new RegExp(`chown ${user}:${user} [^&]*${shipped.cache.directory}`), `and gives it to ${user}`)
  for (const copy of instruction('COPY')) {
    const [src] = copy.split(/\s+/)
    t.ok(existsSync(join(repoRoot, src)), `COPY ${src} exists in the build context`)
  }
  t.same(cmd, ['serve', '--config', '/etc/livery/livery.yaml'])
  t.ok(instruction('COPY').some(c => c.endsWith('/etc/livery/livery.yaml')), 'the image carries the shipped config at CMD\'s path')
  for (const site of shipped.sites) {
    if (site.theme !== undefined) t.ok(existsSync(inRepo(site.theme.rules)), `${site.theme.rules} is in the image`)
  }
})

t.test('compose: demo CMS, theme server and gateway start from the image and serve a themed page', async t => {
  const compose = parse(readFileSync(join(deploy, 'compose.yaml'), 'utf8')) as { services: Record<string, { image?: string, command?: string[], environment?: Record<string, string> }> }
  const services = compose.services
  for (const name of ['cms', 'theme', 'gateway', 'redis', 'lb']) t.ok(services[name], `service ${name}`)
  t.equal(services.gateway.image, services.cms.image, 'the demo backends run from the gateway image')

  // A backend's command with its port and host taken to the loopback.
  const backend = (name: string): LiveryProcess => {
    const command = (services[name].command ?? cmd).map((arg, i, all) => all[i - 1] === '--port' ? '0' : all[i - 1] === '--host' ? '127.0.0.1' : arg)
    return new LiveryProcess(command, { nodeArgs: nodeFlags, script, unprivileged: true, cwd: repoRoot })
  }
  const cms = backend('cms')
  const theme = backend('theme')
  t.teardown(async () => { await Promise.all([cms.stop(), theme.stop()]) })
  const [cmsPort, themePort] = await Promise.all([cms, theme].map(async p => (await p.waitForStderr(/listening on 127\.0\.0\.1:(\d+)/))[1]))

  // The cache directory as the image has it: created and owned by the image's user.
  const cacheDir = join(t.testdir({}), 'var-cache-livery')
  mkdirSync(cacheDir)
  if (process.getuid?.() === 0) chownSync(cacheDir, 65534, 65534)
  const prefix = uniquePrefix(t, 'compose')
  const env = {
    ...services.gateway.environment,
    LIVERY_LISTEN_HOST: '127.0.0.1',
    LIVERY_LISTEN_PORT: '0',
    LIVERY_CACHE_DIRECTORY: cacheDir,
    LIVERY_CACHE_REDIS_URL: sharedRedisUrl,
    LIVERY_CACHE_REDIS_PREFIX: prefix,
    LIVERY_SITES_0_UPSTREAM: shipped.sites[0].upstream.replace(/\/\/cms:\d+/, `//127.0.0.1:${cmsPort}`),
    LIVERY_SITES_0_THEME_RULES: inRepo(shipped.sites[0].theme?.rules ?? ''),
    LIVERY_SITES_0_THEME_BASE: (shipped.sites[0].theme?.base ?? '').replace(/\/\/theme:\d+/, `//127.0.0.1:${themePort}`),
  }
  const command = cmd.map(arg => arg === '/etc/livery/livery.yaml' ? join(deploy, 'livery.yaml') : arg)
  const gateway = new LiveryProcess(command, { nodeArgs: nodeFlags, script, unprivileged: true, cwd: repoRoot, env })
  t.teardown(async () => { await gateway.stop() })
  const listening = await gateway.waitForLine(l => l.msg === 'livery is listening', 'the gateway listening')
  const res = await fetch(`http://127.0.0.1:${String(listening.port)}/news`)
  const body = await res.text()
  t.equal(res.status, 200)
  t.match(body, 'class="livery-theme"', 'wrapped in the demo theme')
  t.match(body, 'A cache that serves stale rather than broken', 'with the CMS content')
  t.equal(await gateway.stop(), 0, 'drains and exits 0 on SIGTERM')
  t.notMatch(gateway.stderr, /EACCES|\n\s+at /, 'no permission error, no stack trace')
})

t.test('nginx in compose re-resolves the gateway replicas and its configuration is valid', async t => {
  const conf = readFileSync(join(deploy, 'nginx.conf'), 'utf8')
  t.match(conf, /resolver 127\.0\.0\.11/, 'Docker\'s DNS')
  t.match(conf, /set \$gateway http:\/\/gateway:8080;/, 'the name in a variable, resolved per request')
  t.match(conf, /proxy_pass \$gateway;/)
  t.notMatch(conf, /upstream\s+\w+\s*\{[^}]*server gateway/, 'no upstream block resolved once at start')
  // nginx -t with the file where the image puts it (conf.d, inside http {}).
  const dir = t.testdir({ 'nginx.conf': `pid nginx.pid;\nerror_log stderr;\nevents {}\nhttp {\n  access_log off;\n  include ${join(deploy, 'nginx.conf')};\n}\n` })
  const check = spawnSync('nginx', ['-t', '-q', '-p', dir, '-e', 'stderr', '-c', join(dir, 'nginx.conf')], { encoding: 'utf8' })
  t.equal(check.error, undefined, 'nginx is installed (.ci/run installs nginx-light)')
  t.equal(check.status, 0, `nginx -t accepts it: ${check.stderr}`)
})

t.test('the systemd unit reloads with SIGHUP and outlasts the drain', async t => {
  const unit = readFileSync(join(deploy, 'livery.service'), 'utf8')
  const key = (name: string): string => new RegExp(`^${name}=(.*)$`, 'm').exec(unit)?.[1] ?? ''
  t.equal(key('ExecReload'), '/bin/kill -HUP $MAINPID', 'systemctl reload sends SIGHUP')
  t.match(key('ExecStart'), / serve --config \/etc\/livery\/livery\.yaml$/)
  t.ok(Number.parseInt(key('TimeoutStopSec'), 10) * 1000 > shipped.shutdownTimeout, 'the stop timeout outlasts shutdownTimeout')
  t.equal(key('RestartPreventExitStatus'), '2', 'a configuration error is not restarted in a loop')
  t.equal(`/var/cache/${key('CacheDirectory')}`, shipped.cache.directory, 'systemd creates the configured cache directory')
})
