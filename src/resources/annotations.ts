/**
 * The ingress-nginx annotations ingressd understands: an allow-list of typed keys under
 * `nginx.ingress.kubernetes.io/`. Malformed values are problems (refused on write), snippet
 * annotations (raw nginx configuration) are always refused, access-control annotations become an
 * AccessSpec (or denials, when they cannot be honoured), and every other key is reported by its
 * state in the catalogue (annotation-catalogue.ts): accepted with no effect, or ignored.
 */
import { NGINX_PREFIX } from './annotation-prefix.js'
import { annotationState } from './annotation-catalogue.js'
import { parseAccessAnnotations, type AccessSpec } from '../dataplane/policies/access.js'
import type { AnnotationProblem } from '../dataplane/policies/policy.js'
import { parseBalancingAnnotations, type BalancerSpec, type LoadBalanceAlgorithm, type UpstreamHashSpec } from '../dataplane/balancer.js'
import type { AffinitySpec } from '../dataplane/policies/affinity.js'
import { parseRedirect, type RedirectSpec } from '../dataplane/policies/redirect.js'
import { parseUpstreamHeaders, type UpstreamHeadersSpec } from '../dataplane/policies/upstream-headers.js'
import { UNSUPPORTED_PROTOCOLS, parseBackendProtocol, type BackendProtocol } from '../dataplane/backend-protocol.js'
import { parseUpstreamTls, type UpstreamTlsSpec } from '../dataplane/upstream-tls.js'
import { parseCanary, type CanarySpec } from '../dataplane/policies/canary.js'

export { NGINX_PREFIX }
export type { AnnotationProblem }

export interface IngressSettings {
  /** rewrite-target: the URI sent upstream when the path matches; `$1`..`$9` are the path's groups */
  rewriteTarget?: string
  /** use-regex "true", or a rewrite-target with `$N`: the ingress's paths are regular expressions */
  useRegex: boolean
  /** ssl-redirect; undefined = the default: redirect to HTTPS when the host has TLS */
  sslRedirect?: boolean
  /** force-ssl-redirect: redirect to HTTPS even without TLS on the host */
  forceSslRedirect: boolean
  /** proxy-connect-timeout, in milliseconds */
  connectTimeoutMs?: number
  /** proxy-read-timeout, in milliseconds */
  readTimeoutMs?: number
  /** proxy-send-timeout, in milliseconds */
  sendTimeoutMs?: number
  /** proxy-body-size, in bytes; Infinity = unlimited ("0") */
  bodySizeLimit?: number
  /** load-balance */
  loadBalance?: LoadBalanceAlgorithm
  /** upstream-hash-by (+ -subset, -subset-size): consistent hashing on an nginx-variable key, compiled once */
  upstreamHash?: UpstreamHashSpec
  /** affinity: cookie, affinity-mode and session-cookie-* */
  affinity?: AffinitySpec
  /**
   * How the route picks its endpoint, from loadBalance, upstreamHash and affinity: set per route
   * by the route compile (compile.ts, selectBalancer), never by parsing. Undefined: the gateway's
   * default (INGRESSD_LOAD_BALANCE).
   */
  balancer?: BalancerSpec
  /** The access-control annotations (source ranges, auth, limits, CORS), when the ingress has any; compiled into the route's policy chain. */
  access?: AccessSpec
  /** permanent-redirect, temporal-redirect, app-root: the route answers with a redirect (the host's app-root, once compiled: compile.ts) */
  redirect?: RedirectSpec
  /** upstream-vhost, x-forwarded-prefix: the Host and X-Forwarded-Prefix sent upstream */
  upstreamHeaders?: UpstreamHeadersSpec
  /** backend-protocol, when not HTTP (the plain proxy path has no setting at all) */
  backendProtocol?: BackendProtocol
  /** proxy-ssl-verify, -name, -server-name, -verify-depth, -protocols, -ciphers: TLS to an HTTPS or GRPCS upstream */
  upstreamTls?: UpstreamTlsSpec
  /** canary: "true" and the canary-* keys: the ingress splits the traffic of a main ingress rather than route (compile.ts) */
  canary?: CanarySpec
}

/** What parsing an ingress's annotations gives. */
export interface ParsedAnnotations {
  settings: IngressSettings
  /** Malformed values and snippets: refused on write. */
  problems: AnnotationProblem[]
  /** Access-control annotations that cannot be honoured: the ingress's paths answer 503. */
  denials: AnnotationProblem[]
  /** Keys ingressd does not implement (full keys). */
  ignored: string[]
  /** Keys accepted with no effect in ingressd (full keys). */
  noEffect: string[]
}

/** Where the annotations come from: the ingress's namespace (its own secrets) and name (its rate-limit zone). */
export interface AnnotationOwner { namespace: string, name: string }

const BOOLEAN_MESSAGE = 'expected "true" or "false"'
const TIMEOUT_MESSAGE = 'expected a whole number of seconds from 1 to 2147483, like "5" or "5s"'
const SIZE_MESSAGE = 'expected an nginx size: a whole number of bytes with an optional k, m or g suffix, like "1m", "512k" or "0" (unlimited)'
const LOAD_BALANCE_MESSAGE = 'expected "round_robin" or "ewma"'
const SNIPPET_MESSAGE = 'snippet annotations are never honoured: ingressd accepts no raw nginx configuration'

/** The largest timeout a Node.js timer can hold, in seconds (2^31 - 1 ms). */
const MAX_TIMEOUT_SECONDS = Math.floor(0x7fffffff / 1000)

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 * 1024, g: 1024 * 1024 * 1024 }

/** Parses nginx size syntax ("10", "512k", "1m", "1g", case-insensitive) to bytes; zero means unlimited (Infinity). */
export function parseNginxSize (value: string): number | undefined {
  const match = /^(\d{1,15})([kmg]?)$/i.exec(value.trim())
  if (match === null) return undefined
  const bytes = Number(match[1]) * (SIZE_UNITS[(match[2] ?? '').toLowerCase()] ?? 1)
  if (bytes === 0) return Infinity
  return Number.isSafeInteger(bytes) ? bytes : undefined
}

function parseBoolean (value: string): boolean | undefined {
  if (value === 'true') return true
  if (value === 'false') return false
  return undefined
}

function parseTimeoutMs (value: string): number | undefined {
  const match = /^(\d{1,10})s?$/.exec(value.trim())
  if (match === null) return undefined
  const seconds = Number(match[1])
  if (seconds < 1 || seconds > MAX_TIMEOUT_SECONDS) return undefined
  return seconds * 1000
}

type Handler = (value: string, settings: IngressSettings) => string | undefined

/** Each known key (without the prefix) and how it sets the settings; a returned string is a problem. */
const HANDLERS: Record<string, Handler> = {
  'rewrite-target': (value, s) => {
    if (value !== '') s.rewriteTarget = value
    return undefined
  },
  'use-regex': (value, s) => {
    const b = parseBoolean(value)
    if (b === undefined) return BOOLEAN_MESSAGE
    if (b) s.useRegex = true
    return undefined
  },
  'ssl-redirect': (value, s) => {
    const b = parseBoolean(value)
    if (b === undefined) return BOOLEAN_MESSAGE
    s.sslRedirect = b
    return undefined
  },
  'force-ssl-redirect': (value, s) => {
    const b = parseBoolean(value)
    if (b === undefined) return BOOLEAN_MESSAGE
    s.forceSslRedirect = b
    return undefined
  },
  'proxy-connect-timeout': (value, s) => {
    const ms = parseTimeoutMs(value)
    if (ms === undefined) return TIMEOUT_MESSAGE
    s.connectTimeoutMs = ms
    return undefined
  },
  'proxy-read-timeout': (value, s) => {
    const ms = parseTimeoutMs(value)
    if (ms === undefined) return TIMEOUT_MESSAGE
    s.readTimeoutMs = ms
    return undefined
  },
  'proxy-send-timeout': (value, s) => {
    const ms = parseTimeoutMs(value)
    if (ms === undefined) return TIMEOUT_MESSAGE
    s.sendTimeoutMs = ms
    return undefined
  },
  'proxy-body-size': (value, s) => {
    const bytes = parseNginxSize(value)
    if (bytes === undefined) return SIZE_MESSAGE
    s.bodySizeLimit = bytes
    return undefined
  },
  'load-balance': (value, s) => {
    if (value !== 'round_robin' && value !== 'ewma') return LOAD_BALANCE_MESSAGE
    s.loadBalance = value
    return undefined
  },
  'backend-protocol': (value, s) => {
    const parsed = parseBackendProtocol(value)
    if ('problem' in parsed) return parsed.problem
    if (parsed.protocol !== undefined) s.backendProtocol = parsed.protocol
    return undefined
  },
  // Accepted with no effect (docs/annotations.md, service-upstream), but a malformed value is refused as ingress-nginx's bool validator refuses it.
  'service-upstream': (value) => parseBoolean(value) === undefined ? BOOLEAN_MESSAGE : undefined
}

/**
 * Parses the nginx.ingress.kubernetes.io/* annotations: typed settings, problems (key + message
 * saying what form is expected), denials, and the keys ignored or accepted with no effect.
 * Non-nginx annotations are ignored silently. Keys are visited in sorted order, so the lists are
 * stable.
 */
export function parseIngressAnnotations (annotations: Record<string, string> | undefined, owner: AnnotationOwner = { namespace: 'default', name: '' }): ParsedAnnotations {
  const settings: IngressSettings = { useRegex: false, forceSslRedirect: false }
  const out: ParsedAnnotations = { settings, problems: [], denials: [], ignored: [], noEffect: [] }
  if (annotations === undefined || annotations === null || typeof annotations !== 'object') return out
  const keys = Object.keys(annotations).filter(k => k.startsWith(NGINX_PREFIX)).sort()
  const values = new Map<string, string>()
  for (const key of keys) {
    const name = key.slice(NGINX_PREFIX.length)
    const raw: unknown = annotations[key]
    const state = annotationState(name)
    if (state === 'refused') {
      out.problems.push({ key, message: SNIPPET_MESSAGE })
      continue
    }
    if (typeof raw !== 'string') {
      if (state !== 'ignored') out.problems.push({ key, message: 'expected a string value' })
      else out.ignored.push(key)
      continue
    }
    values.set(name, raw)
    if (state === 'ignored') out.ignored.push(key)
    else if (state === 'no-effect') out.noEffect.push(key)
    const handler = Object.hasOwn(HANDLERS, name) ? HANDLERS[name] : undefined
    if (handler === undefined) continue
    const problem = handler(raw, settings)
    if (problem !== undefined) out.problems.push({ key, message: `${problem}, got ${JSON.stringify(raw)}` })
  }
  // FCGI and AJP are accepted (ingress-nginx speaks them) but not served: the status says so.
  if (settings.backendProtocol !== undefined && UNSUPPORTED_PROTOCOLS.has(settings.backendProtocol)) {
    out.ignored.push(`${NGINX_PREFIX}backend-protocol (${settings.backendProtocol}: not served, its paths answer 502 INGRESSD_ERR_BACKEND_PROTOCOL_UNSUPPORTED)`)
  }
  const upstreamTls = parseUpstreamTls(name => values.get(name), owner.namespace)
  out.problems.push(...upstreamTls.problems)
  if (upstreamTls.spec !== undefined) settings.upstreamTls = upstreamTls.spec
  // A rewrite-target with capture references turns regex paths on, as usesRegexPaths (path-regex.ts) decides on write.
  if (settings.rewriteTarget !== undefined && /\$\d/.test(settings.rewriteTarget)) settings.useRegex = true
  const access = parseAccessAnnotations(name => values.get(name), owner.namespace, `${owner.namespace}/${owner.name}`)
  out.problems.push(...access.problems)
  out.denials.push(...access.denials)
  if (access.spec !== undefined) settings.access = access.spec
  const balancing = parseBalancingAnnotations(name => values.get(name))
  out.problems.push(...balancing.problems)
  if (balancing.upstreamHash !== undefined) settings.upstreamHash = balancing.upstreamHash
  if (balancing.affinity !== undefined) settings.affinity = balancing.affinity
  const redirect = parseRedirect(name => values.get(name))
  out.problems.push(...redirect.problems)
  if (redirect.spec !== undefined) settings.redirect = redirect.spec
  const upstreamHeaders = parseUpstreamHeaders(name => values.get(name), settings.rewriteTarget !== undefined)
  out.problems.push(...upstreamHeaders.problems)
  if (upstreamHeaders.spec !== undefined) settings.upstreamHeaders = upstreamHeaders.spec
  const canary = parseCanary(name => values.get(name))
  out.problems.push(...canary.problems)
  if (canary.spec !== undefined) settings.canary = canary.spec
  return out
}
