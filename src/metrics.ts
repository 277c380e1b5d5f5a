/**
 * Prometheus metrics (prom-client), served by the admin plane at GET /metrics.
 *
 * Labels stay low-cardinality on purpose: `host` is the rule's host (or "" when nothing matched),
 * never the client's Host header, which a client could make unbounded.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { RouteNames } from './dataplane/route-table.js'

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

/** Every metric ingressd exports, in one registry per gateway (tests run several in a process). */
export class GatewayMetrics {
  readonly registry = new Registry()
  /** Counted per request through `countRequest`, and moved into the counter when it is read. */
  private readonly pendingRequests = new Map<string, { labels: RequestLabels, n: number }>()
  readonly requests: Counter<'ingress' | 'host' | 'service' | 'status_class'> = new Counter({
    name: 'ingressd_requests_total',
    help: 'Requests answered by the data plane',
    labelNames: ['ingress', 'host', 'service', 'status_class'] as const,
    registers: [this.registry],
    collect: () => this.flushRequests()
  })

  readonly requestDuration = new Histogram({ name: 'ingressd_request_duration_seconds', help: 'Time from request to the end of the response', labelNames: ['status_class'] as const, buckets: LATENCY_BUCKETS, registers: [this.registry] })
  readonly upstreamDuration = new Histogram({ name: 'ingressd_upstream_response_seconds', help: 'Time from sending the request upstream to its response headers', buckets: LATENCY_BUCKETS, registers: [this.registry] })
  readonly upstreamErrors = new Counter({ name: 'ingressd_upstream_errors_total', help: 'Upstream failures by kind (the error code answered)', labelNames: ['kind'] as const, registers: [this.registry] })
  /** Open connections per listener, counted in `connectionOpened`/`connectionClosed` and read when scraped. */
  private readonly openConnections: Record<string, number> = {}
  readonly activeConnections: Gauge<'listener'> = new Gauge({
    name: 'ingressd_active_connections',
    help: 'Open client connections per listener',
    labelNames: ['listener'] as const,
    registers: [this.registry],
    collect: () => { for (const [listener, n] of Object.entries(this.openConnections)) this.activeConnections.set({ listener }, n) }
  })

  readonly configGeneration = new Gauge({ name: 'ingressd_config_generation', help: 'Store resourceVersion the data plane serves (with several workers: the lowest any serves)', aggregator: 'min', registers: [this.registry] })
  readonly reloadDuration = new Gauge({ name: 'ingressd_config_last_reload_seconds', help: 'Duration of the last route and SNI table compile', aggregator: 'max', registers: [this.registry] })
  readonly reloadFailures = new Counter({ name: 'ingressd_config_reload_failures_total', help: 'Compiles that failed (the last good tables kept serving)', registers: [this.registry] })
  readonly certificateExpiry = new Gauge({ name: 'ingressd_certificate_expiry_timestamp_seconds', help: 'notAfter of each TLS Secret\'s certificate, as a Unix time', labelNames: ['namespace', 'secret'] as const, aggregator: 'min', registers: [this.registry] })

  constructor () {
    collectDefaultMetrics({ register: this.registry, prefix: 'ingressd_' })
  }

  /**
   * Counts one request. prom-client hashes and checks the label set on every inc(), which cost
   * a few percent of the proxy's CPU; here a request costs one Map lookup by the route's key
   * (built once per route) and its status class, and the counts reach the counter whenever it
   * is scraped.
   */
  countRequest (route: RouteNames, statusClass: string): void {
    const key = `${route.key} ${statusClass}`
    const entry = this.pendingRequests.get(key)
    if (entry !== undefined) entry.n++
    else this.pendingRequests.set(key, { labels: { ingress: route.ingress, host: route.host, service: route.service, status_class: statusClass }, n: 1 })
  }

  /** A client connection opened on `listener` (http, https): a plain count, as countRequest. */
  connectionOpened (listener: string): void {
    this.openConnections[listener] = (this.openConnections[listener] ?? 0) + 1
  }

  connectionClosed (listener: string): void {
    this.openConnections[listener] = (this.openConnections[listener] ?? 1) - 1
  }

  private flushRequests (): void {
    for (const { labels, n } of this.pendingRequests.values()) this.requests.inc(labels, n)
    this.pendingRequests.clear()
  }
}

export interface RequestLabels { ingress: string, host: string, service: string, status_class: string }

/** "2xx", "4xx"...: the status label. */
export function statusClass (status: number): string {
  return `${Math.floor(status / 100)}xx`
}
