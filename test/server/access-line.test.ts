// Issue 15, item 5: the templated access line is byte for byte what pino would write for the same fields.
import t from 'tap'
import { Writable } from 'node:stream'
import { createLogger } from '../../src/log.ts'
import { accessLineWriter, type AccessValue } from '../../src/server/access-line.ts'

function sink (): { stream: Writable, lines: string[] } {
  const lines: string[] = []
  return { lines, stream: new Writable({ write (chunk: Buffer, _e, cb) { lines.push(...chunk.toString().split('\n').filter(Boolean)); cb() } }) }
}

const fields: Array<readonly [string, AccessValue]> = [
  ['type', 'access'], ['method', 'GET'], ['host', 'www.example.org'], ['path', '/news/ü "quoted"\\'], ['query', undefined],
  ['status', 200], ['bytes', 61440], ['duration', 0.125], ['cache', 'HIT'], ['userAgent', 'Mozilla/5.0\u0001\n'],
  ['completed', true], ['error', undefined], ['odd', Number.NaN],
]

t.test('same JSON as logger.info, time aside', async t => {
  const ours = sink()
  const theirs = sink()
  const write = accessLineWriter(createLogger({ level: 'info', destination: ours.stream }), fields.map(([n]) => n))
  t.ok(write, 'a plain Livery logger gets the templated writer')
  write!(fields.map(([, v]) => v))
  createLogger({ level: 'info', destination: theirs.stream }).info(Object.fromEntries(fields.filter(([, v]) => v !== undefined)), 'request')
  const strip = (l: string): string => l.replace(/"time":\d+/, '"time":0')
  t.equal(strip(ours.lines[0]), strip(theirs.lines[0]))
  t.same(JSON.parse(ours.lines[0]).path, '/news/ü "quoted"\\', 'and it parses back')
  // The writer keeps each field's last JSON: a changed value must not reuse it, a repeated one must give the same line.
  const next = fields.map(([n, v]) => [n, n === 'path' ? '/other' : n === 'host' ? undefined : v] as const)
  write!(next.map(([, v]) => v))
  write!(fields.map(([, v]) => v))
  createLogger({ level: 'info', destination: theirs.stream }).info(Object.fromEntries(next.filter(([, v]) => v !== undefined)), 'request')
  t.equal(strip(ours.lines[1]), strip(theirs.lines[1]), 'a changed and a left-out value')
  t.equal(strip(ours.lines[2]), strip(ours.lines[0]), 'the first values again')
})

t.test('honours the level, and child bindings', async t => {
  const quiet = sink()
  accessLineWriter(createLogger({ level: 'warn', destination: quiet.stream }), fields.map(([n]) => n))!(fields.map(([, v]) => v))
  t.same(quiet.lines, [], 'nothing below the logger\'s level')
  const child = sink()
  const logger = createLogger({ level: 'info', destination: child.stream }).child({ worker: 3 })
  accessLineWriter(logger, ['type'])!(['access'])
  t.match(JSON.parse(child.lines[0]), { worker: 3, type: 'access', msg: 'request', level: 30 })
})
