/**
 * `livery purge`: calls the purge API of a running gateway.
 *
 *     livery purge --url URL… | --tag TAG… | --prefix URL… | --site NAME | --all
 *                  [--soft] [--server URL] [--token TOKEN] [--admin-prefix /_livery]
 *
 * `--server` defaults to `LIVERY_URL`, then http://127.0.0.1:8080; `--token`
 * to `LIVERY_ADMIN_TOKEN`. Exit status: 0 purged, 1 the API (or the network)
 * failed — its message is printed —, 2 a usage error.
 */
import { parseArgs } from 'node:util'
import { Agent, request } from 'undici'

export interface PurgeCliIo {
  readonly stdout: NodeJS.WritableStream
  readonly stderr: NodeJS.WritableStream
  readonly env: NodeJS.ProcessEnv
}

export const purgeUsage = `usage: livery purge --url URL | --tag TAG | --prefix URL | --site NAME | --all [--soft]
                    [--server URL] [--token TOKEN] [--admin-prefix PATH]

  --url URL         purge this absolute URL (repeatable)
  --prefix URL      purge every URL starting with this (repeatable)
  --tag TAG         purge entries tagged by Surrogate-Key / Cache-Tag (repeatable)
  --site NAME       purge one site
  --all             purge everything
  --soft            mark stale (served while refreshing) instead of deleting
  --server URL      the gateway (default: $LIVERY_URL or http://127.0.0.1:8080)
  --token TOKEN     the admin token (default: $LIVERY_ADMIN_TOKEN)
  --admin-prefix P  the admin path prefix (default: /_livery)
`

const options = {
  url: { type: 'string', multiple: true },
  prefix: { type: 'string', multiple: true },
  tag: { type: 'string', multiple: true },
  site: { type: 'string' },
  all: { type: 'boolean' },
  soft: { type: 'boolean' },
  server: { type: 'string' },
  token: { type: 'string' },
  'admin-prefix': { type: 'string' },
  timeout: { type: 'string' },
  help: { type: 'boolean', short: 'h' }
} as const

/** Runs `livery purge` with the arguments after `purge`; resolves the exit status. */
export async function runPurgeCommand (argv: readonly string[], io: PurgeCliIo): Promise<number> {
  const usageError = (msg: string): number => {
    io.stderr.write(`livery purge: ${msg}\n\n${purgeUsage}`)
    return 2
  }
  let values: ReturnType<typeof parse>['values']
  try {
    values = parse(argv).values
  } catch (err) {
    return usageError(err instanceof Error ? err.message : String(err))
  }
  if (values.help === true) { io.stdout.write(purgeUsage); return 0 }
  const body = {
    urls: values.url ?? [],
    prefixes: values.prefix ?? [],
    tags: values.tag ?? [],
    site: values.site ?? '',
    all: values.all === true,
    soft: values.soft === true
  }
  if (!body.all && body.urls.length === 0 && body.prefixes.length === 0 && body.tags.length === 0 && body.site === '') {
    return usageError('say what to purge: --url, --prefix, --tag, --site or --all')
  }
  if (body.all && (body.urls.length > 0 || body.prefixes.length > 0 || body.tags.length > 0 || body.site !== '')) {
    return usageError('--all purges everything; do not combine it with --url, --prefix, --tag or --site')
  }
  const server = values.server ?? io.env.LIVERY_URL ?? 'http://127.0.0.1:8080'
  const token = values.token ?? io.env.LIVERY_ADMIN_TOKEN ?? ''
  if (token === '') return usageError('no admin token: pass --token or set LIVERY_ADMIN_TOKEN')
  const adminPrefix = values['admin-prefix'] ?? '/_livery'
  if (!adminPrefix.startsWith('/')) return usageError(`--admin-prefix must start with "/", got ${adminPrefix}`)
  let target: URL
  try {
    target = new URL(adminPrefix.replace(/\/$/, '') + '/purge', server)
    if (target.protocol !== 'http:' && target.protocol !== 'https:') throw new TypeError('not http(s)')
  } catch {
    return usageError(`--server must be an http(s) URL like http://127.0.0.1:8080, got ${server}`)
  }
  const timeout = values.timeout === undefined ? 30_000 : Number(values.timeout)
  if (!(timeout > 0)) return usageError(`--timeout must be a positive number of ms, got ${String(values.timeout)}`)

  const agent = new Agent({ connections: 1, headersTimeout: timeout, bodyTimeout: timeout, connectTimeout: Math.min(timeout, 10_000) })
  try {
    const res = await request(target, {
      method: 'POST',
      dispatcher: agent,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(timeout)
    })
    const text = await res.body.text()
    let answer: unknown
    try { answer = JSON.parse(text) } catch { answer = undefined }
    const a = (typeof answer === 'object' && answer !== null ? answer : {}) as Record<string, unknown>
    if (res.statusCode === 200 && typeof a.purged === 'number') {
      io.stdout.write(`${body.soft ? 'soft-purged' : 'purged'} ${a.purged} entr${a.purged === 1 ? 'y' : 'ies'}\n`)
      return 0
    }
    const message = typeof a.message === 'string' ? a.message : text.slice(0, 500)
    io.stderr.write(`livery purge: the server answered ${res.statusCode}: ${message}\n`)
    return 1
  } catch (err) {
    io.stderr.write(`livery purge: cannot reach ${target.origin}: ${err instanceof Error ? err.message : String(err)}\n`)
    return 1
  } finally {
    await agent.close()
  }
}

function parse (argv: readonly string[]) {
  return parseArgs({ args: [...argv], options, strict: true, allowPositionals: false })
}
