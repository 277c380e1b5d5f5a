/**
 * ingress-nginx external auth (auth-url and its satellites: the oauth2-proxy pattern), as
 * ingress-nginx's template builds it around nginx's auth_request. Before a request goes upstream,
 * a sub-request without a body but with the client's headers asks the auth service; 2xx lets the
 * request through (with the headers auth-response-headers names taken from the auth response),
 * 401 and 403 go back to the client (401 as a redirect to auth-signin when set), anything else,
 * a timeout or a connection failure is a 500: never let through.
 *
 * Where ingressd departs from nginx, on purpose:
 * - Sub-requests share one keep-alive pool (nginx opens a connection per sub-request unless
 *   auth-keepalive is set); the auth-keepalive* keys are validated and have no further effect.
 * - X-Forwarded-Host is set to `$best_http_host`, as on the upstream request; nginx passes the
 *   client's own through, which lets a client steer the redirects an auth service builds from it.
 *   X-Forwarded-Proto is removed, as nginx blanks it.
 * - Each of the auth service's Set-Cookie fields reaches the client as its own field (nginx's
 *   `$upstream_http_set_cookie` joins them into one, which browsers read as one cookie).
 */
import { HOP_BY_HOP } from '../forwarded.js'
import { Agent, type Dispatcher } from 'undici'
import type { AnnotationProblem, AnnotationReader, FamilyParse, PolicyAnswer, PolicyContext, PolicyStep, StepResult } from './policy.js'
import type { IncomingMessage } from 'node:http'
import { NGINX_PREFIX } from '../../resources/annotation-prefix.js'
import { compileTemplate, renderTemplate, requestUri, sampleTemplate, type NginxTemplate } from './nginx-variables.js'

export const EXTERNAL_AUTH_KEYS = [
  'auth-url',
  'auth-method',
  'auth-signin',
  'auth-signin-redirect-param',
  'auth-response-headers',
  'auth-request-redirect',
  'auth-cache-key',
  'auth-cache-duration',
  'auth-always-set-cookie',
  'auth-keepalive',
  'auth-keepalive-requests',
  'auth-keepalive-timeout',
  'auth-keepalive-share-vars',
  'auth-proxy-set-headers',
  'enable-global-auth'
] as const

/** ingress-nginx's default for auth-cache-duration (authreq.DefaultCacheDuration). */
export const DEFAULT_CACHE_DURATION = '200 202 401 5m'

/** One `proxy_cache_valid` entry: the statuses it covers (undefined: `any`) and for how long. */
export interface CacheValidity {
  readonly codes?: readonly number[]
  readonly ms: number
}

/** Where sub-requests go. With a fixed scheme and authority the origin is worked out once and only the path is rendered per request. */
export interface AuthTarget {
  readonly template: NginxTemplate
  /** `https://auth.example.com:8443`, when no variable is in the scheme or authority. */
  readonly origin?: string
  /** The Host sent with a fixed origin: the URL's host name without its port, as ingress-nginx sends it. */
  readonly hostHeader?: string
  /** Path and query, with a fixed origin. */
  readonly path?: NginxTemplate
}

/** The external-auth annotations of one ingress, parsed, validated and compiled. */
export interface ExternalAuthSpec {
  readonly url: AuthTarget
  /** auth-method; undefined: GET, and no X-Original-URI / X-Scheme (as ingress-nginx sends them only with auth-method). */
  readonly method?: string
  /** The Location of the 401 redirect: auth-signin with the redirect parameter appended as ingress-nginx's buildAuthSignURL does. */
  readonly signin?: NginxTemplate
  /** auth-response-headers, lowercase. */
  readonly responseHeaders: readonly string[]
  /** auth-request-redirect (X-Auth-Request-Redirect); undefined: `$request_uri`. */
  readonly requestRedirect?: NginxTemplate
  /** auth-cache-key and auth-cache-duration; undefined: no cache. */
  readonly cache?: { readonly key: NginxTemplate, readonly validity: readonly CacheValidity[] }
  /** auth-always-set-cookie: the auth service's cookies go on every response, not only on 2xx and 3xx. */
  readonly alwaysSetCookie: boolean
}

const URL_MESSAGE = 'expected an http:// or https:// URL, which may hold nginx variables such as $host'
const BOOLEAN_MESSAGE = 'expected "true" or "false"'
const INTEGER_MESSAGE = 'expected a whole number'

/** ingress-nginx's accepted auth-method values (authreq methodsRegex), CONNECT aside. */
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE'])

/** Headers an auth response may not set on the upstream request: they frame or route the request, which the gateway owns. */
const NOT_COPIED = new Set(['host', 'content-length', ...HOP_BY_HOP])

/** Client headers the sub-request does not carry: hop-by-hop ones (forwarded.ts's list) and the body's framing, as nginx sends no body. */
const NOT_FORWARDED = new Set([...HOP_BY_HOP, 'content-length'])

const DURATION_UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000, M: 2_592_000_000, y: 31_536_000_000 }

/** Statuses nginx's `add_header` (without `always`) writes on, so the only ones the auth service's cookies reach unless auth-always-set-cookie. */
const COOKIE_STATUSES = new Set([200, 201, 204, 206, 301, 302, 303, 304, 307, 308])

/** Splits an absolute http(s) URL into its origin, the Host nginx sends (host name, no port) and the path with query; an error in words otherwise. Never echoes the value (it may hold a client's credentials). */
function splitUrl (text: string): { origin: string, hostHeader: string, path: string } | { error: string } {
  const m = /^(https?):\/\/([^/?#]*)(.*)$/is.exec(text)
  if (m === null) return { error: 'not an http:// or https:// URL' }
  const authority = m[2] as string
  if (authority === '') return { error: 'the URL has no host' }
  if (authority.includes('@')) return { error: 'credentials in the URL are not supported' }
  let url: URL
  try {
    url = new URL(`${(m[1] as string).toLowerCase()}://${authority}`)
  } catch {
    return { error: 'the URL\'s host or port is malformed' }
  }
  if (url.hostname === '' || url.hostname.includes('..')) return { error: 'the URL\'s host is malformed' }
  const rest = m[3] as string
  return { origin: url.origin, hostHeader: url.hostname, path: rest.startsWith('/') ? rest : `/${rest}` }
}

/** Parses a cache-duration list (`200 202 10m, 401 1m`) as ingress-nginx validates it; several times add up (`1h 30m`). */
export function parseCacheDurations (value: string): { validity: CacheValidity[] } | { error: string } {
  const validity: CacheValidity[] = []
  for (const entry of value.split(',').map(s => s.trim()).filter(s => s !== '')) {
    const codes: number[] = []
    let any = false
    let ms: number | undefined
    for (const token of entry.split(/\s+/)) {
      if (/^\d{3}$/.test(token) || token === 'any') {
        if (ms !== undefined) return { error: `"${entry}": a status code after the time; write the codes first, like "200 202 5m"` }
        if (token === 'any') any = true
        else {
          const code = Number(token)
          if (code < 100 || code > 599) return { error: `"${entry}": ${token} is not an HTTP status` }
          codes.push(code)
        }
        continue
      }
      const d = /^(\d{1,9})(ms|s|m|h|d|w|M|y)$/.exec(token)
      if (d === null) return { error: `"${entry}": "${token}" is neither a status code nor a time such as 30s, 5m or 1h` }
      ms = (ms ?? 0) + Number(d[1]) * (DURATION_UNITS[d[2] as string] as number)
    }
    if (ms === undefined) return { error: `"${entry}" has no time, like "5m"` }
    // nginx's proxy_cache_valid with a time alone caches 200, 301 and 302.
    validity.push(Object.freeze(any ? { ms } : { codes: Object.freeze(codes.length > 0 ? codes : [200, 301, 302]), ms }))
  }
  if (validity.length === 0) return { error: 'expected a list such as "200 202 10m, 401 1m"' }
  return { validity }
}

/** The redirect a 401 gets, as ingress-nginx's buildAuthSignURL builds it: the return URL appended unless the sign-in URL carries the parameter already. */
function signinSource (signin: string, param: string): string {
  const q = signin.indexOf('?')
  const hash = signin.indexOf('#', q === -1 ? 0 : q)
  const query = q === -1 ? '' : signin.slice(q + 1, hash === -1 ? undefined : hash)
  const pairs = query.split('&').filter(s => s !== '')
  const back = `${param}=$pass_access_scheme://$http_host$escaped_request_uri`
  if (pairs.length === 0) return `${signin}?${back}`
  // Go's url.Values.Get: the first value for the key counts, and only when it is not empty.
  const first = pairs.find(p => safeDecode(p.split('=')[0] as string) === param)
  if (first !== undefined && first.includes('=') && first.slice(first.indexOf('=') + 1) !== '') return signin
  return `${signin}&${back}`
}

function safeDecode (s: string): string {
  try {
    return decodeURIComponent(s)
  } catch {
    return s
  }
}

const CONTROL = /[\x00-\x1f\x7f]/ // eslint-disable-line no-control-regex

/**
 * Reads the external-auth annotations. Nothing is enabled without auth-url; malformed values are
 * problems (refused on write, naming the key) whether or not auth-url is set. auth-proxy-set-headers
 * (a ConfigMap ingressd does not have) is a denial: the paths answer 503 rather than ask the auth
 * service without the headers it expects.
 */
export function parseExternalAuth (read: AnnotationReader): FamilyParse<ExternalAuthSpec> {
  const problems: AnnotationProblem[] = []
  const denials: AnnotationProblem[] = []
  const problem = (name: string, message: string): void => { problems.push({ key: NGINX_PREFIX + name, message }) }
  const value = (name: string): string | undefined => read(name)?.trim()
  const template = (name: string, raw: string): NginxTemplate | undefined => {
    const compiled = compileTemplate(raw)
    if ('error' in compiled) {
      problem(name, `${compiled.error}, got ${JSON.stringify(raw)}`)
      return undefined
    }
    return compiled.template
  }
  const urlTemplate = (name: string, raw: string, allowPath: boolean): NginxTemplate | undefined => {
    if (raw === '' || /\s/.test(raw) || CONTROL.test(raw)) {
      problem(name, `${URL_MESSAGE} (no spaces), got ${JSON.stringify(raw)}`)
      return undefined
    }
    const t = template(name, raw)
    if (t === undefined) return undefined
    const sample = sampleTemplate(t)
    if (allowPath && sample.startsWith('/') && !sample.startsWith('//')) return t
    const split = splitUrl(sample)
    let parses = !('error' in split)
    try {
      new URL(sample) // eslint-disable-line no-new
    } catch {
      parses = false
    }
    if (!parses) {
      problem(name, `${URL_MESSAGE}${'error' in split ? ` (${split.error})` : ''}, got ${JSON.stringify(raw)}`)
      return undefined
    }
    return t
  }
  const bool = (name: string): boolean | undefined => {
    const v = value(name)
    if (v === undefined) return undefined
    if (v === 'true' || v === 'false') return v === 'true'
    problem(name, `${BOOLEAN_MESSAGE}, got ${JSON.stringify(v)}`)
    return undefined
  }

  const urlValue = value('auth-url')
  const url = urlValue === undefined ? undefined : urlTemplate('auth-url', urlValue, false)

  let method: string | undefined
  const methodValue = value('auth-method')
  if (methodValue !== undefined) {
    if (METHODS.has(methodValue)) method = methodValue
    else if (methodValue === 'CONNECT') denials.push({ key: `${NGINX_PREFIX}auth-method`, message: 'CONNECT opens a tunnel and cannot ask an auth service; the paths of this ingress are denied (503) rather than served unprotected' })
    else problem('auth-method', `expected an HTTP method in capitals: ${[...METHODS].join(', ')}, got ${JSON.stringify(methodValue)}`)
  }

  const param = value('auth-signin-redirect-param') ?? 'rd'
  if (!/^[A-Za-z0-9._~-]+$/.test(param)) problem('auth-signin-redirect-param', `expected a query parameter name (letters, digits, ".", "_", "~", "-"), got ${JSON.stringify(param)}`)
  const signinValue = value('auth-signin')
  let signin: NginxTemplate | undefined
  if (signinValue !== undefined && urlTemplate('auth-signin', signinValue, true) !== undefined) signin = template('auth-signin', signinSource(signinValue, param))

  const responseHeaders: string[] = []
  const headersValue = value('auth-response-headers')
  if (headersValue !== undefined) {
    const names = headersValue.split(',').map(s => s.trim()).filter(s => s !== '')
    if (names.length === 0) problem('auth-response-headers', 'expected a comma-separated list of header names, got an empty value')
    for (const name of names) {
      const lower = name.toLowerCase()
      if (!/^[A-Za-z0-9_-]+$/.test(name)) problem('auth-response-headers', `expected a comma-separated list of header names (letters, digits, "-", "_"), got ${JSON.stringify(name)}`)
      else if (NOT_COPIED.has(lower)) problem('auth-response-headers', `${name} cannot be taken from the auth response: the gateway sets it on the upstream request itself`)
      else if (!responseHeaders.includes(lower)) responseHeaders.push(lower)
    }
  }

  const redirectValue = read('auth-request-redirect')
  let requestRedirect: NginxTemplate | undefined
  if (redirectValue !== undefined) {
    if (CONTROL.test(redirectValue)) problem('auth-request-redirect', `expected a header value without control characters, got ${JSON.stringify(redirectValue)}`)
    else if (redirectValue.trim() !== '') requestRedirect = template('auth-request-redirect', redirectValue.trim())
  }

  const keyValue = value('auth-cache-key')
  let cacheKey: NginxTemplate | undefined
  if (keyValue !== undefined) {
    if (keyValue === '' || CONTROL.test(keyValue)) problem('auth-cache-key', `expected an expression of nginx variables such as "$remote_user$http_authorization", got ${JSON.stringify(keyValue)}`)
    else cacheKey = template('auth-cache-key', keyValue)
  }
  const durationValue = value('auth-cache-duration')
  const durations = parseCacheDurations(durationValue === undefined || durationValue === '' ? DEFAULT_CACHE_DURATION : durationValue)
  if ('error' in durations) problem('auth-cache-duration', `expected status codes and a time per entry, like "200 202 10m, 401 1m": ${durations.error}`)

  const alwaysSetCookie = bool('auth-always-set-cookie') ?? false
  // Accepted for compatibility: ingressd pools the auth service's connections itself, and has no global auth.
  bool('auth-keepalive-share-vars')
  bool('enable-global-auth')
  for (const name of ['auth-keepalive', 'auth-keepalive-requests', 'auth-keepalive-timeout']) {
    const v = value(name)
    if (v !== undefined && !/^[-+]?\d{1,9}$/.test(v)) problem(name, `${INTEGER_MESSAGE}, got ${JSON.stringify(v)}`)
  }

  if (problems.length > 0 || url === undefined) return { problems, denials: [] }
  const proxySetHeaders = value('auth-proxy-set-headers')
  if (proxySetHeaders !== undefined && proxySetHeaders !== '') {
    denials.push({ key: `${NGINX_PREFIX}auth-proxy-set-headers`, message: `it names a ConfigMap (${JSON.stringify(proxySetHeaders)}) of headers for the auth sub-request, and ingressd has no ConfigMaps: it cannot be honoured; the paths of this ingress are denied (503) rather than asking the auth service without those headers` })
  }

  const target: { -readonly [K in keyof AuthTarget]: AuthTarget[K] } = { template: url }
  const schemeEnd = url.source.indexOf('://') + 3
  const authorityEnd = url.source.slice(schemeEnd).search(/[/?#]/)
  const fixedPart = authorityEnd === -1 ? url.source : url.source.slice(0, schemeEnd + authorityEnd)
  if (!fixedPart.includes('$')) {
    const split = splitUrl(fixedPart)
    const rest = authorityEnd === -1 ? '' : url.source.slice(schemeEnd + authorityEnd)
    const path = compileTemplate(rest.startsWith('/') ? rest : `/${rest}`)
    if (!('error' in split) && 'template' in path) {
      target.origin = split.origin
      target.hostHeader = split.hostHeader
      target.path = path.template
    }
  }
  const spec: { -readonly [K in keyof ExternalAuthSpec]: ExternalAuthSpec[K] } = {
    url: Object.freeze(target),
    responseHeaders: Object.freeze(responseHeaders),
    alwaysSetCookie
  }
  if (method !== undefined) spec.method = method
  if (signin !== undefined) spec.signin = signin
  if (requestRedirect !== undefined) spec.requestRedirect = requestRedirect
  if (cacheKey !== undefined && 'validity' in durations) spec.cache = Object.freeze({ key: cacheKey, validity: Object.freeze(durations.validity) })
  return { spec: Object.freeze(spec), problems, denials }
}

/** Settings of the sub-requests, the same for every route as nginx's auth locations inherit the global proxy timeouts. */
export interface ExternalAuthClientOptions {
  /** Connect timeout (the gateway's proxy-connect-timeout), ms; default 5000, as nginx's. */
  connectTimeoutMs?: number
  /** Longest wait for the answer's head, and between two reads of its body (the gateway's proxy-read-timeout), ms; default 60000, as nginx's. */
  readTimeoutMs?: number
  /** Body bytes read (and dropped) before the connection is cut instead; default 64 KiB. */
  bodyLimit?: number
}

/** What a sub-request came back with. */
export interface AuthResponse {
  status: number
  headers: Record<string, string | string[] | undefined>
}

/** Methods whose sub-request may be sent again after the connection broke (RFC 9110 9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE'])

/**
 * The auth sub-requests' connection pool: one undici Agent, keep-alive, for every route's auth
 * service. Certificates of https auth URLs are not verified, as nginx's proxy_pass does not
 * verify them (ingress-nginx sets no proxy_ssl_verify in its auth location); SNI is sent.
 */
export class ExternalAuthClient {
  readonly #agent: Agent
  readonly readTimeoutMs: number
  readonly connectTimeoutMs: number
  readonly #bodyLimit: number
  #closing: Promise<void> | undefined

  constructor (opts: ExternalAuthClientOptions = {}) {
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 5000
    this.readTimeoutMs = opts.readTimeoutMs ?? 60_000
    this.#bodyLimit = opts.bodyLimit ?? 64 * 1024
    // keepAliveTimeout under the common 5 s idle timeout of servers, as the proxy's pools.
    this.#agent = new Agent({ connect: { timeout: this.connectTimeoutMs, rejectUnauthorized: false }, keepAliveTimeout: 4000, keepAliveMaxTimeout: 4000 })
  }

  /**
   * Sends one sub-request without a body and reads its answer's body to the end (dropped), or up to
   * the body limit and then cuts the connection. A connection that broke before any answer is tried
   * once more for an idempotent method: a pooled connection the service had just closed.
   */
  async send (origin: string, path: string, method: string, headers: Record<string, string>): Promise<AuthResponse> {
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await this.#agent.request({ origin, path, method: method as Dispatcher.HttpMethod, headers, headersTimeout: this.readTimeoutMs, bodyTimeout: this.readTimeoutMs })
        await res.body.dump({ limit: this.#bodyLimit })
        return { status: res.statusCode, headers: res.headers }
      } catch (err) {
        const code = (err as { code?: string }).code
        if (attempt === 1 && IDEMPOTENT.has(method) && (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET')) continue
        throw err
      }
    }
  }

  /** Closes the pool (at shutdown); sub-requests after it fail, answered 500. */
  async close (): Promise<void> {
    this.#closing ??= this.#agent.close()
    await this.#closing
  }
}

/** True when nginx would write the auth service's Set-Cookie on a response of this status: `add_header` without `always` writes only on these, unless auth-always-set-cookie. */
export function cookieAllowedForStatus (status: number, always: boolean): boolean {
  return always || COOKIE_STATUSES.has(status)
}

/** The auth cookies a context's responseHeaders carry that only some statuses may get (auth-always-set-cookie off). */
const gatedCookies = new WeakMap<PolicyContext, string[]>()

/**
 * The response headers the chain left for the client (ctx.responseHeaders), for a response of
 * `status`: the auth service's cookies taken out where nginx would not write them (an upstream
 * 404 or 500, say). What the proxy should add to the upstream's response once its status is known.
 */
export function responseHeadersForStatus (ctx: PolicyContext, status: number): Record<string, string | string[]> | undefined {
  const headers = ctx.responseHeaders
  const gated = gatedCookies.get(ctx)
  if (headers === undefined || gated === undefined || COOKIE_STATUSES.has(status)) return headers
  const remaining = [headers['set-cookie'] ?? []].flat()
  for (const cookie of gated) {
    const i = remaining.indexOf(cookie)
    if (i !== -1) remaining.splice(i, 1)
  }
  const out = { ...headers }
  if (remaining.length === 0) delete out['set-cookie']
  else out['set-cookie'] = remaining
  return out
}

/** What an auth answer means for the request; what the cache keeps. */
interface Outcome {
  status: number
  /** 2xx: the upstream request's headers (auth-response-headers), null to remove. */
  copy?: Record<string, string | string[] | null>
  /** 401: the WWW-Authenticate fields. */
  challenge?: string[]
  cookies?: string[]
}

interface CacheEntry { outcome: Outcome, expires: number }

/** Entries per route's cache; the least recently used goes first. */
const CACHE_ENTRIES = 10_000

function single (value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value
}

/**
 * How long nginx's proxy_cache would keep this answer, in ms (undefined: not at all): not with a
 * Set-Cookie or `Vary: *`; X-Accel-Expires, then Cache-Control (no-cache, no-store, private,
 * s-maxage, max-age), then Expires override auth-cache-duration, as they do in nginx by default.
 */
function cacheTtl (status: number, headers: AuthResponse['headers'], validity: readonly CacheValidity[], now: number): number | undefined {
  if (headers['set-cookie'] !== undefined) return undefined
  if (single(headers.vary)?.includes('*') === true) return undefined
  const accel = single(headers['x-accel-expires'])?.trim()
  if (accel !== undefined && /^\d+$/.test(accel)) return Number(accel) > 0 ? Number(accel) * 1000 : undefined
  const control = single(headers['cache-control'])
  if (control !== undefined) {
    if (/(^|[\s,])(no-cache|no-store|private)($|[\s,=])/i.test(control)) return undefined
    const age = /(?:^|[\s,])s-maxage\s*=\s*(\d+)/i.exec(control) ?? /(?:^|[\s,])max-age\s*=\s*(\d+)/i.exec(control)
    if (age !== null) return Number(age[1]) > 0 ? Number(age[1]) * 1000 : undefined
  }
  const expires = single(headers.expires)
  if (expires !== undefined) {
    const at = Date.parse(expires)
    return Number.isNaN(at) || at <= now ? undefined : at - now
  }
  for (const v of validity) {
    if (v.codes === undefined || v.codes.includes(status)) return v.ms > 0 ? v.ms : undefined
  }
  return undefined
}

/** How the step reports a failed sub-request, without a value from the request (the URL may hold a client's token). */
function failure (err: unknown, client: ExternalAuthClient): string {
  const code = String((err as { code?: unknown }).code ?? '')
  switch (code) {
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return `did not answer within ${client.readTimeoutMs} ms`
    case 'UND_ERR_CONNECT_TIMEOUT':
      return `did not accept a connection within ${client.connectTimeoutMs} ms`
    case 'ECONNREFUSED':
      return 'refused the connection'
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'its host name did not resolve'
    case 'UND_ERR_SOCKET':
    case 'ECONNRESET':
      return 'closed the connection before answering'
  }
  return `failed: ${code === '' ? (err as Error).name : code}: ${(err as Error).message}`
}

/** What binding a spec may be told besides the client. */
export interface ExternalAuthOptions {
  /** A failed sub-request (the 500 cases), in words; never a cookie or credential. */
  onError?: (message: string) => void
  /** Whether the request's peer is a trusted proxy: then X-Forwarded-Host/-Proto count for $best_http_host and $pass_access_scheme. */
  isTrustedPeer?: (req: IncomingMessage) => boolean
}

const FORBIDDEN: PolicyAnswer = Object.freeze({ status: 403, code: 'INGRESSD_ERR_AUTH_FORBIDDEN' })
const SERVICE_ERROR: PolicyAnswer = Object.freeze({ status: 500, code: 'INGRESSD_ERR_AUTH_SERVICE' })
const REQUIRED: PolicyAnswer = Object.freeze({ status: 401, code: 'INGRESSD_ERR_AUTH_REQUIRED' })

/** A template of known variables, compiled at load. */
function fixed (source: string): NginxTemplate {
  const compiled = compileTemplate(source)
  if ('error' in compiled) throw new Error(compiled.error)
  return compiled.template
}

/** The values ingress-nginx's auth location gives X-Original-URL, X-Forwarded-Host and X-Scheme. */
const ORIGINAL_URL = fixed('$scheme://$http_host$request_uri')
const BEST_HTTP_HOST = fixed('$best_http_host')
const PASS_ACCESS_SCHEME = fixed('$pass_access_scheme')

/**
 * The step for one ingress's external auth. Sub-requests go through `client`'s pool; with
 * auth-cache-key, answers are kept in a cache of this step's own (one per bound chain, so per
 * ingress, as nginx keys its cache by server and location).
 */
export function bindExternalAuth (spec: ExternalAuthSpec, client: ExternalAuthClient, opts: ExternalAuthOptions = {}): PolicyStep {
  const method = spec.method ?? 'GET'
  const copyNames = spec.responseHeaders
  const { onError, isTrustedPeer } = opts
  // nginx's proxy_cache keeps only GET and HEAD answers (proxy_cache_methods).
  const cacheSpec = spec.cache !== undefined && (method === 'GET' || method === 'HEAD') ? spec.cache : undefined
  const cache = cacheSpec === undefined ? undefined : new Map<string, CacheEntry>()
  const url = spec.url

  const report = (ctx: PolicyContext, reason: string): PolicyAnswer => {
    onError?.(`external auth (auth-url ${url.template.source}) for request ${ctx.requestId}: ${reason}`)
    return SERVICE_ERROR
  }

  /** The sub-request's headers: the client's, less hop-by-hop and framing ones, and what ingress-nginx's auth location sets. */
  const subrequestHeaders = (ctx: PolicyContext, hostHeader: string, trusted: boolean): Record<string, string> => {
    const incoming = ctx.req.headers
    const listed = incoming.connection === undefined ? [] : incoming.connection.split(',').map(s => s.trim().toLowerCase())
    const out: Record<string, string> = {}
    for (const name in incoming) {
      const value = incoming[name]
      if (value === undefined || NOT_FORWARDED.has(name) || name.startsWith(':') || listed.includes(name)) continue
      out[name] = Array.isArray(value) ? value.join(', ') : value
    }
    // nginx blanks X-Forwarded-Proto (`proxy_set_header X-Forwarded-Proto ""`): the header is not sent.
    delete out['x-forwarded-proto']
    const uri = requestUri(ctx.req)
    const set = (name: string, value: string): void => {
      // nginx sends no header whose proxy_set_header value comes out empty.
      if (value === '') delete out[name]
      else out[name] = value
    }
    set('host', hostHeader)
    set('x-original-url', renderTemplate(ORIGINAL_URL, ctx, trusted))
    set('x-original-method', ctx.method)
    set('x-sent-from', 'nginx-ingress-controller')
    set('x-real-ip', ctx.client)
    set('x-forwarded-for', ctx.client)
    set('x-forwarded-host', renderTemplate(BEST_HTTP_HOST, ctx, trusted))
    set('x-auth-request-redirect', spec.requestRedirect === undefined ? uri : renderTemplate(spec.requestRedirect, ctx, trusted))
    set('x-request-id', ctx.requestId)
    if (spec.method !== undefined) {
      set('x-original-uri', uri)
      set('x-scheme', renderTemplate(PASS_ACCESS_SCHEME, ctx, trusted))
    }
    return out
  }

  const outcomeOf = (res: AuthResponse): Outcome => {
    const outcome: Outcome = { status: res.status }
    const cookies = res.headers['set-cookie']
    if (cookies !== undefined) outcome.cookies = [cookies].flat()
    if (res.status >= 200 && res.status < 300) {
      const copy: Record<string, string | string[] | null> = {}
      for (const name of copyNames) {
        const v = res.headers[name]
        // An absent or empty value removes the client's header: nginx drops an empty proxy_set_header.
        if (v === undefined || v === '' || (Array.isArray(v) && v.length === 0)) copy[name] = null
        else copy[name] = Array.isArray(v) && name !== 'set-cookie' ? v.join(', ') : v
      }
      outcome.copy = copy
    } else if (res.status === 401) {
      const challenge = res.headers['www-authenticate']
      if (challenge !== undefined) outcome.challenge = [challenge].flat()
    }
    return outcome
  }

  const apply = (ctx: PolicyContext, outcome: Outcome, trusted: boolean): StepResult => {
    const { status, cookies } = outcome
    if (status >= 200 && status < 300) {
      if (outcome.copy !== undefined && copyNames.length > 0) ctx.upstreamHeaders = Object.assign(ctx.upstreamHeaders ?? {}, outcome.copy)
      if (cookies !== undefined) {
        const headers = ctx.responseHeaders ?? {}
        const existing = headers['set-cookie']
        headers['set-cookie'] = existing === undefined ? [...cookies] : [...[existing].flat(), ...cookies]
        ctx.responseHeaders = headers
        if (!spec.alwaysSetCookie) gatedCookies.set(ctx, [...(gatedCookies.get(ctx) ?? []), ...cookies])
      }
      return undefined
    }
    if (status === 401) {
      if (spec.signin !== undefined) {
        const location = renderTemplate(spec.signin, ctx, trusted)
        const headers: Record<string, string | string[]> = { location, 'content-type': 'text/plain; charset=utf-8' }
        // The redirect is a 302, on which nginx's add_header writes the cookie.
        if (cookies !== undefined) headers['set-cookie'] = cookies
        return { status: 302, headers, body: `302 Found\nlocation: ${location}\n` }
      }
      if (outcome.challenge === undefined && (cookies === undefined || !spec.alwaysSetCookie)) return REQUIRED
      const headers: Record<string, string | string[]> = {}
      if (outcome.challenge !== undefined) headers['www-authenticate'] = outcome.challenge
      if (cookies !== undefined && spec.alwaysSetCookie) headers['set-cookie'] = cookies
      return { ...REQUIRED, headers }
    }
    if (status === 403) {
      if (cookies === undefined || !spec.alwaysSetCookie) return FORBIDDEN
      return { ...FORBIDDEN, headers: { 'set-cookie': cookies } }
    }
    return report(ctx, `answered ${status}; only 2xx, 401 and 403 are understood`)
  }

  return async (ctx: PolicyContext): Promise<StepResult> => {
    const trusted = isTrustedPeer?.(ctx.req) ?? false
    let origin: string
    let hostHeader: string
    let path: string
    if (url.origin !== undefined && url.path !== undefined) {
      origin = url.origin
      hostHeader = url.hostHeader as string
      path = renderTemplate(url.path, ctx, trusted)
    } else {
      const split = splitUrl(renderTemplate(url.template, ctx, trusted))
      if ('error' in split) return report(ctx, `the URL made for this request is unusable: ${split.error}`)
      ;({ origin, hostHeader, path } = split)
    }
    const hash = path.indexOf('#')
    if (hash !== -1) path = path.slice(0, hash)

    let key: string | undefined
    if (cache !== undefined && cacheSpec !== undefined) {
      key = `${renderTemplate(cacheSpec.key, ctx, trusted)}\n${origin}${path}`
      const hit = cache.get(key)
      if (hit !== undefined) {
        cache.delete(key)
        if (hit.expires > Date.now()) {
          cache.set(key, hit)
          return apply(ctx, hit.outcome, trusted)
        }
      }
    }

    let res: AuthResponse
    try {
      res = await client.send(origin, path, method, subrequestHeaders(ctx, hostHeader, trusted))
    } catch (err) {
      return report(ctx, failure(err, client))
    }
    const outcome = outcomeOf(res)
    if (cache !== undefined && key !== undefined && cacheSpec !== undefined) {
      const now = Date.now()
      const ttl = cacheTtl(res.status, res.headers, cacheSpec.validity, now)
      if (ttl !== undefined) {
        cache.set(key, { outcome, expires: now + ttl })
        if (cache.size > CACHE_ENTRIES) cache.delete(cache.keys().next().value as string)
      }
    }
    return apply(ctx, outcome, trusted)
  }
}
