/**
 * What the request path needs from theming. `src/theme`'s ThemeEngine
 * provides it; SiteThemer wraps it to run transforms on threads.
 */
import type { IncomingHttpHeaders } from 'node:http'

export type ThemeOutcome =
  | { readonly kind: 'themed', readonly body: Buffer, readonly headers: Readonly<Record<string, string>>, readonly themeVersion: string }
  /** A notheme rule matched or no theme applies: send the page as it came. */
  | { readonly kind: 'notheme' }
  /** The theme could not be had: the page goes out unthemed with X-Livery-Theme: unavailable. */
  | { readonly kind: 'unavailable', readonly reason: string }
  /** The transform ran past its time budget and was stopped: unthemed, X-Livery-Theme: timeout. */
  | { readonly kind: 'timeout', readonly reason: string }

export interface PageThemer {
  /** Rules + current theme versions; part of the cache key of themed pages. */
  readonly version: string
  /** How long a page whose transform timed out is stored unthemed (ms); 0 or absent: never. */
  readonly unthemedTtl?: number
  /** The version to key this request with; a promise only while a due theme refresh runs (bounded by fetch.wait). */
  currentVersion (): string | Promise<string>
  shouldTheme (req: { method: string, url: string, headers: IncomingHttpHeaders }, res: { status: number, headers: IncomingHttpHeaders | Record<string, string | string[] | undefined> }): boolean
  apply (input: { url: string, headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>, requestHeaders: IncomingHttpHeaders, body: Buffer, signal?: AbortSignal }): Promise<ThemeOutcome>
}
