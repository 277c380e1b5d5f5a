/**
 * HTTP/2 to the upstream, for the routes whose backend-protocol is GRPC (h2c: HTTP/2 without TLS,
 * with prior knowledge), GRPCS (h2 over TLS) or H2C. undici's HTTP/2 (allowH2) only comes from
 * ALPN over TLS and cannot do h2c, so these go through node:http2: one session per upstream
 * endpoint (and TLS settings), shared by every request to it, kept across route-table swaps, and
 * closed when it has carried nothing for a while or when its endpoint left the table.
 *
 * A request is one stream: the client's headers (forwarded as for any route) and body go up as
 * they come, the response's headers, messages and trailers come back as they come, with
 * backpressure both ways. Trailers (`grpc-status`, `grpc-message`, custom metadata) pass through;
 * a trailers-only response stays one.
 */
import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders as Http2IncomingHeaders, type OutgoingHttpHeaders, type SecureClientSessionOptions, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { ErrorCode } from '../errors.js'
import { HOP_BY_HOP, clientResponseHeaders } from './forwarded.js'
import type { RouteTable, Upstream } from './route-table.js'
import { requestHasBody } from './http2-compat.js'

/** How long a session that carries no stream stays open. */
const IDLE_SESSION_MS = 60_000

/** TLS to the upstream (GRPCS): the options of a node:tls connection, and a key naming them for the pool. */
export interface UpstreamTls {
  readonly key: string
  readonly options: SecureClientSessionOptions
}

/** The session pool: one HTTP/2 session per endpoint, scheme and TLS settings. */
export class Http2Sessions {
  readonly #sessions = new Map<string, { session: ClientHttp2Session, endpoint: string }>()
  #swept: RouteTable | undefined

  /** The session to `upstream`, made when there is none (or the last one closed or was told to go away). */
  session (upstream: Upstream, tls: UpstreamTls | undefined, connectTimeoutMs: number): ClientHttp2Session {
    const endpoint = upstream.host.includes(':') ? `[${upstream.host}]:${upstream.port}` : `${upstream.host}:${upstream.port}`
    const key = tls === undefined ? `http://${endpoint}` : `https://${endpoint}#${tls.key}`
    const known = this.#sessions.get(key)
    if (known !== undefined && !known.session.closed && !known.session.destroyed) return known.session
    const session = connect(`${tls === undefined ? 'http' : 'https'}://${endpoint}`, tls?.options ?? {})
    const entry = { session, endpoint: `${upstream.host}:${upstream.port}` }
    this.#sessions.set(key, entry)
    const forget = (): void => { if (this.#sessions.get(key) === entry) this.#sessions.delete(key) }
    const timer = setTimeout(() => session.destroy(Object.assign(new Error('connect timeout'), { code: 'UND_ERR_CONNECT_TIMEOUT' })), connectTimeoutMs)
    session.once('connect', () => clearTimeout(timer))
    // A session error fails its streams (each sees it); the pool just stops handing it out.
    session.on('error', () => { clearTimeout(timer); forget() })
    session.once('close', () => { clearTimeout(timer); forget() })
    // GOAWAY: the streams in flight finish, new ones go to a new session.
    session.once('goaway', forget)
    session.setTimeout(IDLE_SESSION_MS, () => { forget(); session.close() })
    return session
  }

  /**
   * Closes (gracefully: streams in flight finish) the sessions whose endpoint is in no route of
   * `table` that speaks HTTP/2 upstream. Looks at a table once; free while no session is open.
   */
  retain (table: RouteTable, usesHttp2: (protocol: string | undefined) => boolean): void {
    if (this.#swept === table) return
    this.#swept = table
    if (this.#sessions.size === 0) return
    const live = new Set<string>()
    for (const route of table.routes) {
      if (!usesHttp2(route.settings.backendProtocol)) continue
      for (const u of route.backend.upstreams) live.add(`${u.host}:${u.port}`)
    }
    for (const [key, entry] of this.#sessions) {
      if (live.has(entry.endpoint)) continue
      this.#sessions.delete(key)
      entry.session.close()
    }
  }

  /** Closes every session (shutdown): streams in flight finish, or are cut after `graceMs`. */
  async close (graceMs = 1000): Promise<void> {
    const sessions = [...this.#sessions.values()].map(e => e.session)
    this.#sessions.clear()
    await Promise.all(sessions.map(async session => await new Promise<void>(resolve => {
      if (session.destroyed) return resolve()
      const timer = setTimeout(() => session.destroy(), graceMs)
      timer.unref()
      session.close(() => { clearTimeout(timer); resolve() })
    })))
  }

  get size (): number {
    return this.#sessions.size
  }
}

/** How one stream ended, when it did not end well. */
export interface ExchangeFailure {
  code: ErrorCode
  /** True when the client's response had begun: only its trailers (or a reset) can say so. */
  started: boolean
  error?: Error
}

/** One request forwarded over an HTTP/2 session. */
export interface Http2Exchange {
  req: IncomingMessage | Http2ServerRequest
  res: ServerResponse | Http2ServerResponse
  session: ClientHttp2Session
  scheme: 'http' | 'https'
  /** The request target sent upstream (path and query). */
  path: string
  /** The headers as forwarded (upstreamRequestHeaders and the route's edits); `host` becomes `:authority`. */
  headers: Record<string, string | string[]>
  requestId: string
  /** proxy-read-timeout: the longest time the stream may carry nothing, either way. */
  idleTimeoutMs: number
  /** The client's deadline (grpc-timeout), if any: the stream is cancelled when it passes. */
  deadlineMs?: number
  /** Headers added to the client's response (HSTS, the chain's), by upstream status. */
  extraHeaders?: (status: number) => Readonly<Record<string, string | string[]>> | undefined
  /** Called when the client's response begins. */
  onStart: () => void
  /** Called once with the relayed body size when the exchange ends well. */
  onEnd?: (bytes: number) => void
}

/** Request headers that HTTP/2 forbids or that the gateway sets itself. */
const NOT_ON_HTTP2 = new Set([...HOP_BY_HOP, 'host'])

function requestHeaders (x: Http2Exchange): OutgoingHttpHeaders {
  const host = x.headers.host
  const out: OutgoingHttpHeaders = {
    ':method': x.req.method ?? 'GET',
    ':scheme': x.scheme,
    ':path': x.path,
    ':authority': Array.isArray(host) ? host[0] : host
  }
  for (const name in x.headers) if (!NOT_ON_HTTP2.has(name)) out[name] = x.headers[name]
  // gRPC servers may insist on it, and it is the only TE HTTP/2 allows (RFC 9113 8.2.2).
  out.te = 'trailers'
  return out
}

/** The upstream's response or trailer headers as the client gets them: no pseudo-headers, no hop-by-hop ones. */
function responseHeaders (headers: Http2IncomingHeaders, requestId: string): Record<string, string | string[]> {
  const plain: Record<string, string | string[] | undefined> = {}
  for (const name in headers) if (name.charCodeAt(0) !== 58) plain[name] = headers[name]
  return clientResponseHeaders(plain, requestId)
}

function trailersOf (headers: Http2IncomingHeaders): Record<string, string> {
  const out: Record<string, string> = {}
  for (const name in headers) {
    if (name.charCodeAt(0) === 58 || HOP_BY_HOP.has(name)) continue
    const value = headers[name]
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(', ') : String(value)
  }
  return out
}

/** An error's code, or the code of the error that caused it (a pending stream cancelled by its session's failure). */
function errorCodeOf (err: Error | undefined): string {
  const e = err as (Error & { code?: unknown, cause?: { code?: unknown } }) | undefined
  const cause = e?.cause?.code
  return String(typeof cause === 'string' ? cause : e?.code ?? '')
}

function failureCode (err: Error | undefined, timedOut: boolean): ErrorCode {
  if (timedOut) return 'INGRESSD_ERR_UPSTREAM_TIMEOUT'
  switch (errorCodeOf(err)) {
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'ETIMEDOUT':
      return 'INGRESSD_ERR_UPSTREAM_TIMEOUT'
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'INGRESSD_ERR_UPSTREAM_UNREACHABLE'
    case 'ERR_HTTP2_ERROR':
    case 'ERR_HTTP2_INVALID_HEADER_VALUE':
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
      return 'INGRESSD_ERR_UPSTREAM_BAD_RESPONSE'
  }
  return 'INGRESSD_ERR_UPSTREAM_RESET'
}

/**
 * Forwards one request over `x.session` and relays the answer. Resolves when the exchange is
 * over: undefined when it ended well (or the client went away), else what failed, for the caller
 * to answer (before the response began) or to end the response with (after).
 */
export async function forwardOverHttp2 (x: Http2Exchange): Promise<ExchangeFailure | undefined> {
  const { req, res } = x
  const hasBody = requestHasBody(req as IncomingMessage)
  let stream: ClientHttp2Stream
  try {
    stream = x.session.request(requestHeaders(x), { endStream: !hasBody })
  } catch (err) {
    return { code: failureCode(err as Error, false), started: false, error: err as Error }
  }
  return await new Promise(resolve => {
    let started = false
    let ended = false
    let timedOut = false
    let clientGone = false
    let failure: Error | undefined
    let bytes = 0
    let trailers: Record<string, string> | undefined
    /** The response went to the client whole, as one trailers-only HEADERS frame. */
    let answered = false
    const deadline = x.deadlineMs === undefined
      ? undefined
      : setTimeout(() => { timedOut = true; stream.close(constants.NGHTTP2_CANCEL) }, x.deadlineMs)
    stream.setTimeout(x.idleTimeoutMs, () => { timedOut = true; stream.close(constants.NGHTTP2_CANCEL) })
    const onClientClose = (): void => {
      if (res.writableFinished) return
      clientGone = true
      stream.close(constants.NGHTTP2_CANCEL)
    }
    res.once('close', onClientClose)
    const done = (outcome: ExchangeFailure | undefined): void => {
      if (deadline !== undefined) clearTimeout(deadline)
      res.removeListener('close', onClientClose)
      resolve(outcome)
    }
    if (hasBody) {
      req.pipe(stream)
      // A client that stops sending mid-body cancels the stream; the upstream is not left waiting.
      req.once('error', () => stream.close(constants.NGHTTP2_CANCEL))
    }
    stream.on('response', (headers, flags) => {
      const status = Number(headers[':status'])
      // 1xx interim responses stay between the gateway and the upstream.
      if (status < 200) return
      const out = responseHeaders(headers, x.requestId)
      const extra = x.extraHeaders?.(status)
      if (extra !== undefined) Object.assign(out, extra)
      started = true
      x.onStart()
      const h2 = (res as Http2ServerResponse).stream as Http2ServerResponse['stream'] | undefined
      if ((flags & constants.NGHTTP2_FLAG_END_STREAM) !== 0 && h2 !== undefined) {
        // Trailers-only (a gRPC status with no message): one HEADERS frame to the client too.
        res.statusCode = status
        answered = true
        if (!h2.destroyed) h2.respond({ ...out, ':status': status }, { endStream: true })
        return
      }
      res.writeHead(status, out)
    })
    stream.on('data', (chunk: Buffer) => {
      bytes += chunk.length
      if (!(res as ServerResponse).write(chunk)) {
        stream.pause()
        res.once('drain', () => stream.resume())
      }
    })
    stream.on('trailers', (headers) => { trailers = trailersOf(headers) })
    stream.on('end', () => { ended = true })
    stream.on('error', (err: Error) => { failure ??= err })
    stream.once('close', () => {
      if (clientGone) return done(undefined)
      const rst = stream.rstCode
      const clean = ended && !timedOut && (rst === undefined || rst === constants.NGHTTP2_NO_ERROR)
      if (clean) {
        if (!answered && !res.writableEnded && !res.destroyed) {
          if (trailers !== undefined) res.addTrailers(trailers)
          res.end()
        }
        x.onEnd?.(bytes)
        return done(undefined)
      }
      done({ code: failureCode(failure, timedOut), started, ...(failure === undefined ? {} : { error: failure }) })
    })
  })
}
