/**
 * Interim (1xx) responses from the upstream (RFC 9110 §15.2: a client MUST
 * be able to parse 1xx responses it did not ask for).
 *
 * undici hands 1xx responses other than 100 to `onInfo` (103 Early Hints is
 * forwarded from there), but it treats a `100 Continue` it did not ask for
 * (it never sends `Expect: 100-continue`) as a broken connection: the
 * request failed as a connect error. Some origins (PHP behind some FastCGI
 * set-ups, Java servlet containers) send one anyway. This connector wrapper
 * drops `100` interim responses from the byte stream before undici's
 * parser sees them, only where a response starts: after a request head was
 * written and before the first byte of a final response.
 */
import type { Socket } from 'node:net'
import type { buildConnector } from 'undici'

/** Longest interim head we hold back while looking for its end; beyond it the bytes pass as they are. */
const maxInterim = 16 * 1024
const requestLine = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+ \S+ HTTP\/1\.1\r\n/
const continueHead = /^HTTP\/1\.[01] 100(?: |\r\n)/
const prefixes = ['HTTP/1.1 100', 'HTTP/1.0 100']

export function skippingContinue (connect: buildConnector.connector): buildConnector.connector {
  return (options, callback) => {
    connect(options, (...args) => {
      const socket = args[1]
      if (socket != null) filterContinue(socket)
      callback(...args)
    })
  }
}

function filterContinue (socket: Socket): void {
  let atStart = false
  let held: Buffer | undefined
  const push = socket.push.bind(socket)
  const write = socket.write.bind(socket) as (chunk: unknown, encoding?: unknown, cb?: unknown) => boolean
  // Named parameters, not a rest array spread into write(): undici writes at
  // most (chunk, encoding), and Writable.write treats missing and undefined alike.
  socket.write = ((chunk: unknown, encoding?: unknown, cb?: unknown) => {
    if (typeof chunk === 'string' && requestLine.test(chunk)) atStart = true
    return write(chunk, encoding, cb)
  }) as Socket['write']
  socket.push = (chunk: unknown, encoding?: BufferEncoding): boolean => {
    if (chunk === null) {
      if (held !== undefined) { push(held); held = undefined }
      return push(null)
    }
    if (!atStart || !Buffer.isBuffer(chunk)) return push(chunk, encoding)
    let buf = held === undefined ? chunk : Buffer.concat([held, chunk])
    held = undefined
    for (;;) {
      const head = buf.toString('latin1', 0, Math.min(buf.length, 16))
      if (head.length < 13 && prefixes.some(p => p.startsWith(head) || head.startsWith(p))) {
        held = buf
        return true
      }
      if (!continueHead.test(head)) break
      const end = buf.indexOf('\r\n\r\n')
      if (end === -1) {
        if (buf.length > maxInterim) break
        held = buf
        return true
      }
      buf = buf.subarray(end + 4)
      if (buf.length === 0) return true
    }
    atStart = false
    return push(buf)
  }
}
