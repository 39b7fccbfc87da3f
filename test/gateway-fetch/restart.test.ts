// Issue 4 acceptance: a gateway restarted while the theme server is down
// themes its pages from the fetch pool's persisted copy.
import t from 'tap'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { startContent, startGateway, startThemeServer, tempDir, themeOf, themedConfig, untilStale, writeRules } from './fixture.ts'

t.test('restart with the theme server stopped: pages themed from the persisted copy', async t => {
  const theme = await startThemeServer(t, 'ok', 'persisted')
  const content = await startContent(t)
  const dir = tempDir(t)
  const config = themedConfig(dir, [{ name: 'restart', upstream: content.url, rules: writeRules(dir), base: `${theme.origin}/` }])
  const href = `${theme.origin}/theme.html`

  const first = await startGateway(t, config)
  t.equal(themeOf((await first.get('/before')).body), 'persisted', 'themed before the restart')
  // Let the copy go stale, so the restarted gateway cannot count it as fresh and must fall back on it.
  await untilStale(first.gateway, href)
  await first.close()
  t.ok(readdirSync(join(dir, 'fetch')).length > 0, 'the copy was persisted under <cache.directory>/fetch')
  await theme.close()

  const second = await startGateway(t, config)
  t.ok(second.gateway.fetchPool.peek(href) !== undefined, 'the restarted gateway read the copy back')
  for (const path of ['/after/1', '/after/2']) {
    const r = await second.get(path)
    t.equal(r.status, 200, `${path}: 200`)
    t.equal(themeOf(r.body), 'persisted', `${path}: themed with the persisted copy`)
    t.equal(r.headers['x-livery-theme'], undefined, `${path}: not marked unavailable`)
    t.match(r.body, `PAGE ${path}`, `${path}: with its own content`)
  }
  t.equal(second.gateway.themers.get('restart')?.engine.describe().themes[0]?.available, true, 'the theme is compiled')
})
