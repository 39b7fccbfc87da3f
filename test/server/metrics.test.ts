// Issue 16: the metrics an operator needs (response bytes, upstream latency
// by site, cached objects by tier, purges by kind, build info, open
// connections, shed requests in the queue-wait histogram), all clean under
// `promtool check metrics`.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { request } from 'undici'
import { startGateway, startUpstream } from '../helpers/servers.ts'

const token = 'metrics-test-token'

/** The value of one sample line (`name{labels} value`), or undefined. */
function sample (text: string, series: string): number | undefined {
  const line = text.split('\n').find(l => l.startsWith(series + ' '))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

t.test('operator metrics, and promtool finds nothing to lint', async t => {
  let hold: (() => void) | undefined
  let held = (): void => {}
  const arrived = new Promise<void>(resolve => { held = resolve })
  const up = await startUpstream(t, (req, res) => {
    const send = (): void => { res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60' }).end('hello\n') }
    if (req.url === '/held') { hold = send; held() } else send()
  })
  const { url, agent } = await startGateway(t, {
    upstream: up.url,
    site: { pool: { maxConcurrent: 1, maxQueue: 0 } },
    raw: { admin: { token } },
  })

  t.equal(await (await request(`${url}/page`, { dispatcher: agent })).body.text(), 'hello\n')
  // One request holds the site's only slot; the next is shed at once (maxQueue 0).
  const holding = request(`${url}/held`, { dispatcher: agent })
  await arrived
  const shed = await request(`${url}/other`, { dispatcher: agent })
  t.equal(shed.statusCode, 503)
  await shed.body.dump()
  hold?.()
  await (await holding).body.dump()
  const purge = await request(`${url}/_livery/purge`, {
    method: 'POST', dispatcher: agent,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ tags: ['news'] }),
  })
  t.equal(purge.statusCode, 200)
  await purge.body.dump()

  const text = await (await request(`${url}/_livery/metrics`, { dispatcher: agent })).body.text()
  t.ok((sample(text, 'livery_http_response_bytes_total{site="test"}') ?? 0) >= 12, 'response bytes by site')
  t.ok((sample(text, 'livery_upstream_response_seconds_count{site="test"}') ?? 0) >= 2, 'upstream latency by site')
  t.equal(sample(text, 'livery_cache_objects{tier="memory"}'), 2, 'cached objects by tier')
  t.equal(sample(text, 'livery_cache_unreclaimed_bytes{tier="memory"}'), 0, 'nothing evicted, nothing waiting for the collector')
  t.equal(sample(text, 'livery_purges_total{kind="tag",mode="hard"}'), 1, 'purges by kind')
  t.equal(sample(text, `livery_build_info{version="0.1.0",node="${process.versions.node}"}`), 1, 'build info')
  t.ok((sample(text, 'livery_http_connections_open') ?? 0) >= 1, 'open client connections')
  t.equal(sample(text, 'livery_queue_wait_seconds_count{site="test",outcome="shed"}'), 1, 'the shed request is in the queue-wait histogram')
  t.equal(sample(text, 'livery_queue_wait_seconds_count{site="test",outcome="admitted"}'), 2)
  t.ok(sample(text, 'livery_event_loop_active_seconds_total') !== undefined)

  const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' })
  t.equal(check.error, undefined, 'promtool is installed (.ci/run installs Debian\'s prometheus package)')
  t.equal(check.status, 0, `promtool check metrics: ${check.stdout}${check.stderr}`)
  t.equal(check.stdout + check.stderr, '', 'no lint findings')
})
