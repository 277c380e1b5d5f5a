/**
 * The per-route policy chain: what an Ingress's access-control annotations compile to. Each
 * family (source ranges, rate limits, client certificates, basic and external auth, CORS) is
 * compiled once per table into a small step; the proxy runs a route's steps in a fixed order
 * before it contacts the upstream. A route without such annotations has no chain and pays
 * nothing. Models: Envoy's HTTP filters and Kong's plugins (the config validated up front, a
 * small handler per request).
 */
import type { IncomingMessage } from 'node:http'
import type { ErrorCode } from '../../errors.js'

/** What a step sees of a request, and what it may leave for the proxy. */
export interface PolicyContext {
  readonly req: IncomingMessage
  readonly method: string
  /** The Host, normalized (lowercase, no port, no trailing dot). */
  readonly host: string
  /** The path as routed (normalized), without the query. */
  readonly path: string
  /** The query with its `?`, or ''. */
  readonly query: string
  /** The listener's scheme. */
  readonly proto: 'http' | 'https'
  /** The client's address: the peer, or from X-Forwarded-For / X-Real-IP when the peer is a trusted proxy. IPv4-mapped IPv6 is unwrapped. */
  readonly client: string
  readonly requestId: string
  /** Set on the upstream request over the forwarded headers; null removes the header. Names are lowercase. */
  upstreamHeaders?: Record<string, string | string[] | null>
  /** Added to the client's response, whatever answers it (the upstream or a step). Names are lowercase. */
  responseHeaders?: Record<string, string | string[]>
  /** Run once when the response is done or the client went away (a limit-connections slot is released). */
  onDone?: Array<() => void>
}

/** A step's own answer to the client: the request goes no further. */
export interface PolicyAnswer {
  status: number
  /** The error code of the gateway's plain-text error page, when `body` is not given. */
  code?: ErrorCode
  headers?: Record<string, string | string[]>
  /** A body of the step's own (say, a redirect's); otherwise the error page for `code`. */
  body?: string
}

export type StepResult = PolicyAnswer | undefined

/** One step: undefined lets the request go on. Sync where it can be; a promise only for steps that must wait (external auth, a limiter in another process). */
export type PolicyStep = (ctx: PolicyContext) => StepResult | Promise<StepResult>

/** One annotation that is wrong or cannot be honoured: the full key and what is wrong, in words a user can act on. */
export interface AnnotationProblem { key: string, message: string }

/** Reads an ingress's nginx.ingress.kubernetes.io/* annotations by name without the prefix ('auth-url'). */
export type AnnotationReader = (name: string) => string | undefined

/**
 * What parsing one family's annotations gives: its typed spec (undefined when the family is not
 * used), problems the admin plane refuses on write (422 naming the key: a malformed CIDR or URL,
 * an unknown auth-type, another namespace's secret), and denials: annotations that are well
 * formed but cannot be honoured (a value ingressd does not implement), whose paths answer 503.
 */
export interface FamilyParse<T> {
  spec?: T
  problems: AnnotationProblem[]
  denials: AnnotationProblem[]
}

/** A Secret's values as the data plane reads them (write-only values included), decoded to text. */
export interface SecretMaterial {
  readonly type: string
  readonly data: Readonly<Record<string, string>>
}

/** Finds a Secret by namespace and name in the snapshot a table is compiled from. */
export type SecretLookup = (namespace: string, name: string) => SecretMaterial | undefined

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/

/**
 * A Secret an annotation names, `name` or `namespace/name`. Another namespace than the ingress's
 * is a problem: ingress-nginx refuses it by default (allow-cross-namespace-resources: false), and
 * an ingress must not read another team's secrets. `what` says what the Secret holds, for the message.
 */
export function parseSecretReference (key: string, value: string, ingressNamespace: string, what: string, problems: AnnotationProblem[]): { namespace: string, name: string } | undefined {
  const parts = value.split('/')
  if (value === '' || parts.length > 2 || !parts.every(p => p.length <= 253 && DNS1123_SUBDOMAIN.test(p))) {
    problems.push({ key, message: `expected "name" or "namespace/name" of the Secret holding ${what}, each a DNS-1123 subdomain (lowercase letters, digits, '-' and '.'), got ${JSON.stringify(value)}` })
    return undefined
  }
  const namespace = parts.length === 2 ? parts[0] as string : ingressNamespace
  const name = parts[parts.length - 1] as string
  if (namespace !== ingressNamespace) {
    problems.push({ key, message: `the Secret is in namespace ${JSON.stringify(namespace)}, but an ingress may only use Secrets of its own namespace (${JSON.stringify(ingressNamespace)}), as ingress-nginx does by default (allow-cross-namespace-resources: false)` })
    return undefined
  }
  return { namespace, name }
}
