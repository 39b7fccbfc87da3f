/**
 * Turns undici's failures into Livery's coded errors, so only src/server
 * maps them to HTTP (502 for a broken upstream, 504 for a slow one).
 */
import { LiveryError } from '../errors.ts'
import { formatDuration } from '../config/units.ts'
import type { TimeoutsConfig } from '../config/types.ts'

/** Response header bytes beyond this are a hostile or broken upstream (undici's maxHeaderSize). */
export const upstreamMaxHeaderSize = 64 * 1024

interface CodedCause { code?: string, name?: string, message?: string, cause?: unknown }

export function upstreamError (err: unknown, upstream: string, timeouts: TimeoutsConfig, headersSent: boolean): LiveryError {
  const e = (err ?? {}) as CodedCause
  const code = e.code ?? (e.cause as CodedCause | undefined)?.code
  const reason = e.message ?? String(err)
  switch (code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
      return new LiveryError('LIVERY_ERR_UPSTREAM_CONNECT_TIMEOUT', [upstream, formatDuration(timeouts.connect)], { cause: err })
    case 'UND_ERR_HEADERS_TIMEOUT':
      return new LiveryError('LIVERY_ERR_UPSTREAM_FIRST_BYTE_TIMEOUT', [upstream, formatDuration(timeouts.firstByte)], { cause: err })
    case 'UND_ERR_BODY_TIMEOUT':
      return new LiveryError('LIVERY_ERR_UPSTREAM_BETWEEN_BYTES_TIMEOUT', [upstream, formatDuration(timeouts.betweenBytes)], { cause: err })
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new LiveryError('LIVERY_ERR_UPSTREAM_CONNECT', [upstream, code], { cause: err })
    case 'UND_ERR_HEADERS_OVERFLOW':
      return new LiveryError('LIVERY_ERR_UPSTREAM_HEADER_TOO_LARGE', [upstream, `${upstreamMaxHeaderSize / 1024} KB`], { cause: err })
    case 'HPE_INVALID_STATUS':
    case 'HPE_INVALID_HEADER_TOKEN':
    case 'HPE_INVALID_CONSTANT':
    case 'HPE_INVALID_CONTENT_LENGTH':
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
    case 'HPE_INVALID_TRANSFER_ENCODING':
    case 'HPE_INVALID_CHUNK_SIZE':
    case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH':
    case 'UND_ERR_RES_EXCEEDED_MAX_SIZE':
    case 'UND_ERR_INFO':
      return new LiveryError('LIVERY_ERR_UPSTREAM_RESPONSE', [upstream, reason], { cause: err })
  }
  // undici's HTTPParserError leaves `code` undefined (it indexes llhttp's
  // name→number table with the number), so its name is what identifies it.
  if ((typeof code === 'string' && code.startsWith('HPE_')) || e.name === 'HTTPParserError') {
    return new LiveryError('LIVERY_ERR_UPSTREAM_RESPONSE', [upstream, reason], { cause: err })
  }
  return new LiveryError(headersSent ? 'LIVERY_ERR_UPSTREAM_RESET' : 'LIVERY_ERR_UPSTREAM_CONNECT', [upstream, code ?? reason], { cause: err })
}
