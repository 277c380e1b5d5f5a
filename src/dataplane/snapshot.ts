/**
 * What the route and SNI tables are compiled from, read from the store in one read transaction
 * (one consistent version). Objects are parsed once per version: a reload re-reads only the rows
 * whose resourceVersion moved, so a single change to a store of thousands of objects costs a
 * version scan, not a parse of everything.
 */
import type { Endpoints } from '../resources/endpoints.js'
import type { Ingress } from '../resources/ingress.js'
import { kindDefinition, presentObject, type KindName } from '../resources/kinds.js'
import type { Secret } from '../resources/secret.js'
import type { Service } from '../resources/service.js'
import type { ObjectStore } from '../store/object-store.js'
import type { RouteSnapshot } from './compile.js'
import type { TlsSnapshot } from './compile-certificates.js'

export interface StoreSnapshot {
  snapshot: RouteSnapshot & TlsSnapshot
  resourceVersion: number
  routingVersion: number
}

interface Cached {
  resourceVersion: number
  object: unknown
  privateKey?: string
}

const KINDS: readonly KindName[] = ['Ingress', 'Service', 'Endpoints', 'Secret']

/** Reads snapshots, keeping each object parsed for as long as its resourceVersion stands. */
export class SnapshotReader {
  private readonly cache = new Map<KindName, Map<string, Cached>>(KINDS.map(k => [k, new Map()]))
  /** Rows parsed by the last read: for tests and the benchmark. */
  parsedLastRead = 0

  constructor (private readonly store: ObjectStore) {}

  /** One consistent snapshot of every object the tables depend on. */
  read (): StoreSnapshot {
    return this.store.db.transaction(() => {
      this.parsedLastRead = 0
      const lists = new Map<KindName, unknown[]>()
      const privateKeys = new Map<string, string>()
      for (const kind of KINDS) {
        const def = kindDefinition(kind)
        const previous = this.cache.get(kind) as Map<string, Cached>
        const next = new Map<string, Cached>()
        const objects: unknown[] = []
        for (const v of this.store.versions(kind)) {
          const key = `${v.namespace}/${v.name}`
          let entry = previous.get(key)
          if (entry === undefined || entry.resourceVersion !== v.resourceVersion) {
            const stored = this.store.get(kind, v.namespace, v.name)
            if (stored === undefined) continue
            entry = { resourceVersion: v.resourceVersion, object: presentObject(def, def.storageVersion, stored.meta, stored.content) }
            if (kind === 'Secret') {
              const key = this.store.privateKey(v.namespace, v.name)
              if (key !== undefined) entry.privateKey = key
            }
            this.parsedLastRead++
          }
          next.set(key, entry)
          objects.push(entry.object)
          if (entry.privateKey !== undefined) privateKeys.set(key, entry.privateKey)
        }
        this.cache.set(kind, next)
        lists.set(kind, objects)
      }
      return {
        resourceVersion: this.store.resourceVersion(),
        routingVersion: this.store.routingVersion(),
        snapshot: {
          ingresses: lists.get('Ingress') as Ingress[],
          services: lists.get('Service') as Service[],
          endpoints: lists.get('Endpoints') as Endpoints[],
          secrets: lists.get('Secret') as Secret[],
          privateKeys
        }
      }
    })()
  }
}
