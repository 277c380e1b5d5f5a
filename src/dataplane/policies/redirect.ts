/**
 * permanent-redirect, temporal-redirect (with their -code keys) and app-root: answers a route
 * gives in place of its upstream, as ingress-nginx renders them: `return <code> <url>;` in every
 * location of the ingress, and `if ($uri = /) { return 302 $scheme://$http_host<app-root>; }` at
 * the server level, so app-root holds for the whole host (compile.ts spreads it over the host's
 * routes).
 *
 * The proxy asks for the answer after the HTTPS redirect and client certificates and before the
 * route's access chain: nginx's `return` runs in its rewrite phase, before `allow`/`deny`, auth
 * and limits, whatever the location's directives look like on the page (docs/annotations.md).
 */
import { STATUS_CODES, type IncomingMessage } from 'node:http'
import type { AnnotationProblem, AnnotationReader, FamilyParse, PolicyAnswer } from './policy.js'
import { NGINX_PREFIX } from '../../resources/annotation-prefix.js'
import { normalizeRequestPath } from '../request-path.js'
import { requestHost } from '../http2-compat.js'

export const REDIRECT_KEYS = ['permanent-redirect', 'permanent-redirect-code', 'temporal-redirect', 'temporal-redirect-code', 'app-root'] as const

export interface RedirectSpec {
  /** permanent-redirect or temporal-redirect: every request of the route gets this answer. */
  readonly always?: PolicyAnswer
  /** app-root: a request for exactly `/` is redirected (302) to this path on the same scheme and Host. */
  readonly appRoot?: string
}

/** The codes nginx's `return code URL` sends as a redirect with a Location; any other code sends the URL as the body. */
const LOCATION_CODES = new Set([301, 302, 303, 307, 308])

/** Printable ASCII without spaces: what a Location may carry as written (the parsers refuse `\` and `$` beside it, with their reasons). */
const PRINTABLE = /^[\x21-\x7e]+$/

const NO_VARIABLES = 'nginx variables and capture references are not expanded here; ingress-nginx refuses "$" in this annotation too (annotation validation, on by default)'

function parseCode (read: AnnotationReader, name: string, max: number, problems: AnnotationProblem[]): number | undefined {
  const value = read(name)
  if (value === undefined) return undefined
  const trimmed = value.trim()
  const code = /^\d{3}$/.test(trimmed) ? Number(trimmed) : NaN
  if (code >= 300 && code <= max) return code
  problems.push({ key: NGINX_PREFIX + name, message: `expected a redirect status code from 300 to ${max}, got ${JSON.stringify(value)}` })
  return undefined
}

/** The target of permanent-redirect or temporal-redirect: an absolute http(s) URL with a host, sent as written. */
function parseTarget (read: AnnotationReader, name: string, problems: AnnotationProblem[]): string | undefined {
  const value = read(name)
  // An empty value is no redirect, as ingress-nginx reads it.
  if (value === undefined || value === '') return undefined
  const problem = (why: string): undefined => {
    problems.push({ key: NGINX_PREFIX + name, message: `expected an absolute http:// or https:// URL such as "https://www.example.com/new"; ${why}, got ${JSON.stringify(value)}` })
    return undefined
  }
  if (!PRINTABLE.test(value) || value.includes('\\')) return problem('spaces, control characters, "\\" and characters outside ASCII must be percent-encoded')
  if (value.includes('$')) return problem(NO_VARIABLES)
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return problem('it is not a URL')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return problem(`the scheme ${JSON.stringify(url.protocol.slice(0, -1))} is not http or https`)
  if (url.hostname === '' || !/^https?:\/\/[^/?#]/i.test(value)) return problem('it has no host')
  return value
}

function parseAppRoot (read: AnnotationReader, problems: AnnotationProblem[]): string | undefined {
  const value = read('app-root')
  if (value === undefined || value === '') return undefined
  const problem = (why: string): undefined => {
    problems.push({ key: `${NGINX_PREFIX}app-root`, message: `expected an absolute path such as "/app"; ${why}, got ${JSON.stringify(value)}` })
    return undefined
  }
  if (!value.startsWith('/')) return problem('it must start with "/" (a URL with a scheme or host is refused, as ingress-nginx refuses it)')
  if (!PRINTABLE.test(value) || value.includes('\\') || value.includes('#')) return problem('spaces, control characters, "\\", "#" and characters outside ASCII must be percent-encoded')
  if (value.includes('$')) return problem(NO_VARIABLES)
  const q = value.indexOf('?')
  const path = normalizeRequestPath(q === -1 ? value : value.slice(0, q))
  if (path === undefined) return problem('its ".." segments climb above "/"')
  // `/`, `//` or `/./` would send `/` back to itself forever.
  if (path === '/') return problem('it leads back to "/", a redirect loop')
  return value
}

/** The answer nginx's `return <code> <url>` gives: a Location for 301, 302, 303, 307 and 308; for the other codes the URL is only the body. */
function fixedAnswer (status: number, target: string): PolicyAnswer {
  const reason = STATUS_CODES[status] ?? 'Redirect'
  if (!LOCATION_CODES.has(status)) {
    return Object.freeze({ status, headers: Object.freeze({ 'content-type': 'text/plain; charset=utf-8' }), body: target })
  }
  return Object.freeze({
    status,
    headers: Object.freeze({ location: target, 'content-type': 'text/plain; charset=utf-8' }),
    body: `${status} ${reason}\nlocation: ${target}\n`
  })
}

/**
 * Reads the redirect annotations. temporal-redirect wins over permanent-redirect when both are
 * set, as in ingress-nginx; a code without its URL changes nothing, but a malformed value of any
 * key is a problem (refused on write), including a code outside the range ingress-nginx would
 * have replaced with its default.
 */
export function parseRedirect (read: AnnotationReader): FamilyParse<RedirectSpec> {
  const problems: AnnotationProblem[] = []
  const permanent = parseTarget(read, 'permanent-redirect', problems)
  const permanentCode = parseCode(read, 'permanent-redirect-code', 308, problems)
  const temporal = parseTarget(read, 'temporal-redirect', problems)
  const temporalCode = parseCode(read, 'temporal-redirect-code', 307, problems)
  const appRoot = parseAppRoot(read, problems)
  if (problems.length > 0) return { problems, denials: [] }
  const spec: { -readonly [K in keyof RedirectSpec]: RedirectSpec[K] } = {}
  if (temporal !== undefined) spec.always = fixedAnswer(temporalCode ?? 302, temporal)
  else if (permanent !== undefined) spec.always = fixedAnswer(permanentCode ?? 301, permanent)
  if (appRoot !== undefined) spec.appRoot = appRoot
  if (spec.always === undefined && spec.appRoot === undefined) return { problems, denials: [] }
  return { spec: Object.freeze(spec), problems, denials: [] }
}

/** The spec with the host's app-root in place of the ingress's own (compile.ts: app-root holds for the whole host). */
export function withAppRoot (spec: RedirectSpec | undefined, appRoot: string): RedirectSpec {
  return Object.freeze({ ...spec, appRoot })
}

/**
 * The route's redirect for one request, or undefined to go on. `path` is the path as routed
 * (normalized), so `//` and `/./` count as `/` as nginx's `$uri` does; `proto` is the listener's
 * scheme (`$scheme`), and the Host is the one the client sent, port included (`$http_host`).
 * The query is dropped, as nginx's `return` drops it.
 */
export function redirectAnswer (spec: RedirectSpec, req: IncomingMessage, proto: 'http' | 'https', path: string): PolicyAnswer | undefined {
  if (spec.appRoot !== undefined && path === '/') {
    const location = `${proto}://${requestHost(req.headers) ?? ''}${spec.appRoot}`
    return { status: 302, headers: { location, 'content-type': 'text/plain; charset=utf-8' }, body: `302 Found\nlocation: ${location}\n` }
  }
  return spec.always
}
