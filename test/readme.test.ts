import t from 'tap'
import { readFileSync, existsSync } from 'node:fs'
import { configReference } from '../src/config/reference.ts'
import { errorReference } from '../src/errors-help.ts'

const doc = (name: string) => readFileSync(new URL(`../${name}`, import.meta.url), 'utf8')

// The reference tables in docs/ are generated from the code; this keeps them in step.
for (const [name, file, make] of [
  ['config-reference', 'docs/configuration.md', configReference],
  ['error-reference', 'docs/errors.md', errorReference],
] as const) {
  t.test(`${file} carries the ${name} generated from the code`, async t => {
    const m = new RegExp(`<!-- ${name}:start[^>]*-->\\n([\\s\\S]*?)<!-- ${name}:end -->`).exec(doc(file))
    t.ok(m, `${file} has the ${name} markers`)
    t.equal(m?.[1], make(), 'regenerate with: npm exec -- node scripts/update-readme.ts')
  })
}

t.test('every error code is documented', async t => {
  const errors = doc('docs/errors.md')
  for (const line of errorReference().split('\n').slice(2).filter(Boolean)) {
    const code = /`(LIVERY_ERR_[A-Z_]+)`/.exec(line)?.[1]
    t.ok(code !== undefined && errors.includes(code), `${code} is in docs/errors.md`)
  }
})

t.test('every relative link in README.md and docs/ points at a file in the repository', async t => {
  const files = ['README.md', ...['architecture', 'benchmarks', 'caching', 'configuration', 'deployment', 'errors',
    'operations', 'proxy', 'purging', 'rules', 'scaling', 'theming'].map(n => `docs/${n}.md`)]
  for (const file of files) {
    for (const [, target] of doc(file).matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)) {
      if (/^[a-z]+:/.test(target!)) continue
      const url = new URL(`../${file.includes('/') ? 'docs/' : ''}${target}`, import.meta.url)
      t.ok(existsSync(url), `${file} links to ${target}, which exists`)
    }
  }
})
