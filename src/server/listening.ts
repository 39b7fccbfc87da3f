/**
 * Opening and closing a listening socket: the errors an operator can act on,
 * and a close that lets in-flight requests on kept-alive connections finish.
 */
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { listenError } from './preflight.ts'

/** Listens, or rejects with LIVERY_ERR_LISTEN naming the address and what to do (port in use, no permission). */
export function listenOn (server: Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const fail = (err: NodeJS.ErrnoException): void => reject(listenError(err, host, port))
    server.once('error', fail)
    server.listen(port, host, () => {
      server.off('error', fail)
      resolve(server.address() as AddressInfo)
    })
  })
}

/**
 * Stops accepting connections; `done` runs once every open one has closed.
 * Node's server.close() also closes idle kept-alive connections at once, so a
 * client reusing one at that moment gets EOF or RST; those are kept until the
 * in-flight requests are done (then closed by the caller), and a request on
 * one meanwhile gets the documented 503 with Connection: close.
 */
export function stopAccepting (server: Server, done: () => void): void {
  const closeIdle = server.closeIdleConnections
  server.closeIdleConnections = () => {}
  try {
    server.close(done)
  } finally {
    server.closeIdleConnections = closeIdle
  }
}
