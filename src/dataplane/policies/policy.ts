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
