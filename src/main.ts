/**
 * Start-up: configuration, store, data plane, admin plane, and an orderly stop.
 * The data plane compiles its first table before any listener opens, so the first request
 * served already sees the stored configuration.
 */
import { networkInterfaces } from 'node:os'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { pino, type Logger } from 'pino'
import type { Config, ListenAddress } from './config/config.js'
import { buildAdminApp, type AdminOptions } from './admin/app.js'
import { GatewayMetrics } from './metrics.js'
import { buildDataPlaneApp, closeGracefully } from './dataplane/server.js'
import { Reloader } from './dataplane/reloader.js'
import { ChangeFeed } from './store/change-feed.js'
import { openDatabase, type SqliteDatabase } from './store/database.js'
import { ObjectStore } from './store/object-store.js'
import { GatewayState } from './store/gateway-state.js'
import { CertificateCompiler } from './dataplane/compile-certificates.js'
import { ensureDefaultCertificate } from './dataplane/default-certificate.js'
import { httpsServerOptions } from './dataplane/https.js'

/** A running gateway: its bound addresses and how to stop it. */
export interface Gateway {
  addresses: { admin: AddressInfo, http: AddressInfo, https: AddressInfo }
  store: ObjectStore
  reloader: Reloader
  /** Graceful stop: in-flight requests get up to `graceMs` (INGRESSD_SHUTDOWN_GRACE) to finish. */
  close: (graceMs?: number) => Promise<void>
}

/**
 * The logger every part writes through: JSON lines on stdout, written asynchronously (lines
 * queue while a write is in progress) so an access line per request never makes the data plane
 * wait on a slow pipe. Lines are written in batches of at least 4 KiB, or every 100 ms, whichever
 * comes first: one write per access line cost the proxy about a sixth of its CPU per request. A
 * line is thus at most 100 ms late; pino writes what is queued when the process exits, and
 * `flush()` before exiting does it explicitly (a SIGKILL loses at most those 100 ms). No log call
 * passes headers, bodies or keys, so nothing needs redacting on the hot path; tests assert that
 * Authorization, cookies and keys never appear.
 */
export function createLogger (level: Config['logLevel']): Logger {
  return pino({ level, base: { pid: process.pid } }, pino.destination({ dest: 1, sync: false, minLength: 4096, periodicFlush: 100 }))
}

/** The admin app as the configuration asks for it (token, allowed hosts, body limit); one place for both process models. */
export async function buildConfiguredAdmin (config: Readonly<Config>, deps: Pick<AdminOptions, 'store' | 'feed' | 'metrics' | 'readiness'> & { logger: Logger }): Promise<FastifyInstance> {
  return await buildAdminApp({
    store: deps.store,
    feed: deps.feed,
    logger: deps.logger.child({ component: 'admin' }),
    adminToken: config.adminToken,
    allowedHosts: config.adminAllowedHosts,
    bodyLimit: config.adminBodyLimit,
    metrics: deps.metrics,
    readiness: deps.readiness
  })
}

/** The one start-up line that names every address served (tests and tools read it). */
export function logServing (logger: Logger, config: Readonly<Config>, store: ObjectStore, addresses: { admin: AddressInfo, http: AddressInfo, https: AddressInfo }, workers?: number[]): void {
  const admin = formatAddress(addresses.admin)
  const http = formatAddress(addresses.http)
  const https = formatAddress(addresses.https)
  logger.info({
    admin,
    http,
    https,
    ...(workers === undefined ? {} : { workers }),
    db: config.db,
    auth: config.adminToken === undefined ? 'none (loopback only)' : 'bearer token',
    resourceVersion: store.resourceVersion()
  }, `ingressd serving: admin http://${admin}, http ${http}, https ${https}${workers === undefined ? '' : `, ${workers.length} data-plane workers`}`)
}

/** The address to publish in ingress status: configured, else the HTTP listener's, else this machine's first external IPv4. */
function defaultPublishAddress (http: AddressInfo): string {
  if (http.address !== '0.0.0.0' && http.address !== '::') return http.address
  for (const list of Object.values(networkInterfaces())) {
    for (const nic of list ?? []) if (nic.family === 'IPv4' && !nic.internal) return nic.address
  }
  return '127.0.0.1'
}

async function listen (app: FastifyInstance, addr: ListenAddress): Promise<AddressInfo> {
  await app.listen({ host: addr.host, port: addr.port })
  return app.server.address() as AddressInfo
}

/** A running data plane (HTTP and HTTPS listeners over one Reloader): in the single process, or in each cluster worker. */
export interface DataPlane {
  addresses: { http: AddressInfo, https: AddressInfo }
  reloader: Reloader
  metrics: GatewayMetrics
  /** Graceful stop of both listeners, then the reloader; the database stays open. */
  close: (graceMs: number) => Promise<void>
}

/** What a data plane follows: the open store and the feed it reports the served version to. */
export interface DataPlaneStore {
  db: SqliteDatabase
  store: ObjectStore
  feed: ChangeFeed
  /** Whether this data plane writes statuses (default true; one worker only when there are several). */
  writeStatus?: boolean
}

/**
 * Compiles the first tables and opens the HTTP and HTTPS listeners. The HTTP listener opens
 * first, so the first status already names its address; the HTTPS one after the first compile, so
 * the first handshake already finds the stored certificates.
 */
export async function startDataPlane (config: Readonly<Config>, logger: Logger, from: DataPlaneStore): Promise<DataPlane> {
  const { db, store, feed } = from
  let httpAddress: AddressInfo | undefined
  let httpsAddress: AddressInfo | undefined
  // The default certificate comes before any listener: a client without SNI is answered with it.
  const generatedCertificate = await ensureDefaultCertificate(new GatewayState(db))
  const certificates = new CertificateCompiler({ defaultSecret: config.defaultCertificate, generated: generatedCertificate, logger: logger.child({ component: 'tls' }) })
  const metrics = new GatewayMetrics()
  const reloader = new Reloader({
    store,
    feed,
    metrics,
    logger: logger.child({ component: 'reloader' }),
    ingressClasses: config.ingressClasses,
    publishAddress: () => config.publishAddress ?? (httpAddress === undefined ? '127.0.0.1' : defaultPublishAddress(httpAddress)),
    certificates,
    writeStatus: from.writeStatus
  })
  const http = await buildDataPlaneApp({
    tables: reloader,
    config,
    logger: logger.child({ component: 'http' }),
    proto: 'http',
    metrics,
    // Until the HTTPS listener is bound (moments at start-up), its configured port, unless that is 0.
    httpsRedirect: { port: () => config.httpsRedirectPort ?? httpsAddress?.port ?? (config.httpsAddr.port === 0 ? undefined : config.httpsAddr.port) }
  })
  const https = await buildDataPlaneApp({
    tables: reloader,
    config,
    logger: logger.child({ component: 'https' }),
    proto: 'https',
    metrics,
    tls: { serverOptions: httpsServerOptions(reloader, generatedCertificate, config.tlsHandshakeTimeoutMs), sni: reloader, hsts: config.hsts }
  })
  try {
    httpAddress = await listen(http, config.httpAddr)
    reloader.start()
    httpsAddress = await listen(https, config.httpsAddr)
  } catch (err) {
    reloader.stop()
    await Promise.allSettled([http.close(), https.close()])
    throw err
  }
  return {
    addresses: { http: httpAddress, https: httpsAddress },
    reloader,
    metrics,
    async close (graceMs) {
      await Promise.allSettled([closeGracefully(http, graceMs), closeGracefully(https, graceMs)])
      reloader.stop()
    }
  }
}

/** `host:port` of a bound address, as the start-up line prints it. */
export function formatAddress (address: AddressInfo): string {
  return `${address.address}:${address.port}`
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
        await adminApp.close()
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
