/**
 * Binds access specs to what they need at run time (secrets from the snapshot, the node's rate
 * limiter, the auth client) and builds each route's chain of steps in a fixed order, once per
 * table: CORS (answers preflights), rate limits, then the access checks (source ranges, basic
 * auth, external auth: all must pass, or any with `satisfy: any`). A spec that cannot be bound (a
 * missing secret, a malformed htpasswd) or carries a denial gets a chain that answers 503: its
 * paths are never proxied unprotected.
 *
 * Specs are the frozen objects the route compile made, so an unchanged ingress keeps its spec and,
 * while the secrets it reads are the same objects, its bound chain (and the basic-auth
 * verification cache inside it).
 */
import type { IngressReport } from '../compile.js'
import type { AccessSpec } from './access.js'
import type { AnnotationProblem, PolicyAnswer, PolicyContext, PolicyStep, SecretLookup, SecretMaterial, StepResult } from './policy.js'
import { NGINX_PREFIX } from '../../resources/annotation-prefix.js'
import { corsStep } from './cors.js'
import { sourceRangeStep } from './source-range.js'
import { bindBasicAuth } from './basic-auth.js'
import { bindExternalAuth, type ExternalAuthClient } from './external-auth.js'
import { bindRateLimit, type LimiterBackend } from './rate-limit.js'

/** A route's steps, run in order until one answers. */
export interface BoundPolicy {
  readonly steps: readonly PolicyStep[]
}

/** What binding needs besides the snapshot. */
export interface PolicyDependencies {
  limiter: LimiterBackend
  /** The status a rate-limited request gets (INGRESSD_LIMIT_REQ_STATUS_CODE). */
  limitStatus: number
  externalAuth: ExternalAuthClient
  /** A failed basic-auth attempt, for the log (the user name, never the password). */
  onAuthFailure?: (zone: string, user: string, reason: string) => void
  /** An external auth sub-request that failed (500), for the log. */
  onAuthError?: (zone: string, message: string) => void
}

/** The bound chains of one table, by spec. */
export interface PolicyTable {
  get: (spec: AccessSpec) => BoundPolicy | undefined
}

const DENIED: PolicyAnswer = Object.freeze({ status: 503, code: 'INGRESSD_ERR_ACCESS_DENIED_CONFIG' })
const deny: PolicyStep = () => DENIED
const DENYING: BoundPolicy = Object.freeze({ steps: Object.freeze([deny]) })

interface Bound {
  policy: BoundPolicy
  problems: readonly AnnotationProblem[]
  /** The secrets it read, as read: reused while each lookup gives the same object. */
  secrets: ReadonlyArray<readonly [string, string, SecretMaterial | undefined]>
}

/** Keeps the lookups a binding made, so the next compile can tell whether they changed. */
function recordingLookup (secrets: SecretLookup, into: Array<readonly [string, string, SecretMaterial | undefined]>): SecretLookup {
  return (namespace, name) => {
    const material = secrets(namespace, name)
    into.push([namespace, name, material])
    return material
  }
}

/** Runs several access checks under satisfy "any": the first to allow wins; otherwise the 401 if one asked for credentials (as nginx prefers it), else the first refusal. */
function anyOf (steps: readonly PolicyStep[]): PolicyStep {
  return async (ctx: PolicyContext): Promise<StepResult> => {
    let refusal: PolicyAnswer | undefined
    for (const step of steps) {
      const result = await step(ctx)
      if (result === undefined) return undefined
      if (refusal === undefined || (result.status === 401 && refusal.status !== 401)) refusal = result
    }
    return refusal
  }
}

/** Basic credentials never reach the backend of an ingress with basic auth, whichever check let the request in. */
const stripAuthorization: PolicyStep = (ctx) => {
  ctx.upstreamHeaders = { ...ctx.upstreamHeaders, authorization: null }
  return undefined
}

/** Compiles bound chains, keeping those whose spec and secrets did not change. */
export class PolicyCompiler {
  #bound = new Map<AccessSpec, Bound>()

  constructor (private readonly deps: PolicyDependencies) {}

  /** Binds every served ingress's spec; returns the table and, per ingress (`namespace/name`), why its paths are denied. */
  compile (reports: readonly IngressReport[], secrets: SecretLookup): { table: PolicyTable, problems: Map<string, readonly AnnotationProblem[]> } {
    const next = new Map<AccessSpec, Bound>()
    const problems = new Map<string, readonly AnnotationProblem[]>()
    for (const report of reports) {
      const spec = report.access
      if (spec === undefined) continue
      let bound = next.get(spec) ?? this.#bound.get(spec)
      if (bound !== undefined && !bound.secrets.every(([ns, name, material]) => secrets(ns, name) === material)) bound = undefined
      bound ??= this.#bind(spec, secrets)
      next.set(spec, bound)
      if (bound.problems.length > 0) problems.set(`${report.namespace}/${report.name}`, bound.problems)
    }
    this.#bound = next
    return { table: { get: (spec) => next.get(spec)?.policy }, problems }
  }

  #bind (spec: AccessSpec, secrets: SecretLookup): Bound {
    const read: Array<readonly [string, string, SecretMaterial | undefined]> = []
    const problems: AnnotationProblem[] = [...spec.denials]
    const access: PolicyStep[] = []
    try {
      if (spec.sourceRange !== undefined) access.push(sourceRangeStep(spec.sourceRange))
      if (spec.basicAuth !== undefined) {
        const onFailure = this.deps.onAuthFailure
        const zone = spec.zone
        const basic = bindBasicAuth(spec.basicAuth, recordingLookup(secrets, read), onFailure === undefined ? undefined : { onFailure: (user, reason) => onFailure(zone, user, reason) })
        if ('denial' in basic) problems.push({ key: `${NGINX_PREFIX}auth-secret`, message: basic.denial })
        else access.push(basic.step)
      }
      if (spec.externalAuth !== undefined) {
        const onError = this.deps.onAuthError
        const zone = spec.zone
        access.push(bindExternalAuth(spec.externalAuth, this.deps.externalAuth, onError === undefined ? {} : { onError: (message) => onError(zone, message) }))
      }
    } catch (err) {
      problems.push({ key: `${NGINX_PREFIX}*`, message: `the access-control annotations could not be compiled: ${(err as Error).message}` })
    }
    if (problems.length > 0) return { policy: DENYING, problems: Object.freeze(problems), secrets: read }
    const steps: PolicyStep[] = []
    if (spec.cors !== undefined) steps.push(corsStep(spec.cors))
    if (spec.rateLimit !== undefined) steps.push(bindRateLimit(spec.zone, spec.rateLimit, this.deps.limiter, this.deps.limitStatus))
    if (spec.satisfy === 'any' && access.length > 1) steps.push(anyOf(access))
    else steps.push(...access)
    if (spec.basicAuth !== undefined) steps.push(stripAuthorization)
    return { policy: Object.freeze({ steps: Object.freeze(steps) }), problems: [], secrets: read }
  }
}

/**
 * Runs a chain. Synchronous steps stay synchronous: a promise is made only when a step returns
 * one (external auth, a limiter in another process).
 */
export function runSteps (steps: readonly PolicyStep[], ctx: PolicyContext, from = 0): StepResult | Promise<StepResult> {
  for (let i = from; i < steps.length; i++) {
    const result = (steps[i] as PolicyStep)(ctx)
    if (result instanceof Promise) {
      return result.then(r => r !== undefined ? r : runSteps(steps, ctx, i + 1))
    }
    if (result !== undefined) return result
  }
  return undefined
}
