/**
 * The rows of the SQLite store as replication moves them: objects whole (the write-only column
 * included: it goes only between stores, never to a read path), deletions and audit entries. A
 * cluster write ships what it changed in the local file to PostgreSQL; a replicator applies what
 * PostgreSQL has and the local file has not.
 */
import type Database from 'better-sqlite3'
import { IngressdError } from '../../errors.js'
import type { ObjectRow } from '../object-store.js'

export type { ObjectRow }

export interface DeletionRow { resource_version: number, kind: string, namespace: string, name: string }

export interface AuditRow { at: string, actor: string, client: string, verb: string, kind: string, namespace: string, name: string, resource_version: number, outcome: string }

/** What one replication step brings: the store's head and the rows after the mirror's version, or everything (`full`). */
export interface ReplicaBatch {
  storeUid: string
  resourceVersion: number
  routingVersion: number
  full: boolean
  objects: ObjectRow[]
  deletions: DeletionRow[]
  /** The id of the commit that made `resourceVersion` (see PostgreSQL's commit_history). */
  commitId?: string
  /** Audit rows to keep locally too (a write this node made); replicated batches carry none. */
  audit?: AuditRow[]
}

/** The mirror's own state: which store it copies, at which version, in which epoch. */
export interface MirrorHead {
  storeUid: string | undefined
  /** The id of the commit that made the mirror's version. */
  commitId: string | undefined
  resourceVersion: number
  routingVersion: number
  epoch: number
}

const STORE_UID_KEY = 'cluster.storeUid'
const COMMIT_ID_KEY = 'cluster.commitId'

/** Reads and writes replication rows of one SQLite store. Statements are prepared once. */
export class ReplicaRows {
  private readonly stmt

  constructor (private readonly db: Database.Database) {
    this.stmt = {
      head: db.prepare<[], { resource_version: number, routing_version: number, epoch: number }>('SELECT resource_version, routing_version, epoch FROM store_state WHERE id = 1'),
      storeUid: db.prepare<[string], { value: string }>('SELECT value FROM gateway_state WHERE key = ?'),
      setStoreUid: db.prepare<[string, string, string]>('INSERT INTO gateway_state (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at'),
      objectsSince: db.prepare<[number], ObjectRow>('SELECT kind, namespace, name, uid, resource_version, generation, created_at, labels, annotations, content, private_key FROM objects WHERE resource_version > ? ORDER BY resource_version'),
      deletionsSince: db.prepare<[number], DeletionRow>('SELECT resource_version, kind, namespace, name FROM object_deletions WHERE resource_version > ? ORDER BY resource_version'),
      auditMax: db.prepare<[], { id: number | null }>('SELECT max(id) AS id FROM audit_log'),
      auditSince: db.prepare<[number], AuditRow>('SELECT at, actor, client, verb, kind, namespace, name, resource_version, outcome FROM audit_log WHERE id > ? ORDER BY id'),
      audit: db.prepare('INSERT INTO audit_log (at, actor, client, verb, kind, namespace, name, resource_version, outcome) VALUES (@at, @actor, @client, @verb, @kind, @namespace, @name, @resource_version, @outcome)'),
      upsert: db.prepare('INSERT INTO objects (kind, namespace, name, uid, resource_version, generation, created_at, labels, annotations, content, private_key) VALUES (@kind, @namespace, @name, @uid, @resource_version, @generation, @created_at, @labels, @annotations, @content, @private_key) ON CONFLICT (kind, namespace, name) DO UPDATE SET uid = excluded.uid, resource_version = excluded.resource_version, generation = excluded.generation, created_at = excluded.created_at, labels = excluded.labels, annotations = excluded.annotations, content = excluded.content, private_key = excluded.private_key'),
      remove: db.prepare<[string, string, string]>('DELETE FROM objects WHERE kind = ? AND namespace = ? AND name = ?'),
      removeStatus: db.prepare<[string, string, string]>('DELETE FROM object_status WHERE kind = ? AND namespace = ? AND name = ?'),
      tombstone: db.prepare<[number, string, string, string]>('INSERT OR REPLACE INTO object_deletions (resource_version, kind, namespace, name) VALUES (?, ?, ?, ?)'),
      setHead: db.prepare<[number, number]>('UPDATE store_state SET resource_version = ?, routing_version = ? WHERE id = 1'),
      bumpEpoch: db.prepare('UPDATE store_state SET epoch = epoch + 1 WHERE id = 1'),
      clearObjects: db.prepare('DELETE FROM objects'),
      clearDeletions: db.prepare('DELETE FROM object_deletions'),
      clearStatuses: db.prepare('DELETE FROM object_status')
    }
  }

  /** The mirror's head. */
  head (): MirrorHead {
    const row = this.stmt.head.get()
    if (row === undefined) throw new IngressdError('INGRESSD_ERR_INTERNAL', 'store_state row is missing')
    return { storeUid: this.stmt.storeUid.get(STORE_UID_KEY)?.value, commitId: this.stmt.storeUid.get(COMMIT_ID_KEY)?.value, resourceVersion: row.resource_version, routingVersion: row.routing_version, epoch: row.epoch }
  }

  objectsSince (resourceVersion: number): ObjectRow[] {
    return this.stmt.objectsSince.all(resourceVersion)
  }

  deletionsSince (resourceVersion: number): DeletionRow[] {
    return this.stmt.deletionsSince.all(resourceVersion)
  }

  /** The newest audit row's id (0 when there is none): a write ships the rows after it. */
  auditMark (): number {
    return this.stmt.auditMax.get()?.id ?? 0
  }

  auditSince (mark: number): AuditRow[] {
    return this.stmt.auditSince.all(mark)
  }

  /**
   * Applies a batch in the caller's transaction: a full batch replaces every object (and moves the
   * epoch, so readers that follow the file start over); an incremental one upserts the changed
   * objects and removes the deleted ones. The mirror's head becomes the batch's.
   */
  apply (batch: ReplicaBatch): void {
    const head = this.head()
    if (batch.full) {
      this.stmt.clearObjects.run()
      this.stmt.clearDeletions.run()
      this.stmt.clearStatuses.run()
      this.stmt.bumpEpoch.run()
    }
    for (const d of batch.deletions) {
      this.stmt.remove.run(d.kind, d.namespace, d.name)
      this.stmt.removeStatus.run(d.kind, d.namespace, d.name)
      this.stmt.tombstone.run(d.resource_version, d.kind, d.namespace, d.name)
    }
    for (const row of batch.objects) this.stmt.upsert.run(row)
    for (const row of batch.audit ?? []) this.stmt.audit.run(row)
    this.stmt.setHead.run(batch.resourceVersion, batch.routingVersion)
    const now = new Date().toISOString()
    if (head.storeUid !== batch.storeUid) this.stmt.setStoreUid.run(STORE_UID_KEY, batch.storeUid, now)
    this.stmt.setStoreUid.run(COMMIT_ID_KEY, batch.commitId ?? '', now)
  }
}
