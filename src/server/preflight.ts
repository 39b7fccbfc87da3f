/**
 * Start-up failures an operator fixes outside Livery (a port taken, a cache
 * directory the user cannot write), turned into one coded line instead of a
 * Node stack trace. The CLI exits 2 on these, as on a configuration error.
 */
import { mkdir, open, unlink } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { wrapError, type LiveryError } from '../errors.ts'

function reason (err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'EACCES':
    case 'EPERM':
      return `permission denied for ${userName()}: make it writable by that user, or set cache.directory (LIVERY_CACHE_DIRECTORY) to a directory it owns`
    case 'EROFS': return 'the file system is read-only: mount a writable volume there, or set cache.directory'
    case 'ENOTDIR':
    case 'EEXIST': return 'a part of the path is a file, not a directory'
    case 'ENOSPC': return 'no space left on the device'
    default: return err.message
  }
}

function userName (): string {
  const uid = process.getuid?.()
  return uid === undefined ? 'this user' : `uid ${uid}`
}

/** Creates the cache directory if missing and proves a file can be created in it. */
export async function checkCacheDirectory (directory: string): Promise<void> {
  const probe = join(directory, `.livery-write-test-${process.pid}`)
  try {
    await mkdir(directory, { recursive: true })
    const file = await open(probe, 'wx')
    await file.close()
    await unlink(probe)
  } catch (err) {
    throw wrapError('LIVERY_ERR_CACHE_DIRECTORY', err, directory, reason(err as NodeJS.ErrnoException))
  }
}

/** The coded form of a listen() failure. */
export function listenError (err: NodeJS.ErrnoException, host: string, port: number): LiveryError {
  const where = `${host.includes(':') ? `[${host}]` : host}:${port}`
  switch (err.code) {
    case 'EADDRINUSE':
      return wrapError('LIVERY_ERR_LISTEN', err, where, `the port is already in use (another Livery or server runs there: stop it, or set listen.port / --port)`)
    case 'EACCES':
      return wrapError('LIVERY_ERR_LISTEN', err, where, 'permission denied (ports below 1024 need privileges: use a higher port behind a load balancer)')
    case 'EADDRNOTAVAIL':
      return wrapError('LIVERY_ERR_LISTEN', err, where, `${host} is not an address of this machine (set listen.host / --host)`)
    default:
      return wrapError('LIVERY_ERR_LISTEN', err, where, err.message)
  }
}

/**
 * For the cluster primary, whose workers would otherwise each fail and be
 * restarted forever: binds and releases the port once before forking.
 */
export function checkPort (port: number, host: string): Promise<void> {
  if (port === 0) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', (err: NodeJS.ErrnoException) => reject(listenError(err, host, port)))
    server.listen(port, host, () => server.close(() => resolve()))
  })
}
