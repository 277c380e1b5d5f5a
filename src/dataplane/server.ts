/**
 * The data-plane Fastify app: no route per ingress (Fastify cannot add routes once it listens),
 * one catch-all route that routes by the current table, and an Upgrade handler for WebSockets.
 */
import Fastify, { LogController, type FastifyError, type FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { Config } from '../config/config.js'
import { acceptableRequestId } from './forwarded.js'
import { createProxy, errorBody, newRequestId, type TableSource } from './proxy.js'
import { httpsFastifyOptions, prepareHttpsServer, type DataPlaneTls } from './https.js'
import type { HttpsRedirectOptions } from './ssl-redirect.js'
import { requestHost } from './http2-compat.js'

export interface DataPlaneOptions {
  tables: TableSource
  config: Pick<Config, 'trustedProxies' | 'proxyConnectTimeoutMs' | 'proxyReadTimeoutMs' | 'proxySendTimeoutMs'>
  logger: Logger
  proto: 'http' | 'https'
  /** HTTPS only: TLS (HTTP/2 through ALPN, HTTP/1.1 fallback, SNI) and HSTS. */
  tls?: DataPlaneTls
  /** HTTP only: where redirects to HTTPS point. */
  httpsRedirect?: HttpsRedirectOptions
}

/** Builds the HTTP data-plane app (not listening). */
export async function buildDataPlaneApp (opts: DataPlaneOptions): Promise<FastifyInstance> {
  const proxy = createProxy(opts.tables, opts.config, opts.proto, opts.httpsRedirect)
  const app = Fastify({
    loggerInstance: opts.logger,
    // The access log below writes one line per request; Fastify's two are off.
    logController: new LogController({ disableRequestLogging: true }),
    // X-Request-ID: the client's when it is a sane token (as ingress-nginx keeps it), else a new one.
    genReqId: (req) => acceptableRequestId(req.headers['x-request-id']) ?? newRequestId(),
    requestIdHeader: false,
    // Timeouts the gateway sets rather than inherits (see docs/configuration.md).
    keepAliveTimeout: 75_000,
    requestTimeout: 0,
    routerOptions: { ignoreTrailingSlash: false, ignoreDuplicateSlashes: false, maxParamLength: 100_000 },
    return503OnClosing: true,
    ...(opts.tls === undefined ? {} : httpsFastifyOptions(opts.tls))
  }) as unknown as FastifyInstance
  if (opts.tls !== undefined) prepareHttpsServer(app, opts.tls, opts.logger)

  // Bodies stream through untouched: the parser hands the raw stream to the proxy.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_req, payload, done) => { done(null, payload) })

  app.decorateReply('ingressd', null as never)
  app.addHook('onRequest', async (_req, reply) => { reply.ingressd = {} })
  // One access-log line per request.
  app.addHook('onResponse', async (req, reply) => {
    const info = reply.ingressd
    req.log.info({
      client: req.socket.remoteAddress,
      host: requestHost(req.headers),
      method: req.method,
      path: req.url,
      status: reply.statusCode,
      bytes: Number(reply.getHeader('content-length') ?? 0) || undefined,
      upstream: info?.upstream === undefined ? undefined : `${info.upstream.host}:${info.upstream.port}`,
      ingress: info?.route === undefined ? undefined : `${info.route.ingress.namespace}/${info.route.ingress.name}`,
      ms: Math.round(reply.elapsedTime * 100) / 100
    }, 'access')
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
  return app
}
