/**
 * `livery demo`: the demo CMS and theme server on loopback and the gateway in
 * front of them, with the embedded default configuration (memory + disk
 * cache, no Redis).
 */
import { existsSync } from 'node:fs'
import { liveryError } from '../errors.ts'
import { join } from 'node:path'
import type { Server } from 'node:http'
import { parseConfig } from '../config/load.ts'
import type { Config } from '../config/types.ts'
import { createDemoCms } from './cms.ts'
import { listenOn } from '../server/listening.ts'
import { createThemeServer, demoThemeDir } from './theme-server.ts'

export interface DemoServers {
  readonly config: Config
  readonly cmsUrl: string
  readonly themeUrl: string
  close (): Promise<void>
}

async function listenPreferring (server: Server, port: number): Promise<number> {
  try {
    return (await listenOn(server, port, '127.0.0.1')).port
  } catch {
    // The preferred port is taken: any free one will do, the gateway is told which.
    return (await listenOn(server, 0, '127.0.0.1')).port
  }
}

/** Starts the demo backends and returns the gateway config pointing at them. */
export async function startDemoBackends (opts: { port: number, env: NodeJS.ProcessEnv, cacheDir?: string }): Promise<DemoServers> {
  const cms = createDemoCms()
  const theme = createThemeServer()
  const cmsPort = await listenPreferring(cms, 8081)
  const themePort = await listenPreferring(theme, 8082)
  const cmsUrl = `http://127.0.0.1:${cmsPort}`
  const themeUrl = `http://127.0.0.1:${themePort}`
  const rules = join(demoThemeDir, 'rules.xml')
  const raw = {
    listen: { host: '127.0.0.1', port: opts.port },
    cache: { directory: opts.cacheDir ?? './.livery-cache' },
    sites: [{
      name: 'demo',
      hosts: ['*'],
      upstream: cmsUrl,
      grace: '30s',
      ...(existsSync(rules) ? { theme: { rules, base: `${themeUrl}/` } } : {}),
    }],
  }
  const config = parseConfig(raw, opts.env, process.cwd())
  return {
    config,
    cmsUrl,
    themeUrl,
    close: async () => {
      await Promise.all([cms, theme].map(s => new Promise<void>(resolve => {
        s.close(() => resolve())
        s.closeAllConnections()
      })))
    },
  }
}

/**
 * `livery demo --only cms|theme`: one demo backend on its own, as the compose
 * file runs them next to the gateway. Serves until SIGTERM/SIGINT.
 */
export async function serveDemoBackend (opts: { only: string, port?: number, host?: string, stderr: NodeJS.WritableStream }): Promise<number> {
  const backends: Record<string, { create: () => Server, port: number, what: string }> = {
    cms: { create: createDemoCms, port: 8081, what: 'demo CMS' },
    theme: { create: () => createThemeServer(), port: 8082, what: 'demo theme server' },
  }
  const backend = backends[opts.only]
  if (backend === undefined) throw liveryError('LIVERY_ERR_USAGE', `--only: "${opts.only}" is not a demo backend (cms or theme)`)
  const server = backend.create()
  const address = await listenOn(server, opts.port ?? backend.port, opts.host ?? '127.0.0.1')
  opts.stderr.write(`${backend.what} listening on ${address.address}:${address.port}\n`)
  await new Promise<void>(resolve => {
    const stop = (): void => {
      process.off('SIGTERM', stop)
      process.off('SIGINT', stop)
      server.close(() => resolve())
      server.closeAllConnections()
    }
    process.on('SIGTERM', stop)
    process.on('SIGINT', stop)
  })
  return 0
}
