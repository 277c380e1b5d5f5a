/**
 * Cookie session affinity (`affinity: cookie`, `affinity-mode`, `session-cookie-*`), as
 * ingress-nginx's sessionaffinity parser and balancer/sticky*.lua define it: the typed spec,
 * checked on write, and the two per-request halves the balancer uses, reading the client's
 * cookie and writing the Set-Cookie that pins a new session. Which endpoint a cookie names is the
 * balancer's business (balancer.ts).
 */
import type { AnnotationProblem, AnnotationReader, FamilyParse } from './policy.js'
import { NGINX_PREFIX } from '../../resources/annotation-prefix.js'

export const AFFINITY_KEYS = [
  'affinity', 'affinity-mode', 'session-cookie-name', 'session-cookie-path', 'session-cookie-domain',
  'session-cookie-max-age', 'session-cookie-expires', 'session-cookie-samesite', 'session-cookie-conditional-samesite-none',
  'session-cookie-secure', 'session-cookie-change-on-failure'
] as const

/** ingress-nginx's default cookie name. */
export const DEFAULT_COOKIE_NAME = 'INGRESSCOOKIE'

export type SameSite = 'None' | 'Lax' | 'Strict'

export interface AffinitySpec {
  /** balanced (default): a random key on a consistent-hash ring, some sessions move when endpoints are added; persistent: the endpoint itself, kept while it exists. */
  readonly mode: 'balanced' | 'persistent'
  readonly name: string
  /** session-cookie-path; undefined: the path of the route that issues it. */
  readonly path?: string
  readonly domain?: string
  /** Seconds, as written (ingress-nginx accepts 0 and negative values too). */
  readonly maxAge?: number
  /** Seconds from the moment the cookie is issued, as an Expires date computed per request. */
  readonly expires?: number
  readonly sameSite?: SameSite
  /** Leave SameSite=None out for browsers known to reject such cookies. */
  readonly conditionalSameSiteNone: boolean
  /** session-cookie-secure: Secure even over plain HTTP. */
  readonly secure: boolean
  /** After an upstream failure, pick another endpoint and issue a new cookie rather than retry the pinned one. */
  readonly changeOnFailure: boolean
}

/** An RFC 6265 cookie name (an HTTP token). */
const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}$/
/** A cookie Path: absolute, printable ASCII without `;` or spaces (RFC 6265's path-value, kept to ASCII). */
const COOKIE_PATH = /^\/[!-:<-~]{0,1023}$/
/** A cookie Domain: a DNS name, optionally with a leading dot. */
const COOKIE_DOMAIN = /^\.?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/
/** Whole seconds, as ingress-nginx's `(^0|-?[1-9]\d*$)` intends them (it also lets through any value starting with 0). */
const SECONDS = /^(0|-?[1-9]\d{0,9})$/
const SAME_SITE: Readonly<Record<string, SameSite>> = { none: 'None', lax: 'Lax', strict: 'Strict' }

/**
 * Reads the affinity annotations. Every key is checked whether or not `affinity` is set (a
 * malformed value is a problem, refused on write); the spec exists only with `affinity: cookie`,
 * the one type ingress-nginx has.
 */
export function parseAffinity (read: AnnotationReader): FamilyParse<AffinitySpec> {
  const problems: AnnotationProblem[] = []
  const problem = (name: string, expected: string, value: string): void => {
    problems.push({ key: NGINX_PREFIX + name, message: `${expected}, got ${JSON.stringify(value)}` })
  }
  const bool = (name: string): boolean => {
    const value = read(name)
    if (value === undefined || value === 'false') return false
    if (value === 'true') return true
    problem(name, 'expected "true" or "false"', value)
    return false
  }
  const seconds = (name: string): number | undefined => {
    const value = read(name)
    if (value === undefined) return undefined
    if (!SECONDS.test(value.trim())) {
      problem(name, 'expected a whole number of seconds, like "3600"', value)
      return undefined
    }
    return Number(value.trim())
  }

  const type = read('affinity')
  if (type !== undefined && type.trim() !== 'cookie') problem('affinity', 'expected "cookie" (the only affinity type ingress-nginx has)', type)
  const modeValue = read('affinity-mode')
  let mode: AffinitySpec['mode'] = 'balanced'
  if (modeValue !== undefined) {
    if (modeValue.trim() === 'balanced' || modeValue.trim() === 'persistent') mode = modeValue.trim() as AffinitySpec['mode']
    else problem('affinity-mode', 'expected "balanced" or "persistent"', modeValue)
  }
  const nameValue = read('session-cookie-name')
  let name = DEFAULT_COOKIE_NAME
  if (nameValue !== undefined) {
    if (COOKIE_NAME.test(nameValue)) name = nameValue
    else problem('session-cookie-name', 'expected a cookie name: letters, digits and !#$%&\'*+-.^_`|~, like "SERVERID"', nameValue)
  }
  const path = read('session-cookie-path')
  if (path !== undefined && !COOKIE_PATH.test(path)) problem('session-cookie-path', 'expected a cookie path: "/" and then printable ASCII without ";" or spaces, like "/app"', path)
  const domain = read('session-cookie-domain')
  if (domain !== undefined && !COOKIE_DOMAIN.test(domain)) problem('session-cookie-domain', 'expected a domain name such as "example.com" or ".example.com"', domain)
  const maxAge = seconds('session-cookie-max-age')
  const expires = seconds('session-cookie-expires')
  const sameSiteValue = read('session-cookie-samesite')
  let sameSite: SameSite | undefined
  if (sameSiteValue !== undefined) {
    sameSite = Object.hasOwn(SAME_SITE, sameSiteValue.trim().toLowerCase()) ? SAME_SITE[sameSiteValue.trim().toLowerCase()] : undefined
    if (sameSite === undefined) problem('session-cookie-samesite', 'expected "None", "Lax" or "Strict"', sameSiteValue)
  }
  const conditionalSameSiteNone = bool('session-cookie-conditional-samesite-none')
  const secure = bool('session-cookie-secure')
  const changeOnFailure = bool('session-cookie-change-on-failure')

  if (type === undefined || problems.length > 0) return { problems, denials: [] }
  const spec: { -readonly [K in keyof AffinitySpec]: AffinitySpec[K] } = { mode, name, conditionalSameSiteNone, secure, changeOnFailure }
  if (path !== undefined) spec.path = path
  if (domain !== undefined) spec.domain = domain
  if (maxAge !== undefined) spec.maxAge = maxAge
  if (expires !== undefined) spec.expires = expires
  if (sameSite !== undefined) spec.sameSite = sameSite
  return { spec: Object.freeze(spec), problems, denials: [] }
}

const REGEX_SPECIAL = /[.*+?()[\]{}|^$\\]/

/**
 * The Path a route's cookie gets without session-cookie-path: the path as written, as
 * ingress-nginx does (`/` for a default backend). A path in regex mode is an expression, which
 * ingress-nginx would send as it is (and warns that session-cookie-path must be set); ingressd
 * uses its literal start, up to the last `/` before the first special character (`/foo/.*` gives
 * `/foo/`), so the browser still sends the cookie back on every path the expression matches.
 */
export function defaultCookiePath (path: string, regexMode: boolean): string {
  if (path === '') return '/'
  if (!regexMode) return path
  const special = path.search(REGEX_SPECIAL)
  if (special === -1) return path
  const slash = path.lastIndexOf('/', special)
  return slash <= 0 ? '/' : path.slice(0, slash + 1)
}

/**
 * The value of the cookie `name` in a request's Cookie header (the first of that exact name), or
 * undefined. Several Cookie fields (HTTP/2) arrive joined with `; ` by Node.
 */
export function readCookie (header: string | undefined, name: string): string | undefined {
  if (header === undefined || header.length <= name.length) return undefined
  let from = 0
  for (;;) {
    const at = header.indexOf(name, from)
    if (at === -1) return undefined
    const end = at + name.length
    // The name must start a pair (the header's start, or after `;` and spaces) and end at `=`.
    let before = at - 1
    while (before >= 0 && header.charCodeAt(before) === 0x20) before--
    if ((before < 0 || header.charCodeAt(before) === 0x3b) && header.charCodeAt(end) === 0x3d) {
      const stop = header.indexOf(';', end + 1)
      return header.slice(end + 1, stop === -1 ? header.length : stop).trim()
    }
    from = at + 1
  }
}

/**
 * Browsers that reject (or misread) SameSite=None, from ingress-nginx's util/same_site.lua
 * (itself from https://www.chromium.org/updates/same-site/incompatible-clients).
 */
export function sameSiteNoneCompatible (userAgent: string | undefined): boolean {
  if (userAgent === undefined) return true
  if (userAgent.includes('Chrome/4') || userAgent.includes('Chrome/5') || userAgent.includes('Chrome/6')) return false
  if (userAgent.includes('CPU iPhone OS 12') || userAgent.includes('iPad; CPU OS 12')) return false
  if (userAgent.includes('Macintosh') && userAgent.includes('Intel Mac OS X 10_14') && userAgent.includes('Safari') && !userAgent.includes('Chrome')) return false
  return true
}

/**
 * The Set-Cookie that pins a session: HttpOnly always; Secure when the request came over HTTPS
 * or session-cookie-secure says so; Expires computed now (`nowMs`), as ingress-nginx computes it
 * per request, in RFC 6265's date form.
 */
export function affinitySetCookie (spec: AffinitySpec, value: string, path: string, secure: boolean, userAgent: string | undefined, nowMs = Date.now()): string {
  let cookie = `${spec.name}=${value}; Path=${spec.path ?? path}`
  if (spec.domain !== undefined) cookie += `; Domain=${spec.domain}`
  if (spec.expires !== undefined) cookie += `; Expires=${new Date(nowMs + spec.expires * 1000).toUTCString()}`
  if (spec.maxAge !== undefined) cookie += `; Max-Age=${spec.maxAge}`
  if (secure || spec.secure) cookie += '; Secure'
  cookie += '; HttpOnly'
  if (spec.sameSite !== undefined && !(spec.sameSite === 'None' && spec.conditionalSameSiteNone && !sameSiteNoneCompatible(userAgent))) cookie += `; SameSite=${spec.sameSite}`
  return cookie
}
