/**
 * The compiled theme crosses to the transform threads once per version, not
 * once per page (issue 15, item 7). Structured-cloning `Compiled` with every
 * page cost the event loop about 0.55 ms per threaded page for a 20 KB theme.
 *
 * The main thread serialises each compiled version once into a
 * SharedArrayBuffer (`shareTheme`, remembered per Compiled object, so it goes
 * with the version it belongs to). Every task carries that buffer, which
 * postMessage shares rather than copies, and the version's id. A thread keeps
 * the version it deserialised for each site (`ThreadThemes`) and reads the
 * buffer again only for an id it does not hold: its first page of a new
 * version, or its first page at all after piscina replaced it. So no message
 * is needed to tell a thread about a version, none can be missed, and a
 * thread holds one version per site: the old one is dropped as the first page
 * of the new one arrives.
 *
 * Diagnostics channels:
 * - `livery:theme:shared` `{ site, version, bytes }`: a compiled version was serialised for the threads
 * - `livery:theme:thread-load` `{ site, version }`: a thread deserialised a version it did not hold
 *   (reported with the page's result, on the main thread)
 */
import { channel } from 'node:diagnostics_channel'
import { deserialize, serialize } from 'node:v8'
import type { Compiled } from '../theme/index.ts'

export const sharedChannel = channel('livery:theme:shared')
export const threadLoadChannel = channel('livery:theme:thread-load')

export interface SharedTheme {
  /** Unique to one Compiled object in this process (two compiles of one version get two ids). */
  readonly id: string
  readonly version: string
  /** `v8.serialize(compiled)`; shared with the threads, never copied. */
  readonly bytes: SharedArrayBuffer
}

export interface SharedThemeMessage {
  readonly site: string
  readonly version: string
  readonly bytes: number
}

const shared = new WeakMap<Compiled, SharedTheme>()
let sequence = 0

/** The shareable form of `compiled`, serialised on its first use only; `site` names it in the event. */
export function shareTheme (compiled: Compiled, site: string): SharedTheme {
  const known = shared.get(compiled)
  if (known !== undefined) return known
  const plain = serialize(compiled)
  const bytes = new SharedArrayBuffer(plain.length)
  new Uint8Array(bytes).set(plain)
  const theme: SharedTheme = { id: `${compiled.version}.${++sequence}`, version: compiled.version, bytes }
  shared.set(compiled, theme)
  if (sharedChannel.hasSubscribers) sharedChannel.publish({ site, version: compiled.version, bytes: plain.length } satisfies SharedThemeMessage)
  return theme
}

/**
 * Sites a thread holds a version for, at most. Only a reload that renames
 * sites makes more than the configured number appear; past this the site
 * whose version was read longest ago is dropped (and read again if it comes back).
 */
const maxSites = 64

/** A thread's compiled versions, one per site. */
export class ThreadThemes {
  readonly #bySite = new Map<string, { readonly id: string, readonly compiled: Compiled }>()

  /** The compiled theme `theme` names, held as `site`'s version, and whether this call had to deserialise it. */
  get (site: string, theme: SharedTheme): { readonly compiled: Compiled, readonly loaded: boolean } {
    const held = this.#bySite.get(site)
    if (held !== undefined && held.id === theme.id) return { compiled: held.compiled, loaded: false }
    const compiled = deserialize(new Uint8Array(theme.bytes)) as Compiled
    this.#bySite.delete(site)
    this.#bySite.set(site, { id: theme.id, compiled })
    if (this.#bySite.size > maxSites) this.#bySite.delete(this.#bySite.keys().next().value as string)
    return { compiled, loaded: true }
  }

  get size (): number { return this.#bySite.size }
}
