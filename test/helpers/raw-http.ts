/**
 * Raw HTTP/1.1 over `net` for what client libraries refuse to send (or
 * read): malformed request lines, smuggling attempts, odd methods.
 */
import { connect, type Socket } from 'node:net'

export interface RawResponse {
  /** Everything the server sent before it closed (or before `idle`). */
  readonly text: string
  /** Status code of the first response, or 0 when none came. */
  readonly status: number
  /** True when the server closed the connection (rather than the exchange ending on `untilResponse`). */
  readonly closed: boolean
}

export interface RawOptions {
  /**
   * Resolve as soon as one complete response (head + Content-Length body) is
   * in, without waiting for the server to close. @default false
   */
  readonly untilResponse?: boolean
}

/** Sends `bytes` to 127.0.0.1:`port` and collects the answer. */
export function rawRequest (port: number, bytes: string | Buffer, opts: RawOptions = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    let done = false
    const finish = (closed: boolean): void => {
      if (done) return
      done = true
      const text = Buffer.concat(chunks).toString('latin1')
      socket.destroy()
      resolve({ text, status: statusOf(text), closed })
    }
    socket.on('connect', () => socket.write(bytes))
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk)
      if (opts.untilResponse === true && completeResponse(Buffer.concat(chunks).toString('latin1'))) finish(false)
    })
    socket.on('end', () => finish(true))
    socket.on('close', () => finish(true))
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // A reset after the server answered and closed is still an answer.
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') finish(true)
      else if (!done) { done = true; reject(err) }
    })
  })
}

export function statusOf (text: string): number {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(text)
  return m === null ? 0 : Number(m[1])
}

function completeResponse (text: string): boolean {
  const end = text.indexOf('\r\n\r\n')
  if (end === -1) return false
  const m = /\r\ncontent-length:\s*(\d+)/i.exec(text.slice(0, end + 2))
  const length = m === null ? 0 : Number(m[1])
  return Buffer.byteLength(text.slice(end + 4), 'latin1') >= length
}
