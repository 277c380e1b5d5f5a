/**
 * Cluster mode's two halves on a node: the writer, through which every admin write goes, and the
 * replicator, which keeps the node's SQLite file a mirror of PostgreSQL.
 *
 * A write takes PostgreSQL's store_state row lock (so writes from every node are serialized and
 * versions stay dense, in commit order), brings the local mirror up to PostgreSQL's head, runs the
 * write in a local SQLite transaction exactly as in embedded mode (the same validation,
 * preconditions and versions), takes the rows it changed and rolls the local transaction back
 * (nothing uncommitted is ever visible here across an await), ships the rows to PostgreSQL and
 * commits there, and only then applies them to the local file. PostgreSQL is the truth: a write
 * it did not commit changed nothing anywhere; one it committed reaches the local file at once
 * or, if that failed, through the replicator.
 *
 * The replicator follows PostgreSQL: LISTEN/NOTIFY is only a hint; it reads from its last version
 * on every notification, every (re)connection and every second, so a lost notification or a dead
 * listener delays a change by at most the poll. The data plane follows the local file unchanged.
 */
import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import pg from 'pg'
import type { Logger } from 'pino'
import { IngressdError } from '../../errors.js'
import type { ObjectStore } from '../object-store.js'
import { bounded, destroyConnection, isUnavailable, PostgresStore, redactUrl, unavailable, type NodeTable, type StoreHead } from './postgres.js'
import { ReplicaRows, type ReplicaBatch } from './replica-rows.js'

/** How long an admin write may take in all, queueing included, before it answers 503 (the issue: within 5 s). */
const WRITE_DEADLINE_MS = 4500

/** Runs async sections one at a time: a node's writes and its replication never interleave. */
class Mutex {
  #tail: Promise<unknown> = Promise.resolve()

  async run<T> (fn: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(fn, fn)
    this.#tail = result.catch(() => {})
    return await result
  }
}

/** Whether PostgreSQL was reachable at the last attempt, and since when it is not. */
export interface StoreHealth {
  readonly reachable: boolean
  readonly since: number
  readonly lastError: string | undefined
}

/** What a node reports about itself in the `nodes` table. */
export interface NodeReport {
  /** Asked at each heartbeat: the default name needs the admin port, bound after the store starts. */
  name: () => string
  addresses: () => string[]
  version: string
  servedVersion: () => number
  problem: () => string | undefined
}

export interface ClusterStoreOptions {
  url: string
  store: ObjectStore
  logger: Logger
  node: NodeReport
  /** How often to read PostgreSQL's head without a notification (default 1 s). */
  pollMs?: number
  /** How often to upsert this node's row and check the listener (default 1 s). */
  heartbeatMs?: number
}

/** The cluster side of a node. */
export class ClusterStore {
  readonly pg: PostgresStore
  readonly rows: ReplicaRows
  readonly #mutex = new Mutex()
  readonly #store: ObjectStore
  readonly #log: Logger
  readonly #node: NodeReport
  readonly #pollMs: number
  readonly #heartbeatMs: number
  #listener: pg.Client | undefined
  #timers: NodeJS.Timeout[] = []
  #stopped = false
  #syncing = false
  #beating = false
  #beatAgain = false
  #again = false
  #health: { reachable: boolean, since: number, lastError: string | undefined } = { reachable: true, since: Date.now(), lastError: undefined }
  #lastHead: StoreHead | undefined
  /** Full copies made (a restored or replaced store, or a mirror too far behind). */
  fullResyncs = 0
  readonly #startedAt = new Date()
  #onApplied = new Set<(resourceVersion: number) => void>()

  constructor (readonly opts: ClusterStoreOptions) {
    this.#store = opts.store
    this.#log = opts.logger
    this.#node = opts.node
    this.#pollMs = opts.pollMs ?? 1000
    this.#heartbeatMs = opts.heartbeatMs ?? 1000
    this.rows = new ReplicaRows(opts.store.db)
    this.pg = new PostgresStore(opts.url, 'ingressd')
  }

  get health (): StoreHealth {
    return this.#health
  }

  /** PostgreSQL's head as last read (undefined before the first read). */
  get lastHead (): StoreHead | undefined {
    return this.#lastHead
  }

  /**
   * Every node's row in PostgreSQL (this one's included) and the store's version. Throws what pg
   * throws when PostgreSQL does not answer; reading does not change `health`, which the heartbeat,
   * the replicator and writes keep.
   */
  async nodes (): Promise<NodeTable> {
    return await this.pg.nodes()
  }

  /** Calls `listener` after each batch applied to the local file. */
  onApplied (listener: (resourceVersion: number) => void): () => void {
    this.#onApplied.add(listener)
    return () => this.#onApplied.delete(listener)
  }

  #reachable (): void {
    if (!this.#health.reachable) this.#log.info({ downMs: Date.now() - this.#health.since }, 'PostgreSQL is reachable again')
    this.#health = { reachable: true, since: this.#health.reachable ? this.#health.since : Date.now(), lastError: undefined }
  }

  #unreachable (err: unknown): void {
    const message = unavailable(err, 'cluster').message
    if (this.#health.reachable) this.#log.error({ err: { message } }, 'PostgreSQL is unreachable: this node keeps serving its last configuration and refuses admin writes')
    this.#health = { reachable: false, since: this.#health.reachable ? Date.now() : this.#health.since, lastError: message }
  }

  /** Applies a batch to the local file in one transaction and tells the data plane. */
  #apply (batch: ReplicaBatch): void {
    this.#store.db.transaction(() => { this.rows.apply(batch) }).immediate()
    if (batch.full) {
      this.fullResyncs++
      this.#log.warn({ resourceVersion: batch.resourceVersion, objects: batch.objects.length }, 'the local mirror was copied whole from PostgreSQL (a new or restored store, or a mirror too far behind)')
    }
    this.#store.announceCommit(batch.resourceVersion)
    for (const listener of this.#onApplied) listener(batch.resourceVersion)
  }

  /**
   * Runs an admin write (the same function the embedded store runs in its transaction) through
   * PostgreSQL. Throws what the function throws (a validation error, a conflict), or
   * INGRESSD_ERR_STORE_UNAVAILABLE when PostgreSQL cannot take it.
   */
  async write<T> (fn: () => T): Promise<T> {
    // A write waits behind this node's other writes at most this long before it answers 503, and
    // gives up rather than commit once past it: the client is never told 503 about a write that
    // then lands later.
    const deadline = Date.now() + WRITE_DEADLINE_MS
    return await this.#mutex.run(async () => {
      if (Date.now() > deadline) throw unavailable(new Error('timed out waiting for this node\'s earlier writes'), 'writing')
      let client: pg.PoolClient
      try {
        client = await this.pg.pool.connect()
      } catch (err) {
        this.#unreachable(err)
        throw unavailable(err, 'connecting')
      }
      let broken: Error | undefined
      try {
        await client.query('BEGIN')
        await client.query('SET LOCAL lock_timeout = \'3s\'')
        const head = await this.pg.head(client, true)
        this.#lastHead = head
        // Under the lock nobody else commits: the mirror made current here is what the write sees.
        const catchUp = await this.pg.batchFor(client, this.rows.head(), head)
        if (catchUp !== undefined) this.#apply(catchUp)
        const before = this.rows.head()
        const mark = this.rows.auditMark()
        const db = this.#store.db
        let result: T
        let change: ReplicaBatch | undefined
        // The whole local part is synchronous: begun, run, read and rolled back with no await between.
        db.exec('BEGIN IMMEDIATE')
        try {
          result = fn()
          const after = this.rows.head()
          if (after.resourceVersion !== before.resourceVersion) {
            change = { storeUid: head.storeUid, resourceVersion: after.resourceVersion, routingVersion: after.routingVersion, full: false, objects: this.rows.objectsSince(before.resourceVersion), deletions: this.rows.deletionsSince(before.resourceVersion), audit: this.rows.auditSince(mark) }
          }
        } finally {
          db.exec('ROLLBACK')
        }
        if (change === undefined) {
          await client.query('ROLLBACK')
          this.#reachable()
          return result
        }
        change.commitId = randomUUID()
        await this.pg.ship(client, { resourceVersion: change.resourceVersion, routingVersion: change.routingVersion, commitId: change.commitId, objects: change.objects, deletions: change.deletions, audit: change.audit ?? [] })
        if (Date.now() > deadline) throw unavailable(new Error('PostgreSQL answered too slowly; the write was rolled back'), 'writing')
        await client.query('COMMIT')
        this.#lastHead = { ...head, resourceVersion: change.resourceVersion, routingVersion: change.routingVersion, commitId: change.commitId }
        this.#reachable()
        try {
          this.#apply(change)
        } catch (err) {
          // PostgreSQL has it: the replicator brings it here on its next pass.
          this.#log.error({ err }, 'a committed write could not be applied to the local mirror; the replicator will')
          this.#kick()
        }
        return result
      } catch (err) {
        broken = err as Error
        // On a connection that is gone, a ROLLBACK would only wait out its timeout: the connection
        // is destroyed below and PostgreSQL aborts what it held.
        if (!isUnavailable(err)) await client.query('ROLLBACK').catch(() => {})
        if (err instanceof IngressdError) throw err
        if (isUnavailable(err)) {
          this.#unreachable(err)
          throw unavailable(err, 'writing')
        }
        throw err
      } finally {
        client.release(broken !== undefined && isUnavailable(broken) ? broken : undefined)
      }
    })
  }

  /** One pass: reads PostgreSQL's head and applies what the mirror lacks. Never throws. */
  async sync (): Promise<void> {
    if (this.#syncing) {
      this.#again = true
      return
    }
    this.#syncing = true
    try {
      do {
        this.#again = false
        // The network reads happen outside the lock, so a slow or half-open link never holds up
        // this node's writes; the batch is applied only if the mirror did not move meanwhile.
        const mirror = this.rows.head()
        const head = await this.pg.head()
        this.#lastHead = head
        if (head.storeUid === mirror.storeUid && head.resourceVersion === mirror.resourceVersion && head.commitId === (head.commitId === undefined ? undefined : mirror.commitId)) {
          this.#reachable()
          continue
        }
        const batch = await this.pg.changesFor(mirror)
        await this.#mutex.run(async () => {
          const now = this.rows.head()
          if (now.resourceVersion !== mirror.resourceVersion || now.storeUid !== mirror.storeUid || now.epoch !== mirror.epoch) {
            this.#again = true
            return
          }
          if (batch !== undefined) this.#apply(batch)
        })
        this.#reachable()
      } while (this.#again && !this.#stopped)
    } catch (err) {
      if (isUnavailable(err)) this.#unreachable(err)
      else this.#log.error({ err }, 'replication from PostgreSQL failed; retrying')
    } finally {
      this.#syncing = false
    }
  }

  #kick (): void {
    if (!this.#stopped) this.sync().catch(() => {})
  }

  /** Opens the listener (LISTEN ingressd_commit), reconnecting after a failure. */
  async #listen (): Promise<void> {
    if (this.#stopped || this.#listener !== undefined) return
    const client = new pg.Client({ connectionString: this.opts.url, connectionTimeoutMillis: 3000, keepAlive: true, application_name: 'ingressd/listener', query_timeout: 3000 })
    this.#listener = client
    const drop = (): void => {
      if (this.#listener !== client) return
      this.#listener = undefined
      client.end().catch(() => {})
      // A polite end() on a half-open link waits forever for the server's close: cut the socket too.
      destroyConnection(client)
    }
    client.on('error', drop)
    client.on('end', drop)
    client.on('notification', () => this.#kick())
    try {
      await client.connect()
      await client.query('LISTEN ingressd_commit')
      // Anything committed while there was no listener is read now.
      this.#kick()
    } catch (err) {
      drop()
      if (isUnavailable(err)) this.#unreachable(err)
    }
  }

  /** Upserts this node's row with the database's clock, and checks the listener is alive. */
  async #heartbeat (): Promise<void> {
    // One at a time: on a half-open link a check takes its 3 s timeout, longer than the interval.
    if (this.#beating) {
      this.#beatAgain = true
      return
    }
    this.#beating = true
    try {
      do {
        this.#beatAgain = false
        await this.#beat()
      } while (this.#beatAgain && !this.#stopped)
    } finally {
      this.#beating = false
    }
  }

  async #beat (): Promise<void> {
    const listener = this.#listener
    if (listener === undefined) await this.#listen()
    else {
      // A half-open connection shows up here: the query times out and the listener is replaced.
      try {
        await listener.query('SELECT 1')
      } catch {
        if (this.#listener === listener) {
          this.#listener = undefined
          listener.end().catch(() => {})
          destroyConnection(listener)
        }
      }
    }
    try {
      await this.pg.pool.query(`INSERT INTO nodes (name, addresses, version, served_resource_version, problem, started_at, last_seen)
        VALUES ($1, $2, $3, $4, $5, $6, now())
        ON CONFLICT (name) DO UPDATE SET addresses = excluded.addresses, version = excluded.version, served_resource_version = excluded.served_resource_version, problem = excluded.problem, started_at = excluded.started_at, last_seen = now()`,
      [this.#node.name(), JSON.stringify(this.#node.addresses()), this.#node.version, this.#node.servedVersion(), this.#node.problem() ?? null, this.#startedAt.toISOString()])
      this.#reachable()
    } catch (err) {
      if (isUnavailable(err)) this.#unreachable(err)
    }
  }

  /**
   * Starts following PostgreSQL: migrations (under an advisory lock), a first sync, the listener,
   * the poll and the heartbeat. When PostgreSQL cannot be reached the node starts anyway, from its
   * mirror, and keeps trying; a refusal (a wrong password, a missing database) throws.
   */
  async start (): Promise<void> {
    let reachable = true
    try {
      await this.pg.migrate()
      await this.sync()
      if (!this.#health.reachable) throw new Error(this.#health.lastError)
    } catch (err) {
      if (!isUnavailable(err) && !(err instanceof IngressdError && err.code === 'INGRESSD_ERR_STORE_UNAVAILABLE')) throw err
      this.#unreachable(err)
      reachable = false
    }
    const poll = setInterval(() => this.#kick(), this.#pollMs)
    // A new served version is reported at once (within 100 ms), not at the next heartbeat: writers
    // waiting for every node (?wait=all) see it without a second's delay.
    let reported = -1
    const served = setInterval(() => {
      const now = this.#node.servedVersion()
      if (now !== reported) {
        reported = now
        this.#heartbeat().catch(() => {})
      }
    }, 100)
    served.unref()
    this.#timers.push(served)
    const beat = setInterval(() => { this.#heartbeat().catch(() => {}) }, this.#heartbeatMs)
    const housekeeping = setInterval(() => { this.pg.housekeep(100_000).catch(() => {}) }, 60_000)
    for (const t of [poll, beat, housekeeping]) t.unref()
    this.#timers.push(poll, beat, housekeeping)
    if (reachable) {
      await this.#listen()
      await this.#heartbeat()
    } else {
      // PostgreSQL did not answer: serve the mirror now. Awaited, the listener and the heartbeat
      // would each wait out their own connect timeout first (some 9 s more when connections hang);
      // the heartbeat keeps trying every second in the background, the listener with it.
      this.#heartbeat().catch(() => {})
    }
  }

  async close (): Promise<void> {
    this.#stopped = true
    for (const t of this.#timers) clearInterval(t)
    const listener = this.#listener
    this.#listener = undefined
    // On a half-open link a polite end() waits for a reply that never comes: bounded, then cut.
    if (listener !== undefined) await bounded(listener.end(), 1000, () => { destroyConnection(listener) })
    await this.pg.close()
  }
}

/** The default node name: this host and the admin port, so several nodes on one host stay distinct. */
export function defaultNodeName (adminPort: number): string {
  return `${hostname()}:${adminPort}`
}

/** Whether this node's mirror has ever copied a store: a node that has none is not ready to serve. */
export function mirrorSynced (cluster: ClusterStore): boolean {
  return cluster.rows.head().storeUid !== undefined
}

/**
 * Starts a node's cluster side. A refusal that no retry will fix (a wrong password, a missing
 * database, a migration that fails) is a configuration error: one line naming the setting and the
 * cause, never the password, and the process exits 2. An unreachable database is not: the node
 * serves its mirror and keeps trying.
 */
export async function startClusterStore (opts: ClusterStoreOptions): Promise<ClusterStore> {
  const cluster = new ClusterStore(opts)
  try {
    await cluster.start()
  } catch (err) {
    await cluster.close()
    const code = String((err as { code?: string }).code ?? '')
    const why = code === '28P01' || code === '28000'
      ? 'PostgreSQL refused the credentials'
      : code === '3D000'
        ? 'the database does not exist'
        : (err as Error).message
    throw new IngressdError('INGRESSD_ERR_CONFIG', `INGRESSD_POSTGRES_URL (${redactUrl(opts.url)}): ${why}`.replace(/:\/\/([^:@/]*):[^@/]*@/g, '://$1:***@'), { cause: err })
  }
  return cluster
}
