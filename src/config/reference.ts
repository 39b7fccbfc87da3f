/**
 * The configuration reference as a Markdown table, generated from the schema
 * so docs/configuration.md cannot drift from the code (a test compares them;
 * `node scripts/config-reference.ts` prints it).
 */
import type { Node } from './schema.ts'
import { schema } from './schema.ts'
import { envName } from './env.ts'

function defaultText (v: unknown): string {
  if (v === undefined) return '—'
  if (Array.isArray(v)) return v.length === 0 ? '`[]`' : '`' + v.map(x => JSON.stringify(x)).join(', ') + '`'
  if (v === '') return '`""`'
  return '`' + String(v) + '`'
}

function rows (node: Node, path: (string | number)[], out: string[]): void {
  if (node.t === 'object') {
    for (const [k, child] of Object.entries(node.fields)) rows(child, [...path, k], out)
    return
  }
  if (node.t === 'array') {
    rows(node.of, [...path, 0], out)
    return
  }
  const key = path.map(p => typeof p === 'number' ? '[]' : p).join('.').replace(/\.\[\]/g, '[]')
  const env = envName(path).replace(/_0_/, '_<i>_')
  const type = node.t === 'enum' ? node.values!.join(' \\| ') : node.t
  out.push(`| \`${key}\` | ${type} | ${node.optional === true || node.default === undefined ? (node.default === undefined ? 'required' : defaultText(node.default)) : defaultText(node.default)} | \`${env}\` | ${node.doc.replace(/\|/g, '\\|')} |`)
}

export function configReference (): string {
  const out = ['| key | type | default | environment | meaning |', '| --- | --- | --- | --- | --- |']
  rows(schema, [], out)
  return out.join('\n') + '\n'
}
