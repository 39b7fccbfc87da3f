// Issue 16: the Grafana dashboard and the Prometheus alert rules in deploy/
// query only metrics the gateway exports, and promtool accepts the rules and
// every dashboard expression (as recording rules, with Grafana's variables
// filled in).
import t from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { parse, stringify } from 'yaml'
import { parseConfig } from '../../src/config/load.ts'
import { Gateway } from '../../src/server/gateway.ts'
import { silentLogger } from '../../src/log.ts'
import { repoRoot } from '../helpers/livery-process.ts'

const deploy = join(repoRoot, 'deploy')
const rulesFile = join(deploy, 'prometheus', 'livery-alerts.yaml')

interface Panel { title?: string, targets?: { expr: string }[], panels?: Panel[] }
const dashboard = JSON.parse(readFileSync(join(deploy, 'grafana', 'livery.json'), 'utf8')) as { panels: Panel[], templating: { list: { query?: unknown, definition?: string }[] } }
const dashboardExprs = dashboard.panels.flatMap(p => [p, ...(p.panels ?? [])]).flatMap(p => (p.targets ?? []).map(target => ({ panel: p.title ?? '', expr: target.expr })))
const alertRules = (parse(readFileSync(rulesFile, 'utf8')) as { groups: { rules: { alert: string, expr: string }[] }[] }).groups.flatMap(g => g.rules)

/** Grafana's variables as Prometheus would see them once Grafana substituted them. */
const promql = (expr: string): string => expr.replaceAll('$__rate_interval', '5m').replaceAll('$site', '.*')

/** Metric names in a PromQL expression: identifiers that are not functions, keywords, label names or durations. */
function metricNames (expr: string): string[] {
  const withoutStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/\{[^}]*\}/g, '{}').replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '')
  return [...withoutStrings.matchAll(/\b([a-z_][a-z0-9_]*)\b(?!\s*\()/g)].map(m => m[1])
    .filter(name => !['and', 'or', 'unless', 'offset', 'bool', 'le'].includes(name) && /_/.test(name))
}

t.test('every metric the dashboard and the alert rules query is exported', async t => {
  const dir = t.testdir({ 'rules.xml': '<rules xmlns="http://namespaces.plone.org/diazo"><theme href="theme.html"/></rules>' })
  // A themed site and Redis configured, so every conditional gauge is registered as in production.
  const config = parseConfig({ cache: { directory: dir }, sites: [{ name: 'www', upstream: 'http://127.0.0.1:9', theme: { rules: './rules.xml' } }] }, {}, dir)
  const gateway = new Gateway(config, { logger: silentLogger, redisHealth: { check: () => 'up', describe: () => ({ state: 'up', since: '', url: 'redis://127.0.0.1:6379' }) } })
  t.teardown(() => gateway.destroy())
  const exported = new Set((await gateway.metrics.registry.getMetricsAsJSON()).map(m => m.name))
  const known = (name: string): boolean => exported.has(name) || exported.has(name.replace(/_(bucket|sum|count)$/, ''))

  const queried = [...dashboardExprs.map(e => ({ where: `dashboard panel "${e.panel}"`, expr: e.expr })), ...alertRules.map(r => ({ where: `alert ${r.alert}`, expr: r.expr }))]
  t.ok(dashboardExprs.length >= 20, `the dashboard has its panels (${dashboardExprs.length} queries)`)
  const missing = queried.flatMap(q => metricNames(promql(q.expr)).filter(n => !known(n)).map(n => `${n} (${q.where})`))
  t.same(missing, [], 'no query names a metric the gateway does not export')
  for (const name of ['livery_http_requests_total', 'livery_fetch_circuit_open', 'livery_theme_available', 'livery_requests_shed_total', 'livery_redis_up', 'livery_queue_wait_seconds']) {
    t.ok(queried.some(q => metricNames(promql(q.expr)).some(n => n.startsWith(name))), `${name} is watched`)
  }
  for (const alert of ['LiveryHigh5xxRate', 'LiveryFetchCircuitOpen', 'LiveryThemeUnavailable', 'LiveryShedding', 'LiveryHitRatioDrop', 'LiveryRedisDown']) {
    t.ok(alertRules.some(r => r.alert === alert), `alert ${alert}`)
  }
})

t.test('promtool accepts the alert rules and every dashboard expression', async t => {
  const rules = spawnSync('promtool', ['check', 'rules', rulesFile], { encoding: 'utf8' })
  t.equal(rules.error, undefined, 'promtool is installed (.ci/run installs Debian\'s prometheus package)')
  t.equal(rules.status, 0, `promtool check rules: ${rules.stdout}${rules.stderr}`)
  const recording = join(t.testdir({}), 'dashboard-rules.yaml')
  writeFileSync(recording, stringify({ groups: [{ name: 'dashboard', rules: dashboardExprs.map((e, i) => ({ record: `livery:dashboard_${i}`, expr: promql(e.expr) })) }] }))
  const panels = spawnSync('promtool', ['check', 'rules', recording], { encoding: 'utf8' })
  t.equal(panels.status, 0, `dashboard expressions: ${panels.stdout}${panels.stderr}`)
})
