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
import { buildAdminApp } from './admin/app.js'
import { GatewayMetrics } from './metrics.js'
import { buildDataPlaneApp, closeGracefully } from './dataplane/server.js'
import { Reloader } from './dataplane/reloader.js'
import { ChangeFeed } from './store/change-feed.js'
import { openDatabase } from './store/database.js'
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
 * wait on a slow pipe; call `flush()` before exiting. No log call passes headers, bodies or keys, so nothing needs
 * redacting on the hot path; tests assert that Authorization, cookies and keys never appear.
 */
export function createLogger (level: Config['logLevel']): Logger {
  return pino({ level, base: { pid: process.pid } }, pino.destination({ dest: 1, sync: false }))
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

/** Opens the store, compiles the first tables, and starts the data plane and admin listeners. */
export async function startGateway (config: Readonly<Config>, logger: Logger = createLogger(config.logLevel)): Promise<Gateway> {
  const db = openDatabase(config.db)
  const store = new ObjectStore(db)
  const feed = new ChangeFeed()
  let httpAddress: AddressInfo | undefined
  let httpsAddress: AddressInfo | undefined
  // The default certificate comes before any listener: a client without SNI is answered with it.
  let generatedCertificate
  let certificates
  try {
    generatedCertificate = await ensureDefaultCertificate(new GatewayState(db))
    certificates = new CertificateCompiler({ defaultSecret: config.defaultCertificate, generated: generatedCertificate, logger: logger.child({ component: 'tls' }) })
  } catch (err) {
    db.close()
    throw err
  }
  const metrics = new GatewayMetrics()
  const reloader = new Reloader({
    store,
    feed,
    metrics,
    logger: logger.child({ component: 'reloader' }),
    ingressClasses: config.ingressClasses,
    publishAddress: () => config.publishAddress ?? (httpAddress === undefined ? '127.0.0.1' : defaultPublishAddress(httpAddress)),
    certificates
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
  const admin = await buildAdminApp({
    store,
    feed,
    logger: logger.child({ component: 'admin' }),
    adminToken: config.adminToken,
    bodyLimit: config.adminBodyLimit,
    metrics,
    readiness: { ready: () => reloader.ready && httpAddress !== undefined && httpsAddress !== undefined, detail: () => ({ generation: reloader.generation }) }
  })
  try {
    httpAddress = await listen(http, config.httpAddr)
    // Compile once the address is known, so the first status already names it.
    reloader.start()
    // After the first compile, so the first handshake already finds the stored certificates.
    httpsAddress = await listen(https, config.httpsAddr)
    const adminAddress = await listen(admin, config.adminAddr)
    logger.info({ admin: `${adminAddress.address}:${adminAddress.port}`, http: `${httpAddress.address}:${httpAddress.port}`, https: `${httpsAddress.address}:${httpsAddress.port}`, db: config.db, auth: config.adminToken === undefined ? 'none (loopback only)' : 'bearer token', resourceVersion: store.resourceVersion() }, `ingressd serving: admin http://${adminAddress.address}:${adminAddress.port}, http ${httpAddress.address}:${httpAddress.port}, https ${httpsAddress.address}:${httpsAddress.port}`)
    return {
      addresses: { admin: adminAddress, http: httpAddress, https: httpsAddress },
      store,
      reloader,
      async close (graceMs = config.shutdownGraceMs) {
        // Stop taking admin writes, let the data planes finish what they serve, then the store.
        await admin.close()
        await Promise.allSettled([closeGracefully(http, graceMs), closeGracefully(https, graceMs)])
        reloader.stop()
        db.close()
      }
    }
  } catch (err) {
    reloader.stop()
    await Promise.allSettled([admin.close(), http.close(), https.close()])
    db.close()
    throw err
  }
}
