/**
 * The transform threads' task module: runs on a transform thread (loaded by
 * src/pool/task-worker.ts). Plain data in, plain data out.
 */
import { transformCompiled, type Compiled, type TransformContext, type TransformOutcome } from '../theme/index.ts'

export interface TransformTask {
  readonly compiled: Compiled
  readonly html: string
  readonly ctx: TransformContext
}

export function transform (task: TransformTask): TransformOutcome {
  return transformCompiled(task.compiled, task.html, task.ctx)
}
