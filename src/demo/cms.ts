/**
 * A small demo CMS: a few pages with navigation, an image, a form that
 * POSTs, and a deliberately slow page, so `npm start` shows what Livery
 * does on a fresh machine. Pages carry Plone-like ids the demo rules use.
 */
import { createServer, type Server } from 'node:http'

const pages: Record<string, { title: string, body: string }> = {
  '/': {
    title: 'Welcome to the demo CMS',
    body: `<p>This page comes from a plain CMS on loopback. Livery caches it, and wraps it in the theme served by the
theme server.</p><p><img src="/logo.svg" alt="The demo logo" width="120" height="120"></p>`,
  },
  '/news': {
    title: 'News',
    body: '<ul class="news"><li><a href="/news/cache">A cache that serves stale rather than broken</a></li><li><a href="/news/theme">Themes from a separate server</a></li></ul>',
  },
  '/news/cache': {
    title: 'A cache that serves stale rather than broken',
    body: '<p>When the CMS is slow, Livery keeps answering from its cache.</p>',
  },
  '/news/theme': {
    title: 'Themes from a separate server',
    body: '<p>The theme page is fetched by a dedicated fetch pool and merged with every page by Diazo rules.</p>',
  },
  '/contact': {
    title: 'Contact',
    body: `<form method="post" action="/contact"><p><label>Your name <input name="name"></label></p>
<p><label>Message <textarea name="message"></textarea></label></p><p><button type="submit">Send</button></p></form>`,
  },
  '/slow': {
    title: 'A slow page',
    body: '<p>The CMS took two seconds to render this page. Reload it: Livery serves it from cache.</p>',
  },
}

const nav = [['/', 'Home'], ['/news', 'News'], ['/contact', 'Contact'], ['/slow', 'Slow page']]

function render (path: string, title: string, body: string): string {
  const items = nav.map(([href, label]) => `<li${href === path ? ' class="selected"' : ''}><a href="${href}">${label}</a></li>`).join('')
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${title}</title><link rel="stylesheet" href="/cms.css"></head>
<body><nav id="portal-globalnav"><ul>${items}</ul></nav>
<main id="content"><h1 class="documentFirstHeading">${title}</h1>${body}</main>
<footer id="portal-footer"><p>Demo CMS · rendered at ${new Date().toISOString()}</p></footer></body></html>\n`
}

const logo = '<svg xmlns="http://www.w3.org/2000/svg" width="120" height="120" viewBox="0 0 120 120"><circle cx="60" cy="60" r="56" fill="#2b5d8c"/><text x="60" y="74" font-size="40" text-anchor="middle" fill="#fff" font-family="sans-serif">L</text></svg>\n'
const css = 'body { font-family: serif; } #portal-globalnav li { display: inline; margin-right: 1em; }\n'

export function createDemoCms (): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    if (path === '/logo.svg') {
      res.writeHead(200, { 'content-type': 'image/svg+xml', 'cache-control': 'public, max-age=3600' })
      res.end(logo)
      return
    }
    if (path === '/cms.css') {
      res.writeHead(200, { 'content-type': 'text/css', 'cache-control': 'public, max-age=3600' })
      res.end(css)
      return
    }
    if (path === '/contact' && req.method === 'POST') {
      let size = 0
      req.on('data', (chunk: Buffer) => { size += chunk.length })
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' })
        res.end(render(path, 'Thank you', `<p>Your message (${size} bytes) was received.</p>`))
      })
      return
    }
    const page = pages[path]
    if (page === undefined) {
      res.writeHead(404, { 'content-type': 'text/html; charset=utf-8' })
      res.end(render(path, 'Not found', '<p>There is no such page.</p>'))
      return
    }
    const send = (): void => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'public, max-age=10' })
      res.end(req.method === 'HEAD' ? undefined : render(path, page.title, page.body))
    }
    if (path === '/slow') {
      const timer = setTimeout(send, 2000)
      res.on('close', () => clearTimeout(timer))
    } else send()
  })
}
