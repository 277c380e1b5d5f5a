/**
 * Start-up: configuration, store, data plane, admin plane, and an orderly stop.
 * The data plane compiles its first table before any listener opens, so the first request
 * served already sees the stored configuration.
 */
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { Config } from './config/config.js'
import { buildConfiguredAdmin, closeAdmin } from './admin/app.js'
import type { Reloader } from './dataplane/reloader.js'
import { listen, startDataPlane, type DataPlane } from './dataplane/start.js'
import { createLogger, logServing } from './logger.js'
import { ChangeFeed } from './store/change-feed.js'
import { openDatabase } from './store/database.js'
import { ObjectStore } from './store/object-store.js'

export { createLogger }

/** A running gateway: its bound addresses and how to stop it. */
export interface Gateway {
  addresses: { admin: AddressInfo, http: AddressInfo, https: AddressInfo }
  store: ObjectStore
  reloader: Reloader
  /** Graceful stop: in-flight requests get up to `graceMs` (INGRESSD_SHUTDOWN_GRACE) to finish. */
  close: (graceMs?: number) => Promise<void>
}

/** Opens the store, compiles the first tables, and starts the data plane and admin listeners, all in this process. */
export async function startGateway (config: Readonly<Config>, logger: Logger = createLogger(config.logLevel)): Promise<Gateway> {
  const db = openDatabase(config.db)
  const store = new ObjectStore(db)
  const feed = new ChangeFeed()
  let plane: DataPlane
  try {
    plane = await startDataPlane(config, logger, { db, store, feed })
  } catch (err) {
    db.close()
    throw err
  }
  const { reloader, metrics } = plane
  const httpAddress = plane.addresses.http
  const httpsAddress = plane.addresses.https
  let admin: FastifyInstance | undefined
  try {
    admin = await buildConfiguredAdmin(config, { store, feed, logger, metrics, readiness: { ready: () => reloader.ready, detail: () => ({ generation: reloader.generation }) } })
    const adminAddress = await listen(admin, config.adminAddr)
    logServing(logger, config, store, { admin: adminAddress, http: httpAddress, https: httpsAddress })
    const adminApp = admin
    return {
      addresses: { admin: adminAddress, http: httpAddress, https: httpsAddress },
      store,
      reloader,
      async close (graceMs = config.shutdownGraceMs) {
        // Stop taking admin writes, let the data planes finish what they serve, then the store.
        await closeAdmin(adminApp, graceMs)
        await plane.close(graceMs)
        db.close()
      }
    }
  } catch (err) {
    await Promise.allSettled([admin?.close(), plane.close(0)])
    db.close()
    throw err
  }
}
