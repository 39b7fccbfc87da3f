// Config errors name the key, the bad value and what was expected (issue 2).
import t, { type Test } from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig, parseConfig } from '../../src/config/load.ts'
import { isLiveryError } from '../../src/errors.ts'

const site = { name: 'main', upstream: 'http://127.0.0.1:8081' }

/** The message of the error parseConfig throws (fails the test when it does not throw). */
function problem (t: Test, raw: unknown, env: NodeJS.ProcessEnv = {}): string {
  try {
    parseConfig(raw, env, '/tmp')
  } catch (err) {
    t.ok(isLiveryError(err) && err.code === 'LIVERY_ERR_CONFIG', 'a LIVERY_ERR_CONFIG error')
    return (err as Error).message
  }
  t.fail('the config was accepted')
  return ''
}

t.test('a valid config: defaults, units, frozen', async t => {
  const c = parseConfig({ sites: [{ ...site, timeouts: { connect: '250ms', firstByte: '1.5s' }, grace: '1d' }], cache: { memory: { maxSize: '256MB', maxEntrySize: '64KB' } } }, {}, '/base')
  t.equal(c.sites[0].timeouts.connect, 250)
  t.equal(c.sites[0].timeouts.firstByte, 1500)
  t.equal(c.sites[0].timeouts.betweenBytes, 60_000, 'Varnish default')
  t.equal(c.sites[0].grace, 86_400_000)
  t.equal(c.cache.memory.maxSize, 256 * 1024 * 1024)
  t.equal(c.cache.memory.maxEntrySize, 64 * 1024)
  t.equal(c.cache.directory, '/base/.livery-cache', 'paths resolve against the base directory')
  t.same(c.sites[0].hosts, ['*'])
  t.equal(c.sites[0].preserveHost, true)
  t.ok(Object.isFrozen(c) && Object.isFrozen(c.sites[0].timeouts), 'deep-frozen')
})

t.test('unknown keys are errors, with a suggestion', async t => {
  t.match(problem(t, { lisen: { port: 1 }, sites: [site] }), 'lisen: unknown key (did you mean "listen"?)')
  t.match(problem(t, { sites: [{ ...site, upstrem: 'http://x' }] }), 'sites[0].upstrem: unknown key (did you mean "upstream"?)')
  t.match(problem(t, { sites: [{ ...site, timeouts: { firstbyte: '1s' } }] }), 'sites[0].timeouts.firstbyte: unknown key (did you mean "firstByte"?)')
  t.match(problem(t, { sites: [site], zzzzzz: 1 }), /zzzzzz: unknown key$/m)
})

t.test('bad values name the key, the value and what was expected', async t => {
  t.match(problem(t, { sites: [{ ...site, upstream: 'htp://x' }] }), 'sites[0].upstream: "htp://x" is not an http(s) URL')
  t.match(problem(t, { sites: [{ ...site, upstream: 'not a url' }] }), 'sites[0].upstream: "not a url" is not an http(s) URL')
  t.match(problem(t, { sites: [{ ...site, timeouts: { connect: '5 seconds' } }] }), 'sites[0].timeouts.connect: "5 seconds" is not a duration with a unit, such as 250ms')
  t.match(problem(t, { sites: [{ ...site, timeouts: { connect: 5 } }] }), 'sites[0].timeouts.connect: 5 is not a duration')
  t.match(problem(t, { sites: [site], cache: { memory: { maxSize: 'lots' } } }), 'cache.memory.maxSize: "lots" is not a size, such as 512, 64KB, 256MB or 2GB')
  t.match(problem(t, { sites: [site], cache: { memory: { maxSize: '12XB' } } }), 'cache.memory.maxSize: "12XB" is not a size')
  t.match(problem(t, { sites: [site], listen: { port: 70000 } }), 'listen.port: 70000 is not at most 65535')
  t.match(problem(t, { sites: [site], log: { level: 'loud' } }), 'log.level: "loud" is not one of fatal, error, warn, info')
  t.match(problem(t, { sites: [{ ...site, hosts: ['exa mple.org'] }] }), 'sites[0].hosts[0]: "exa mple.org" is not a host name')
  t.match(problem(t, { sites: [site, { ...site }] }), 'sites[1].name: "main" is used by an earlier site')
})

t.test('missing sites and required keys', async t => {
  t.match(problem(t, {}), 'sites: needs at least 1 entry')
  t.match(problem(t, { sites: [] }), 'sites: needs at least 1 entry')
  t.match(problem(t, { sites: [{ name: 'x' }] }), 'sites[0].upstream: is required')
  t.match(problem(t, 'just a string'), 'not a mapping of keys')
})

t.test('every problem is reported at once', async t => {
  const msg = problem(t, { lisen: {}, sites: [{ ...site, upstream: 'htp://x', timeouts: { connect: 'soon' } }] })
  t.match(msg, 'lisen: unknown key')
  t.match(msg, 'sites[0].upstream:')
  t.match(msg, 'sites[0].timeouts.connect:')
})

t.test('LIVERY_* environment overrides', async t => {
  const c = parseConfig({ sites: [site] }, {
    LIVERY_POOL_MAX_CONCURRENT: '7',
    LIVERY_SITES_0_TIMEOUTS_FIRST_BYTE: '5s',
    LIVERY_SITES_0_HOSTS: 'a.test, *.b.test',
    LIVERY_METRICS_ENABLED: 'false',
    LIVERY_CACHE_MEMORY_MAX_SIZE: '64MB',
    LIVERY_CONFIG: '/ignored.yaml',
    PATH: '/usr/bin',
  }, '/tmp')
  t.equal(c.pool.maxConcurrent, 7)
  t.equal(c.sites[0].timeouts.firstByte, 5000)
  t.same(c.sites[0].hosts, ['a.test', '*.b.test'])
  t.equal(c.metrics.enabled, false)
  t.equal(c.cache.memory.maxSize, 64 * 1024 * 1024)
  t.match(problem(t, { sites: [site] }, { LIVERY_FOO: '1' }), 'LIVERY_FOO: not a configuration variable')
  t.match(problem(t, { sites: [site] }, { LIVERY_POOL_MAX_CONCURENT: '7' }), 'LIVERY_POOL_MAX_CONCURENT: not a configuration variable')
  t.match(problem(t, { sites: [site] }, { LIVERY_POOL_MAX_CONCURRENT: 'many' }), 'pool.maxConcurrent: "many" is not a whole number')
  const fromEnv = parseConfig({}, { LIVERY_SITES_0_NAME: 'env', LIVERY_SITES_0_UPSTREAM: 'http://127.0.0.1:9' }, '/tmp')
  t.equal(fromEnv.sites[0].upstream, 'http://127.0.0.1:9', 'a whole site from the environment')
})

// Issue 16: a Service named livery made every pod exit 2 on these.
t.test('Kubernetes service-link variables are not configuration', async t => {
  const links = {
    LIVERY_SERVICE_HOST: '10.96.12.7',
    LIVERY_SERVICE_PORT: '80',
    LIVERY_SERVICE_PORT_HTTP: '80',
    LIVERY_PORT: 'tcp://10.96.12.7:80',
    LIVERY_PORT_80_TCP: 'tcp://10.96.12.7:80',
    LIVERY_PORT_80_TCP_PROTO: 'tcp',
    LIVERY_PORT_80_TCP_PORT: '80',
    LIVERY_PORT_80_TCP_ADDR: '10.96.12.7',
    // A Service named livery-admin: the name collides with admin.port, the value does not.
    LIVERY_ADMIN_PORT: 'tcp://10.96.12.8:9090',
    LIVERY_ADMIN_SERVICE_HOST: 'fd00::12',
    LIVERY_ADMIN_PORT_9090_UDP_ADDR: 'fd00::12',
  }
  const c = parseConfig({ sites: [site] }, { ...links, LIVERY_POOL_MAX_CONCURRENT: '9' }, '/tmp')
  t.equal(c.admin.port, 0, 'the link did not set admin.port')
  t.equal(c.pool.maxConcurrent, 9, 'real overrides still apply beside them')
  // Typos that look like links by name but not by value are still refused.
  t.match(problem(t, { sites: [site] }, { LIVERY_PORT: '8080' }), 'LIVERY_PORT: not a configuration variable')
  t.match(problem(t, { sites: [site] }, { LIVERY_SERVICE_HOST: 'gateway.local' }), 'LIVERY_SERVICE_HOST: not a configuration variable')
  t.match(problem(t, { sites: [site] }, { LIVERY_LISTEN_PROT: '80' }), 'LIVERY_LISTEN_PROT: not a configuration variable')
  t.match(problem(t, { sites: [site] }, { LIVERY_SERVICE_PORTS: '80' }), 'LIVERY_SERVICE_PORTS: not a configuration variable')
})

t.test('YAML files', async t => {
  const dir = t.testdir({
    'good.yaml': 'sites:\n  - name: main\n    upstream: http://127.0.0.1:8081\n',
    'broken.yaml': 'sites:\n  - name: main\n    upstream: [unclosed\n',
    'dup.yaml': 'listen: {port: 1}\nlisten: {port: 2}\nsites: [{name: a, upstream: "http://x"}]\n',
  })
  const good = loadConfig({ file: join(dir, 'good.yaml'), env: {} })
  t.equal(good.sites[0].name, 'main')
  t.equal(good.cache.directory, join(dir, '.livery-cache'), 'relative paths resolve against the file\'s folder')
  const fileError = (file: string): string => {
    try {
      loadConfig({ file, env: {} })
    } catch (err) {
      t.ok(isLiveryError(err) && err.code === 'LIVERY_ERR_CONFIG_FILE', 'LIVERY_ERR_CONFIG_FILE')
      return (err as Error).message
    }
    t.fail('loaded')
    return ''
  }
  const broken = fileError(join(dir, 'broken.yaml'))
  t.match(broken, 'broken.yaml')
  t.match(broken, 'not valid YAML')
  t.match(broken, /line \d+/, 'the YAML error says where')
  t.match(fileError(join(dir, 'dup.yaml')), 'not valid YAML')
  t.match(fileError(join(dir, 'missing.yaml')), /missing\.yaml: ENOENT/)
  writeFileSync(join(dir, 'env.yaml'), 'sites: [{name: a, upstream: "http://x"}]\n')
  t.equal(loadConfig({ file: join(dir, 'env.yaml'), env: { LIVERY_POOL_MAX_QUEUE: '3' } }).pool.maxQueue, 3)
})
