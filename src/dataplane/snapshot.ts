/**
 * What the route and SNI tables are compiled from, and the Secret values the policies read (see
 * secret-material.ts), read from the store in one read transaction (one consistent version). Objects are parsed once per version: a read after the first asks the
 * store only for the rows changed and deleted since the version it last read (an index range),
 * so a single change to a store of thousands of objects costs that change, not a scan.
 *
 * An unchanged object is the same object from one snapshot to the next, and a kind with no change
 * keeps the same list, which is what lets the route compiler work incrementally.
 */
import type { Endpoints } from '../resources/endpoints.js'
import type { Ingress } from '../resources/ingress.js'
import { presentStored, type KindName } from '../resources/stored.js'
import type { Secret } from '../resources/secret.js'
import type { Service } from '../resources/service.js'
import type { ObjectStore, StoredObject } from '../store/object-store.js'
import type { RouteSnapshot } from './compile.js'
import type { TlsSnapshot } from './compile-certificates.js'
import { isTlsSecret, type SecretSnapshot } from './secret-material.js'

export interface StoreSnapshot {
  /** Read it for Secret values through secretLookup (secret-material.ts). */
  snapshot: RouteSnapshot & TlsSnapshot & SecretSnapshot
  resourceVersion: number
  routingVersion: number
}

interface Cached {
  namespace: string
  name: string
  object: unknown
}

/** One kind as last read: objects by key, and the list in the store's key order. */
interface KindCache {
  byKey: Map<string, Cached>
  /** In (namespace, name) order, as the store lists them. */
  sorted: Cached[]
  list: unknown[]
}

const KINDS: readonly KindName[] = ['Ingress', 'Service', 'Endpoints', 'Secret']

function emptyKind (): KindCache {
  return { byKey: new Map(), sorted: [], list: [] }
}

/** The store's key order: namespace, then name (names are ASCII, so code-unit order is SQLite's byte order). */
function compareKeys (a: { namespace: string, name: string }, b: { namespace: string, name: string }): number {
  if (a.namespace !== b.namespace) return a.namespace < b.namespace ? -1 : 1
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0
}

/** Where `key` is, or would be inserted, in a sorted list. */
function position (sorted: readonly Cached[], key: { namespace: string, name: string }): number {
  let lo = 0
  let hi = sorted.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (compareKeys(sorted[mid] as Cached, key) < 0) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** Reads snapshots, keeping each object parsed for as long as its resourceVersion stands. */
export class SnapshotReader {
  private kinds = new Map<KindName, KindCache>(KINDS.map(k => [k, emptyKind()]))
  /** The write-only column of each Secret, split by type: TLS keys (what the SNI compile reads) and the JSON values of every other type. */
  private privateKeys = new Map<string, string>()
  private secretValues = new Map<string, string>()
  /** The version the cache holds; -1 before the first read. */
  private readVersion = -1
  /** The store's epoch when the cache was read: a new epoch means everything was replaced. */
  private readEpoch = -1
  /** Rows parsed by the last read: for tests and the benchmark. */
  parsedLastRead = 0
  /** Whether the last read read every object (the first, or when the store could not say what changed): for tests. */
  fullLastRead = false

  constructor (private readonly store: ObjectStore) {}

  /** One consistent snapshot of every object the tables depend on. */
  read (): StoreSnapshot {
    return this.store.db.transaction(() => {
      this.parsedLastRead = 0
      this.fullLastRead = false
      const resourceVersion = this.store.resourceVersion()
      const routingVersion = this.store.routingVersion()
      const epoch = this.store.epoch()
      if (epoch !== this.readEpoch) this.readVersion = -1
      this.readEpoch = epoch
      if (resourceVersion !== this.readVersion) {
        try {
          const deleted = this.readVersion < 0 ? undefined : this.store.deletedSince(this.readVersion)
          if (deleted === undefined || !this.readChanges(deleted)) this.readAll()
        } catch (err) {
          // Whatever was half applied, the next read starts over from everything.
          this.readVersion = -1
          throw err
        }
        this.readVersion = resourceVersion
      }
      return {
        resourceVersion,
        routingVersion,
        snapshot: {
          ingresses: this.kind('Ingress').list as Ingress[],
          services: this.kind('Service').list as Service[],
          endpoints: this.kind('Endpoints').list as Endpoints[],
          secrets: this.kind('Secret').list as Secret[],
          privateKeys: this.privateKeys,
          secretValues: this.secretValues
        }
      }
    })()
  }

  private kind (kind: KindName): KindCache {
    return this.kinds.get(kind) as KindCache
  }

  private parse (stored: StoredObject): Cached {
    this.parsedLastRead++
    return { namespace: stored.meta.namespace, name: stored.meta.name, object: presentStored(stored.kind, stored.meta, stored.content) }
  }

  /** Reads every object (the first read, or a reader too far behind to catch up by changes). */
  private readAll (): void {
    this.fullLastRead = true
    const writeOnly = this.store.privateKeys()
    const privateKeys = new Map<string, string>()
    const secretValues = new Map<string, string>()
    for (const kind of KINDS) {
      const cache = emptyKind()
      for (const stored of this.store.all(kind)) {
        const entry = this.parse(stored)
        const key = `${entry.namespace}/${entry.name}`
        cache.byKey.set(key, entry)
        cache.sorted.push(entry)
        const value = kind === 'Secret' ? writeOnly.get(key) : undefined
        if (value !== undefined) (isTlsSecret(entry.object as Secret) ? privateKeys : secretValues).set(key, value)
      }
      cache.list = cache.sorted.map(e => e.object)
      this.kinds.set(kind, cache)
    }
    this.privateKeys = privateKeys
    this.secretValues = secretValues
  }

  /**
   * Applies what changed since the version last read: deletions, then changed and new rows.
   * Returns false when the result cannot be trusted (a kind's count disagrees with the store),
   * and everything must be read again.
   */
  private readChanges (deleted: { kind: KindName, namespace: string, name: string }[]): boolean {
    const touched = new Map<KindName, { byKey: Map<string, Cached>, sorted: Cached[] }>()
    const edit = (kind: KindName): { byKey: Map<string, Cached>, sorted: Cached[] } | undefined => {
      if (!KINDS.includes(kind)) return undefined
      let next = touched.get(kind)
      if (next === undefined) {
        // Copies: the previous snapshot's lists stay as they were.
        const cache = this.kind(kind)
        next = { byKey: cache.byKey, sorted: cache.sorted.slice() }
        touched.set(kind, next)
      }
      return next
    }
    // Copied on the first edit: the previous snapshot's maps stay as they were.
    let privateKeys: Map<string, string> | undefined
    let secretValues: Map<string, string> | undefined
    const keysToEdit = (): Map<string, string> => (privateKeys ??= new Map(this.privateKeys))
    const valuesToEdit = (): Map<string, string> => (secretValues ??= new Map(this.secretValues))
    const dropWriteOnly = (key: string): void => {
      if (this.privateKeys.has(key)) keysToEdit().delete(key)
      if (this.secretValues.has(key)) valuesToEdit().delete(key)
    }

    for (const d of deleted) {
      const next = edit(d.kind)
      if (next === undefined) continue
      const key = `${d.namespace}/${d.name}`
      if (!next.byKey.has(key)) continue
      next.byKey.delete(key)
      const at = position(next.sorted, d)
      if (at < next.sorted.length && compareKeys(next.sorted[at] as Cached, d) === 0) next.sorted.splice(at, 1)
      if (d.kind === 'Secret') dropWriteOnly(key)
    }
    for (const stored of this.store.changedSince(this.readVersion)) {
      const next = edit(stored.kind)
      if (next === undefined) continue
      const entry = this.parse(stored)
      const key = `${entry.namespace}/${entry.name}`
      const at = position(next.sorted, entry)
      if (next.byKey.has(key)) next.sorted[at] = entry
      else next.sorted.splice(at, 0, entry)
      next.byKey.set(key, entry)
      if (stored.kind === 'Secret') {
        // Dropped first: a Secret deleted and created again with another type moves between the maps.
        dropWriteOnly(key)
        const value = this.store.privateKey(entry.namespace, entry.name)
        if (value !== undefined) (isTlsSecret(entry.object as Secret) ? keysToEdit() : valuesToEdit()).set(key, value)
      }
    }
    for (const [kind, next] of touched) {
      // A delete the store did not record (say, by an older version of ingressd on the same file) shows here.
      if (next.sorted.length !== next.byKey.size || this.store.count(kind) !== next.byKey.size) return false
    }
    for (const [kind, next] of touched) this.kinds.set(kind, { byKey: next.byKey, sorted: next.sorted, list: next.sorted.map(e => e.object) })
    if (privateKeys !== undefined) this.privateKeys = privateKeys
    if (secretValues !== undefined) this.secretValues = secretValues
    return true
  }
}
