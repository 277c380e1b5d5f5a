/**
 * HTTP-to-HTTPS redirects as ingress-nginx makes them: a host with TLS redirects plain HTTP with
 * 308 to the same host, path and query over HTTPS, unless its ingress says
 * `nginx.ingress.kubernetes.io/ssl-redirect: "false"`; `force-ssl-redirect: "true"` redirects
 * even a host without TLS. A request a trusted proxy forwards with `X-Forwarded-Proto: https`
 * already came over HTTPS and is not redirected.
 */
import type { IncomingMessage } from 'node:http'
import type { FastifyReply } from 'fastify'
import { normalizeHost } from './host.js'
import type { Route } from './route-table.js'

/** Where redirects point. */
export interface HttpsRedirectOptions {
  /**
   * The port written in the Location (left out when 443): INGRESSD_HTTPS_REDIRECT_PORT, else the
   * HTTPS listener's. Undefined: there is no HTTPS to redirect to, so nothing is redirected.
   */
  port: () => number | undefined
}

/** What the redirect decision depends on. */
export interface RedirectFacts {
  /** The route the request matched, if any. */
  route: Route | undefined
  /** The scheme the client used: the connection's, or X-Forwarded-Proto from a trusted proxy (lowercase). */
  scheme: string
  /** The host for the Location: normalized (lowercase, no port), `[v6]` in brackets. */
  host: string
  /** Path and query as the client sent them (origin form). */
  target: string
  /** The HTTPS port for the Location; undefined: no HTTPS listener. */
  httpsPort: number | undefined
}

/** A decided redirect: where to, and the route that asked for it (for the access log). */
export interface HttpsRedirect {
  location: string
  route: Route
}

/** The Location to redirect to, or undefined when the request is proxied as it is. Pure. */
export function sslRedirectLocation (facts: RedirectFacts): string | undefined {
  const { route, httpsPort } = facts
  if (route === undefined || httpsPort === undefined || facts.scheme !== 'http') return undefined
  const settings = route.settings
  // force-ssl-redirect wins over ssl-redirect "false", as in ingress-nginx's Lua.
  if (!settings.forceSslRedirect && !(route.tls && settings.sslRedirect !== false)) return undefined
  return `https://${facts.host}${httpsPort === 443 ? '' : `:${httpsPort}`}${facts.target}`
}

function firstValue (value: string | string[] | undefined): string | undefined {
  const text = Array.isArray(value) ? value[0] : value
  if (text === undefined) return undefined
  const comma = text.indexOf(',')
  return (comma === -1 ? text : text.slice(0, comma)).trim().toLowerCase()
}

/** The request target in origin form: an absolute-form target (`GET http://a/x`) gives its path and query. */
function originForm (url: string): string {
  if (url.startsWith('/')) return url
  try {
    const parsed = new URL(url)
    return `${parsed.pathname}${parsed.search}`
  } catch {
    return '/'
  }
}

/**
 * Builds the redirect check of the plain-HTTP listener: given a request, the route it matched
 * (the proxy has looked it up already), its normalized host and whether its peer is a trusted
 * proxy, the redirect to send, or undefined to proxy.
 */
export function createHttpsRedirect (options: HttpsRedirectOptions): (req: IncomingMessage, route: Route | undefined, host: string, fromProxy: boolean) => HttpsRedirect | undefined {
  return (req, route, host, fromProxy) => {
    if (route === undefined || (!route.tls && !route.settings.forceSslRedirect)) return undefined
    const httpsPort = options.port()
    if (httpsPort === undefined) return undefined
    const scheme = (fromProxy ? firstValue(req.headers['x-forwarded-proto']) : undefined) ?? 'http'
    const forwardedHost = fromProxy ? normalizeHost(firstValue(req.headers['x-forwarded-host'])) : undefined
    const location = sslRedirectLocation({ route, scheme, host: forwardedHost ?? host, target: originForm(req.url ?? '/'), httpsPort })
    return location === undefined ? undefined : { location, route }
  }
}

/** Answers with the redirect: 308 keeps the method and body, as ingress-nginx's default http-redirect-code. */
export function sendHttpsRedirect (reply: FastifyReply, redirect: HttpsRedirect, requestId: string): FastifyReply {
  reply.ingressd = { route: redirect.route }
  return reply.code(308)
    .header('location', redirect.location)
    .header('content-type', 'text/plain; charset=utf-8')
    .header('server', 'ingressd')
    .header('x-request-id', requestId)
    .send(redirectBody(redirect.location))
}

/** The redirect's body: the status line and where to go, as text. */
export function redirectBody (location: string): string {
  return `308 Permanent Redirect\nlocation: ${location}\n`
}
