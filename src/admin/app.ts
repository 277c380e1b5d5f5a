/**
 * The admin plane: a Fastify app on its own port that stores Kubernetes-shaped objects and
 * documents itself with Swagger UI. It meets the data plane only at the store.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify'
import Type from 'typebox'
import { Compile } from 'typebox/compile'
import type { TSchema } from 'typebox'
import { IngressdError, toStatus } from '../errors.js'
import type { ChangeFeed } from '../store/change-feed.js'
import type { ObjectStore } from '../store/object-store.js'
import { registerAdminCaRoute, type AdminTls } from './admin-tls.js'
import { registerApplyRoute } from './apply.js'
import { registerBodyParsers } from './content.js'
import { registerHealthRoutes, type Readiness } from './health.js'
import { clusterMetrics, defaultLocalNode, NodeDirectory, registerNodeRoutes, type ClusterSource, type LocalNode } from './nodes.js'
import { registerResourceRoutes } from './resource-routes.js'
import { registerDescribeViews } from './kube/describe-views.js'
import { registerDiscoveryRoutes } from './kube/discovery.js'
import { registerKubeOpenApi } from './kube/openapi.js'
import { WatchHub } from './kube/watch.js'
import { createWriteSync, sqliteWriter, type StoreWriter } from './write-sync.js'
import { fieldFromPointer } from '../resources/validation.js'
import type { Config } from '../config/config.js'
import type { Logger } from 'pino'

export interface AdminOptions {
  store: ObjectStore
  feed: ChangeFeed
  logger: FastifyBaseLogger | false
  adminToken?: string
  /** Host names accepted besides loopback ones when there is no token (INGRESSD_ADMIN_ALLOWED_HOSTS). */
  allowedHosts?: readonly string[]
  bodyLimit: number
  readiness: Readiness
  /** Served at GET /metrics in the Prometheus text format (a GatewayMetrics, or the workers' aggregate). */
  metrics: { registry: { contentType: string, metrics: () => Promise<string> } }
  /** How long a write waits for the data plane to serve it before answering with a warning. */
  syncTimeoutMs?: number
  /** Where writes go: the SQLite file (default), or PostgreSQL first (cluster mode). */
  writer?: StoreWriter
  /** Cluster mode: whether PostgreSQL is reachable; reads served from the local mirror during an outage carry a Warning. */
  storeHealth?: () => { reachable: boolean, since: number }
  /** This node as GET /apis/ingressd.io/v1/nodes shows it (default: named after the host). */
  node?: LocalNode
  /** Cluster mode: the other nodes (PostgreSQL's `nodes` table) and the replication gauges. */
  cluster?: ClusterSource
  /** Serve HTTPS with this certificate chain and key (INGRESSD_ADMIN_TLS; admin-tls.ts); absent: plain HTTP. */
  https?: AdminTls['serverOptions']
  /** The CA's PEM certificate served at GET /ca.crt; absent: 404. */
  adminCaPem?: string
}

/** Paths anyone may read: health for probes, the API's own documentation (it holds no data), and the admin CA's certificate. */
const PUBLIC_PATHS = /^\/(healthz|readyz|openapi\.json|ca\.crt)$|^\/docs(\/|$)/

function digest (value: string): Buffer {
  return createHash('sha256').update(value).digest()
}

/** True for the names and addresses only this machine answers to. */
function isLoopbackHost (hostname: string): boolean {
  return hostname === 'localhost' || hostname.endsWith('.localhost') || hostname === '[::1]' || hostname === '::1' || /^127(\.\d{1,3}){3}$/.test(hostname)
}

/** The host part of a Host header or an origin's authority, lowercase, without the port. */
function hostnameOf (authority: string): string {
  const lower = authority.toLowerCase()
  if (lower.startsWith('[')) return lower.slice(0, lower.indexOf(']') + 1)
  return lower.split(':')[0] ?? ''
}

/** Why a request looks like it came from a web page it should not have, or undefined. */
export function browserProblem (origin: string | undefined, host: string | undefined, loopbackOnly: boolean, allowedHosts: ReadonlySet<string>): string | undefined {
  if (origin !== undefined) {
    let originHost: string
    try { originHost = new URL(origin).host } catch { return `the Origin ${JSON.stringify(origin)} is not this admin API` }
    if (host === undefined || originHost.toLowerCase() !== host.toLowerCase()) return `cross-origin request from ${origin}; the admin API only answers its own pages (Swagger UI) and clients that send no Origin`
  }
  if (loopbackOnly) {
    const name = hostnameOf(host ?? '')
    if (!isLoopbackHost(name) && !allowedHosts.has(name)) return `Host ${JSON.stringify(host ?? '')} is not a loopback name; without INGRESSD_ADMIN_TOKEN the admin API answers only localhost, 127.0.0.1 and ::1 (or INGRESSD_ADMIN_ALLOWED_HOSTS)`
  }
  return undefined
}

/** Maps Fastify's own errors (body limit, media type, validation) to ours. */
function toIngressdError (err: FastifyError): IngressdError {
  if (err instanceof IngressdError) return err
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new IngressdError('INGRESSD_ERR_BODY_TOO_LARGE', `the request body is larger than the admin body limit of ${err.message.match(/\d+/)?.[0] ?? 'the configured'} bytes; raise INGRESSD_ADMIN_BODY_LIMIT or split the bundle`)
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new IngressdError('INGRESSD_ERR_UNSUPPORTED_MEDIA_TYPE', 'send the body as application/json or application/yaml')
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new IngressdError('INGRESSD_ERR_MALFORMED_BODY', 'the body is empty: send a JSON or YAML object')
  }
  if (err.validation !== undefined) {
    const causes = err.validation.map(v => ({ reason: 'FieldValueInvalid', field: `${err.validationContext ?? 'query'}.${fieldFromPointer(v.instancePath)}`, message: v.message ?? 'invalid' }))
    return new IngressdError('INGRESSD_ERR_BAD_REQUEST', `${err.validationContext ?? 'request'}: ${causes.map(c => `${c.field} ${c.message}`).join(', ')}`, { causes })
  }
  if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
    return new IngressdError('INGRESSD_ERR_BAD_REQUEST', err.message)
  }
  return new IngressdError('INGRESSD_ERR_INTERNAL', 'internal error; the log has the details', { cause: err })
}

/** The longest the admin API's stop waits for its requests in progress (admin requests are short). */
const ADMIN_CLOSE_GRACE_MS = 5000

/**
 * Stops the admin API: no new connections, idle ones closed now, requests in progress given up to
 * 5 s (or `graceMs`, when shorter), then whatever is still open is cut; the data plane drains
 * after it. Fastify's close alone waits for every connection Node does not see as idle: a client
 * that stopped reading a large response (Swagger UI's 1.6 MB script, fetched by a frozen browser
 * tab) held the gateway's stop for the 72 s keep-alive timeout.
 */
export async function closeAdmin (app: FastifyInstance, graceMs: number): Promise<void> {
  const timer = setTimeout(() => app.server.closeAllConnections(), Math.min(graceMs, ADMIN_CLOSE_GRACE_MS))
  try {
    await app.close()
  } finally {
    clearTimeout(timer)
  }
}

/** The admin app as the configuration asks for it (token, allowed hosts, body limit); one place for both process models. */
export async function buildConfiguredAdmin (config: Readonly<Config>, deps: Pick<AdminOptions, 'store' | 'feed' | 'metrics' | 'readiness' | 'writer' | 'storeHealth' | 'node' | 'cluster'> & { logger: Logger, tls?: AdminTls }): Promise<FastifyInstance> {
  return await buildAdminApp({
    ...(deps.tls === undefined ? {} : { https: deps.tls.serverOptions }),
    ...(deps.tls?.caPem === undefined ? {} : { adminCaPem: deps.tls.caPem }),
    ...(deps.writer === undefined ? {} : { writer: deps.writer }),
    ...(deps.storeHealth === undefined ? {} : { storeHealth: deps.storeHealth }),
    ...(deps.node === undefined ? {} : { node: deps.node }),
    ...(deps.cluster === undefined ? {} : { cluster: deps.cluster }),
    store: deps.store,
    feed: deps.feed,
    logger: deps.logger.child({ component: 'admin' }),
    adminToken: config.adminToken,
    allowedHosts: config.adminAllowedHosts,
    bodyLimit: config.adminBodyLimit,
    metrics: deps.metrics,
    readiness: deps.readiness
  })
}

/** Builds the admin app (routes registered, not listening). */
export async function buildAdminApp (opts: AdminOptions): Promise<FastifyInstance> {
  const app = Fastify({
    ...(opts.logger === false ? { logger: false } : { loggerInstance: opts.logger }),
    bodyLimit: opts.bodyLimit,
    // INGRESSD_ADMIN_TLS: null is plain HTTP.
    https: opts.https ?? null,
    // Kubernetes clients and curl users both rely on 404/405 by exact path, not trailing-slash guesses.
    // Names are DNS subdomains of up to 253 characters; the router's default stops at 100.
    routerOptions: { ignoreTrailingSlash: false, maxParamLength: 253 },
    // Errors the router raises before any route (a longer name, a bad %-escape) answer a Status too.
    frameworkErrors: (error, _req, res) => {
      const err = new IngressdError('INGRESSD_ERR_BAD_REQUEST', error.message)
      const reply = res as FastifyReply
      reply.code(err.status).type('application/json').send(toStatus(err))
    }
  }) as unknown as FastifyInstance

  // Bodies are validated by the resource schemas (one validator for YAML, JSON, /apply and every
  // API version, answering Kubernetes causes); route schemas validate params and queries only.
  app.setValidatorCompiler(({ schema, httpPart }) => {
    if (httpPart === 'body') return () => true
    const check = Compile(schema as TSchema)
    return (data: unknown) => check.Check(data)
      ? { value: data }
      : { error: Object.assign(new Error([...check.Errors(data)].map(e => `${fieldFromPointer(e.instancePath)} ${e.message ?? ''}`).join(', ')), { validation: [...check.Errors(data)].map(e => ({ instancePath: e.instancePath, message: e.message })), validationContext: httpPart }) }
  })
  // The schemas document responses; JSON.stringify sends every field (fast-json-stringify would drop unlisted ones).
  app.setSerializerCompiler(() => (data: unknown) => JSON.stringify(data))

  registerBodyParsers(app)

  const expected = opts.adminToken === undefined ? undefined : digest(opts.adminToken)
  const allowedHosts = new Set((opts.allowedHosts ?? []).map(h => h.toLowerCase()))
  app.addHook('onRequest', async (req) => {
    if (PUBLIC_PATHS.test(req.url.split('?')[0] ?? '')) return
    // A web page must not drive the admin API from a visitor's browser: cross-origin requests
    // are refused, and without a token (loopback only) so is any Host that is not a loopback
    // name, which defeats DNS rebinding (the attacker's name resolving to 127.0.0.1).
    const problem = browserProblem(req.headers.origin, req.headers.host, expected === undefined, allowedHosts)
    if (problem !== undefined) {
      req.log.warn({ origin: req.headers.origin, host: req.headers.host }, `admin request refused: ${problem}`)
      throw new IngressdError('INGRESSD_ERR_FORBIDDEN', `Forbidden: ${problem}`)
    }
    if (expected === undefined) return
    const header = req.headers.authorization ?? ''
    const token = header.startsWith('Bearer ') ? header.slice(7) : ''
    // Compare digests: equal length, constant time, whatever the caller sent.
    if (!timingSafeEqual(digest(token), expected)) {
      req.log.warn({ reason: header === '' ? 'missing' : 'mismatch' }, 'admin request refused: bad token')
      throw new IngressdError('INGRESSD_ERR_UNAUTHORIZED', header === '' ? 'Unauthorized: send Authorization: Bearer <INGRESSD_ADMIN_TOKEN>' : 'Unauthorized: the bearer token is wrong')
    }
  })

  app.setErrorHandler((error: FastifyError, req, reply) => {
    const err = toIngressdError(error)
    if (err.code === 'INGRESSD_ERR_INTERNAL') req.log.error({ err: error }, 'admin request failed')
    reply.code(err.status).type('application/json').send(toStatus(err))
  })
  app.setNotFoundHandler((req, reply) => {
    const err = new IngressdError('INGRESSD_ERR_NOT_FOUND', `the server could not find the requested resource: ${req.method} ${req.url.split('?')[0] ?? ''}`)
    reply.code(404).type('application/json').send(toStatus(err))
  })

  await app.register(swagger, {
    // Shared schemas become components named by their $id (Ingress, Service, Status...).
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => typeof json.$id === 'string' ? json.$id : `def-${i}` },
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'ingressd admin API',
        version: '0.1.0',
        description: 'Kubernetes-shaped Ingress, Service, Endpoints, Secret and IngressClass objects at Kubernetes paths. Bodies are JSON or YAML. Errors are Kubernetes `Status` objects whose `details.errorCode` is listed in docs/errors.md.'
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'INGRESSD_ADMIN_TOKEN' } } },
      security: [{ bearer: [] }],
      tags: [
        { name: 'Ingress', description: 'networking.k8s.io/v1 Ingress: host and path rules to services' },
        { name: 'Service', description: 'v1 Service: ports mapped to Endpoints, or an ExternalName' },
        { name: 'Endpoints', description: 'v1 Endpoints: the addresses behind a Service' },
        { name: 'Secret', description: 'v1 kubernetes.io/tls Secret: certificate and write-only key' },
        { name: 'IngressClass', description: 'networking.k8s.io/v1 IngressClass (accepted for bundles that carry one)' },
        { name: 'Apply', description: 'Many objects in one transaction' },
        { name: 'Health', description: 'Liveness, readiness and metrics' },
        { name: 'Audit', description: 'Who changed what, when' },
        { name: 'Admin TLS', description: 'The CA that clients such as kubectl verify the admin API\'s certificate with' },
        { name: 'Cluster', description: 'The gateway nodes sharing a store: what each serves, whether it is alive' },
        { name: 'Kubernetes API', description: 'What kubectl reads besides the resources: discovery, OpenAPI v2 and v3, and the read-only views `kubectl describe` asks for (events, EndpointSlices)' }
      ]
    }
  })
  await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { persistAuthorization: true, deepLinking: true } })
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())

  const nodes = new NodeDirectory({ local: opts.node ?? defaultLocalNode(opts.store, opts.feed), store: opts.store, cluster: opts.cluster })
  app.addHook('onClose', async () => nodes.close())
  const sync = createWriteSync(opts.store, opts.feed, opts.syncTimeoutMs ?? 5000, nodes)
  registerHealthRoutes(app, opts.readiness)
  registerAdminCaRoute(app, opts.adminCaPem)
  app.get('/audit', {
    schema: {
      tags: ['Audit'],
      operationId: 'listAuditEntries',
      summary: 'The newest changes: who (token or loopback, client address), when, what (verb, object, resourceVersion, outcome); never object contents',
      querystring: Type.Object({ limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,5}$', description: 'How many entries, newest first (default 100)' })) }),
      response: { 200: Type.Object({ items: Type.Array(Type.Object({ at: Type.String(), actor: Type.String(), client: Type.String(), verb: Type.String(), kind: Type.String(), namespace: Type.String(), name: Type.String(), resourceVersion: Type.Integer(), outcome: Type.String() })) }) }
    }
  }, async (req) => ({ items: opts.store.auditEntries(Number((req.query as { limit?: string }).limit ?? 100)) }))
  const clusterRegistry = opts.cluster === undefined ? undefined : clusterMetrics(opts.cluster)
  app.get('/metrics', {
    schema: { tags: ['Health'], operationId: 'getMetrics', summary: 'Prometheus metrics: requests, latency, upstream errors, connections, config generation and reloads, certificate expiry', produces: ['text/plain'], response: { 200: { type: 'string' } } }
  }, async (_req, reply) => {
    const text = await opts.metrics.registry.metrics()
    const cluster = clusterRegistry === undefined ? '' : await clusterRegistry.metrics()
    return reply.type(opts.metrics.registry.contentType).send(cluster === '' ? text : `${text}${text.endsWith('\n') || text === '' ? '' : '\n'}${cluster}`)
  })
  const writer = opts.writer ?? sqliteWriter(opts.store)
  const storeHealth = opts.storeHealth
  if (storeHealth !== undefined) {
    // A read during an outage comes from this node's mirror: say so, as Kubernetes clients print warnings.
    app.addHook('onSend', (req, reply, payload, done) => {
      const health = storeHealth()
      if (!health.reachable && (req.method === 'GET' || req.method === 'HEAD')) {
        reply.header('warning', `299 - "PostgreSQL is unreachable since ${new Date(health.since).toISOString()}: served from this node's local mirror, which may be behind"`)
      }
      done(null, payload)
    })
  }
  registerNodeRoutes(app, nodes)
  // Watch events wait for the data plane to serve their commit, so they carry the status it reported.
  const watches = new WatchHub(opts.store, { settled: async rv => await opts.feed.waitServed(rv, opts.syncTimeoutMs ?? 5000) })
  // Open watches would otherwise hold the admin API's stop until their clients hang up.
  app.addHook('preClose', async () => { watches.close() })
  registerResourceRoutes(app, { store: opts.store, sync, writer, liveAddresses: () => nodes.liveAddresses(), watches })
  registerApplyRoute(app, { store: opts.store, sync, writer })
  registerDiscoveryRoutes(app)
  registerKubeOpenApi(app)
  registerDescribeViews(app, opts.store)
  return app
}
