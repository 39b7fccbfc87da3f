/**
 * The demo theme server: serves the files of src/demo/theme over HTTP, as a
 * designer's theme server would, with validators so the fetch pool can
 * refresh conditionally.
 */
import { createServer, type Server } from 'node:http'
import { readFile } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import { extname, join, normalize } from 'node:path'

const types: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.css': 'text/css; charset=utf-8', '.js': 'text/javascript',
  '.svg': 'image/svg+xml', '.png': 'image/png', '.xml': 'application/xml',
}

export const demoThemeDir = new URL('./theme/', import.meta.url).pathname

export function createThemeServer (root = demoThemeDir): Server {
  return createServer((req, res) => {
    const path = normalize(decodeURIComponent((req.url ?? '/').split('?')[0]))
    if (path.includes('..')) {
      res.writeHead(400).end()
      return
    }
    readFile(join(root, path === '/' ? 'theme.html' : path)).then(body => {
      const etag = '"' + createHash('sha1').update(body).digest('base64url').slice(0, 16) + '"'
      if (req.headers['if-none-match'] === etag) {
        res.writeHead(304, { etag }).end()
        return
      }
      res.writeHead(200, { 'content-type': types[extname(path)] ?? 'application/octet-stream', etag, 'cache-control': 'max-age=30' })
      res.end(body)
    }, () => {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n')
    })
  })
}
