/**
 * A data-plane worker of the cluster (see cluster.ts): the same data plane as the single process,
 * on the ports the primary shares, following the same SQLite file. This module and what it imports
 * are all a worker loads: not the admin plane, its schemas or the OpenAPI document.
 */
import type { Logger } from 'pino'
import { AggregatorRegistry } from 'prom-client'
import type { Config } from './config/config.js'
import { startDataPlane } from './dataplane/start.js'
import { formatAddress } from './logger.js'
import { ChangeFeed } from './store/change-feed.js'
import { openDatabase } from './store/database.js'
import { ObjectStore } from './store/object-store.js'
import { isMessage, SLOT_ENV, type FromWorker, type Running, type ToWorker } from './cluster-protocol.js'

/** Reports every version the worker's Reloader serves to the primary, whose ChangeFeed writes wait on. */
class WorkerFeed extends ChangeFeed {
  override reportServed (followerId: string, resourceVersion: number, problem?: string): void {
    super.reportServed(followerId, resourceVersion, problem)
    const message: FromWorker = problem === undefined ? { type: 'ingressd:served', resourceVersion } : { type: 'ingressd:served', resourceVersion, problem }
    if (process.connected) process.send?.(message)
  }
}

/**
 * A worker: the same data plane as the single process, on the ports the primary shares. Stops on
 * the primary's shutdown message or its own SIGTERM; SIGINT (a terminal's Ctrl-C reaches the
 * whole process group) is left to the primary, which stops every worker in order.
 */
export async function startWorker (config: Readonly<Config>, logger: Logger): Promise<Running & { stopped: Promise<void> }> {
  const slot = Number(process.env[SLOT_ENV] ?? '0')
  const db = openDatabase(config.db, { migrate: false })
  const store = new ObjectStore(db)
  const feed = new WorkerFeed()
  const workerLogger = logger.child({ worker: slot })
  let plane
  try {
    plane = await startDataPlane(config, workerLogger, { db, store, feed, writeStatus: slot === 0 })
  } catch (err) {
    db.close()
    throw err
  }
  const { reloader, metrics, addresses } = plane
  // Constructing one makes prom-client answer the primary's requests for this worker's registry.
  // eslint-disable-next-line no-new
  new AggregatorRegistry()
  AggregatorRegistry.setRegistries([metrics.registry])
  let requestStop: (reason: string) => void = () => {}
  const stopped = new Promise<void>(resolve => {
    requestStop = (reason) => {
      workerLogger.info({ reason }, 'data-plane worker shutting down')
      resolve()
    }
  })
  process.on('message', (message: unknown) => {
    if (!isMessage<ToWorker>(message)) return
    if (message.type === 'ingressd:commit') reloader.schedule()
    // Limiter answers share the channel (dataplane/limiter-cluster.ts); only this one stops the worker.
    else if (message.type === 'ingressd:shutdown') requestStop('shutdown')
  })
  process.once('SIGTERM', () => requestStop('SIGTERM'))
  process.on('SIGINT', () => {})
  const ready: FromWorker = { type: 'ingressd:ready', pid: process.pid, http: addresses.http, https: addresses.https }
  process.send?.(ready)
  workerLogger.debug({ http: formatAddress(addresses.http), https: formatAddress(addresses.https) }, 'data-plane worker serving')
  return {
    stopped,
    async close (graceMs = config.shutdownGraceMs) {
      await plane.close(graceMs)
      db.close()
    }
  }
}
