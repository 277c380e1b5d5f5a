/**
 * An ingress's access-control annotations as one typed spec: each family parsed by its own module,
 * the problems (refused on write) and denials (503 on every path) of all of them gathered, and the
 * keys that restrict access but that ingressd cannot honour turned into denials here. What is in
 * an AccessSpec decides which steps a route's chain gets (chain.ts).
 */
import { NGINX_PREFIX } from '../../resources/annotation-prefix.js'
import type { AnnotationProblem, AnnotationReader } from './policy.js'
import { parseSourceRange, type SourceRangeSpec } from './source-range.js'
import { parseCors, type CorsSpec } from './cors.js'
import { parseBasicAuth, type BasicAuthSpec } from './basic-auth.js'
import { parseExternalAuth, type ExternalAuthSpec } from './external-auth.js'
import { parseRateLimit, type RateLimitSpec } from './rate-limit.js'
import { parseClientCert } from './client-cert.js'

export interface AccessSpec {
  /** The ingress (`namespace/name`): its rate-limit zone, shared by all its paths. */
  readonly zone: string
  /** satisfy: "any" lets a request through when any of source range, basic auth or external auth allows it. */
  readonly satisfy: 'all' | 'any'
  /** Annotations that cannot be honoured: every path of the ingress answers 503 while any is here. */
  readonly denials: readonly AnnotationProblem[]
  readonly cors?: CorsSpec
  readonly rateLimit?: RateLimitSpec
  readonly sourceRange?: SourceRangeSpec
  readonly basicAuth?: BasicAuthSpec
  readonly externalAuth?: ExternalAuthSpec
}

/** The whole outcome: the spec (undefined when the ingress uses none of these annotations), problems and denials. */
export interface AccessParse {
  spec?: AccessSpec
  problems: AnnotationProblem[]
  denials: AnnotationProblem[]
}

const SWITCHES: Record<string, string> = {
  'enable-modsecurity': 'ModSecurity (a web application firewall) is not part of ingressd',
  'enable-owasp-core-rules': 'the OWASP ModSecurity core rules are not part of ingressd'
}

const ALWAYS_DENIED: Record<string, string> = {
  'modsecurity-transaction-id': 'ModSecurity is not part of ingressd',
  'global-rate-limit': 'global (memcached) rate limits are not implemented: use limit-rps or limit-rpm, which hold per node',
  'global-rate-limit-window': 'global (memcached) rate limits are not implemented: use limit-rps or limit-rpm, which hold per node',
  'global-rate-limit-key': 'global (memcached) rate limits are not implemented: use limit-rps or limit-rpm, which hold per node',
  'global-rate-limit-ignored-cidrs': 'global (memcached) rate limits are not implemented: use limit-rps or limit-rpm, which hold per node'
}

/** Parses every access-control family of one ingress. `namespace` decides which secrets are its own. */
export function parseAccessAnnotations (read: AnnotationReader, namespace: string, zone: string): AccessParse {
  const problems: AnnotationProblem[] = []
  const denials: AnnotationProblem[] = []
  const take = <T>(outcome: { spec?: T, problems: AnnotationProblem[], denials: AnnotationProblem[] }): T | undefined => {
    problems.push(...outcome.problems)
    denials.push(...outcome.denials)
    return outcome.spec
  }
  const cors = take(parseCors(read))
  const rateLimit = take(parseRateLimit(read))
  const sourceRange = take(parseSourceRange(read))
  const basicAuth = take(parseBasicAuth(read, namespace))
  const externalAuth = take(parseExternalAuth(read))
  // Client certificates are per host and live in the SNI table; parsed here so a malformed value is refused on write.
  take(parseClientCert(read, namespace))

  let satisfy: 'all' | 'any' = 'all'
  const satisfyValue = read('satisfy')
  if (satisfyValue !== undefined) {
    if (satisfyValue === 'any' || satisfyValue === 'all') satisfy = satisfyValue
    else problems.push({ key: `${NGINX_PREFIX}satisfy`, message: `expected "all" or "any", got ${JSON.stringify(satisfyValue)}` })
  }
  for (const [name, why] of Object.entries(SWITCHES)) {
    const value = read(name)
    if (value === undefined || value === 'false') continue
    if (value === 'true') denials.push({ key: NGINX_PREFIX + name, message: `${why}; the paths of this ingress are denied (503) rather than served unprotected` })
    else problems.push({ key: NGINX_PREFIX + name, message: `expected "true" or "false", got ${JSON.stringify(value)}` })
  }
  for (const [name, why] of Object.entries(ALWAYS_DENIED)) {
    if (read(name) !== undefined) denials.push({ key: NGINX_PREFIX + name, message: `${why}; the paths of this ingress are denied (503) rather than served unprotected` })
  }

  if (problems.length > 0) return { problems, denials }
  if (cors === undefined && rateLimit === undefined && sourceRange === undefined && basicAuth === undefined && externalAuth === undefined && denials.length === 0) return { problems, denials }
  const spec: { -readonly [K in keyof AccessSpec]: AccessSpec[K] } = { zone, satisfy, denials: Object.freeze([...denials]) }
  if (cors !== undefined) spec.cors = cors
  if (rateLimit !== undefined) spec.rateLimit = rateLimit
  if (sourceRange !== undefined) spec.sourceRange = sourceRange
  if (basicAuth !== undefined) spec.basicAuth = basicAuth
  if (externalAuth !== undefined) spec.externalAuth = externalAuth
  return { spec: Object.freeze(spec), problems, denials }
}
