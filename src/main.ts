/**
 * Start-up: configuration, store, data plane, admin plane, and an orderly stop.
 * The data plane compiles its first table before any listener opens, so the first request
 * served already sees the stored configuration.
 */
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { Config } from './config/config.js'
import { resolveAdminTls, type AdminTls } from './admin/admin-tls.js'
import { buildConfiguredAdmin, closeAdmin } from './admin/app.js'
import type { Reloader } from './dataplane/reloader.js'
import { defaultPublishAddress, listen, startDataPlane, type DataPlane } from './dataplane/start.js'
import { createLogger, logServing } from './logger.js'
import { ChangeFeed } from './store/change-feed.js'
import { openDatabase } from './store/database.js'
import { GatewayState } from './store/gateway-state.js'
import { ObjectStore } from './store/object-store.js'
import { defaultNodeName, mirrorSynced, startClusterStore, type ClusterStore } from './store/cluster/cluster-store.js'
import { VERSION } from './version.js'

export { createLogger }

/** A running gateway: its bound addresses and how to stop it. */
export interface Gateway {
  addresses: { admin: AddressInfo, http: AddressInfo, https: AddressInfo }
  store: ObjectStore
  reloader: Reloader
  /** The admin API's CA certificate (PEM), as GET /ca.crt serves it; undefined without admin TLS or a known CA. */
  adminCaPem: string | undefined
  /** Graceful stop: in-flight requests get up to `graceMs` (INGRESSD_SHUTDOWN_GRACE) to finish. */
  close: (graceMs?: number) => Promise<void>
}

/** Opens the store, compiles the first tables, and starts the data plane and admin listeners, all in this process. */
export async function startGateway (config: Readonly<Config>, logger: Logger = createLogger(config.logLevel)): Promise<Gateway> {
  const db = openDatabase(config.db)
  const store = new ObjectStore(db)
  const feed = new ChangeFeed()
  let adminPort = config.adminAddr.port
  let cluster: ClusterStore | undefined
  let plane: DataPlane
  let adminTls: AdminTls | undefined
  try {
    // Before any listener opens: a certificate file that cannot serve stops start-up here.
    adminTls = await resolveAdminTls(config, new GatewayState(db), logger)
    // Cluster mode: the mirror is brought up to PostgreSQL before the first compile (or served as it is, if PostgreSQL is away).
    if (config.postgresUrl !== undefined) cluster = await startClusterStore(clusterOptions(config, store, logger, feed, () => adminPort))
    plane = await startDataPlane(config, logger, { db, store, feed })
  } catch (err) {
    await cluster?.close()
    db.close()
    throw err
  }
  const { reloader, metrics } = plane
  const httpAddress = plane.addresses.http
  const httpsAddress = plane.addresses.https
  let admin: FastifyInstance | undefined
  try {
    const clusterStore = cluster
    admin = await buildConfiguredAdmin(config, {
      store,
      feed,
      logger,
      metrics,
      // A node that never copied a store has nothing to serve: not ready until it has.
      readiness: { ready: () => reloader.ready && (clusterStore === undefined || mirrorSynced(clusterStore)), detail: () => ({ generation: reloader.generation }) },
      // The same report the heartbeat upserts: GET /apis/ingressd.io/v1/nodes shows this node as the others see it.
      node: clusterStore?.opts.node ?? clusterOptions(config, store, logger, feed, () => adminPort).node,
      ...(clusterStore === undefined ? {} : { writer: clusterStore, storeHealth: () => clusterStore.health, cluster: clusterStore }),
      tls: adminTls
    })
    const adminAddress = await listen(admin, config.adminAddr)
    adminPort = adminAddress.port
    logServing(logger, config, store, { admin: adminAddress, http: httpAddress, https: httpsAddress }, { adminCaFingerprint: adminTls?.caFingerprint })
    const adminApp = admin
    return {
      addresses: { admin: adminAddress, http: httpAddress, https: httpsAddress },
      store,
      reloader,
      adminCaPem: adminTls?.caPem,
      async close (graceMs = config.shutdownGraceMs) {
        // Stop taking admin writes, let the data planes finish what they serve, then the store.
        await closeAdmin(adminApp, graceMs)
        await plane.close(graceMs)
        await clusterStore?.close()
        db.close()
      }
    }
  } catch (err) {
    await Promise.allSettled([admin?.close(), plane.close(0), cluster?.close()])
    db.close()
    throw err
  }
}

/** A node's cluster options: its name, what it publishes, and what it serves, asked at each heartbeat. */
export function clusterOptions (config: Readonly<Config>, store: ObjectStore, logger: Logger, feed: ChangeFeed, adminPort: () => number): Parameters<typeof startClusterStore>[0] {
  return {
    url: config.postgresUrl as string,
    store,
    logger: logger.child({ component: 'cluster' }),
    node: {
      name: () => config.nodeName ?? defaultNodeName(adminPort()),
      // What the data plane publishes in embedded mode too: the setting, else the listener's address or this machine's first external IPv4.
      addresses: () => [config.publishAddress ?? defaultPublishAddress({ address: config.httpAddr.host })],
      version: VERSION,
      servedVersion: () => { const v = feed.servedByAll(); return Number.isFinite(v) ? Math.max(0, v) : 0 },
      problem: () => { const p = feed.problemsAt(store.resourceVersion()); return p.length === 0 ? undefined : p.join('; ') }
    }
  }
}
