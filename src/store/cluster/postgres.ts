/**
 * PostgreSQL, the source of truth in cluster mode: its migrations (numbered like SQLite's, run
 * under an advisory lock so nodes starting together do not race), the store's head, the rows a
 * mirror lacks (read in one REPEATABLE READ snapshot), and the commit of a write a node made in
 * its own file. Every query is bounded in time: a database that does not answer makes a write
 * fail with INGRESSD_ERR_STORE_UNAVAILABLE, never hang.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import pg from 'pg'
import { IngressdError } from '../../errors.js'
import { MIGRATIONS_DIR } from '../migrations.js'
import type { AuditRow, DeletionRow, MirrorHead, ObjectRow, ReplicaBatch } from './replica-rows.js'

/** Migrations for PostgreSQL, numbered like the SQLite ones, in their own folder. */
export const PG_MIGRATIONS_DIR = join(MIGRATIONS_DIR, 'postgres')

/** pg_advisory_lock keys: one for migrations, one for housekeeping (one node at a time). */
const MIGRATION_LOCK = 7_301_001
const HOUSEKEEPING_LOCK = 7_301_002

/** How long one statement may take before the write answers 503 (a blackholed link included). */
export const QUERY_TIMEOUT_MS = 4000
/** How long opening a connection may take. */
export const CONNECT_TIMEOUT_MS = 3000

/** A node that has not upserted its row for this long (PostgreSQL's clock) is Gone: writes stop waiting for it. */
export const NODE_GONE_AFTER_MS = 10_000

/** One row of the `nodes` table, as read with PostgreSQL's clock. */
export interface NodeRow {
  name: string
  addresses: string[]
  /** ingressd's version on that node. */
  version: string
  servedResourceVersion: number
  problem: string | undefined
  startedAt: Date
  lastSeen: Date
  /** How long ago the row was last upserted, by PostgreSQL's clock (so no node's clock skew matters). */
  ageMs: number
  /** No heartbeat for NODE_GONE_AFTER_MS. */
  gone: boolean
}

/** The `nodes` table and the store's resourceVersion, read in one statement. */
export interface NodeTable {
  storeResourceVersion: number
  rows: NodeRow[]
}

/** The store's head in PostgreSQL. */
export interface StoreHead {
  storeUid: string
  resourceVersion: number
  routingVersion: number
  horizon: number
  /** The id of the commit that made `resourceVersion` (undefined at 0). */
  commitId: string | undefined
}

/** The commit id PostgreSQL recorded for `resourceVersion` (undefined: none, or pruned). */
async function commitIdAt (client: pg.ClientBase, resourceVersion: number): Promise<string | undefined> {
  if (resourceVersion <= 0) return undefined
  return (await client.query<{ commit_id: string }>('SELECT commit_id FROM commit_history WHERE resource_version = $1', [resourceVersion])).rows[0]?.commit_id
}

/** A PostgreSQL URL with its password hidden, for logs and errors. */
export function redactUrl (url: string): string {
  try {
    const u = new URL(url)
    if (u.password !== '') u.password = '***'
    return u.toString()
  } catch {
    return '<unparseable URL>'
  }
}

/** True for failures that mean "the database is not there now" rather than a bug or a refusal. */
export function isUnavailable (err: unknown): boolean {
  const e = err as { code?: string, message?: string }
  const code = String(e.code ?? '')
  if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', '57P01', '57P02', '57P03', '08000', '08003', '08006', '08001', '08004', '53300', '55P03', '57014', '25006'].includes(code)) return true
  // pg's own wording for a connection that timed out, broke or was closed under a query.
  return /timeout|timed out|terminated|Connection ended|not queryable|ended unexpectedly/i.test(String(e.message ?? ''))
}

/** An IngressdError for a database that is away, without the URL's password. */
export function unavailable (err: unknown, what: string): IngressdError {
  const detail = String((err as { message?: string }).message ?? err).replace(/postgres(ql)?:\/\/[^\s]*/gi, m => redactUrl(m))
  return new IngressdError('INGRESSD_ERR_STORE_UNAVAILABLE', `PostgreSQL is unavailable (${what}): ${detail}; every node keeps serving its last configuration`, { cause: err })
}

function toNumber (v: unknown): number {
  return typeof v === 'number' ? v : Number(v)
}

/** Waits for `promise` at most `ms`, then calls `onTimeout`; never throws. */
export async function bounded (promise: Promise<unknown>, ms: number, onTimeout: () => void): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const expired = await Promise.race([promise.then(() => false, () => false), new Promise<boolean>(resolve => { timer = setTimeout(() => resolve(true), ms) })])
  clearTimeout(timer)
  if (expired) onTimeout()
}

/** Cuts a pg client's socket (pg keeps it on `connection.stream`, not in its typings). */
export function destroyConnection (client: pg.ClientBase): void {
  (client as unknown as { connection?: { stream?: { destroy: () => void } } }).connection?.stream?.destroy()
}

/** A connection pool to PostgreSQL with the store's queries. */
export class PostgresStore {
  readonly pool: pg.Pool

  constructor (readonly url: string, applicationName: string) {
    this.pool = new pg.Pool({
      connectionString: url,
      max: 4,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      idleTimeoutMillis: 10_000,
      query_timeout: QUERY_TIMEOUT_MS,
      keepAlive: true,
      application_name: applicationName
    })
    // An idle client that loses its connection emits here: without a listener it would crash the process.
    this.pool.on('error', () => {})
    // A checked-out client (pool.connect(): a write, a catch-up read, a migration) has no pool
    // listener: pg-pool removes it while the client is lent out, and pg emits 'error' on an
    // unexpected end even when the query in flight already rejected. Without this, PostgreSQL
    // going away under a write crashed the node with an uncaught 'Connection terminated
    // unexpectedly'. The failure still reaches the caller through the query's rejection.
    this.pool.on('connect', client => { client.on('error', () => {}) })
    // pg-pool removes a client (idle too long, or released broken) with end(), which on a
    // half-open link waits forever for the server's close and keeps the socket: cut it.
    this.pool.on('remove', client => { destroyConnection(client) })
  }

  /** Applies the PostgreSQL migrations above the database's version, under an advisory lock; returns the names applied. */
  async migrate (dir = PG_MIGRATIONS_DIR): Promise<string[]> {
    const client = await this.pool.connect()
    const applied: string[] = []
    try {
      await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK])
      try {
        await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())')
        const done = new Set((await client.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map(r => r.version))
        const files = readdirSync(dir).filter(f => /^\d{4}-[a-z0-9-]+\.sql$/.test(f)).sort()
        for (const name of files) {
          const version = Number(name.slice(0, 4))
          if (done.has(version)) continue
          try {
            await client.query('BEGIN')
            await client.query(readFileSync(join(dir, name), 'utf8'))
            await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [version, name])
            await client.query('COMMIT')
          } catch (err) {
            await client.query('ROLLBACK').catch(() => {})
            if (isUnavailable(err)) throw unavailable(err, 'migrating')
            throw new IngressdError('INGRESSD_ERR_MIGRATION', `PostgreSQL migration ${name} failed: ${(err as Error).message}`, { cause: err })
          }
          applied.push(name)
        }
      } finally {
        await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => {})
      }
    } finally {
      client.release()
    }
    return applied
  }

  /** The store's head: one row. */
  async head (client: pg.ClientBase | pg.Pool = this.pool, lock = false): Promise<StoreHead> {
    const res = await client.query<{ store_uid: string, resource_version: string, routing_version: string, deletions_horizon: string, commit_id: string | null }>(`SELECT s.store_uid, s.resource_version, s.routing_version, s.deletions_horizon, h.commit_id FROM store_state s LEFT JOIN commit_history h ON h.resource_version = s.resource_version WHERE s.id = 1${lock ? ' FOR UPDATE OF s' : ''}`)
    const row = res.rows[0]
    if (row === undefined) throw new IngressdError('INGRESSD_ERR_INTERNAL', 'PostgreSQL store_state row is missing')
    return { storeUid: row.store_uid, resourceVersion: toNumber(row.resource_version), routingVersion: toNumber(row.routing_version), horizon: toNumber(row.deletions_horizon), commitId: row.commit_id ?? undefined }
  }

  /**
   * What the mirror lacks, read with `client` (inside the caller's transaction: a REPEATABLE READ
   * one, or one that holds the store_state lock): undefined when the mirror is current. A full
   * copy when the mirror copies another store, is ahead of the store (restored from an older
   * backup), or is further behind than the deletions kept.
   */
  async batchFor (client: pg.ClientBase, mirror: MirrorHead, head: StoreHead): Promise<ReplicaBatch | undefined> {
    // The same store, and the same history up to the mirror's version: the write that made that
    // version is the one the mirror has (a store restored from an older backup and written past
    // this version again has other commits there).
    const sameStore = mirror.storeUid === head.storeUid && (mirror.resourceVersion === 0 || (mirror.commitId !== undefined && mirror.commitId === await commitIdAt(client, mirror.resourceVersion)))
    if (sameStore && mirror.resourceVersion === head.resourceVersion && mirror.commitId === (head.commitId ?? mirror.commitId)) return undefined
    const full = !sameStore || mirror.resourceVersion > head.resourceVersion || mirror.resourceVersion < head.horizon
    const after = full ? -1 : mirror.resourceVersion
    const objects = (await client.query<ObjectRow>('SELECT kind, namespace, name, uid, resource_version, generation, created_at, labels, annotations, content, private_key FROM objects WHERE resource_version > $1 ORDER BY resource_version', [after])).rows
    const deletions = full ? [] : (await client.query<DeletionRow>('SELECT resource_version, kind, namespace, name FROM object_deletions WHERE resource_version > $1 ORDER BY resource_version', [after])).rows
    for (const o of objects) {
      o.resource_version = toNumber(o.resource_version)
      o.generation = toNumber(o.generation)
    }
    for (const d of deletions) d.resource_version = toNumber(d.resource_version)
    return { storeUid: head.storeUid, resourceVersion: head.resourceVersion, routingVersion: head.routingVersion, full, objects, deletions, ...(head.commitId === undefined ? {} : { commitId: head.commitId }) }
  }

  /** The batch the mirror lacks, in one consistent snapshot of its own. */
  async changesFor (mirror: MirrorHead): Promise<ReplicaBatch | undefined> {
    const client = await this.pool.connect()
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
      const head = await this.head(client)
      const batch = await this.batchFor(client, mirror, head)
      await client.query('COMMIT')
      return batch
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {})
      throw err
    } finally {
      client.release()
    }
  }

  /**
   * Writes what a node's write changed, in the caller's transaction (which holds the store_state
   * lock): objects upserted, deleted ones removed with their tombstones, the audit rows, the new
   * head, and a notification to every node (a hint only: nodes also poll).
   */
  async ship (client: pg.ClientBase, change: { resourceVersion: number, routingVersion: number, commitId: string, objects: ObjectRow[], deletions: DeletionRow[], audit: AuditRow[] }): Promise<void> {
    // A large apply is one statement of many rows: it gets time in proportion.
    const timeout = QUERY_TIMEOUT_MS + change.objects.length + change.deletions.length
    for (const d of change.deletions) {
      await client.query('DELETE FROM objects WHERE kind = $1 AND namespace = $2 AND name = $3', [d.kind, d.namespace, d.name])
    }
    if (change.deletions.length > 0) {
      await client.query('INSERT INTO object_deletions (resource_version, kind, namespace, name) SELECT * FROM json_to_recordset($1::json) AS d(resource_version bigint, kind text, namespace text, name text) ON CONFLICT (resource_version) DO NOTHING', [JSON.stringify(change.deletions)])
    }
    if (change.objects.length > 0) {
      await client.query({
        text: `INSERT INTO objects (kind, namespace, name, uid, resource_version, generation, created_at, labels, annotations, content, private_key)
        SELECT * FROM json_to_recordset($1::json) AS o(kind text, namespace text, name text, uid text, resource_version bigint, generation bigint, created_at text, labels text, annotations text, content text, private_key text)
        ON CONFLICT (kind, namespace, name) DO UPDATE SET uid = excluded.uid, resource_version = excluded.resource_version, generation = excluded.generation, created_at = excluded.created_at, labels = excluded.labels, annotations = excluded.annotations, content = excluded.content, private_key = excluded.private_key`,
        values: [JSON.stringify(change.objects)],
        query_timeout: timeout
      } as pg.QueryConfig)
    }
    if (change.audit.length > 0) {
      await client.query('INSERT INTO audit_log (at, actor, client, verb, kind, namespace, name, resource_version, outcome) SELECT * FROM json_to_recordset($1::json) AS a(at text, actor text, client text, verb text, kind text, namespace text, name text, resource_version bigint, outcome text)', [JSON.stringify(change.audit)])
    }
    await client.query('INSERT INTO commit_history (resource_version, commit_id) VALUES ($1, $2) ON CONFLICT (resource_version) DO UPDATE SET commit_id = excluded.commit_id', [change.resourceVersion, change.commitId])
    await client.query('UPDATE store_state SET resource_version = $1, routing_version = $2 WHERE id = 1', [change.resourceVersion, change.routingVersion])
    await client.query('SELECT pg_notify(\'ingressd_commit\', $1)', [String(change.resourceVersion)])
  }

  /** Every node's row, with liveness judged by PostgreSQL's clock, and the store's version in the same snapshot. */
  async nodes (goneAfterMs = NODE_GONE_AFTER_MS): Promise<NodeTable> {
    // store_state always has its row: the LEFT JOIN gives it once with null node columns when no node has reported.
    const res = await this.pool.query<{ store_version: string, name: string | null, addresses: unknown, version: string, served_resource_version: string, problem: string | null, started_at: Date, last_seen: Date, age_ms: number, gone: boolean }>(`SELECT s.resource_version AS store_version, n.name, n.addresses, n.version, n.served_resource_version, n.problem, n.started_at, n.last_seen,
        (extract(epoch FROM now() - n.last_seen) * 1000)::float8 AS age_ms, n.last_seen < now() - $1 * interval '1 millisecond' AS gone
      FROM store_state s LEFT JOIN nodes n ON true WHERE s.id = 1 ORDER BY n.name`, [goneAfterMs])
    const first = res.rows[0]
    if (first === undefined) throw new IngressdError('INGRESSD_ERR_INTERNAL', 'PostgreSQL store_state row is missing')
    const rows: NodeRow[] = []
    for (const r of res.rows) {
      if (r.name === null) continue
      rows.push({
        name: r.name,
        addresses: Array.isArray(r.addresses) ? r.addresses.map(String) : [],
        version: r.version,
        servedResourceVersion: toNumber(r.served_resource_version),
        problem: r.problem ?? undefined,
        startedAt: r.started_at,
        lastSeen: r.last_seen,
        ageMs: Math.max(0, r.age_ms),
        gone: r.gone
      })
    }
    return { storeResourceVersion: toNumber(first.store_version), rows }
  }

  /**
   * Housekeeping, on one node at a time (an advisory lock for the duration): deletion rows older
   * than `keep` versions are pruned (the horizon moves with them) and nodes gone for an hour are
   * dropped. Returns false when another node holds the lock.
   */
  async housekeep (keep: number): Promise<boolean> {
    const client = await this.pool.connect()
    try {
      const got = (await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [HOUSEKEEPING_LOCK])).rows[0]?.ok === true
      if (!got) return false
      try {
        await client.query('BEGIN')
        const head = await this.head(client, true)
        const horizon = head.resourceVersion - keep
        if (horizon > head.horizon) {
          await client.query('DELETE FROM object_deletions WHERE resource_version <= $1', [horizon])
          await client.query('DELETE FROM commit_history WHERE resource_version <= $1', [horizon])
          await client.query('UPDATE store_state SET deletions_horizon = $1 WHERE id = 1', [horizon])
        }
        await client.query('DELETE FROM nodes WHERE last_seen < now() - interval \'1 hour\'')
        await client.query('COMMIT')
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {})
        throw err
      } finally {
        await client.query('SELECT pg_advisory_unlock($1)', [HOUSEKEEPING_LOCK]).catch(() => {})
      }
      return true
    } finally {
      client.release()
    }
  }

  /** Closes the pool; clients stuck on a half-open link are cut after a second rather than waited for. */
  async close (): Promise<void> {
    // pg-pool keeps its clients on `_clients`, not in its typings.
    const clients = (this.pool as unknown as { _clients?: pg.ClientBase[] })._clients ?? []
    await bounded(this.pool.end(), 1000, () => { for (const c of clients) destroyConnection(c) })
  }
}
