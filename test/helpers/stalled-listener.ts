/**
 * A TCP listener whose accept queue is full, so the kernel drops new SYNs
 * and a connect attempt times out for real, on loopback, offline.
 *
 * Node accepts connections as soon as its event loop runs, so the listening
 * socket lives in a worker thread whose loop is blocked in Atomics.wait:
 * nothing is accepted. With backlog 1 Linux queues two handshakes; the two
 * fillers take those places and every later SYN is dropped.
 */
import { Worker } from 'node:worker_threads'
import { connect, type Socket } from 'node:net'
import type { Teardown } from './servers.ts'

const workerSource = `
const { parentPort, workerData } = require('node:worker_threads')
const net = require('node:net')
const server = net.createServer(() => {})
server.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
  parentPort.postMessage(server.address().port)
  Atomics.wait(new Int32Array(workerData), 0, 0)
  server.close()
  parentPort.close()
})
`

export interface StalledListener {
  readonly port: number
  readonly url: string
}

export async function startStalledListener (t: Teardown): Promise<StalledListener> {
  const flag = new SharedArrayBuffer(4)
  const worker = new Worker(workerSource, { eval: true, workerData: flag })
  const fillers: Socket[] = []
  t.teardown(async () => {
    Atomics.store(new Int32Array(flag), 0, 1)
    Atomics.notify(new Int32Array(flag), 0)
    for (const s of fillers) s.destroy()
    await worker.terminate()
  })
  const port = await new Promise<number>((resolve, reject) => {
    worker.once('message', resolve)
    worker.once('error', reject)
  })
  const connected = [0, 1].map(() => new Promise<void>((resolve, reject) => {
    const s = connect(port, '127.0.0.1')
    fillers.push(s)
    s.once('connect', resolve)
    s.once('error', reject)
  }))
  await Promise.all(connected)
  return { port, url: `http://127.0.0.1:${port}` }
}
