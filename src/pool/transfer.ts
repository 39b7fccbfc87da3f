/**
 * How a worker module's task hands a large result back without a copy: it
 * returns `transferring(value, [arrayBuffer])`, and the thread's runner
 * (task-worker.ts) posts the value with those buffers moved, not cloned.
 * The buffers are unusable on the thread afterwards, so each must be one the
 * task allocated for the result alone (never a pooled Buffer's slab).
 */
const brand = Symbol.for('livery.pool.transferring')

export interface Transferring<T> {
  readonly [brand]: true
  readonly value: T
  readonly list: readonly ArrayBuffer[]
}

export function transferring<T> (value: T, list: readonly ArrayBuffer[]): Transferring<T> {
  return { [brand]: true, value, list }
}

export function isTransferring (v: unknown): v is Transferring<unknown> {
  return typeof v === 'object' && v !== null && (v as Partial<Transferring<unknown>>)[brand] === true
}
