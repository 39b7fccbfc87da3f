/** Where rules files are: paths and URLs as absolute URLs, and the short names errors show. */

/** A path or URL as an absolute URL string. */
export function toUrl (fileOrUrl: string, base?: string): string {
  if (/^[a-z][a-z0-9+.-]*:/i.test(fileOrUrl) && !/^[a-z]:[\\/]/i.test(fileOrUrl)) return new URL(fileOrUrl).href
  if (base !== undefined) return new URL(fileOrUrl, base).href
  const abs = fileOrUrl.startsWith('/') ? fileOrUrl : `${process.cwd()}/${fileOrUrl}`
  return new URL(`file://${abs.split('/').map(encodeURIComponent).join('/')}`).href
}

/** The short name errors show: a path relative to the working directory, or the URL. */
export function displayName (url: string): string {
  if (!url.startsWith('file:')) return url
  const p = decodeURIComponent(new URL(url).pathname)
  const cwd = process.cwd() + '/'
  return p.startsWith(cwd) ? p.slice(cwd.length) : p
}
