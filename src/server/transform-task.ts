/**
 * The transform threads' task module: runs on a transform thread (loaded by
 * src/pool/task-worker.ts). Plain data in, plain data out; the compiled theme
 * comes as a shared buffer read once per version (shared-theme.ts).
 */
import { transformCompiled, type TransformContext, type TransformOutcome } from '../theme/index.ts'
import { ThreadThemes, type SharedTheme } from './shared-theme.ts'

export interface TransformTask {
  /** A thread holds one compiled version per site. */
  readonly site: string
  readonly theme: SharedTheme
  readonly html: string
  readonly ctx: TransformContext
}

export interface ThreadedOutcome {
  readonly outcome: TransformOutcome
  /** This thread deserialised the theme's version for this page (it did not hold it). */
  readonly loaded: boolean
}

const themes = new ThreadThemes()

export function transform (task: TransformTask): ThreadedOutcome {
  const { compiled, loaded } = themes.get(task.site, task.theme)
  return { outcome: transformCompiled(compiled, task.html, task.ctx), loaded }
}
