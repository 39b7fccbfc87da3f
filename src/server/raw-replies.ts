/**
 * Answers written straight to a socket, for requests that never become an
 * IncomingMessage/ServerResponse pair: what Node's parser refused, CONNECT,
 * and upgrades nobody takes. Each closes the connection, as nginx does.
 */
import { liveryError, type LiveryError } from '../errors.ts'

/** What a 405 names: the methods a site's resources can be asked for (every other token is forwarded too). */
export const allowedMethods = 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS'

/**
 * The reply to a request Node's parser refused, or undefined when the socket
 * is gone and there is no one to tell (a reset, a closed peer).
 */
export function clientErrorReply (err: NodeJS.ErrnoException, writable: boolean): { status: number, text: string } | undefined {
  if (err.code === 'ECONNRESET' || !writable) return undefined
  const [status, reason] = err.code === 'HPE_HEADER_OVERFLOW'
    ? (requestLineOverflowed(err) ? [414, 'URI Too Long'] : [431, 'Request Header Fields Too Large'])
    : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'Request Timeout'] : [400, 'Bad Request']
  const body = `${status} ${reason}\n`
  return { status, text: `HTTP/1.1 ${status} ${reason}\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n\r\n${body}` }
}

/** CONNECT asks for a tunnel, which a reverse proxy does not open (Node would otherwise drop the socket unanswered). */
export function connectRefusal (): { error: LiveryError, text: string } {
  const error = liveryError('LIVERY_ERR_METHOD_NOT_ALLOWED', 'CONNECT')
  const body = `405 Method Not Allowed\n${error.message}\n`
  return {
    error,
    text: `HTTP/1.1 405 Method Not Allowed\r\nallow: ${allowedMethods}\r\nconnection: close\r\ncache-control: no-store\r\nx-livery-error: ${error.code}\r\n` +
      `content-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  }
}

/** An Upgrade no site takes (not a WebSocket, no site, or shutting down). */
export const upgradeRefusal = 'HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n'

/**
 * True when Node's header limit was hit inside the request line (a long
 * URL, 414) rather than in the header fields (431). Node only hands over
 * the chunk it was parsing; when that chunk holds the start of the request
 * (a new connection, or the request after a blank line), the request line
 * overflowed if no line ended before the point of the error. A request line
 * trickled in over many small chunks cannot be told apart and stays 431.
 */
function requestLineOverflowed (err: NodeJS.ErrnoException): boolean {
  const e = err as NodeJS.ErrnoException & { rawPacket?: unknown, bytesParsed?: unknown }
  if (!Buffer.isBuffer(e.rawPacket)) return false
  const data = e.rawPacket
  const at = typeof e.bytesParsed === 'number' ? Math.min(e.bytesParsed, data.length) : data.length
  // A blank line ending before the error starts the request that overflowed (one ending at it is that request's own end).
  const blank = at < 4 ? -1 : data.lastIndexOf('\r\n\r\n', at - 4)
  const start = blank === -1 ? 0 : blank + 4
  if (blank === -1 && !requestLineStart.test(data.subarray(0, 24).toString('latin1'))) return false
  const nl = data.indexOf(10, start)
  return nl === -1 || nl >= at
}

const requestLineStart = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+ /
