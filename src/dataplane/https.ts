/**
 * The HTTPS listener's TLS side: HTTP/2 offered through ALPN with HTTP/1.1 fallback, the
 * certificate chosen per handshake from the current SNI table (swapped by the reloader with the
 * route table, so a Secret or ingress change applies to the next handshake and never restarts
 * the listener or touches open connections), and Strict-Transport-Security on every response.
 * A certificate's TLS context is built by the first handshake that asks for one of its names and
 * kept for the next ones (sni-table.ts); one that cannot be built is answered with the default
 * certificate, never with a failed handshake.
 *
 * Client certificates (auth-tls-*) are asked for only in the handshakes whose SNI name has a host
 * that wants them: the listener itself never asks (policies/client-cert.ts).
 */
import { createPrivateKey, randomBytes } from 'node:crypto'
import type { SecureServerOptions } from 'node:http2'
import type { SecureContext, Server as TlsServer, TLSSocket } from 'node:tls'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { negotiateClientCertificate, settleClientCertificate } from './policies/client-cert.js'
import { clientAuthContextFor, clientAuthFor, secureContextFor, type ServedCertificate, type SniSource, type SniTable } from './sni-table.js'
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
 * The context for a handshake whose name has client-certificate settings. When the host verifies
 * certificates, the handshake is switched to asking for one and gets the certificate's context
 * with the host's CA. Whatever goes wrong, nothing is asked with another context (whose store
 * would be Node's public roots): the record says so, and the host's requests are refused.
 */
function clientAuthContext (socket: TLSSocket, table: SniTable, servername: string): SecureContext {
  const auth = clientAuthFor(table, servername)
  const ca = auth?.denied === undefined && auth?.mode !== 'off' ? auth?.ca : undefined
  if (ca === undefined) {
    negotiateClientCertificate(socket, auth, false)
    return secureContextFor(table, servername)
  }
  const context = clientAuthContextFor(table, servername, ca)
  negotiateClientCertificate(socket, auth, context !== undefined)
  return context ?? secureContextFor(table, servername)
}

/**
 * The secure-server options: TLS 1.2+ with the modern cipher list, `h2` then `http/1.1` in
 * ALPN, the handshake timeout, and an SNICallback that looks the name up in the current table
 * (building the certificate's context if no handshake has yet), and asks for a client
 * certificate when the name's host wants one. `initial` is served to clients without SNI until
 * the first table is compiled.
 */
export function httpsServerOptions (sni: SniSource, initial: PemPair, handshakeTimeoutMs: number): SecureServerOptions {
  return {
    ...listenerContextOptions(createPrivateKey(initial.key).asymmetricKeyType as CertificateKeyType),
    cert: initial.cert,
    key: initial.key,
    allowHTTP1: true,
    handshakeTimeout: handshakeTimeoutMs,
    // Node calls it with the TLSSocket as `this` (not in @types/node's signature).
    SNICallback (this: unknown, servername: string, cb: (err: Error | null, ctx?: SecureContext) => void) {
      let context
      try {
        const table = sni.sni
        if (table?.clientAuth !== undefined) context = clientAuthContext(this as TLSSocket, table, servername)
        else if (table !== undefined) context = secureContextFor(table, servername)
      } catch { /* the listener's default context answers; a host that wanted a certificate refuses the requests */ }
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
 * any certificate or client-certificate setting changed, so no client resumes its way around a new
 * certificate or a new demand for one. It reads the verdict of each handshake that asked for a
 * client certificate as it completes, logs failed handshakes at debug level, gives HTTP/1.1
 * connections the HTTP listener's keep-alive, and adds HSTS to every response.
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
  // A handshake that asked for a client certificate has its verdict read before any request.
  server.on('secureConnection', settleClientCertificate)
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
