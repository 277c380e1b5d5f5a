/**
 * The HTTPS listener's TLS side: HTTP/2 offered through ALPN with HTTP/1.1 fallback, the
 * certificate chosen per handshake from the current SNI table (swapped by the reloader with the
 * route table, so a Secret or ingress change applies to the next handshake and never restarts
 * the listener or touches open connections), and Strict-Transport-Security on every response.
 * A certificate's TLS context is built by the first handshake that asks for one of its names and
 * kept for the next ones (sni-table.ts); one that cannot be built is answered with the default
 * certificate, never with a failed handshake.
 */
import { createPrivateKey, randomBytes } from 'node:crypto'
import type { SecureServerOptions } from 'node:http2'
import type { Server as TlsServer } from 'node:tls'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { secureContextFor, type ServedCertificate, type SniSource } from './sni-table.js'
import { listenerContextOptions, type CertificateKeyType, type PemPair } from './tls-options.js'

/** What the data-plane app needs to serve HTTPS. */
export interface DataPlaneTls {
  /** The Node http2 secure-server options (see httpsServerOptions). */
  serverOptions: SecureServerOptions
  sni: SniSource
  /** Strict-Transport-Security value; undefined: none (INGRESSD_HSTS=off). */
  hsts: string | undefined
}

/** Idle HTTP/1.1 keep-alive and whole-request limits, as the HTTP listener sets them (server.ts). */
const HTTP1_KEEP_ALIVE_MS = 75_000

/**
 * The secure-server options: TLS 1.2+ with the modern cipher list, `h2` then `http/1.1` in
 * ALPN, the handshake timeout, and an SNICallback that looks the name up in the current table
 * (building the certificate's context if no handshake has yet). `initial` is served to clients
 * without SNI until the first table is compiled.
 */
export function httpsServerOptions (sni: SniSource, initial: PemPair, handshakeTimeoutMs: number): SecureServerOptions {
  return {
    ...listenerContextOptions(createPrivateKey(initial.key).asymmetricKeyType as CertificateKeyType),
    cert: initial.cert,
    key: initial.key,
    allowHTTP1: true,
    handshakeTimeout: handshakeTimeoutMs,
    SNICallback (servername, cb) {
      let context
      try {
        const table = sni.sni
        if (table !== undefined) context = secureContextFor(table, servername)
      } catch { /* the listener's default context answers */ }
      cb(null, context)
    }
  }
}

/**
 * The Fastify options that make a data-plane app an HTTPS one: an http2 secure server that also
 * speaks HTTP/1.1. Connections are not force-closed: closeGracefully (server.ts) sends HTTP/2
 * sessions a GOAWAY and ends idle HTTP/1.1 connections, so requests in flight finish.
 * Typed loosely on purpose: Fastify's overloads choose the server type from a literal `http2: true`.
 */
export function httpsFastifyOptions (tls: DataPlaneTls): object {
  return { http2: true, https: tls.serverOptions, forceCloseConnections: false }
}

/**
 * Wires the HTTPS side into a data-plane app before it listens. As each connection arrives, before
 * its handshake, it keeps the listener's own context (what clients without SNI get) on the current
 * default certificate, rebuilt only when that changes, and renews the session-ticket keys when
 * any certificate changed, so no client resumes its way around a new certificate. It also logs
 * failed handshakes at debug level, gives HTTP/1.1 connections the HTTP listener's keep-alive, and
 * adds HSTS to every response.
 */
export function prepareHttpsServer (app: FastifyInstance, tls: DataPlaneTls, logger: Logger): void {
  const server = app.server as unknown as TlsServer & { keepAliveTimeout?: number, requestTimeout?: number }
  let applied: ServedCertificate | undefined
  let appliedEpoch: number | undefined
  server.prependListener('connection', () => {
    const table = tls.sni.sni
    if (table === undefined || (table.fallback === applied && table.certificateEpoch === appliedEpoch)) return
    appliedEpoch = table.certificateEpoch
    if (table.fallback === applied) {
      // Session tickets are sealed with the listener's keys: new keys make a client that would
      // resume a session from before the change do a full handshake, and see the new certificate.
      server.setTicketKeys(randomBytes(48))
      return
    }
    applied = table.fallback
    try {
      // A new default context comes with new ticket keys too.
      server.setSecureContext({ ...listenerContextOptions(table.fallback.keyType), cert: table.fallbackPem.cert, key: table.fallbackPem.key })
    } catch (err) {
      server.setTicketKeys(randomBytes(48))
      logger.error({ err: { message: (err as Error).message }, certificate: table.fallback.source }, 'the default certificate could not be loaded; clients without SNI keep the previous one')
    }
  })
  server.on('tlsClientError', (err: Error & { code?: string }, socket) => {
    logger.debug({ client: socket.remoteAddress, code: err.code }, 'TLS handshake failed')
  })
  // Node's HTTP/1.1 fallback reads these from the http2 server; Fastify sets them only on HTTP/1 servers.
  server.keepAliveTimeout = HTTP1_KEEP_ALIVE_MS
  server.requestTimeout = 0
  const hsts = tls.hsts
  if (hsts !== undefined) {
    app.addHook('onSend', async (_req, reply, payload) => {
      reply.header('strict-transport-security', hsts)
      return payload
    })
  }
}
