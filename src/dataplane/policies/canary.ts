/**
 * Canary releases (`canary`, `canary-weight`, `canary-weight-total`, `canary-by-header` with
 * `-value` or `-pattern`, `canary-by-cookie`, `affinity-canary-behavior`), as ingress-nginx's
 * canary parser and balancer.lua's route_to_alternative_balancer define them.
 *
 * Two halves, as the policies have them:
 * - once per table: `parseCanary` (on write and when an ingress is read; malformed values are
 *   problems, refused with 422) and `compileCanary`, which the route compile calls when a canary
 *   ingress names the same host, path and pathType as a main route (compile.ts).
 * - per request: `chooseCanary`, which the proxy calls only for a route that has a canary (one
 *   property read on every other route), before it picks an endpoint.
 *
 * A canary ingress is not a route of its own: its backend becomes the alternative backend of the
 * main route, which keeps its own location settings (rewrites, redirects, access control).
 */
import type { IncomingMessage } from 'node:http'
import safeRegex from 'safe-regex2'
import type { AnnotationProblem, AnnotationReader, FamilyParse } from './policy.js'
import { NGINX_PREFIX } from '../../resources/annotation-prefix.js'
import { readCookie } from './affinity.js'
import { stickyBackendKey, type BalancerSpec } from '../balancer.js'
import type { Backend, Route, RouteMatch } from '../route-table.js'

export const CANARY_KEYS = [
  'canary', 'canary-weight', 'canary-weight-total', 'canary-by-header', 'canary-by-header-value',
  'canary-by-header-pattern', 'canary-by-cookie', 'affinity-canary-behavior'
] as const

/** ingress-nginx's default canary-weight-total. */
export const DEFAULT_WEIGHT_TOTAL = 100

/** What the canary annotations of an ingress with `canary: "true"` ask for. */
export interface CanarySpec {
  /** canary-weight: requests out of `weightTotal` sent to the canary when no header or cookie decided. */
  readonly weight: number
  readonly weightTotal: number
  /** canary-by-header, lowercase. */
  readonly header?: string
  /** canary-by-header-value: the exact (case-sensitive) value that sends a request to the canary. */
  readonly headerValue?: string
  /** canary-by-header-pattern: an unanchored, case-sensitive expression, as ngx.re.match reads it. */
  readonly headerPattern?: RegExp
  /** canary-by-cookie: the cookie whose value `always` or `never` decides. */
  readonly cookie?: string
  /** affinity-canary-behavior: sticky (default) gives the canary the main route's cookie affinity; legacy keeps the canary's own. */
  readonly affinityBehavior: 'sticky' | 'legacy'
}

/** An HTTP token: what a header or cookie name may be. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}$/
const WHOLE = /^\d{1,9}$/

/**
 * Reads the canary annotations. Every key is checked whether or not `canary` is "true" (a
 * malformed value is a problem, refused on write); the spec exists only with `canary: "true"`.
 */
export function parseCanary (read: AnnotationReader): FamilyParse<CanarySpec> {
  const problems: AnnotationProblem[] = []
  const problem = (name: string, expected: string, value: string): void => {
    problems.push({ key: NGINX_PREFIX + name, message: `${expected}, got ${JSON.stringify(value)}` })
  }
  const enabledValue = read('canary')
  if (enabledValue !== undefined && enabledValue !== 'true' && enabledValue !== 'false') problem('canary', 'expected "true" or "false"', enabledValue)

  const totalValue = read('canary-weight-total')
  let weightTotal = DEFAULT_WEIGHT_TOTAL
  if (totalValue !== undefined) {
    if (WHOLE.test(totalValue.trim()) && Number(totalValue.trim()) >= 1) weightTotal = Number(totalValue.trim())
    else problem('canary-weight-total', 'expected a whole number of at least 1, like "100" or "1000"', totalValue)
  }
  const weightValue = read('canary-weight')
  let weight = 0
  if (weightValue !== undefined) {
    if (!WHOLE.test(weightValue.trim())) problem('canary-weight', `expected a whole number from 0 to canary-weight-total (${weightTotal}), like "10"`, weightValue)
    else if (Number(weightValue.trim()) > weightTotal) problem('canary-weight', `expected a whole number from 0 to canary-weight-total (${weightTotal}${totalValue === undefined ? ', the default' : ''}); set canary-weight-total for finer weights`, weightValue)
    else weight = Number(weightValue.trim())
  }

  const header = read('canary-by-header')
  if (header !== undefined && !TOKEN.test(header)) problem('canary-by-header', 'expected a header name: letters, digits and !#$%&\'*+-.^_`|~, like "X-Canary"', header)
  const headerValue = read('canary-by-header-value')
  if (headerValue !== undefined && header === undefined) problem('canary-by-header-value', 'has no effect without canary-by-header (the header it compares); set canary-by-header too', headerValue)
  const patternValue = read('canary-by-header-pattern')
  let headerPattern: RegExp | undefined
  if (patternValue !== undefined) {
    if (header === undefined) problem('canary-by-header-pattern', 'has no effect without canary-by-header (the header it matches); set canary-by-header too', patternValue)
    else if (patternValue !== '') {
      try {
        headerPattern = new RegExp(patternValue)
      } catch (err) {
        problem('canary-by-header-pattern', `expected a regular expression (${(err as Error).message})`, patternValue)
      }
      if (headerPattern !== undefined && !safeRegex(patternValue)) {
        headerPattern = undefined
        problem('canary-by-header-pattern', 'expected a regular expression that cannot backtrack catastrophically (no repeated group that itself repeats)', patternValue)
      }
    }
  }
  const cookie = read('canary-by-cookie')
  if (cookie !== undefined && !TOKEN.test(cookie)) problem('canary-by-cookie', 'expected a cookie name: letters, digits and !#$%&\'*+-.^_`|~, like "canary"', cookie)
  const behaviorValue = read('affinity-canary-behavior')
  if (behaviorValue !== undefined && behaviorValue !== 'sticky' && behaviorValue !== 'legacy') problem('affinity-canary-behavior', 'expected "sticky" or "legacy"', behaviorValue)

  if (enabledValue !== 'true' || problems.length > 0) return { problems, denials: [] }
  const spec: { -readonly [K in keyof CanarySpec]: CanarySpec[K] } = { weight, weightTotal, affinityBehavior: behaviorValue === 'legacy' ? 'legacy' : 'sticky' }
  if (header !== undefined && header !== '') spec.header = header.toLowerCase()
  // As balancer.lua: a value wins over a pattern; an empty one counts as unset.
  if (headerValue !== undefined && headerValue !== '') spec.headerValue = headerValue
  else if (headerPattern !== undefined) spec.headerPattern = headerPattern
  if (cookie !== undefined && cookie !== '') spec.cookie = cookie
  return { spec: Object.freeze(spec), problems, denials: [] }
}

/** A sticky balancer's cookie, and the backend key that names its backend in the cookie's second half. */
interface StickyCookie { readonly name: string, readonly backendKey: string }

/** A main route's canary, compiled: the route its requests take when they go to the canary, and the decision. */
export interface Canary {
  /** The main route with the canary's backend (and balancer): what a request sent to the canary is served by. */
  readonly route: Route
  readonly match: RouteMatch
  readonly spec: CanarySpec
  /** The main route's affinity cookie: a client pinned to the main backend stays there. */
  readonly mainSticky?: StickyCookie
  /** The canary's affinity cookie: a client pinned to the canary stays there. */
  readonly canarySticky?: StickyCookie
}

function stickyCookie (balancer: BalancerSpec | undefined, backend: Backend): StickyCookie | undefined {
  return balancer?.kind === 'sticky' ? Object.freeze({ name: balancer.affinity.name, backendKey: stickyBackendKey(backend) }) : undefined
}

/**
 * A main route's canary. `route` is the main route with the canary's backend and `balancer`
 * (chosen by the compile per affinity-canary-behavior); `mainBalancer` is the main route's.
 */
export function compileCanary (spec: CanarySpec, route: Route, mainBackend: Backend, mainBalancer: BalancerSpec | undefined): Canary {
  const out: { -readonly [K in keyof Canary]: Canary[K] } = { route, match: Object.freeze({ route }), spec }
  const mainSticky = stickyCookie(mainBalancer, mainBackend)
  const canarySticky = stickyCookie(route.settings.balancer, route.backend)
  if (mainSticky !== undefined) out.mainSticky = mainSticky
  if (canarySticky !== undefined) out.canarySticky = canarySticky
  return Object.freeze(out)
}

/** Whether the request's affinity cookie (`<endpoint key>|<backend key>`) names this backend. */
function pinnedTo (cookieHeader: string | undefined, sticky: StickyCookie): boolean {
  const value = readCookie(cookieHeader, sticky.name)
  if (value === undefined) return false
  const bar = value.indexOf('|')
  return bar !== -1 && value.slice(bar + 1) === sticky.backendKey
}

/**
 * Whether a request goes to the canary, in balancer.lua's order: an affinity cookie pinned to the
 * main backend (main), then one pinned to the canary (canary), the header (`always`, `never`, the
 * value or the pattern), the cookie (`always`, `never`), then the weight out of the total.
 * `random` is for tests.
 */
export function routeToCanary (canary: Canary, req: IncomingMessage, random: () => number = Math.random): boolean {
  const cookies = req.headers.cookie
  if (canary.mainSticky !== undefined && pinnedTo(cookies, canary.mainSticky)) return false
  if (canary.canarySticky !== undefined && pinnedTo(cookies, canary.canarySticky)) return true
  const spec = canary.spec
  if (spec.header !== undefined) {
    const value = req.headers[spec.header]
    if (typeof value === 'string') {
      if (spec.headerValue !== undefined) {
        if (value === spec.headerValue) return true
      } else if (spec.headerPattern !== undefined) {
        if (spec.headerPattern.test(value)) return true
      } else if (value === 'always') return true
      else if (value === 'never') return false
    }
  }
  if (spec.cookie !== undefined) {
    const value = readCookie(cookies, spec.cookie)
    if (value === 'always') return true
    if (value === 'never') return false
  }
  return spec.weight > 0 && random() * spec.weightTotal < spec.weight
}

/**
 * The match a request of a route with a canary is served by: the canary's, or the main one
 * (`match`). A canary without endpoints takes nothing, as balancer.lua finds no balancer for it.
 */
export function chooseCanary (canary: Canary, match: RouteMatch, req: IncomingMessage): RouteMatch {
  if (canary.route.backend.upstreams.length === 0 || !routeToCanary(canary, req)) return match
  return match.captures === undefined ? canary.match : Object.freeze({ route: canary.route, captures: match.captures })
}
