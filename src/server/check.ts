/**
 * `livery check`: after the config validated, fetch every site's theme
 * through a fetch pool of its own and compile its rules, reporting each
 * problem. Exit 0 when all is well, 1 when any theme has a problem, 2 when
 * a rules file does not compile (a configuration error, as `livery`'s exit
 * codes define it: the operator must fix a file, not wait for a server).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Config } from '../config/types.ts'
import { FetchPool } from '../fetcher/index.ts'
import { silentLogger } from '../log.ts'
import { hasCode } from '../errors.ts'
import { SiteThemer } from './site-themer.ts'
import { Writable } from 'node:stream'

export async function checkThemes (config: Config, io: { stdout: NodeJS.WritableStream, stderr: NodeJS.WritableStream }): Promise<number> {
  io.stdout.write(`configuration OK: ${config.sites.length} site(s): ${config.sites.map(s => s.name).join(', ')}\n`)
  const themed = config.sites.filter(s => s.theme !== undefined)
  if (themed.length === 0) return 0
  // A scratch directory: a check must not write into a running gateway's cache.
  const dir = await mkdtemp(join(tmpdir(), 'livery-check-'))
  const pool = new FetchPool(config.fetch, { directory: dir, logger: silentLogger })
  let problems = 0
  let badRules = false
  try {
    await pool.open()
    for (const site of themed) {
      const themer = new SiteThemer({ site, fetch: config.fetch, fetchPool: pool, logger: silentLogger })
      try {
        await themer.load()
        const { themes } = themer.engine.describe()
        for (const t of themes) {
          if (t.available) io.stdout.write(`site ${site.name}: theme ${t.href} OK\n`)
          else {
            problems++
            const outcome = await pool.get(t.href).then(() => 'no error reported', (err: Error) => err.message)
            io.stderr.write(`site ${site.name}: theme ${t.href} cannot be fetched: ${outcome}\n`)
          }
        }
        io.stdout.write(`site ${site.name}: rules ${site.theme!.rules} compiled\n`)
      } catch (err) {
        problems++
        if (hasCode(err, 'LIVERY_ERR_RULES') || hasCode(err, 'LIVERY_ERR_SELECTOR')) badRules = true
        io.stderr.write(`site ${site.name}: ${(err as Error).message}\n`)
      } finally {
        await themer.close()
      }
    }
  } finally {
    await pool.close()
    await rm(dir, { recursive: true, force: true })
  }
  io.stdout.write(problems === 0 ? 'all themes OK\n' : `${problems} problem(s)\n`)
  return badRules ? 2 : problems === 0 ? 0 : 1
}

/**
 * The periodic theme check (the worker tier's `theme-check` job, see src/worker/tier.ts): the same
 * check as `livery check`, its problem lines collected instead of printed.
 */
export async function runThemeCheck (config: Config): Promise<{ ok: boolean, at: number, problems: string[] }> {
  const problems: string[] = []
  const stdout = new Writable({ write (_chunk, _enc, cb) { cb() } })
  const stderr = new Writable({
    write (chunk: Buffer, _enc, cb) {
      problems.push(...chunk.toString('utf8').split('\n').filter(l => l !== ''))
      cb()
    },
  })
  const code = await checkThemes(config, { stdout, stderr })
  return { ok: code === 0, at: Date.now(), problems }
}
