/**
 * The one repository: every resource kind is a row of `objects`, keyed by kind, namespace and
 * name. Every write runs in one IMMEDIATE transaction that also bumps the store's
 * resourceVersion, so a committed write and the generation the data plane follows move together
 * and a crash leaves either all of a write or none of it.
 */
import { randomUUID } from 'node:crypto'
import { isDeepStrictEqual } from 'node:util'
import type Database from 'better-sqlite3'
import { IngressdError, invalidObject } from '../errors.js'
import type { PreparedObject } from '../resources/kinds.js'
import type { KindName, StoredContent, StoredMeta } from '../resources/stored.js'

/** An object as read from the store. The private key is never part of it. */
export interface StoredObject {
  kind: KindName
  meta: StoredMeta
  content: StoredContent
  /** Size of the write-only column (Secrets), never its content: a TLS Secret's key size (shown as status.keyBytes). */
  keyBytes?: number
}

/** One admin change, as the audit log keeps it. */
export interface AuditEntry {
  actor: 'token' | 'loopback'
  client: string
  verb: 'create' | 'replace' | 'patch' | 'delete' | 'apply'
  kind: KindName
  namespace: string
  name: string
  resourceVersion: number
  outcome: WriteOutcome | 'deleted'
}

/** What a write did, in `kubectl apply`'s words. */
export type WriteOutcome = 'created' | 'configured' | 'unchanged'

/** One `objects` row as SQLite keeps it, the write-only column included (replication moves it between stores; no read path selects it). */
export interface ObjectRow {
  kind: string
  namespace: string
  name: string
  uid: string
  resource_version: number
  generation: number
  created_at: string
  labels: string | null
  annotations: string | null
  content: string
  private_key: string | null
}

/** What read paths select: the row with the size of the write-only column instead of its value. */
type ObjectRowRaw = Omit<ObjectRow, 'private_key'> & { key_bytes: number | null }

const COLUMNS = 'kind, namespace, name, uid, resource_version, generation, created_at, labels, annotations, content, length(private_key) AS key_bytes'

function rowToObject (row: ObjectRowRaw): StoredObject {
  const meta: StoredMeta = {
    name: row.name,
    namespace: row.namespace,
    uid: row.uid,
    resourceVersion: String(row.resource_version),
    generation: row.generation,
    creationTimestamp: row.created_at
  }
  if (row.labels !== null) meta.labels = JSON.parse(row.labels)
  if (row.annotations !== null) meta.annotations = JSON.parse(row.annotations)
  const out: StoredObject = { kind: row.kind as KindName, meta, content: JSON.parse(row.content) }
  if (row.key_bytes !== null) out.keyBytes = row.key_bytes
  return out
}

function jsonOrNull (value: Record<string, string> | undefined): string | null {
  return value === undefined ? null : JSON.stringify(value)
}

/** Kinds whose writes can change what the data plane serves (IngressClass objects do not: classes are configuration). */
const ROUTING_KINDS: ReadonlySet<KindName> = new Set(['Ingress', 'Service', 'Endpoints', 'Secret'])

/** How many versions back deletions are kept for readers that follow the store (ObjectStore.deletedSince). */
export const DELETIONS_KEPT = 100_000

/** Where a list page starts: after this namespace/name. */
export interface ListCursor {
  namespace: string
  name: string
}

/** Translates SQLite's lock errors into the store's own, so callers never see SQLITE_BUSY as a 500. */
function translateSqliteError (err: unknown): unknown {
  const code = (err as { code?: string }).code
  if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED' || code === 'SQLITE_BUSY_SNAPSHOT') {
    return new IngressdError('INGRESSD_ERR_STORE_BUSY', 'the store is busy with another writer; retry the request', { cause: err })
  }
  return err
}

/** The object repository and the store-wide resourceVersion. Statements are prepared once. */
export class ObjectStore {
  readonly db: Database.Database
  private readonly stmt
  private readonly commitListeners = new Set<(resourceVersion: number) => void>()

  constructor (db: Database.Database) {
    this.db = db
    this.stmt = {
      get: db.prepare<[string, string, string], ObjectRowRaw>(`SELECT ${COLUMNS} FROM objects WHERE kind = ? AND namespace = ? AND name = ?`),
      listAll: db.prepare<[string, string, string], ObjectRowRaw>(`SELECT ${COLUMNS} FROM objects WHERE kind = ? AND (namespace, name) > (?, ?) ORDER BY namespace, name`),
      listNs: db.prepare<[string, string, string], ObjectRowRaw>(`SELECT ${COLUMNS} FROM objects WHERE kind = ? AND namespace = ? AND name > ? ORDER BY name`),
      listKind: db.prepare<[string], ObjectRowRaw>(`SELECT ${COLUMNS} FROM objects WHERE kind = ? ORDER BY namespace, name`),
      audit: db.prepare('INSERT INTO audit_log (at, actor, client, verb, kind, namespace, name, resource_version, outcome) VALUES (@at, @actor, @client, @verb, @kind, @namespace, @name, @resourceVersion, @outcome)'),
      auditTail: db.prepare<[number], { at: string, actor: string, client: string, verb: string, kind: string, namespace: string, name: string, resource_version: number, outcome: string }>('SELECT at, actor, client, verb, kind, namespace, name, resource_version, outcome FROM audit_log ORDER BY id DESC LIMIT ?'),
      changedSince: db.prepare<[number], ObjectRowRaw>(`SELECT ${COLUMNS} FROM objects WHERE resource_version > ? ORDER BY resource_version`),
      deletedSince: db.prepare<[number], { kind: string, namespace: string, name: string, resource_version: number }>('SELECT kind, namespace, name, resource_version FROM object_deletions WHERE resource_version > ? ORDER BY resource_version'),
      count: db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM objects WHERE kind = ?'),
      recordDeletion: db.prepare<[number, string, string, string]>('INSERT INTO object_deletions (resource_version, kind, namespace, name) VALUES (?, ?, ?, ?)'),
      pruneDeletions: db.prepare<[number]>('DELETE FROM object_deletions WHERE resource_version < ?'),
      key: db.prepare<[string, string], { private_key: string | null }>('SELECT private_key FROM objects WHERE kind = \'Secret\' AND namespace = ? AND name = ?'),
      keys: db.prepare<[], { namespace: string, name: string, private_key: string }>('SELECT namespace, name, private_key FROM objects WHERE kind = \'Secret\' AND private_key IS NOT NULL'),
      // Sizes are worked out in SQLite from the base64 (canonical, padded), so a read never loads a value.
      valueSizes: db.prepare<[string, string], { key: string, bytes: number }>(`SELECT j.key AS key, length(j.value) / 4 * 3 - (CASE WHEN j.value LIKE '%==' THEN 2 WHEN j.value LIKE '%=' THEN 1 ELSE 0 END) AS bytes
        FROM objects o, json_each(CASE WHEN json_valid(o.private_key) THEN o.private_key ELSE '{}' END) j
        WHERE o.kind = 'Secret' AND o.namespace = ? AND o.name = ? ORDER BY j.key`),
      bump: db.prepare<[], { resource_version: number }>('UPDATE store_state SET resource_version = resource_version + 1 WHERE id = 1 RETURNING resource_version'),
      version: db.prepare<[], { resource_version: number }>('SELECT resource_version FROM store_state WHERE id = 1'),
      routingVersion: db.prepare<[], { routing_version: number }>('SELECT routing_version FROM store_state WHERE id = 1'),
      epoch: db.prepare<[], { epoch: number }>('SELECT epoch FROM store_state WHERE id = 1'),
      bumpRouting: db.prepare('UPDATE store_state SET routing_version = routing_version + 1 WHERE id = 1'),
      insert: db.prepare('INSERT INTO objects (kind, namespace, name, uid, resource_version, generation, created_at, labels, annotations, content, private_key) VALUES (@kind, @namespace, @name, @uid, @rv, 1, @createdAt, @labels, @annotations, @content, @privateKey)'),
      update: db.prepare('UPDATE objects SET resource_version = @rv, generation = @generation, labels = @labels, annotations = @annotations, content = @content, private_key = COALESCE(@privateKey, private_key) WHERE kind = @kind AND namespace = @namespace AND name = @name'),
      remove: db.prepare<[string, string, string]>('DELETE FROM objects WHERE kind = ? AND namespace = ? AND name = ?'),
      removeStatus: db.prepare<[string, string, string]>('DELETE FROM object_status WHERE kind = ? AND namespace = ? AND name = ?'),
      status: db.prepare<[string, string, string], { status: string, observed_version: number }>('SELECT status, observed_version FROM object_status WHERE kind = ? AND namespace = ? AND name = ?'),
      // Only for an object that still exists: a report compiled before a delete never brings its status back.
      setStatus: db.prepare('INSERT INTO object_status (kind, namespace, name, status, observed_version) SELECT @kind, @namespace, @name, @status, @observed WHERE EXISTS (SELECT 1 FROM objects o WHERE o.kind = @kind AND o.namespace = @namespace AND o.name = @name) ON CONFLICT (kind, namespace, name) DO UPDATE SET status = excluded.status, observed_version = excluded.observed_version'),
      pruneStatus: db.prepare('DELETE FROM object_status WHERE NOT EXISTS (SELECT 1 FROM objects o WHERE o.kind = object_status.kind AND o.namespace = object_status.namespace AND o.name = object_status.name)')
    }
  }

  /** The store's current resourceVersion: the generation the data plane follows. */
  resourceVersion (): number {
    return this.stmt.version.get()?.resource_version ?? 0
  }

  /**
   * The version of what the data plane serves: it moves only with writes that can change a route
   * or a certificate (not labels, not IngressClass objects), so others need no recompile.
   */
  routingVersion (): number {
    return this.stmt.routingVersion.get()?.routing_version ?? 0
  }

  /**
   * Moves when the file's objects were replaced whole (cluster mode: a mirror copied again from a
   * restored or replaced PostgreSQL, whose versions may be lower): a reader that follows the file
   * by version must then read everything again.
   */
  epoch (): number {
    return this.stmt.epoch.get()?.epoch ?? 0
  }

  /** Calls `listener` with the new resourceVersion after every committed write in this process. */
  onCommit (listener: (resourceVersion: number) => void): () => void {
    this.commitListeners.add(listener)
    return () => this.commitListeners.delete(listener)
  }

  /** Tells the commit listeners of a version another writer put in this file (cluster mode's replication). */
  announceCommit (resourceVersion: number): void {
    for (const listener of this.commitListeners) listener(resourceVersion)
  }

  /**
   * Runs `fn` as one IMMEDIATE transaction: it takes the write lock up front, so two writers
   * queue on the busy timeout instead of deadlocking on a lock upgrade.
   */
  write<T> (fn: () => T): T {
    const before = this.resourceVersion()
    let result: T
    try {
      result = this.db.transaction(fn).immediate()
    } catch (err) {
      throw translateSqliteError(err)
    }
    const after = this.resourceVersion()
    if (after !== before) for (const listener of this.commitListeners) listener(after)
    return result
  }

  /** One object, or undefined. */
  get (kind: KindName, namespace: string, name: string): StoredObject | undefined {
    const row = this.stmt.get.get(kind, namespace, name)
    return row === undefined ? undefined : rowToObject(row)
  }

  /** Objects of a kind in key order, in one namespace or all, starting after `cursor`. */
  * iterate (kind: KindName, namespace: string | undefined, cursor?: ListCursor): Generator<StoredObject> {
    const rows = namespace === undefined
      ? this.stmt.listAll.iterate(kind, cursor?.namespace ?? '', cursor?.name ?? '')
      : this.stmt.listNs.iterate(kind, namespace, cursor?.namespace === namespace ? cursor.name : '')
    for (const row of rows) yield rowToObject(row)
  }

  /** Every object of a kind: what the data plane compiles from. */
  all (kind: KindName): StoredObject[] {
    return this.stmt.listKind.all(kind).map(rowToObject)
  }

  /**
   * Records one admin change in the audit log; call inside the write() of the change itself, so
   * the entry and the change commit together. Entries name objects, never copy them.
   */
  recordAudit (entry: AuditEntry): void {
    this.stmt.audit.run({ ...entry, at: new Date().toISOString() })
  }

  /** The newest audit entries, newest first. */
  auditEntries (limit: number): (Omit<AuditEntry, 'resourceVersion'> & { at: string, resourceVersion: number })[] {
    return this.stmt.auditTail.all(limit).map(r => ({ at: r.at, actor: r.actor as AuditEntry['actor'], client: r.client, verb: r.verb as AuditEntry['verb'], kind: r.kind as KindName, namespace: r.namespace, name: r.name, resourceVersion: r.resource_version, outcome: r.outcome as AuditEntry['outcome'] }))
  }

  /** Every object changed or created after `resourceVersion`, oldest change first (an index range, not a scan). */
  changedSince (resourceVersion: number): StoredObject[] {
    return this.stmt.changedSince.all(resourceVersion).map(rowToObject)
  }

  /**
   * Objects deleted after `resourceVersion`, oldest first; undefined when the store no longer
   * keeps deletions that far back (DELETIONS_KEPT versions), and the caller must read everything.
   */
  deletedSince (resourceVersion: number): { kind: KindName, namespace: string, name: string, resourceVersion: number }[] | undefined {
    if (resourceVersion < this.resourceVersion() - DELETIONS_KEPT) return undefined
    return this.stmt.deletedSince.all(resourceVersion).map(r => ({ kind: r.kind as KindName, namespace: r.namespace, name: r.name, resourceVersion: r.resource_version }))
  }

  /** How many objects of a kind are stored. */
  count (kind: KindName): number {
    return this.stmt.count.get(kind)?.n ?? 0
  }

  /**
   * A Secret's write-only column, for the data plane and for writes that keep what is stored:
   * the PEM private key of a TLS Secret, or the JSON values (key → base64) of a Secret of any
   * other type. Never served.
   */
  privateKey (namespace: string, name: string): string | undefined {
    return this.stmt.key.get(namespace, name)?.private_key ?? undefined
  }

  /**
   * The byte size of each write-only value of a non-TLS Secret, by key in key order, for reads
   * to show; the values stay in SQLite. Empty for a TLS Secret or a missing one.
   */
  secretValueSizes (namespace: string, name: string): Record<string, { bytes: number }> {
    const sizes: Record<string, { bytes: number }> = {}
    for (const row of this.stmt.valueSizes.all(namespace, name)) sizes[row.key] = { bytes: row.bytes }
    return sizes
  }

  /** Every Secret's write-only column by `namespace/name` (see privateKey), for the data plane's snapshot. */
  privateKeys (): Map<string, string> {
    return new Map(this.stmt.keys.all().map(r => [`${r.namespace}/${r.name}`, r.private_key]))
  }

  private bump (): number {
    const row = this.stmt.bump.get()
    if (row === undefined) throw new IngressdError('INGRESSD_ERR_INTERNAL', 'store_state row is missing')
    return row.resource_version
  }

  /**
   * Creates, replaces or applies one object. Call inside write(). `mode` decides what an existing
   * or missing object means: create refuses an existing one, replace a missing one, apply takes both.
   */
  put (obj: PreparedObject, mode: 'create' | 'replace' | 'apply'): { object: StoredObject, outcome: WriteOutcome } {
    const kind = obj.def.kind
    const subject = { name: obj.name, group: obj.def.group, kind }
    const existing = this.stmt.get.get(kind, obj.namespace, obj.name)
    const params = {
      kind,
      namespace: obj.namespace,
      name: obj.name,
      labels: jsonOrNull(obj.labels),
      annotations: jsonOrNull(obj.annotations),
      content: JSON.stringify(obj.content),
      privateKey: obj.privateKey ?? null
    }
    if (existing === undefined) {
      if (mode === 'replace') throw new IngressdError('INGRESSD_ERR_NOT_FOUND', `${kind.toLowerCase()} "${obj.name}" not found`, { subject })
      if (mode === 'create' && obj.resourceVersion !== undefined) {
        throw new IngressdError('INGRESSD_ERR_BAD_REQUEST', 'metadata.resourceVersion: must not be set on create', { subject, causes: [{ reason: 'FieldValueInvalid', field: 'metadata.resourceVersion', message: 'must not be set on create' }] })
      }
      const rv = this.bump()
      if (ROUTING_KINDS.has(kind)) this.stmt.bumpRouting.run()
      this.stmt.insert.run({ ...params, uid: randomUUID(), rv, createdAt: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z') })
      return { object: this.mustGet(kind, obj.namespace, obj.name), outcome: 'created' }
    }
    if (mode === 'create') throw new IngressdError('INGRESSD_ERR_ALREADY_EXISTS', `${kind.toLowerCase()} "${obj.name}" already exists`, { subject })
    if (obj.resourceVersion !== undefined && obj.resourceVersion !== String(existing.resource_version)) {
      throw new IngressdError('INGRESSD_ERR_CONFLICT', `Operation cannot be fulfilled on ${obj.def.plural} "${obj.name}": the object has been modified; please apply your changes to the latest version and try again`, { subject })
    }
    const current = rowToObject(existing)
    if (kind === 'Secret' && current.content.type !== obj.content.type) {
      // As in Kubernetes: values are write-only, so a type change could not carry them over and
      // would silently drop them (a TLS Secret rewritten without its type would become Opaque).
      throw invalidObject(kind, obj.def.group, obj.name, [{ reason: 'FieldValueInvalid', field: 'type', message: `Invalid value: ${JSON.stringify(obj.content.type)}: field is immutable (the Secret is ${JSON.stringify(current.content.type)}; delete it and create it again to change its type)` }])
    }
    const contentChanged = !isDeepStrictEqual(current.content, obj.content) || (obj.privateKey !== undefined && obj.privateKey !== this.privateKey(obj.namespace, obj.name))
    const annotationsChanged = !isDeepStrictEqual(current.meta.annotations, obj.annotations)
    const labelsChanged = !isDeepStrictEqual(current.meta.labels, obj.labels)
    if (!contentChanged && !annotationsChanged && !labelsChanged) return { object: current, outcome: 'unchanged' }
    const rv = this.bump()
    if ((contentChanged || annotationsChanged) && ROUTING_KINDS.has(kind)) this.stmt.bumpRouting.run()
    this.stmt.update.run({ ...params, rv, generation: existing.generation + (contentChanged ? 1 : 0) })
    return { object: this.mustGet(kind, obj.namespace, obj.name), outcome: 'configured' }
  }

  /** Deletes one object; call inside write(). Returns what was deleted. */
  delete (kind: KindName, namespace: string, name: string, subject: { group: string }): StoredObject {
    const existing = this.get(kind, namespace, name)
    if (existing === undefined) throw new IngressdError('INGRESSD_ERR_NOT_FOUND', `${kind.toLowerCase()} "${name}" not found`, { subject: { name, group: subject.group, kind } })
    this.stmt.remove.run(kind, namespace, name)
    this.stmt.removeStatus.run(kind, namespace, name)
    const rv = this.bump()
    // Readers that follow the store by version learn of the delete here (deletedSince).
    this.stmt.recordDeletion.run(rv, kind, namespace, name)
    if (rv % 1000 === 0) this.stmt.pruneDeletions.run(rv - DELETIONS_KEPT)
    if (ROUTING_KINDS.has(kind)) this.stmt.bumpRouting.run()
    return existing
  }

  /** What the data plane last reported about an object. */
  status (kind: KindName, namespace: string, name: string): { status: Record<string, unknown>, observedVersion: number } | undefined {
    const row = this.stmt.status.get(kind, namespace, name)
    return row === undefined ? undefined : { status: JSON.parse(row.status), observedVersion: row.observed_version }
  }

  /**
   * Records the data plane's reports in one transaction that does not bump the resourceVersion.
   * A report about an object deleted since is dropped. `prune` also removes the status rows of
   * objects that no longer exist (a scan of every status: a follower does it once, at its start;
   * after that, a delete removes its status and no write brings one back).
   */
  setStatuses (entries: { kind: KindName, namespace: string, name: string, status: Record<string, unknown> | string }[], observed: number, opts: { prune?: boolean } = {}): void {
    // Statuses are derived: a follower writes them all again when it starts. So their commit does
    // not wait for its own fsync (WAL with synchronous=NORMAL: consistent, and made durable by the
    // next FULL commit or checkpoint); the admin writes keep synchronous=FULL.
    const synchronous = this.db.pragma('synchronous', { simple: true }) as number
    if (synchronous > 1) this.db.pragma('synchronous = NORMAL')
    try {
      this.db.transaction(() => {
        for (const e of entries) this.stmt.setStatus.run({ kind: e.kind, namespace: e.namespace, name: e.name, status: typeof e.status === 'string' ? e.status : JSON.stringify(e.status), observed })
        if (opts.prune !== false) this.stmt.pruneStatus.run()
      }).immediate()
    } catch (err) {
      throw translateSqliteError(err)
    } finally {
      if (synchronous > 1) this.db.pragma(`synchronous = ${synchronous}`)
    }
  }

  private mustGet (kind: KindName, namespace: string, name: string): StoredObject {
    const obj = this.get(kind, namespace, name)
    if (obj === undefined) throw new IngressdError('INGRESSD_ERR_INTERNAL', `${kind} ${namespace}/${name} vanished inside its own transaction`)
    return obj
  }
}
