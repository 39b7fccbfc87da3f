/**
 * The default resource loader: files (paths or file: URLs) from disk and
 * http(s) URLs with undici. The fetch-pool issue replaces it in the gateway.
 */
import { createHash } from 'node:crypto'
import { readFile, stat } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import { liveryError, wrapError } from '../errors.ts'

export interface LoadedResource { body: Buffer, contentType?: string, version: string }
/** Supplies theme pages, rule files and href subrequests. */
export type ResourceLoader = (url: string, signal?: AbortSignal) => Promise<LoadedResource>

export interface DefaultLoaderOptions {
  /** Per-fetch deadline in ms. @default 10000 */
  readonly timeout?: number
  /** Largest body accepted, in bytes. @default 20 MiB */
  readonly maxSize?: number
}

export function createDefaultLoader (opts: DefaultLoaderOptions = {}): ResourceLoader {
  const timeout = opts.timeout ?? 10_000
  const maxSize = opts.maxSize ?? 20 * 1024 * 1024
  return async function load (url, signal) {
    if (url.startsWith('file:') || !/^[a-z][a-z0-9+.-]*:/i.test(url)) {
      const path = url.startsWith('file:') ? fileURLToPath(url) : url
      try {
        const st = await stat(path)
        if (st.size > maxSize) throw liveryError('LIVERY_ERR_FETCH_TOO_LARGE', url, `${maxSize} bytes`)
        const body = await readFile(path, { signal })
        return { body, version: `${st.mtimeMs}-${st.size}` }
      } catch (err) {
        throw wrapError('LIVERY_ERR_FETCH', err, url, (err as Error).message)
      }
    }
    if (!/^https?:/i.test(url)) throw liveryError('LIVERY_ERR_FETCH', url, 'only file, http and https URLs can be loaded')
    const deadline = AbortSignal.timeout(timeout)
    const sig = signal === undefined ? deadline : AbortSignal.any([signal, deadline])
    let res
    try {
      res = await request(url, { signal: sig, headers: { 'accept-encoding': 'identity' } })
    } catch (err) {
      if (deadline.aborted) throw wrapError('LIVERY_ERR_FETCH_TIMEOUT', err, url, `no answer within ${timeout} ms`)
      throw wrapError('LIVERY_ERR_FETCH', err, url, (err as Error).message)
    }
    if (res.statusCode < 200 || res.statusCode > 299) {
      await res.body.dump()
      throw liveryError('LIVERY_ERR_FETCH_STATUS', url, res.statusCode)
    }
    const chunks: Buffer[] = []
    let size = 0
    try {
      for await (const chunk of res.body) {
        size += (chunk as Buffer).length
        if (size > maxSize) { res.body.destroy(); throw liveryError('LIVERY_ERR_FETCH_TOO_LARGE', url, `${maxSize} bytes`) }
        chunks.push(chunk as Buffer)
      }
    } catch (err) {
      if ((err as { code?: string }).code === 'LIVERY_ERR_FETCH_TOO_LARGE') throw err
      throw wrapError('LIVERY_ERR_FETCH', err, url, (err as Error).message)
    }
    const body = Buffer.concat(chunks)
    const header = (n: string): string | undefined => { const v = res.headers[n]; return Array.isArray(v) ? v[0] : v }
    const version = header('etag') ?? header('last-modified') ?? createHash('sha1').update(body).digest('hex')
    return { body, contentType: header('content-type'), version }
  }
}
