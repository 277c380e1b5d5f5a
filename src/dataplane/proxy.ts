/**
 * The proxy: one catch-all handler that looks the request up in the current route table and
 * streams it to an upstream through undici, and the WebSocket (Upgrade) tunnel beside it.
 *
 * It talks to undici directly rather than through @fastify/reply-from: reply-from fixes the
 * connect timeout per plugin (ingress-nginx sets it per ingress), retries GETs on 503 up to ten
 * times, answers socket errors with 500 and their text (which names the upstream), and rewrites
 * Host to the upstream's. Each of those would need undoing around it.
 */
import { connect, type Socket } from 'node:net'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { PassThrough, finished, type Readable } from 'node:stream'
import { Agent, type Dispatcher } from 'undici'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { ERROR_CODES, type ErrorCode } from '../errors.js'
import type { Config } from '../config/config.js'
import type { GatewayMetrics } from '../metrics.js'
import { normalizeHost } from './host.js'
import { normalizeRequestPath, slashDecodedVariants } from './request-path.js'
import { checkRequest } from './request-checks.js'
import { answerBeforeBody } from './lingering-close.js'
import { UpstreamHealth } from './upstream-health.js'
import { acceptableRequestId, clientResponseHeaders, isTrusted, trustedProxyList, upstreamRequestHeaders, type ConnectionFacts } from './forwarded.js'
import type { Backend, RouteMatch, RouteTable, Upstream } from './route-table.js'
import { requestHasBody, requestHost } from './http2-compat.js'
import { createHttpsRedirect, redirectBody, sendHttpsRedirect, type HttpsRedirect, type HttpsRedirectOptions } from './ssl-redirect.js'
import { randomBytes, randomUUID } from 'node:crypto'
import { STATUS_CODES } from 'node:http'
import type { PolicyAnswer, PolicyContext, SecretLookup } from './policies/policy.js'
import { runSteps, type PolicyTable } from './policies/chain.js'
import { clientCertificateStep } from './policies/client-cert.js'
import { responseHeadersForStatus } from './policies/external-auth.js'
import { clientAuthFor, type SniTable } from './sni-table.js'
import { Balancers, EWMA, putAffinityCookie, type BalancerSpec, type Choice } from './balancer.js'
import { clientAddress, inRanges, parseRanges, type AddressRanges } from './policies/addresses.js'
import { redirectAnswer } from './policies/redirect.js'
import { setUpstreamHeaders } from './policies/upstream-headers.js'
import { answerGrpcStatus, endGrpcWithStatus, grpcMessageFor, grpcStatusFor, isGrpcRequest, parseGrpcTimeout } from './grpc.js'
import { Http2Sessions, forwardOverHttp2 } from './http2-upstream.js'
import { usesHttp2 } from './backend-protocol.js'
import { UpstreamTlsConnections } from './upstream-tls.js'
import { chooseCanary } from './policies/canary.js'

/** The proxy's view of the world: the table to route by, swapped by the reloader. */
export interface TableSource {
  readonly current: RouteTable
  /** The routes' bound policy chains, compiled with `current`; a route with an access spec and no chain here is denied. */
  readonly policies?: PolicyTable
  /** The SNI table compiled with `current`: which hosts require client certificates (auth-tls-*). */
  readonly sni?: SniTable | undefined
  /** The Secrets of the snapshot `current` came from: proxy-ssl-secret is read from them. */
  readonly secrets?: SecretLookup | undefined
}

/** What the proxy needs for access control beyond the tables. */
export interface ProxyAccess {
  /** INGRESSD_DENYLIST_SOURCE_RANGE: clients refused on every route (403). */
  denylist?: AddressRanges
}

/** The answer for a route whose chain is missing: never proxy unprotected. */
const NO_POLICY: PolicyAnswer = Object.freeze({ status: 503, code: 'INGRESSD_ERR_ACCESS_DENIED_CONFIG' })

/** Applies a chain's upstream header edits: a value sets the header, null removes it. */
function editHeaders (headers: Record<string, string | string[]>, edits: Readonly<Record<string, string | string[] | null>>): void {
  for (const name in edits) {
    const value = edits[name]
    if (value === null || value === undefined) delete headers[name]
    else headers[name] = value
  }
}

/** Adds headers over a response's: each replaces the upstream's, except Set-Cookie, which is added to (an auth service's cookies and the application's both reach the client). */
export function addResponseHeaders (out: Record<string, string | string[]>, extra: Readonly<Record<string, string | string[]>>): void {
  for (const name in extra) {
    const value = extra[name] as string | string[]
    if (name === 'set-cookie' && out[name] !== undefined) out[name] = [...[out[name]].flat(), ...[value].flat()]
    else out[name] = value
  }
}

type ProxySettings = Pick<Config, 'trustedProxies' | 'proxyConnectTimeoutMs' | 'proxyReadTimeoutMs' | 'proxySendTimeoutMs' | 'proxyBodySize' | 'maxUriLength' | 'maxHeaders' | 'maxHeaderSize' | 'upstreamMaxFails' | 'upstreamFailTimeoutMs' | 'proxyNextUpstreamTries'> & Partial<Pick<Config, 'loadBalance'>>

/** A short plain-text error page: status, code and request id; never an upstream address. */
export function errorBody (code: ErrorCode, requestId: string): string {
  const { status, summary } = ERROR_CODES[code]
  return `${status} ${summary.replace(/^Data plane: /, '')}\ncode: ${code}\nrequest id: ${requestId}\n`
}

/** The 413 page: the limit that applied and the two ways to raise it. */
export function bodyTooLargeBody (limit: number, requestId: string): string {
  return errorBody('INGRESSD_ERR_PROXY_BODY_TOO_LARGE', requestId) +
    `limit: ${limit} bytes\nraise it for one ingress with the annotation nginx.ingress.kubernetes.io/proxy-body-size (for example "8m"; "0" for no limit), or for all with INGRESSD_PROXY_BODY_SIZE\n`
}

/** Statuses after which the gateway closes an HTTP/1.x connection, as nginx does. */
const CLOSING_STATUSES = new Set([400, 413, 414, 431])

/** Methods a retry cannot make do twice what the client asked once (RFC 9110 9.2.2). */
const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE'])

/** Errors raised before a connection existed: the upstream saw nothing, so any request may go elsewhere. */
const NEVER_CONNECTED = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN'])

/** A WebSocket close frame, server to client (unmasked): status 1001, going away. */
const WS_CLOSE_GOING_AWAY = Buffer.from([0x88, 0x02, 0x03, 0xe9])

/** The same close frame from the gateway to the upstream: client frames must be masked (RFC 6455 5.3). */
function maskedClose (): Buffer {
  const mask = randomBytes(4)
  return Buffer.from([0x88, 0x82, ...mask, 0x03 ^ (mask[0] as number), 0xe9 ^ (mask[1] as number)])
}

/** A request id as ingress-nginx makes them: 32 hex characters. */
export function newRequestId (): string {
  return randomUUID().replace(/-/g, '')
}

/** A complete HTTP/1.1 response for a connection Fastify does not own (an Upgrade, a request Node's parser rejected); the connection closes after it. */
function rawResponse (status: number, text: string, requestId: string, headers = ''): string {
  return `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n${headers}content-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\nserver: ingressd\r\nx-request-id: ${requestId}\r\n\r\n${text}`
}

/** The gateway's error page as a raw response (see rawResponse). */
export function rawErrorResponse (code: ErrorCode, requestId: string): string {
  return rawResponse(ERROR_CODES[code].status, errorBody(code, requestId), requestId)
}

/** Maps an undici or socket failure to the gateway's answer. Nothing here can be a 500. */
export function upstreamErrorCode (err: unknown): ErrorCode {
  const name = (err as { name?: string }).name
  // undici's HTTPParserError (a response that is not HTTP) carries no code of its own.
  if (name === 'HTTPParserError') return 'INGRESSD_ERR_UPSTREAM_BAD_RESPONSE'
  // The request was aborted by proxy-send-timeout (a client that went away gets no answer at all).
  if (name === 'AbortError') return 'INGRESSD_ERR_UPSTREAM_TIMEOUT'
  const code = String((err as { code?: unknown }).code ?? '')
  switch (code) {
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'INGRESSD_ERR_UPSTREAM_UNREACHABLE'
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
    case 'ETIMEDOUT':
      return 'INGRESSD_ERR_UPSTREAM_TIMEOUT'
    case 'HPE_INVALID_CONSTANT':
    case 'HPE_INVALID_STATUS':
    case 'HPE_INVALID_VERSION':
    case 'UND_ERR_INVALID_ARG':
    case 'UND_ERR_RESPONSE_STATUS_CODE':
      return 'INGRESSD_ERR_UPSTREAM_BAD_RESPONSE'
  }
  if (code.startsWith('HPE_')) return 'INGRESSD_ERR_UPSTREAM_BAD_RESPONSE'
  return 'INGRESSD_ERR_UPSTREAM_RESET'
}

/**
 * The URI sent upstream under rewrite-target, as nginx's `rewrite` builds it: the whole URI is
 * replaced by the target, `$1`..`$9` filled from the path's regex groups; the original query
 * is kept, after the target's own arguments when the target has some. A target equal to the
 * rule's path is no rewrite at all (ingress-nginx's needsRewrite).
 */
export function rewriteUri (target: string, match: RouteMatch, path: string, query: string): string {
  if (target === match.route.path) return path + query
  const captures = match.captures ?? []
  let out = target.replace(/\$(\d)/g, (_m, d: string) => captures[Number(d) - 1] ?? '')
  if (!out.startsWith('/')) out = `/${out}`
  if (query === '') return out
  return out.includes('?') ? `${out}&${query.slice(1)}` : out + query
}

/** The path a request target is routed by (normalized, without the query; '' when it cannot be), for a route resolved without one. */
function routedPathOf (target: string): string {
  const q = target.indexOf('?')
  return normalizeRequestPath(q === -1 ? target : target.slice(0, q)) ?? ''
}

function origin (u: Upstream): string {
  return u.host.includes(':') ? `http://[${u.host}]:${u.port}` : `http://${u.host}:${u.port}`
}

function secureOrigin (u: Upstream): string {
  return u.host.includes(':') ? `https://[${u.host}]:${u.port}` : `https://${u.host}:${u.port}`
}

/** The error an attempt is aborted with: named as AbortController's are, which the error mapping reads as a timeout. */
function abortError (message: string): Error {
  return Object.assign(new Error(message), { name: 'AbortError' })
}

/** What the proxy decided about one request, for the access log and metrics. */
export interface RequestInfo {
  route?: import('./route-table.js').Route
  upstream?: Upstream
  upstreamError?: ErrorCode
  upstreamMs?: number
  /** Body bytes relayed to the client (a proxied response). */
  bytes?: number
}

/**
 * One upstream attempt, as an undici dispatch handler that writes the response straight to the
 * client's ServerResponse: status and headers when they arrive, each chunk as it comes, with
 * backpressure (the upstream read pauses while the client's socket is full). No Readable and no
 * pipe sit between the two, which is most of what a proxied request used to cost beyond undici
 * and Node's HTTP stack. `started` resolves once the client's response has begun, or rejects when
 * the attempt failed before that, while another endpoint can still be tried or an error page sent.
 */
class UpstreamAttempt implements Dispatcher.DispatchHandler {
  readonly started: Promise<void>
  private resolveStarted!: () => void
  private rejectStarted!: (err: Error) => void
  private controller: Dispatcher.DispatchController | undefined
  private abortReason: Error | undefined
  private responding = false

  constructor (private readonly res: ServerResponse, private readonly requestId: string, private readonly info: RequestInfo, private readonly extraHeaders: Readonly<Record<string, string | string[]>> | ((status: number) => Readonly<Record<string, string | string[]>> | undefined) | undefined, private readonly onStart: () => void) {
    this.started = new Promise((resolve, reject) => {
      this.resolveStarted = resolve
      this.rejectStarted = reject
    })
  }

  abort (reason: Error): void {
    if (this.controller === undefined) this.abortReason ??= reason
    else this.controller.abort(reason)
  }

  onRequestStart (controller: Dispatcher.DispatchController): void {
    this.controller = controller
    if (this.abortReason !== undefined) controller.abort(this.abortReason)
  }

  onResponseStart (_controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    // 1xx interim responses (103 Early Hints) stay between the gateway and the upstream.
    if (statusCode < 200) return
    // A header Node refuses to write throws here; undici then fails the attempt, answered 502.
    const out = clientResponseHeaders(headers, this.requestId)
    const extra = typeof this.extraHeaders === 'function' ? this.extraHeaders(statusCode) : this.extraHeaders
    if (extra !== undefined) addResponseHeaders(out, extra)
    this.res.writeHead(statusCode, out)
    this.responding = true
    this.info.bytes = 0
    this.onStart()
    this.resolveStarted()
  }

  onResponseData (controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.info.bytes = (this.info.bytes ?? 0) + chunk.length
    if (!this.res.write(chunk)) {
      controller.pause()
      this.res.once('drain', () => controller.resume())
    }
  }

  onResponseEnd (): void {
    this.res.end()
  }

  onResponseError (_controller: Dispatcher.DispatchController | undefined, err: Error): void {
    // Once the response has begun, a failure can only cut it: the client must not take a
    // truncated body for a complete one.
    if (this.responding) this.res.destroy()
    else this.rejectStarted(err)
  }
}

/**
 * Builds the proxy: the request handler, the upgrade handler, and the pools to close at shutdown.
 * `responseHeaders` are set on every proxied response, over the upstream's (HSTS on HTTPS).
 */
export function createProxy (tables: TableSource, settings: ProxySettings, proto: 'http' | 'https', httpsRedirect?: HttpsRedirectOptions, metrics?: GatewayMetrics, responseHeaders?: Readonly<Record<string, string>>, access: ProxyAccess = {}) {
  const trusted = trustedProxyList(settings.trustedProxies)
  const trustedRanges = settings.trustedProxies.length === 0 ? undefined : parseRanges(settings.trustedProxies)
  const denylist = access.denylist !== undefined && access.denylist.entries.length > 0 ? access.denylist : undefined
  const clientCertificate = clientCertificateStep({ get sni () { return tables.sni } })
  /** Whether the request's host has client-certificate auth: one property read while no host has any. */
  const hostHasClientAuth = (host: string): boolean => {
    const sni = tables.sni
    return sni?.clientAuth !== undefined && clientAuthFor(sni, host) !== undefined
  }
  const redirectToHttps = proto === 'http' && httpsRedirect !== undefined ? createHttpsRedirect(httpsRedirect) : undefined
  const rrCounters = new Map<string, number>()
  const tunnels = new Set<{ client: Socket, upstream: Socket, websocket: boolean }>()
  // One undici Agent (a keep-alive pool per upstream origin) per connect timeout; pools outlive
  // route tables, so config changes never drop warm connections.
  const agents = new Map<number, Agent>()
  const agentFor = (connectTimeout: number): Agent => {
    let agent = agents.get(connectTimeout)
    if (agent === undefined) {
      // keepAliveTimeout stays under the 5 s common upstream idle timeout, so we never reuse a socket the upstream is closing.
      agent = new Agent({ connect: { timeout: connectTimeout }, keepAliveTimeout: 4000, keepAliveMaxTimeout: 4000 })
      agents.set(connectTimeout, agent)
    }
    return agent
  }

  const health = new UpstreamHealth(settings.upstreamMaxFails, settings.upstreamFailTimeoutMs)
  /**
   * Round robin over the backend's addresses, skipping those out of rotation (passive health)
   * and those this request already tried. When every address is out of rotation, plain round
   * robin: better to try one than to answer 502 without trying.
   */
  const pick = (backend: Backend, tried?: ReadonlySet<Upstream>): Upstream | undefined => {
    const list = backend.upstreams
    const start = rrCounters.get(backend.key) ?? 0
    let fallback: Upstream | undefined
    for (let i = 0; i < list.length; i++) {
      const u = list[(start + i) % list.length] as Upstream
      if (tried?.has(u) === true) continue
      if (health.isAvailable(u)) {
        rrCounters.set(backend.key, (start + i + 1) % 1_000_000_000)
        return u
      }
      fallback ??= u
    }
    rrCounters.set(backend.key, (start + 1) % 1_000_000_000)
    return fallback
  }
  // Routes with a balancer (settings.balancer: hash, affinity, ewma, an explicit round_robin), and
  // every route under INGRESSD_LOAD_BALANCE=ewma, pick through here, after their access checks.
  const balancers = new Balancers(health, pick)
  const defaultBalancer: BalancerSpec | undefined = settings.loadBalance === 'ewma' ? EWMA : undefined

  // Whether a connection's peer is a trusted proxy: decided once per connection, not per request.
  const trustedPeers = new WeakMap<object, boolean>()
  const peerTrusted = (req: IncomingMessage): boolean => {
    if (settings.trustedProxies.length === 0) return false
    let known = trustedPeers.get(req.socket)
    if (known === undefined) {
      known = isTrusted(trusted, req.socket.remoteAddress ?? '')
      trustedPeers.set(req.socket, known)
    }
    return known
  }

  /** The client's address (trusted-proxy aware), for access control and limits. */
  const clientOf = (req: IncomingMessage): string => clientAddress(req.socket.remoteAddress ?? '', req.headers, peerTrusted(req), trustedRanges)

  /** What a route's policy steps see of a routed request. */
  const policyContext = (req: IncomingMessage, host: string, path: string, query: string, requestId: string): PolicyContext => ({
    req,
    method: req.method ?? 'GET',
    host,
    path,
    query,
    proto,
    client: clientOf(req),
    requestId
  })

  /**
   * Runs the route's chain when it has one: undefined lets the request through. A route with an
   * access spec but no bound chain in the current tables is answered 503 (fail closed).
   */
  const checkAccess = (match: RouteMatch, ctx: PolicyContext): PolicyAnswer | undefined | Promise<PolicyAnswer | undefined> => {
    const bound = tables.policies?.get(match.route.settings.access as NonNullable<typeof match.route.settings.access>)
    if (bound === undefined) return NO_POLICY
    return runSteps(bound.steps, ctx)
  }

  /** A step's answer as the client gets it: its headers and the chain's response headers (CORS, cookies), its body or the gateway's error page. */
  const sendPolicyAnswer = (reply: FastifyReply, answer: PolicyAnswer, ctx: PolicyContext | undefined, requestId: string): FastifyReply => {
    const headers: Record<string, string | string[]> = { server: 'ingressd', 'x-request-id': requestId }
    if (answer.body === undefined) headers['content-type'] = 'text/plain; charset=utf-8'
    if (responseHeaders !== undefined) addResponseHeaders(headers, responseHeaders)
    if (ctx?.responseHeaders !== undefined) addResponseHeaders(headers, ctx.responseHeaders)
    if (answer.headers !== undefined) addResponseHeaders(headers, answer.headers)
    // A body the client is still sending is not read: the connection closes after the answer, lingering so the client reads it.
    answerBeforeBody(reply.request.raw, reply.raw)
    const body = answer.body ?? errorBody(answer.code ?? 'INGRESSD_ERR_ACCESS_DENIED_CONFIG', requestId)
    return reply.code(answer.status).headers(headers).send(body)
  }

  /** A step's answer on a connection Fastify does not own (an Upgrade request). */
  const rawPolicyAnswer = (answer: PolicyAnswer, ctx: PolicyContext | undefined, requestId: string): string => {
    const headers: Record<string, string | string[]> = {}
    if (ctx?.responseHeaders !== undefined) addResponseHeaders(headers, ctx.responseHeaders)
    if (answer.headers !== undefined) addResponseHeaders(headers, answer.headers)
    let lines = ''
    for (const [name, value] of Object.entries(headers)) {
      if (name === 'content-type' || name === 'content-length') continue
      for (const v of [value].flat()) lines += `${name}: ${v}\r\n`
    }
    return rawResponse(answer.status, answer.body ?? errorBody(answer.code ?? 'INGRESSD_ERR_ACCESS_DENIED_CONFIG', requestId), requestId, lines)
  }

  const facts = (req: IncomingMessage, requestId: string): ConnectionFacts => ({
    peer: req.socket.remoteAddress ?? '',
    proto,
    port: req.socket.localPort ?? 0,
    host: requestHost(req.headers) ?? '',
    requestId
  })

  /**
   * Resolves a request to its route and upstream, or the error to answer with. A route whose
   * backend has no endpoints comes back with its error and its match (it may still redirect).
   * A route with a balancer comes back without an upstream: it picks once its checks have passed.
   */
  const resolve = (req: IncomingMessage, url: string): { code: ErrorCode, match?: RouteMatch, host?: string } | { match: RouteMatch, upstream: Upstream | undefined, path: string, host: string, routedPath: string, query: string } => {
    const host = normalizeHost(requestHost(req.headers))
    if (host === undefined) return { code: 'INGRESSD_ERR_BAD_HOST' }
    const q = url.indexOf('?')
    const path = normalizeRequestPath(q === -1 ? url : url.slice(0, q))
    if (path === undefined) return { code: 'INGRESSD_ERR_BAD_PATH' }
    const table = tables.current
    let match = table.find(host, path)
    // A backend that decodes %2F or %5C, or takes `\` for `/`, reads another path than the one
    // routed: refused when that reading falls under another rule (docs/routing.md). One table for
    // every lookup, so a reload in between cannot make the same rule look like two.
    for (const reading of slashDecodedVariants(path)) {
      if (reading === undefined || table.find(host, reading)?.route !== match?.route) return { code: 'INGRESSD_ERR_AMBIGUOUS_PATH' }
    }
    if (match === undefined) return { code: 'INGRESSD_ERR_NO_ROUTE', host }
    // A canary ingress may take the request (policies/canary.ts): one property read on other routes.
    const canary = match.route.canary
    if (canary !== undefined) match = chooseCanary(canary, match, req)
    const backend = match.route.backend
    if (backend.upstreams.length === 0) return { code: 'INGRESSD_ERR_NO_ENDPOINTS', match, host }
    const routeSettings = match.route.settings
    const target = routeSettings.rewriteTarget
    const query = q === -1 ? '' : url.slice(q)
    const upstreamPath = target === undefined ? path + query : rewriteUri(target, match, path, query)
    // Round robin picks here; a route with a balancer picks once its access checks have passed.
    const upstream = (routeSettings.balancer ?? defaultBalancer) === undefined ? pick(backend) as Upstream : undefined
    return { match, upstream, path: upstreamPath, host, routedPath: path, query }
  }

  /** The HTTPS redirect a resolved request gets on the plain-HTTP listener (ssl-redirect), if any. */
  const httpsRedirectFor = (req: IncomingMessage, resolved: ReturnType<typeof resolve>): HttpsRedirect | undefined => {
    if (redirectToHttps === undefined || resolved.match === undefined) return undefined
    return redirectToHttps(req, resolved.match.route, resolved.host as string, peerTrusted(req))
  }

  const sendError = (reply: FastifyReply, code: ErrorCode, requestId: string): FastifyReply => {
    // A gRPC client reads grpc-status, not an error page: the same failure in its terms (grpc.ts).
    if (isGrpcRequest(reply.request.raw.headers)) return sendGrpcError(reply, code, requestId)
    const status = ERROR_CODES[code].status
    // As nginx does: after a 400 (maybe a framing error), 413 (an unread body), 414 or 431, the
    // connection carries no further request.
    if (CLOSING_STATUSES.has(status) && reply.request.raw.httpVersionMajor === 1) reply.header('connection', 'close')
    // A body still on its way is not read: the answer must survive the close (lingering close).
    answerBeforeBody(reply.request.raw, reply.raw)
    return reply.code(status).header('content-type', 'text/plain; charset=utf-8').header('server', 'ingressd').header('x-request-id', requestId).send(errorBody(code, requestId))
  }

  /** The gateway's own failure as a gRPC status: HTTP 200, trailers-only (grpc.ts). */
  const sendGrpcError = (reply: FastifyReply, code: ErrorCode, requestId: string): FastifyReply => {
    reply.hijack()
    const type = String(reply.request.raw.headers['content-type'])
    answerGrpcStatus(reply.raw, grpcStatusFor(code), grpcMessageFor(code, requestId), { ...responseHeaders, server: 'ingressd', 'x-request-id': requestId }, type.startsWith('application/grpc-web') ? type : 'application/grpc')
    return reply
  }

  // TLS to HTTPS and GRPCS upstreams (proxy-ssl-*): options and agents, kept across tables.
  const upstreamTls = new UpstreamTlsConnections(() => tables.secrets)

  // HTTP/2 sessions to GRPC, GRPCS and H2C upstreams (http2-upstream.ts): kept across tables.
  const http2Sessions = new Http2Sessions()

  /**
   * A route whose backend-protocol speaks HTTP/2 upstream (GRPC: h2c, GRPCS: h2 over TLS, H2C):
   * one stream on the endpoint's shared session. The client's grpc-timeout bounds the exchange;
   * proxy-read-timeout bounds any silence in it. Failures before the response are the gateway's
   * answer (a gRPC status for a gRPC request); after it, a gRPC response ends with a status in its
   * trailers, and any other is cut.
   */
  async function forwardHttp2 (reply: FastifyReply, s: RouteMatch['route']['settings'], upstream: Upstream, path: string, headers: Record<string, string | string[]>, extraHeaders: Readonly<Record<string, string>> | ((status: number) => Readonly<Record<string, string | string[]>>) | undefined, requestId: string): Promise<FastifyReply> {
    const req = reply.request.raw
    const res = reply.raw
    const info = reply.ingressd
    http2Sessions.retain(tables.current, usesHttp2)
    const grpc = isGrpcRequest(req.headers)
    const tls = s.backendProtocol === 'GRPCS' ? upstreamTls.settingsFor(s.upstreamTls, headers.host) : undefined
    if (tls === undefined && s.backendProtocol === 'GRPCS') return sendError(reply, 'INGRESSD_ERR_UPSTREAM_TLS_SECRET', requestId)
    const session = http2Sessions.session(upstream, tls, s.connectTimeoutMs ?? settings.proxyConnectTimeoutMs)
    const sentAt = performance.now()
    const failure = await forwardOverHttp2({
      req,
      res,
      session,
      scheme: s.backendProtocol === 'GRPCS' ? 'https' : 'http',
      path,
      headers,
      requestId,
      idleTimeoutMs: s.readTimeoutMs ?? settings.proxyReadTimeoutMs,
      ...(grpc ? { deadlineMs: parseGrpcTimeout(req.headers['grpc-timeout']) } : {}),
      extraHeaders: typeof extraHeaders === 'function' ? extraHeaders : () => extraHeaders,
      onStart: () => {
        reply.hijack()
        info.upstreamMs = performance.now() - sentAt
        metrics?.upstreamDuration.observe(info.upstreamMs / 1000)
      },
      onEnd: (bytes) => { info.bytes = bytes }
    })
    if (failure === undefined) {
      health.recordSuccess(upstream)
      return reply
    }
    // A timeout may be the client's deadline: it does not take the endpoint out of rotation.
    if (failure.code !== 'INGRESSD_ERR_UPSTREAM_TIMEOUT') health.recordFailure(upstream)
    info.upstreamError = failure.code
    metrics?.upstreamErrors.inc({ kind: failure.code })
    reply.log.warn({ err: { code: (failure.error as { code?: string } | undefined)?.code, message: failure.error?.message }, upstream: `${upstream.host}:${upstream.port}` }, 'upstream request failed')
    if (!failure.started) return sendError(reply, failure.code, requestId)
    if (grpc) endGrpcWithStatus(res, grpcStatusFor(failure.code), grpcMessageFor(failure.code, requestId))
    else res.destroy()
    return reply
  }

  /** The catch-all route handler. */
  async function handle (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const req = request.raw
    const requestId = request.id
    const checked = checkRequest(req, settings)
    if ('code' in checked) return sendError(reply, checked.code, requestId)
    if (denylist !== undefined && inRanges(denylist, clientOf(req))) return sendError(reply, 'INGRESSD_ERR_SOURCE_FORBIDDEN', requestId)
    const resolved = resolve(req, checked.target)
    const redirect = httpsRedirectFor(req, resolved)
    if (redirect !== undefined) return sendHttpsRedirect(reply, redirect, requestId)
    // Client certificates are per host (auth-tls-*), checked before anything else of the route, as nginx does at server level.
    let ctx: PolicyContext | undefined
    if (resolved.host !== undefined && hostHasClientAuth(resolved.host)) {
      ctx = policyContext(req, resolved.host, 'routedPath' in resolved ? resolved.routedPath : '', 'query' in resolved ? resolved.query : '', requestId)
      const answer = clientCertificate(ctx) as PolicyAnswer | undefined
      if (answer !== undefined) return sendPolicyAnswer(reply, answer, ctx, requestId)
    }
    if ('code' in resolved) {
      // A redirect needs no endpoint: a route whose Service is missing or empty still answers it.
      const redirectSpec = resolved.match?.route.settings.redirect
      if (redirectSpec !== undefined) {
        const answer = redirectAnswer(redirectSpec, req, proto, routedPathOf(checked.target))
        if (answer !== undefined) {
          reply.ingressd = { route: (resolved.match as RouteMatch).route }
          return sendPolicyAnswer(reply, answer, ctx, requestId)
        }
      }
      // The built-in default backend answers its health path, as ingress-nginx's does.
      if (resolved.code === 'INGRESSD_ERR_NO_ROUTE' && req.url === '/healthz') return reply.code(200).header('content-type', 'text/plain; charset=utf-8').header('server', 'ingressd').header('x-request-id', requestId).send('ok\n')
      return sendError(reply, resolved.code, requestId)
    }
    const { match } = resolved
    let upstream = resolved.upstream
    const s = match.route.settings
    reply.ingressd = { route: match.route, upstream }
    // permanent-redirect, temporal-redirect, app-root: before the route's chain, as nginx's
    // `return` runs in its rewrite phase, before access checks and limits (docs/annotations.md).
    if (s.redirect !== undefined) {
      const answer = redirectAnswer(s.redirect, req, proto, resolved.routedPath)
      if (answer !== undefined) {
        reply.ingressd.upstream = undefined
        return sendPolicyAnswer(reply, answer, ctx, requestId)
      }
    }
    // The route's policy chain: nothing at all for a route without access-control annotations.
    if (s.access !== undefined) {
      ctx ??= policyContext(req, resolved.host, resolved.routedPath, resolved.query, requestId)
      const done = ctx.onDone
      let answer = checkAccess(match, ctx)
      if (answer instanceof Promise) answer = await answer
      if (ctx.onDone !== done && ctx.onDone !== undefined) {
        const callbacks = ctx.onDone
        reply.raw.once('close', () => { for (const fn of callbacks) fn() })
      }
      if (answer !== undefined) {
        reply.ingressd.upstream = undefined
        return sendPolicyAnswer(reply, answer, ctx, requestId)
      }
    }
    // A balanced route picks now (ingress-nginx's balancer runs after the access phase); an
    // affinity cookie for a new session joins the response headers.
    let balancer: BalancerSpec | undefined
    let choice: Choice | undefined
    if (upstream === undefined) {
      balancer = (s.balancer ?? defaultBalancer) as BalancerSpec
      ctx ??= policyContext(req, resolved.host, resolved.routedPath, resolved.query, requestId)
      // A sticky route's headers may get a cookie on a retry too: the response must read them then.
      if (balancer.kind === 'sticky') ctx.responseHeaders ??= {}
      choice = balancers.choose(balancer, match.route.backend, ctx, peerTrusted(req))
      if (choice === undefined) return sendError(reply, 'INGRESSD_ERR_NO_ENDPOINTS', requestId)
      upstream = choice.upstream
      if (choice.cookie !== undefined) putAffinityCookie(ctx, choice.cookie)
      reply.ingressd.upstream = upstream
    }
    const headers = upstreamRequestHeaders(req.headers, facts(req, requestId), peerTrusted(req))
    if (ctx?.upstreamHeaders !== undefined) editHeaders(headers, ctx.upstreamHeaders)
    // upstream-vhost and x-forwarded-prefix, over the chain's edits.
    if (s.upstreamHeaders !== undefined) setUpstreamHeaders(s.upstreamHeaders, headers, match, resolved.host)
    // The chain's response headers (CORS, an auth service's cookies) join the listener's; which
    // cookies go depends on the upstream's status, as nginx's add_header decides.
    const policyCtx = ctx
    const extraHeaders = policyCtx?.responseHeaders === undefined
      ? responseHeaders
      : (status: number) => ({ ...responseHeaders, ...responseHeadersForStatus(policyCtx, status) })
    // backend-protocol other than HTTP: one property read on the plain path.
    const protocol = s.backendProtocol
    if (protocol !== undefined) {
      if (usesHttp2(protocol)) return await forwardHttp2(reply, s, upstream, resolved.path, headers, extraHeaders, requestId)
      if (protocol === 'FCGI' || protocol === 'AJP') {
        reply.ingressd.upstream = undefined
        return sendError(reply, 'INGRESSD_ERR_BACKEND_PROTOCOL_UNSUPPORTED', requestId)
      }
    }
    const hasBody = requestHasBody(req)
    let body: Readable | null = null
    // The upstream attempt in flight, for the send timeout, the body limit and the client's close
    // to abort; a reason given between attempts aborts the next one at once.
    let attempt: UpstreamAttempt | undefined
    let abortReason: Error | undefined
    const abortUpstream = (reason: Error): void => {
      abortReason ??= reason
      attempt?.abort(reason)
    }
    // proxy-body-size (0, or the annotation's "0" as Infinity: no limit), checked on Content-Length
    // before the upstream is contacted, then on the bytes of a streamed body as they pass.
    const bodyLimit = s.bodySizeLimit ?? settings.proxyBodySize
    const limited = bodyLimit > 0 && Number.isFinite(bodyLimit)
    let tooLarge = false
    const sendTooLarge = (): FastifyReply => {
      reply.ingressd.upstream = undefined
      if (req.httpVersionMajor === 1) reply.header('connection', 'close')
      answerBeforeBody(req, reply.raw)
      return reply.code(413).header('content-type', 'text/plain; charset=utf-8').header('server', 'ingressd').header('x-request-id', requestId).send(bodyTooLargeBody(bodyLimit, requestId))
    }
    if (limited && Number(req.headers['content-length'] ?? 0) > bodyLimit) return sendTooLarge()
    if (hasBody) {
      // proxy-send-timeout: the longest pause between two chunks of the client's body.
      const sendTimeout = s.sendTimeoutMs ?? settings.proxySendTimeoutMs
      const relay = new PassThrough()
      let timer = setTimeout(() => abortUpstream(abortError('proxy-send-timeout: the client paused its body')), sendTimeout)
      // Observe the source, which pipe() already reads: a 'data' listener on the relay would drain it.
      let received = 0
      req.on('data', (chunk: Buffer) => {
        timer.refresh()
        received += chunk.length
        if (limited && !tooLarge && received > bodyLimit) {
          // Stop relaying and abort the upstream request: no byte beyond the limit goes upstream.
          tooLarge = true
          req.unpipe(relay)
          abortUpstream(abortError('the body passed proxy-body-size'))
        }
      })
      relay.on('end', () => clearTimeout(timer))
      relay.on('close', () => clearTimeout(timer))
      // Wired by hand rather than with pipeline(), which would destroy the client's request (and
      // its socket) when the relay is aborted at the body limit, leaving no way to answer 413.
      req.pipe(relay)
      finished(req, (err) => {
        clearTimeout(timer)
        if (err !== undefined && err !== null) relay.destroy(err)
      })
      timer = timer.unref()
      body = relay
    }
    const res: ServerResponse = reply.raw
    const onClose = (): void => { if (!res.writableFinished) abortUpstream(abortError('the client closed the connection')) }
    res.once('close', onClose)
    const readTimeout = s.readTimeoutMs ?? settings.proxyReadTimeoutMs
    // HTTPS, and AUTO_HTTP from an HTTPS client: TLS to the upstream (upstream-tls.ts).
    const secureUpstream = protocol !== undefined && (protocol === 'HTTPS' || (protocol === 'AUTO_HTTP' && proto === 'https'))
    let agent: Agent
    if (secureUpstream) {
      const tls = upstreamTls.settingsFor(s.upstreamTls, headers.host)
      if (tls === undefined) return sendError(reply, 'INGRESSD_ERR_UPSTREAM_TLS_SECRET', requestId)
      agent = upstreamTls.agentFor(s.connectTimeoutMs ?? settings.proxyConnectTimeoutMs, tls)
    } else agent = agentFor(s.connectTimeoutMs ?? settings.proxyConnectTimeoutMs)
    const info = reply.ingressd
    // Tries across endpoints (ingress-nginx's proxy_next_upstream): only a request without a
    // body can be sent again, and only when that cannot do harm: an idempotent one after a
    // connection failure, reset or connect timeout; any other only when the connection was
    // never made. A POST that reached an upstream is never sent twice.
    const maxTries = body === null ? settings.proxyNextUpstreamTries : 1
    const idempotent = IDEMPOTENT_METHODS.has(req.method ?? '')
    const tried = new Set<Upstream>([upstream])
    let target = upstream
    const sentAt = performance.now()
    for (let tries = 1; ; tries++) {
      const attemptAt = balancer === undefined ? 0 : performance.now()
      try {
        attempt = new UpstreamAttempt(res, requestId, info, extraHeaders, () => {
          // The response has started: from here on the attempt writes to the client itself.
          reply.hijack()
          const upstreamMs = performance.now() - sentAt
          info.upstreamMs = upstreamMs
          metrics?.upstreamDuration.observe(upstreamMs / 1000)
        })
        if (abortReason !== undefined) attempt.abort(abortReason)
        agent.dispatch({
          origin: secureUpstream ? secureOrigin(target) : origin(target),
          path: resolved.path,
          method: req.method as 'GET',
          headers,
          body,
          headersTimeout: readTimeout,
          bodyTimeout: readTimeout
        }, attempt)
        await attempt.started
        health.recordSuccess(target)
        if (balancer !== undefined) balancers.observe(balancer, match.route.backend, target, performance.now() - attemptAt)
        return reply
      } catch (err) {
        const code = upstreamErrorCode(err)
        const clientGone = res.destroyed || req.socket.destroyed
        if (!clientGone && !tooLarge) health.recordFailure(target)
        info.upstreamError = code
        info.upstreamMs = performance.now() - sentAt
        metrics?.upstreamErrors.inc({ kind: code })
        request.log.warn({ err: { code: (err as { code?: string }).code, message: (err as Error).message }, upstream: `${target.host}:${target.port}`, attempt: tries }, 'upstream request failed')
        const neverConnected = NEVER_CONNECTED.has(String((err as { code?: unknown }).code ?? ''))
        const retriable = neverConnected || (idempotent && (code === 'INGRESSD_ERR_UPSTREAM_UNREACHABLE' || code === 'INGRESSD_ERR_UPSTREAM_RESET'))
        let next: Upstream | undefined
        if (tries < maxTries && retriable && !clientGone && !res.headersSent) {
          if (balancer === undefined || ctx === undefined) next = pick(match.route.backend, tried)
          else {
            const again = balancers.choose(balancer, match.route.backend, ctx, peerTrusted(req), tried, choice)
            if (again?.cookie !== undefined && again.cookie !== choice?.cookie) putAffinityCookie(ctx, again.cookie, choice?.cookie)
            if (again !== undefined) choice = again
            next = again?.upstream
          }
        }
        if (next !== undefined) {
          tried.add(next)
          target = next
          info.upstream = next
          continue
        }
        if (tooLarge && !res.headersSent && !res.destroyed) return sendTooLarge()
        if (res.headersSent || clientGone) return reply
        // A body the upstream did not take is not read to its end: this connection carries no more requests.
        if (body !== null && !req.complete) reply.header('connection', 'close')
        return sendError(reply, code, requestId)
      }
    }
  }

  /**
   * WebSocket and other Upgrade requests: the handshake goes upstream as written (with the
   * forwarded headers), then bytes are tunnelled both ways. The tunnel holds no reference to the
   * route table, so later config changes leave it open.
   */
  function handleUpgrade (req: IncomingMessage, socket: Socket, head: Buffer): void {
    socket.on('error', () => socket.destroy())
    const requestId = acceptableRequestId(req.headers['x-request-id']) ?? newRequestId()
    const checked = checkRequest(req, settings)
    if (!('code' in checked) && denylist !== undefined && inRanges(denylist, clientOf(req))) {
      socket.end(rawErrorResponse('INGRESSD_ERR_SOURCE_FORBIDDEN', requestId))
      return
    }
    const resolved = 'code' in checked ? checked : resolve(req, checked.target)
    // ssl-redirect applies to upgrades as to any request (ingress-nginx redirects them too).
    const redirect = httpsRedirectFor(req, resolved)
    if (redirect !== undefined) {
      socket.end(rawResponse(308, redirectBody(redirect.location), requestId, `location: ${redirect.location}\r\n`))
      return
    }
    let certCtx: PolicyContext | undefined
    if ('host' in resolved && resolved.host !== undefined && hostHasClientAuth(resolved.host)) {
      certCtx = policyContext(req, resolved.host, 'routedPath' in resolved ? resolved.routedPath : '', 'query' in resolved ? resolved.query : '', requestId)
      const answer = clientCertificate(certCtx) as PolicyAnswer | undefined
      if (answer !== undefined) {
        socket.end(rawPolicyAnswer(answer, certCtx, requestId))
        return
      }
    }
    // Redirect annotations answer an upgrade as any request, endpoints or not.
    const redirectSpec = 'match' in resolved ? resolved.match?.route.settings.redirect : undefined
    if (redirectSpec !== undefined && !('code' in checked)) {
      const answer = redirectAnswer(redirectSpec, req, proto, 'routedPath' in resolved ? resolved.routedPath : routedPathOf(checked.target))
      if (answer !== undefined) {
        socket.end(rawPolicyAnswer(answer, certCtx, requestId))
        return
      }
    }
    if ('code' in resolved) {
      socket.end(rawErrorResponse(resolved.code, requestId))
      return
    }
    // An upgrade passes the route's policy chain like any request: a WebSocket is no way around auth.
    if (resolved.match.route.settings.access === undefined) {
      tunnel(req, socket, head, resolved, requestId, certCtx)
      return
    }
    const ctx = certCtx ?? policyContext(req, resolved.host, resolved.routedPath, resolved.query, requestId)
    const proceed = (answer: PolicyAnswer | undefined): void => {
      if (ctx.onDone !== undefined) {
        const callbacks = ctx.onDone
        socket.once('close', () => { for (const fn of callbacks) fn() })
      }
      if (answer !== undefined) socket.end(rawPolicyAnswer(answer, ctx, requestId))
      else if (!socket.destroyed) tunnel(req, socket, head, resolved, requestId, ctx)
    }
    const answer = checkAccess(resolved.match, ctx)
    if (answer instanceof Promise) answer.then(proceed, () => socket.end(rawErrorResponse('INGRESSD_ERR_ACCESS_DENIED_CONFIG', requestId)))
    else proceed(answer)
  }

  /** Opens the upstream connection of an upgrade and tunnels bytes both ways once it is made. */
  function tunnel (req: IncomingMessage, socket: Socket, head: Buffer, resolved: { match: RouteMatch, upstream: Upstream | undefined, path: string, host: string, routedPath: string, query: string }, requestId: string, ctx: PolicyContext | undefined): void {
    let endpoint = resolved.upstream
    if (endpoint === undefined) {
      // A balanced route: the key or the client's affinity cookie picks the endpoint. A new
      // session's cookie is not added: the upstream's 101 goes to the client byte for byte.
      const balancer = (resolved.match.route.settings.balancer ?? defaultBalancer) as BalancerSpec
      const choice = balancers.choose(balancer, resolved.match.route.backend, ctx ?? policyContext(req, resolved.host, resolved.routedPath, resolved.query, requestId), peerTrusted(req))
      if (choice === undefined) {
        socket.end(rawErrorResponse('INGRESSD_ERR_NO_ENDPOINTS', requestId))
        return
      }
      endpoint = choice.upstream
    }
    const headers = upstreamRequestHeaders(req.headers, facts(req, requestId), peerTrusted(req))
    if (ctx?.upstreamHeaders !== undefined) editHeaders(headers, ctx.upstreamHeaders)
    const upstreamHeaders = resolved.match.route.settings.upstreamHeaders
    if (upstreamHeaders !== undefined) setUpstreamHeaders(upstreamHeaders, headers, resolved.match, resolved.host)
    headers.connection = 'upgrade'
    if (req.headers.upgrade !== undefined) headers.upgrade = req.headers.upgrade
    const connectTimeout = resolved.match.route.settings.connectTimeoutMs ?? settings.proxyConnectTimeoutMs
    const upstream = connect({ host: endpoint.host, port: endpoint.port })
    const timer = setTimeout(() => upstream.destroy(Object.assign(new Error('connect timeout'), { code: 'UND_ERR_CONNECT_TIMEOUT' })), connectTimeout)
    upstream.once('connect', () => {
      clearTimeout(timer)
      const tunnel = { client: socket, upstream, websocket: /websocket/i.test(String(req.headers.upgrade ?? '')) }
      tunnels.add(tunnel)
      socket.once('close', () => tunnels.delete(tunnel))
      let head1 = `${req.method ?? 'GET'} ${resolved.path} HTTP/1.1\r\n`
      for (const [name, value] of Object.entries(headers)) {
        for (const v of Array.isArray(value) ? value : [value]) head1 += `${name}: ${v}\r\n`
      }
      upstream.write(head1 + '\r\n')
      if (head.length > 0) upstream.write(head)
      upstream.pipe(socket)
      socket.pipe(upstream)
    })
    upstream.on('error', (err) => {
      clearTimeout(timer)
      if (socket.writable && upstream.bytesRead === 0) {
        const code = upstreamErrorCode(err)
        socket.end(rawErrorResponse(code, requestId))
      } else socket.destroy()
    })
    upstream.on('close', () => socket.destroy())
    socket.on('close', () => upstream.destroy())
  }

  /**
   * Shutdown: every WebSocket gets a close frame with 1001 (going away) in both directions, then
   * its tunnel ends. Other upgraded tunnels just end.
   */
  function closeTunnels (): void {
    for (const { client, upstream, websocket } of tunnels) {
      upstream.unpipe(client)
      client.unpipe(upstream)
      if (websocket) {
        client.write(WS_CLOSE_GOING_AWAY)
        upstream.write(maskedClose())
      }
      client.end()
      upstream.end()
      // Read (and drop) what the peers still send, such as their close frames, so both sockets
      // see the other side's end and close; whatever lingers is cut a second later.
      client.resume()
      upstream.resume()
      setTimeout(() => { client.destroy(); upstream.destroy() }, 1000).unref()
    }
    tunnels.clear()
  }

  async function close (): Promise<void> {
    closeTunnels()
    await Promise.all([...agents.values()].map(a => a.close()))
    await upstreamTls.close()
    await http2Sessions.close()
  }

  return { handle, handleUpgrade, closeTunnels, close }
}

declare module 'fastify' {
  interface FastifyReply {
    /** What the proxy decided, for the access log. */
    ingressd: RequestInfo
  }
}
