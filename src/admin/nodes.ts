/**
 * The gateway nodes as users see them: GET /apis/ingressd.io/v1/nodes[/{name}], the addresses an
 * Ingress's status publishes, the cluster half of a write's wait (`?wait=all` and the lag
 * warning), and the cluster gauges on /metrics.
 *
 * In cluster mode every node upserts its row in PostgreSQL's `nodes` table each second
 * (store/cluster); the table is read here on demand, never in the background, and the last list
 * read is kept, so that the API still answers, and Ingress status still lists the nodes, while
 * PostgreSQL is away. In embedded mode the list is this node alone, from its own change feed.
 *
 * A node's report is up to a heartbeat old, so right after any write every other node looks
 * behind for up to a second. "Behind" (the state, and the warning a write gets without
 * `?wait=all`) therefore means: the node's last report lacks a version this node had already
 * applied LAG_GRACE_MS before that report, i.e. a version a healthy node would have served.
 */
import { hostname } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { Counter, Gauge, Registry } from 'prom-client'
import Type from 'typebox'
import { IngressdError } from '../errors.js'
import { StatusSchema } from '../resources/meta.js'
import type { ChangeFeed } from '../store/change-feed.js'
import type { NodeReport } from '../store/cluster/cluster-store.js'
import type { NodeTable } from '../store/cluster/postgres.js'
import type { ObjectStore } from '../store/object-store.js'
import { VERSION } from '../version.js'
import { ref } from './resource-routes.js'
import { warningHeader, type LaggingNode, type PeerNodes } from './write-sync.js'

export const NODE_API_VERSION = 'ingressd.io/v1'

/** How long after a version reached this node a healthy node's heartbeat must report it. */
export const LAG_GRACE_MS = 2000
/** How long the versions this node applied are remembered, to judge other nodes' reports, and how many at most. */
const HISTORY_MS = 60_000
const HISTORY_MAX = 10_000
/** An Ingress read refreshes the node list when it is older than this... */
const FRESH_MS = 1000
/** ...but waits for PostgreSQL at most this long before answering from the last list. */
const FRESHEN_WAIT_MS = 250

export type NodeState = 'Ready' | 'Behind' | 'Gone' | 'CompileError'

/** What the admin plane reads of cluster mode: a ClusterStore. */
export interface ClusterSource {
  readonly health: { reachable: boolean }
  readonly lastHead: { resourceVersion: number } | undefined
  readonly fullResyncs: number
  readonly rows: { head: () => { resourceVersion: number } }
  nodes: () => Promise<NodeTable>
  onApplied: (listener: (resourceVersion: number) => void) => () => void
}

/** This node as it reports itself: in cluster mode the very report its heartbeat upserts. */
export type LocalNode = Pick<NodeReport, 'name' | 'addresses' | 'version' | 'servedVersion' | 'problem'>

const NodeStateSchema = Type.Union([Type.Literal('Ready'), Type.Literal('Behind'), Type.Literal('Gone'), Type.Literal('CompileError')], {
  description: 'Gone: no heartbeat for 10 s (PostgreSQL\'s clock); CompileError: it could not compile the store and serves its last good configuration; Behind: its last report lacks a version committed 2 s before it; Ready otherwise'
})

export const NodeSchema = Type.Object({
  apiVersion: Type.Literal(NODE_API_VERSION),
  kind: Type.Literal('Node'),
  metadata: Type.Object({ name: Type.String({ description: 'INGRESSD_NODE_NAME, or the host name and the admin port' }) }),
  status: Type.Object({
    addresses: Type.Array(Type.String(), { description: 'What the node publishes (INGRESSD_PUBLISH_ADDRESS): the addresses in status.loadBalancer.ingress of served ingresses' }),
    version: Type.String({ description: 'The ingressd version the node runs' }),
    servedResourceVersion: Type.String({ description: 'The store resourceVersion the node\'s data plane serves, as of its last heartbeat' }),
    storeResourceVersion: Type.String({ description: 'The store\'s resourceVersion when the list was read' }),
    behind: Type.Integer({ minimum: 0, description: 'storeResourceVersion minus servedResourceVersion' }),
    state: NodeStateSchema,
    lastHeartbeat: Type.String({ format: 'date-time' }),
    startedAt: Type.String({ format: 'date-time' }),
    problem: Type.Optional(Type.String({ description: 'Why the node could not compile the store\'s configuration' }))
  })
}, { $id: 'Node', description: 'A gateway node: what it serves and whether it is alive' })

const NodeListSchema = Type.Object({
  apiVersion: Type.Literal(NODE_API_VERSION),
  kind: Type.Literal('NodeList'),
  metadata: Type.Object({ resourceVersion: Type.String() }),
  items: Type.Array(ref(NodeSchema))
})

/** A node as the API serves it. */
export interface NodeView {
  apiVersion: typeof NODE_API_VERSION
  kind: 'Node'
  metadata: { name: string }
  status: {
    addresses: string[]
    version: string
    servedResourceVersion: string
    storeResourceVersion: string
    behind: number
    state: NodeState
    lastHeartbeat: string
    startedAt: string
    problem?: string
  }
}

/** The node list, and when PostgreSQL did not answer, when the list served instead was read and why. */
export interface NodeListing {
  items: NodeView[]
  storeResourceVersion: number
  stale?: { readAt: Date, error: string }
}

/** The report of a node built without one (tests, the OpenAPI generator): named after the host. */
export function defaultLocalNode (store: ObjectStore, feed: ChangeFeed): LocalNode {
  return {
    name: () => hostname(),
    addresses: () => [],
    version: VERSION,
    servedVersion: () => { const v = feed.servedByAll(); return Number.isFinite(v) ? Math.max(0, v) : 0 },
    problem: () => { const p = feed.problemsAt(store.resourceVersion()); return p.length === 0 ? undefined : p.join('; ') }
  }
}

function view (name: string, s: { addresses: string[], version: string, served: number, store: number, state: NodeState, lastHeartbeat: Date, startedAt: Date, problem: string | undefined }): NodeView {
  const status: NodeView['status'] = {
    addresses: s.addresses,
    version: s.version,
    servedResourceVersion: String(s.served),
    storeResourceVersion: String(s.store),
    behind: Math.max(0, s.store - s.served),
    state: s.state,
    lastHeartbeat: s.lastHeartbeat.toISOString(),
    startedAt: s.startedAt.toISOString()
  }
  if (s.problem !== undefined) status.problem = s.problem
  return { apiVersion: NODE_API_VERSION, kind: 'Node', metadata: { name }, status }
}

/** Reads and remembers the nodes; see the module comment. */
export class NodeDirectory implements PeerNodes {
  readonly #local: LocalNode
  readonly #store: ObjectStore
  readonly #cluster: ClusterSource | undefined
  readonly #startedAt = new Date()
  /** The last table read, and when (this process's clock). */
  #last: { table: NodeTable, at: number } | undefined
  #inflight: Promise<NodeTable> | undefined
  /** The versions this node applied and when, oldest first; the first entry is a floor older than HISTORY_MS. */
  readonly #applied: { at: number, version: number }[] = []
  readonly #unsubscribe: () => void

  constructor (opts: { local: LocalNode, store: ObjectStore, cluster?: ClusterSource | undefined }) {
    this.#local = opts.local
    this.#store = opts.store
    this.#cluster = opts.cluster
    if (this.#cluster === undefined) {
      this.#unsubscribe = () => {}
    } else {
      this.#record(this.#cluster.rows.head().resourceVersion)
      this.#unsubscribe = this.#cluster.onApplied(version => this.#record(version))
    }
  }

  /** True in cluster mode. */
  get clustered (): boolean {
    return this.#cluster !== undefined
  }

  #record (version: number): void {
    const now = Date.now()
    this.#applied.push({ at: now, version })
    while (this.#applied.length > 1 && ((this.#applied[1] as { at: number }).at < now - HISTORY_MS || this.#applied.length > HISTORY_MAX)) this.#applied.shift()
  }

  /** The newest version this node had applied LAG_GRACE_MS before `at`: what a healthy node reporting at `at` serves. */
  #expectedAt (at: number): number {
    let version = 0
    for (const entry of this.#applied) {
      if (entry.at > at - LAG_GRACE_MS) break
      version = entry.version
    }
    return version
  }

  /** Reads the table now (one read at a time: callers share the one in flight) and keeps it. Throws when PostgreSQL does not answer. */
  async read (): Promise<NodeTable> {
    const cluster = this.#cluster
    if (cluster === undefined) throw new Error('embedded mode has no nodes table')
    this.#inflight ??= cluster.nodes().then(table => {
      this.#last = { table, at: Date.now() }
      return table
    }).finally(() => { this.#inflight = undefined })
    return await this.#inflight
  }

  /** Refreshes the kept list when it is older than FRESH_MS, waiting for PostgreSQL FRESHEN_WAIT_MS at most. */
  async freshen (): Promise<void> {
    if (this.#cluster === undefined || !this.#cluster.health.reachable) return
    if (this.#last !== undefined && Date.now() - this.#last.at < FRESH_MS) return
    await Promise.race([this.read().catch(() => {}), sleep(FRESHEN_WAIT_MS, undefined, { ref: false })])
  }

  /** The nodes of a table as served; this node's row shows what it serves now, and is made up from its report if missing. */
  #present (table: NodeTable, readAt: number): NodeView[] {
    const self = this.#local.name()
    const items: NodeView[] = []
    let sawSelf = false
    for (const row of table.rows) {
      const isSelf = row.name === self
      sawSelf ||= isSelf
      const served = isSelf ? Math.max(row.servedResourceVersion, this.#local.servedVersion()) : row.servedResourceVersion
      const problem = isSelf ? this.#local.problem() : row.problem
      const state: NodeState = row.gone ? 'Gone' : problem !== undefined ? 'CompileError' : served < this.#expectedAt(readAt - row.ageMs) ? 'Behind' : 'Ready'
      items.push(view(row.name, { addresses: row.addresses, version: row.version, served, store: table.storeResourceVersion, state, lastHeartbeat: row.lastSeen, startedAt: row.startedAt, problem }))
    }
    if (!sawSelf) {
      items.push(this.#selfView(table.storeResourceVersion, false))
      items.sort((a, b) => a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0)
    }
    return items
  }

  /** This node from its own report. `strict`: behind the store is Behind (embedded mode, where nothing lags by a heartbeat). */
  #selfView (store: number, strict: boolean): NodeView {
    const served = this.#local.servedVersion()
    const problem = this.#local.problem()
    const state: NodeState = problem !== undefined ? 'CompileError' : strict && served < store ? 'Behind' : 'Ready'
    return view(this.#local.name(), { addresses: this.#local.addresses(), version: this.#local.version, served, store, state, lastHeartbeat: new Date(), startedAt: this.#startedAt, problem })
  }

  /**
   * The list: read now, or, when PostgreSQL does not answer, the last list read (this node alone
   * if there is none), with when it was read and why it was not read again.
   */
  async list (): Promise<NodeListing> {
    if (this.#cluster === undefined) {
      const store = this.#store.resourceVersion()
      return { items: [this.#selfView(store, true)], storeResourceVersion: store }
    }
    try {
      // Known to be away: answer now rather than wait out a connect timeout on every read.
      if (!this.#cluster.health.reachable) throw new Error('unreachable at the last attempt')
      const table = await this.read()
      return { items: this.#present(table, Date.now()), storeResourceVersion: table.storeResourceVersion }
    } catch (err) {
      const error = (err as Error).message
      const last = this.#last
      if (last === undefined) {
        const store = this.#cluster.lastHead?.resourceVersion ?? this.#cluster.rows.head().resourceVersion
        return { items: [this.#selfView(store, false)], storeResourceVersion: store, stale: { readAt: new Date(), error } }
      }
      return { items: this.#present(last.table, last.at), storeResourceVersion: last.table.storeResourceVersion, stale: { readAt: new Date(last.at), error } }
    }
  }

  /** The distinct addresses of the live nodes, from the last list read (undefined before any, and in embedded mode). */
  liveAddresses (): string[] | undefined {
    const last = this.#last
    if (this.#cluster === undefined || last === undefined) return undefined
    const self = this.#local.name()
    const out: string[] = []
    const add = (addresses: string[]): void => { for (const a of addresses) if (a !== '' && !out.includes(a)) out.push(a) }
    for (const row of last.table.rows) if (!row.gone) add(row.addresses)
    // This node serves whatever its row says: one not upserted yet still counts.
    if (!last.table.rows.some(r => r.name === self)) add(this.#local.addresses())
    return out
  }

  /** Live nodes besides this one whose last report is behind what they should serve by now; undefined when unknown. */
  async lagging (): Promise<LaggingNode[] | undefined> {
    if (this.#cluster === undefined || !this.#cluster.health.reachable) return undefined
    let table: NodeTable
    try {
      table = await this.read()
    } catch {
      return undefined
    }
    const self = this.#local.name()
    return this.#present(table, Date.now())
      .filter(n => n.metadata.name !== self && n.status.state === 'Behind')
      .map(n => lagger(n.metadata.name, Number(n.status.servedResourceVersion), n.status.problem))
  }

  /**
   * Waits until every live node besides this one reports serving `version`, reading the table
   * every 50 ms for `timeoutMs` at most; returns those still behind, and those that took it but
   * could not compile it (undefined in embedded mode).
   */
  async waitAll (version: number, timeoutMs: number): Promise<{ lagging: LaggingNode[], error?: string } | undefined> {
    if (this.#cluster === undefined) return undefined
    const deadline = Date.now() + timeoutMs
    const self = this.#local.name()
    let behind: LaggingNode[] = []
    for (;;) {
      let table: NodeTable
      try {
        table = await this.read()
      } catch (err) {
        return { lagging: behind, error: (err as Error).message }
      }
      const peers = table.rows.filter(r => !r.gone && r.name !== self)
      behind = peers.filter(r => r.servedResourceVersion < version || r.problem !== undefined).map(r => lagger(r.name, r.servedResourceVersion, r.problem))
      const left = deadline - Date.now()
      if (left <= 0 || peers.every(r => r.servedResourceVersion >= version)) return { lagging: behind }
      await sleep(Math.min(50, left))
    }
  }

  /** Stops following this node's applied versions. */
  close (): void {
    this.#unsubscribe()
  }
}

function lagger (name: string, servedResourceVersion: number, problem: string | undefined): LaggingNode {
  return problem === undefined ? { name, servedResourceVersion } : { name, servedResourceVersion, problem }
}

const IngressPath = /\/ingresses(\/|\?|$)/

/** Registers GET /apis/ingressd.io/v1/nodes[/{name}], and keeps the node list fresh for Ingress reads. */
export function registerNodeRoutes (app: FastifyInstance, nodes: NodeDirectory): void {
  app.addSchema(NodeSchema)
  const errors = { 401: ref(StatusSchema), 404: ref(StatusSchema) }
  const staleWarning = (stale: NodeListing['stale'], reply: { header: (name: string, value: string) => unknown }): void => {
    // app.ts replaces this with its own outage warning when the store is known to be unreachable.
    if (stale !== undefined) reply.header('warning', warningHeader([`PostgreSQL did not answer (${stale.error}): the node list was read at ${stale.readAt.toISOString()}`]) as string)
  }
  app.get(`/apis/${NODE_API_VERSION}/nodes`, {
    schema: {
      tags: ['Cluster'],
      operationId: 'listIngressdV1Node',
      summary: 'List the gateway nodes: what each serves, whether it is alive',
      description: 'Cluster mode: every node sharing the PostgreSQL store, from the heartbeats they write each second (liveness by PostgreSQL\'s clock). Embedded mode: this node alone. While PostgreSQL is away, the last list read, with a Warning header.',
      response: { 200: NodeListSchema, ...errors }
    }
  }, async (_req, reply) => {
    const { items, storeResourceVersion, stale } = await nodes.list()
    staleWarning(stale, reply)
    return { apiVersion: NODE_API_VERSION, kind: 'NodeList', metadata: { resourceVersion: String(storeResourceVersion) }, items }
  })
  app.get(`/apis/${NODE_API_VERSION}/nodes/:name`, {
    schema: {
      tags: ['Cluster'],
      operationId: 'readIngressdV1Node',
      summary: 'Read a gateway node',
      params: Type.Object({ name: Type.String() }),
      response: { 200: ref(NodeSchema), ...errors }
    }
  }, async (req, reply) => {
    const name = (req.params as { name: string }).name
    const { items, stale } = await nodes.list()
    const found = items.find(n => n.metadata.name === name)
    if (found === undefined) throw new IngressdError('INGRESSD_ERR_NOT_FOUND', `nodes.ingressd.io "${name}" not found`, { subject: { name, group: 'ingressd.io', kind: 'Node' } })
    staleWarning(stale, reply)
    return found
  })
  if (nodes.clustered) {
    // An Ingress's status lists the live nodes' addresses: read them again when they may have changed.
    app.addHook('preHandler', async (req) => {
      if (req.method === 'GET' && IngressPath.test(req.url)) await nodes.freshen()
    })
  }
}

/** The cluster gauges for /metrics, read when scraped. */
export function clusterMetrics (cluster: ClusterSource): Registry {
  const registry = new Registry()
  const storeUp: Gauge = new Gauge({ name: 'ingressd_cluster_store_up', help: 'Whether PostgreSQL answered the last attempt to reach it (1) or not (0)', registers: [registry], collect: () => { storeUp.set(cluster.health.reachable ? 1 : 0) } })
  const replica: Gauge = new Gauge({ name: 'ingressd_cluster_replica_version', help: 'The resourceVersion of this node\'s local mirror of the store', registers: [registry], collect: () => { replica.set(cluster.rows.head().resourceVersion) } })
  const storeVersion: Gauge = new Gauge({
    name: 'ingressd_cluster_store_version',
    help: 'PostgreSQL\'s resourceVersion as this node last read it',
    registers: [registry],
    collect: () => {
      const head = cluster.lastHead
      if (head === undefined) storeVersion.reset()
      else storeVersion.set(head.resourceVersion)
    }
  })
  let counted = 0
  const resyncs: Counter = new Counter({
    name: 'ingressd_cluster_full_resyncs_total',
    help: 'Times the local mirror was copied whole from PostgreSQL (a new or restored store, or a mirror too far behind)',
    registers: [registry],
    collect: () => {
      const now = cluster.fullResyncs
      if (now > counted) resyncs.inc(now - counted)
      counted = now
    }
  })
  return registry
}
