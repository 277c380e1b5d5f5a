/**
 * The data-plane Fastify app: no route per ingress (Fastify cannot add routes once it listens),
 * one catch-all route that routes by the current table, and an Upgrade handler for WebSockets.
 */
import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { Server as NetServer, Socket } from 'node:net'
import { ConnectionTracker } from './drain.js'
import type { Logger } from 'pino'
import { statusClass, type GatewayMetrics } from '../metrics.js'
import type { Config } from '../config/config.js'
import { acceptableRequestId } from './forwarded.js'
import { createProxy, errorBody, newRequestId, rawErrorResponse, type ProxyAccess, type RequestInfo, type TableSource } from './proxy.js'
import type { ErrorCode } from '../errors.js'
import { httpsFastifyOptions, prepareHttpsServer, type DataPlaneTls } from './https.js'
import type { HttpsRedirectOptions } from './ssl-redirect.js'
import { createAccessLog } from './access-log.js'
import { routeNames } from './route-table.js'

export interface DataPlaneOptions {
  tables: TableSource
  config: Pick<Config, 'trustedProxies' | 'proxyConnectTimeoutMs' | 'proxyReadTimeoutMs' | 'proxySendTimeoutMs' | 'proxyBodySize' | 'maxUriLength' | 'maxHeaders' | 'maxHeaderSize' | 'clientHeaderTimeoutMs' | 'keepAliveTimeoutMs' | 'maxConnections' | 'upstreamMaxFails' | 'upstreamFailTimeoutMs' | 'proxyNextUpstreamTries'>
  logger: Logger
  proto: 'http' | 'https'
  /** HTTPS only: TLS (HTTP/2 through ALPN, HTTP/1.1 fallback, SNI) and HSTS. */
  tls?: DataPlaneTls
  /** HTTP only: where redirects to HTTPS point. */
  httpsRedirect?: HttpsRedirectOptions
  metrics?: GatewayMetrics
  /** Access control beyond the tables (the gateway-wide denylist). */
  access?: ProxyAccess
}

/** Builds the HTTP data-plane app (not listening). */
export async function buildDataPlaneApp (opts: DataPlaneOptions): Promise<FastifyInstance> {
  // HSTS on proxied responses is set by the proxy itself (they bypass Fastify's onSend); https.ts sets it on the gateway's own answers.
  const hsts = opts.tls?.hsts
  const proxy = createProxy(opts.tables, opts.config, opts.proto, opts.httpsRedirect, opts.metrics, hsts === undefined ? undefined : { 'strict-transport-security': hsts }, opts.access)
  const app = Fastify({
    loggerInstance: opts.logger,
    // The access log below writes one line per request; Fastify's two are off.
    logController: new LogController({ disableRequestLogging: true }),
    // X-Request-ID: the client's when it is a sane token (as ingress-nginx keeps it), else a new one.
    genReqId: (req) => acceptableRequestId(req.headers['x-request-id']) ?? newRequestId(),
    requestIdHeader: false,
    // Timeouts and limits the gateway sets rather than inherits (see docs/configuration.md).
    keepAliveTimeout: opts.config.keepAliveTimeoutMs,
    requestTimeout: 0,
    // Node's own server options (the HTTP listener): a missing Host is answered by the proxy in the
    // gateway's format; headersTimeout is checked every second, so a 1 s setting means about 1 s.
    http: { maxHeaderSize: opts.config.maxHeaderSize, requireHostHeader: false, headersTimeout: opts.config.clientHeaderTimeoutMs, connectionsCheckingInterval: Math.max(100, Math.min(1000, opts.config.clientHeaderTimeoutMs)) },
    // A path Fastify cannot decode (`/%zz`) gets the gateway's 400, not Fastify's JSON.
    frameworkErrors: (_err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
      reply.code(400).header('connection', 'close').header('content-type', 'text/plain; charset=utf-8').header('server', 'ingressd').header('x-request-id', req.id).send(errorBody('INGRESSD_ERR_BAD_PATH', req.id))
    },
    // Requests Node's HTTP/1 parser rejects get the gateway's answer, not Fastify's JSON one.
    clientErrorHandler: answerClientError,
    routerOptions: { ignoreTrailingSlash: false, ignoreDuplicateSlashes: false, maxParamLength: 100_000 },
    return503OnClosing: true,
    ...(opts.tls === undefined ? {} : httpsFastifyOptions(opts.tls))
  }) as unknown as FastifyInstance
  if (opts.tls !== undefined) {
    prepareHttpsServer(app, opts.tls, opts.logger)
    // HTTP/1.1 on the HTTPS listener: Node's HTTP/1 parser reads the limit from the server object,
    // which Fastify's \`http\` options do not reach when the server is an HTTP/2 one.
    ;(app.server as { maxHeaderSize?: number }).maxHeaderSize = opts.config.maxHeaderSize
  }
  applyServerLimits(app.server, opts.config)

  // Bodies stream through untouched: the parser hands the raw stream to the proxy.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_req, payload, done) => { done(null, payload) })

  // Set by the proxy once it knows the route; null for a request answered before that.
  app.decorateReply('ingressd', null as never)
  const metrics = opts.metrics
  if (metrics !== undefined) {
    const listener = opts.proto
    const closed = (): void => { metrics.connectionClosed(listener) }
    app.server.on('connection', (socket: Socket) => {
      metrics.connectionOpened(listener)
      socket.once('close', closed)
    })
  }
  const accessLog = createAccessLog(opts.logger)
  // One access-log line per request, and its metrics. Authorization and cookies are never logged.
  // A callback hook rather than an async one: no promise per request.
  app.addHook('onResponse', (req, reply, done) => {
    const info = reply.ingressd as RequestInfo | null
    if (metrics !== undefined) {
      const statusLabel = statusClass(reply.statusCode)
      metrics.countRequest(routeNames(info?.route), statusLabel)
      metrics.requestDuration.observe({ status_class: statusLabel }, reply.elapsedTime / 1000)
    }
    accessLog(req, reply, info)
    done()
  })

  app.all('*', proxy.handle)
  app.setErrorHandler((err: FastifyError, req, reply) => {
    req.log.warn({ err: { code: err.code, message: err.message } }, 'request failed before proxying')
    const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 502
    reply.code(status).header('content-type', 'text/plain; charset=utf-8').header('x-request-id', req.id)
      .send(status === 502 ? errorBody('INGRESSD_ERR_UPSTREAM_RESET', req.id) : `${status} ${err.code ?? 'bad request'}\nrequest id: ${req.id}\n`)
  })
  app.server.on('upgrade', proxy.handleUpgrade)
  app.addHook('onClose', async () => { await proxy.close() })
  shutdowns.set(app, { proxy, tracker: new ConnectionTracker(app.server as unknown as NetServer, opts.tls !== undefined) })
  return app
}

/**
 * Limits Node reads from the server object: header count (Node alone drops fields past
 * maxHeadersCount silently, so it keeps one more and the proxy answers 431), the header timeout
 * and keep-alive, and the connection cap. Set on the HTTPS listener too; tested on the HTTP one.
 */
function applyServerLimits (server: object, config: Pick<Config, 'maxHeaders' | 'clientHeaderTimeoutMs' | 'keepAliveTimeoutMs' | 'maxConnections'>): void {
  const s = server as { maxHeadersCount?: number | null, headersTimeout?: number, keepAliveTimeout?: number, maxConnections?: number }
  s.maxHeadersCount = config.maxHeaders > 0 ? config.maxHeaders + 1 : null
  s.headersTimeout = config.clientHeaderTimeoutMs
  s.keepAliveTimeout = config.keepAliveTimeoutMs
  if (config.maxConnections > 0) s.maxConnections = config.maxConnections
}

const shutdowns = new WeakMap<FastifyInstance, { proxy: ReturnType<typeof createProxy>, tracker: ConnectionTracker }>()

/**
 * Stops a data-plane app gracefully: no new connections, WebSockets closed with 1001, idle
 * connections closed now and busy ones once their response is sent; after `graceMs` whatever is
 * left is cut.
 */
export async function closeGracefully (app: FastifyInstance, graceMs: number): Promise<void> {
  const parts = shutdowns.get(app)
  if (parts === undefined) return await app.close()
  parts.proxy.closeTunnels()
  const closing = app.close()
  parts.tracker.drain()
  let timer: NodeJS.Timeout | undefined
  const expired = await Promise.race([closing.then(() => false), new Promise<boolean>(resolve => { timer = setTimeout(() => resolve(true), graceMs) })])
  clearTimeout(timer)
  if (expired) {
    app.log.warn({ open: parts.tracker.open, graceMs }, 'grace period over: closing the connections still open')
    parts.tracker.destroyAll()
  }
  await closing
}

/**
 * What a connection gets when Node's HTTP/1 parser rejects its request, or its head does not arrive
 * in time: the gateway's plain-text error with a request id, then the connection is closed. As
 * Node does by default, nothing is written when a response on the connection has already begun.
 */
function answerClientError (err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  const code: ErrorCode = err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
    ? 'INGRESSD_ERR_REQUEST_TIMEOUT'
    : err.code === 'HPE_HEADER_OVERFLOW' ? 'INGRESSD_ERR_HEADERS_TOO_LARGE' : 'INGRESSD_ERR_MALFORMED_REQUEST'
  const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage
  if (socket.writable && inFlight?.headersSent !== true) socket.write(rawErrorResponse(code, newRequestId()))
  socket.destroy()
}
