// Issue 15: Cache-Control values are parsed once per distinct text (every pass and miss parsed its
// response's anew). The cached result must be the parse of that text, whatever was parsed before.
import t from 'tap'
import { CONFLICT, deltaSeconds, parseCacheControl } from '../../src/cache/cache-control.ts'

t.test('a repeated value is parsed once; each text keeps its own directives', async t => {
  const a = parseCacheControl('max-age=60, no-cache="set-cookie"')
  t.equal(parseCacheControl('max-age=60, no-cache="set-cookie"'), a, 'the same text answers the same parse')
  t.equal(parseCacheControl(['max-age=60', ' no-cache="set-cookie"']), a, 'so do its lines, joined')
  t.equal(deltaSeconds(a, 'max-age'), 60)
  t.equal(a.get('no-cache'), 'set-cookie')
  t.ok(a.quoted.has('no-cache'))
  const b = parseCacheControl('max-age=60, max-age=120')
  t.equal(b.get('max-age'), CONFLICT, 'conflicting duplicates are still a conflict')
  t.equal(parseCacheControl('max-age=60, max-age=120').get('max-age'), CONFLICT, 'also from the cache')
  t.equal(parseCacheControl('No-Store').has('no-store'), true)
})

t.test('the cache stays bounded and long values are not kept', async t => {
  for (let i = 0; i < 1000; i++) t.equal(deltaSeconds(parseCacheControl(`max-age=${i}`), 'max-age'), i)
  const long = 'private, ' + 'x'.repeat(1000)
  t.not(parseCacheControl(long), parseCacheControl(long), 'a value longer than 256 characters is parsed each time')
  t.equal(parseCacheControl(long).has('private'), true)
})
