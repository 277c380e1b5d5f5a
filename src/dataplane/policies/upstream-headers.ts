/**
 * upstream-vhost and x-forwarded-prefix: what the upstream request says about where it was sent,
 * as ingress-nginx's location renders them. upstream-vhost is `proxy_set_header Host "<value>"`
 * (X-Forwarded-Host keeps the client's host); x-forwarded-prefix is `proxy_set_header
 * X-Forwarded-Prefix "<value>"`, written only inside the rewrite branch of buildProxyPass: it is
 * sent only when rewrite-target is set and differs from the route's path.
 *
 * Both are parsed once into literal text and readers; per request, on the routes that have them,
 * setting them is a loop over a few parts.
 */
import type { AnnotationProblem, AnnotationReader, FamilyParse } from './policy.js'
import type { RouteMatch } from '../route-table.js'
import { NGINX_PREFIX } from '../../resources/annotation-prefix.js'
import { normalizeHost } from '../host.js'

export const UPSTREAM_HEADER_KEYS = ['upstream-vhost', 'x-forwarded-prefix'] as const

/** What a part of a value reads: the route it serves, its regex captures, the upstream request's headers so far, and the request's normalized host. */
interface PartFacts {
  readonly match: RouteMatch
  readonly headers: Readonly<Record<string, string | string[]>>
  readonly host: string
}

type Part = string | ((f: PartFacts) => string)

export interface UpstreamHeadersSpec {
  /** upstream-vhost: the Host sent upstream. */
  readonly host?: readonly Part[]
  /** x-forwarded-prefix, kept only when the ingress has a rewrite-target. */
  readonly prefix?: readonly Part[]
}

function headerValue (value: string | string[] | undefined): string {
  return Array.isArray(value) ? value.join(', ') : value ?? ''
}

/**
 * The variables upstream-vhost may use, with a sample each for the write-time check. The route's
 * are the `set` variables of ingress-nginx's location (`$service_name.$namespace.svc.cluster.local`
 * is Linkerd's documented value); the request's read the upstream request as built so far, whose
 * Host is the client's `$http_host` and whose X-Forwarded-Host is `$best_http_host` (the client's
 * X-Forwarded-Host only from a trusted proxy).
 */
const HOST_VARIABLES: Readonly<Record<string, { read: (f: PartFacts) => string, sample: string }>> = {
  service_name: { read: f => f.match.route.backend.service, sample: 'web' },
  namespace: { read: f => f.match.route.ingress.namespace, sample: 'default' },
  ingress_name: { read: f => f.match.route.ingress.name, sample: 'web' },
  service_port: { read: f => f.match.route.backend.port, sample: '80' },
  host: { read: f => f.host, sample: 'app.example.com' },
  http_host: { read: f => headerValue(f.headers.host), sample: 'app.example.com' },
  best_http_host: { read: f => headerValue(f.headers['x-forwarded-host']), sample: 'app.example.com' }
}

const HOST_VARIABLE_LIST = Object.keys(HOST_VARIABLES).map(n => `$${n}`).join(', ')

/** `$1`..`$9`: the route's regex groups, as nginx's `rewrite` leaves them for proxy_set_header. */
function capture (n: number): (f: PartFacts) => string {
  return f => f.match.captures?.[n - 1] ?? ''
}

/**
 * Splits a value into text and variables, as nginx reads `$name` (the longest run of letters,
 * digits and `_`) and `${name}`; `variable` gives a reader for a name, or undefined when it is
 * not allowed here. Returns the parts and a sample rendering, or the error in words.
 */
function parseParts (value: string, variable: (name: string) => { read: (f: PartFacts) => string, sample: string } | undefined): { parts: Part[], sample: string } | { error: string } {
  const parts: Part[] = []
  let sample = ''
  let literal = ''
  let i = 0
  while (i < value.length) {
    const dollar = value.indexOf('$', i)
    if (dollar === -1) {
      literal += value.slice(i)
      break
    }
    literal += value.slice(i, dollar)
    let name: string
    if (value[dollar + 1] === '{') {
      const close = value.indexOf('}', dollar + 2)
      if (close === -1) return { error: `the variable at ${JSON.stringify(value.slice(dollar, dollar + 20))} has no closing "}"` }
      name = value.slice(dollar + 2, close)
      i = close + 1
    } else {
      let end = dollar + 1
      while (end < value.length && /[A-Za-z0-9_]/.test(value[end] as string)) end++
      name = value.slice(dollar + 1, end)
      i = end
    }
    const found = name === '' ? undefined : variable(name.toLowerCase())
    if (found === undefined) return { error: name === '' ? 'a "$" must start a variable name' : `"$${name}" is not a variable this annotation may use` }
    if (literal !== '') parts.push(literal)
    sample += literal
    literal = ''
    parts.push(found.read)
    sample += found.sample
  }
  if (literal !== '') parts.push(literal)
  sample += literal
  return { parts, sample }
}

function parseHost (value: string, problems: AnnotationProblem[]): Part[] | undefined {
  const key = `${NGINX_PREFIX}upstream-vhost`
  const expected = `expected a host name with an optional port, such as "backend.internal" or "$service_name.$namespace.svc.cluster.local:8080" (variables: ${HOST_VARIABLE_LIST})`
  const parsed = parseParts(value.trim(), name => Object.hasOwn(HOST_VARIABLES, name) ? HOST_VARIABLES[name] : undefined)
  if ('error' in parsed) {
    problems.push({ key, message: `${expected}; ${parsed.error}, got ${JSON.stringify(value)}` })
    return undefined
  }
  if (normalizeHost(parsed.sample) === undefined) {
    problems.push({ key, message: `${expected}, got ${JSON.stringify(value)}` })
    return undefined
  }
  return parsed.parts
}

function parsePrefix (value: string, problems: AnnotationProblem[]): Part[] | undefined {
  const key = `${NGINX_PREFIX}x-forwarded-prefix`
  // ingress-nginx's validator: an optional leading "/", then letters, digits, "-._~/:" and "$N".
  const parsed = parseParts(value, name => /^[1-9]$/.test(name) ? { read: capture(Number(name)), sample: 'x' } : undefined)
  if ('error' in parsed || !/^\/?[-._~A-Za-z0-9/:]*$/.test(parsed.sample)) {
    const why = 'error' in parsed ? `; ${parsed.error} (only $1 to $9, the path's regex groups)` : ''
    problems.push({ key, message: `expected a path such as "/api" of letters, digits and "-._~/:", with $1 to $9 for the path's regex groups${why}, got ${JSON.stringify(value)}` })
    return undefined
  }
  return parsed.parts
}

/**
 * Reads upstream-vhost and x-forwarded-prefix. An empty value is no value, as ingress-nginx reads
 * it. x-forwarded-prefix is checked in any case but kept only when `rewrites` (the ingress has a
 * rewrite-target): without one it has no effect.
 */
export function parseUpstreamHeaders (read: AnnotationReader, rewrites: boolean): FamilyParse<UpstreamHeadersSpec> {
  const problems: AnnotationProblem[] = []
  const vhost = read('upstream-vhost')
  const host = vhost === undefined || vhost.trim() === '' ? undefined : parseHost(vhost, problems)
  const prefixValue = read('x-forwarded-prefix')
  const prefix = prefixValue === undefined || prefixValue === '' ? undefined : parsePrefix(prefixValue, problems)
  if (problems.length > 0) return { problems, denials: [] }
  const spec: { -readonly [K in keyof UpstreamHeadersSpec]: UpstreamHeadersSpec[K] } = {}
  if (host !== undefined) spec.host = Object.freeze(host)
  if (prefix !== undefined && rewrites) spec.prefix = Object.freeze(prefix)
  if (spec.host === undefined && spec.prefix === undefined) return { problems, denials: [] }
  return { spec: Object.freeze(spec), problems, denials: [] }
}

function render (parts: readonly Part[], facts: PartFacts): string {
  let out = ''
  for (const part of parts) out += typeof part === 'string' ? part : part(facts)
  return out
}

/**
 * Sets the route's Host and X-Forwarded-Prefix on the upstream request's headers (built from the
 * client's, X-Forwarded-* included). `host` is the request's normalized host, for `$host`.
 */
export function setUpstreamHeaders (spec: UpstreamHeadersSpec, headers: Record<string, string | string[]>, match: RouteMatch, host: string): void {
  const facts: PartFacts = { match, headers, host }
  // Both are computed before either is set: `$http_host` is the client's Host, not the new one.
  const vhost = spec.host === undefined ? undefined : render(spec.host, facts)
  if (spec.prefix !== undefined) {
    // The rewrite branch of ingress-nginx's buildProxyPass: a target equal to the path is no rewrite.
    const target = match.route.settings.rewriteTarget
    if (target !== undefined && target !== match.route.path) headers['x-forwarded-prefix'] = render(spec.prefix, facts)
  }
  if (vhost !== undefined) headers.host = vhost
}
