/**
 * One data plane (HTTP and HTTPS listeners over one Reloader): what the single process runs beside
 * its admin plane, and all a cluster worker runs. Nothing here loads the admin plane, its schemas
 * or the OpenAPI document, so a worker holds only what serving needs.
 */
import { networkInterfaces } from 'node:os'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { Config, ListenAddress } from '../config/config.js'
import { GatewayMetrics } from '../metrics.js'
import type { ChangeFeed } from '../store/change-feed.js'
import type { SqliteDatabase } from '../store/database.js'
import type { ObjectStore } from '../store/object-store.js'
import { GatewayState } from '../store/gateway-state.js'
import { buildDataPlaneApp, closeGracefully } from './server.js'
import { Reloader } from './reloader.js'
import { CertificateCompiler } from './compile-certificates.js'
import { ensureDefaultCertificate } from './default-certificate.js'
import { httpsServerOptions } from './https.js'
import { PolicyCompiler } from './policies/chain.js'
import { parseRanges } from './policies/addresses.js'
import { ExternalAuthClient } from './policies/external-auth.js'
import { limiterForProcess } from './limiter-cluster.js'

/** The address to publish in ingress status: configured, else the HTTP listener's, else this machine's first external IPv4. */
export function defaultPublishAddress (http: Pick<AddressInfo, 'address'>): string {
  if (http.address !== '0.0.0.0' && http.address !== '::') return http.address
  for (const list of Object.values(networkInterfaces())) {
    for (const nic of list ?? []) if (nic.family === 'IPv4' && !nic.internal) return nic.address
  }
  return '127.0.0.1'
}

export async function listen (app: FastifyInstance, addr: ListenAddress): Promise<AddressInfo> {
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
  const accessLogger = logger.child({ component: 'access' })
  // nginx's auth location uses the gateway's proxy timeouts, not an ingress's own annotations.
  const externalAuth = new ExternalAuthClient({ connectTimeoutMs: config.proxyConnectTimeoutMs, readTimeoutMs: config.proxyReadTimeoutMs })
  const policies = new PolicyCompiler({
    limiter: limiterForProcess(accessLogger),
    limitStatus: config.limitReqStatusCode,
    externalAuth,
    // The user name only: a password never reaches a log line.
    // A request without credentials is how every browser starts: debug, not info.
    onAuthFailure: (ingress, user, reason) => { accessLogger[reason === 'missing' ? 'debug' : 'info']({ ingress, user, reason }, 'basic auth failed') },
    onAuthError: (ingress, message) => { accessLogger.warn({ ingress, message }, 'external auth failed') }
  })
  const reloader = new Reloader({
    store,
    feed,
    metrics,
    logger: logger.child({ component: 'reloader' }),
    ingressClasses: config.ingressClasses,
    publishAddress: () => config.publishAddress ?? (httpAddress === undefined ? '127.0.0.1' : defaultPublishAddress(httpAddress)),
    certificates,
    policies,
    writeStatus: from.writeStatus
  })
  const common = { tables: reloader, config, metrics, access: { denylist: parseRanges(config.denylistSourceRange) } }
  const http = await buildDataPlaneApp({
    ...common,
    logger: logger.child({ component: 'http' }),
    proto: 'http',
    // Until the HTTPS listener is bound (moments at start-up), its configured port, unless that is 0.
    httpsRedirect: { port: () => config.httpsRedirectPort ?? httpsAddress?.port ?? (config.httpsAddr.port === 0 ? undefined : config.httpsAddr.port) }
  })
  const https = await buildDataPlaneApp({
    ...common,
    logger: logger.child({ component: 'https' }),
    proto: 'https',
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
      await externalAuth.close()
    }
  }
}
