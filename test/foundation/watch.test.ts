// Issue 16: watch: true reloads (as on SIGHUP) when the configuration file
// or a rules file changes on disk, in every serving process.
import t from 'tap'
import { join } from 'node:path'
import { Agent } from 'node:http'
import { renameSync, writeFileSync } from 'node:fs'
import { LiveryProcess } from '../helpers/livery-process.ts'
import { backends, everyProcessListening, get, reloaded, rules, slowMachineFetch } from './reload-fixture.ts'

t.test('watch: true picks up a changed rules file without a signal, in every worker process', async t => {
  const up = await backends(t)
  const dir = t.testdir({ 'rules.xml': rules('one.html') })
  const file = join(dir, 'livery.yaml')
  // No processes key: one worker per core, each watching the files itself.
  writeFileSync(file, `listen: { host: 127.0.0.1, port: 0 }\nwatch: true\ncache: { directory: ./cache }\n${slowMachineFetch}sites:\n  - name: main\n    upstream: ${up.a}\n    theme: { rules: ./rules.xml, base: "${up.theme}/" }\n`)
  const gateway = new LiveryProcess(['serve', '--config', file])
  t.teardown(() => gateway.stop())
  const workers = await everyProcessListening(gateway)
  t.ok(workers.length >= 1, `${workers.length} serving processes`)
  for (const w of workers) t.match((await get(w.port, '/', new Agent())).body, /theme one/, `process ${w.pid} uses the first rules`)
  // As an editor saves: a new file renamed over the old one.
  writeFileSync(join(dir, 'rules.xml.tmp'), rules('two.html'))
  renameSync(join(dir, 'rules.xml.tmp'), join(dir, 'rules.xml'))
  // Each process reloads on its own watch: wait for every one (a single
  // "configuration reloaded" line may be another process's).
  await Promise.all(workers.map(w => gateway.waitForLine(l => reloaded(l) && l.pid === w.pid, `process ${w.pid} reloading`)))
  for (const w of workers) t.match((await get(w.port, '/', new Agent())).body, /theme two/, `the new rules apply in process ${w.pid}`)
})
