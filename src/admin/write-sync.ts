/**
 * Holds an admin write's reply until every data-plane follower serves the store's new version,
 * so "the call returned" means "the gateway routes by it".
 */
import Type from 'typebox'
import type { ChangeFeed } from '../store/change-feed.js'
import type { ObjectStore } from '../store/object-store.js'

/** How an admin write reaches the store: the SQLite file itself, or PostgreSQL first in cluster mode (store/cluster). */
export interface StoreWriter {
  /** Runs `fn` (which calls the ObjectStore's put and delete) as one write; throws what it throws. */
  write: <T>(fn: () => T) => Promise<T>
}

/** The embedded store's writer: one SQLite transaction. */
export function sqliteWriter (store: ObjectStore): StoreWriter {
  return { write: async (fn) => store.write(fn) }
}

/** `?wait=all`: a write also waits for every live node of the cluster, not only the one it was sent to. */
export const WaitQuery = {
  wait: Type.Optional(Type.Literal('all', { description: 'Cluster mode: answer once every live node serves the change too (5 s at most, then a Warning names the nodes behind). Without it the write answers once this node serves it, with a Warning if other live nodes are lagging.' }))
}

/** How long a write waits: until this node serves it (default), or every live node (`all`). */
export type WaitMode = 'local' | 'all'

/** A live node that does not serve what it should. */
export interface LaggingNode {
  name: string
  servedResourceVersion: number
  problem?: string
}

/** The other nodes of a cluster, as a write sees them (admin/nodes.ts). */
export interface PeerNodes {
  /** Live nodes whose last report lags behind what they should serve by now; undefined when unknown (embedded mode, PostgreSQL away). */
  lagging: () => Promise<LaggingNode[] | undefined>
  /** Waits until every live node serves `version`; those still behind after `timeoutMs` (undefined in embedded mode). */
  waitAll: (version: number, timeoutMs: number) => Promise<{ lagging: LaggingNode[], error?: string } | undefined>
}

export interface WriteSync {
  /**
   * Waits for the data plane to serve the store's current version (and, with `all`, for every
   * live node to); returns the warnings to send, none when all went well.
   */
  afterWrite: (wait?: WaitMode) => Promise<string[]>
}

function nodeList (nodes: LaggingNode[]): string {
  return nodes.map(n => `node ${n.name} serves ${n.servedResourceVersion}${n.problem === undefined ? '' : ` (could not compile: ${n.problem})`}`).join(', ')
}

/** A WriteSync over the store's change feed, and in cluster mode the other nodes' reports. */
export function createWriteSync (store: ObjectStore, feed: ChangeFeed, timeoutMs: number, peers?: PeerNodes): WriteSync {
  return {
    async afterWrite (wait = 'local') {
      const version = store.resourceVersion()
      const warnings: string[] = []
      const { served, problems } = await feed.waitServed(version, timeoutMs)
      if (!served) warnings.push(`the change is stored (resourceVersion ${version}) but the data plane did not confirm serving it within ${timeoutMs} ms`)
      else if (problems.length > 0) warnings.push(`the change is stored (resourceVersion ${version}) but the data plane could not compile it and keeps serving the previous configuration: ${problems.join('; ')}`)
      if (peers === undefined) return warnings
      if (wait === 'all') {
        const outcome = await peers.waitAll(version, timeoutMs)
        if (outcome?.error !== undefined) warnings.push(`could not confirm that every node serves resourceVersion ${version}: PostgreSQL did not answer (${outcome.error})${outcome.lagging.length === 0 ? '' : `; last read: ${nodeList(outcome.lagging)}`}`)
        else if (outcome !== undefined && outcome.lagging.length > 0) warnings.push(`not every live node serves resourceVersion ${version} (waited up to ${timeoutMs} ms): ${nodeList(outcome.lagging)}`)
      } else {
        const lagging = await peers.lagging()
        if (lagging !== undefined && lagging.length > 0) warnings.push(`live nodes are behind the store (resourceVersion ${version}): ${nodeList(lagging)}; ?wait=all waits for every node`)
      }
      return warnings
    }
  }
}

/** The Warning header for `warnings` (Kubernetes' `299 - "text"`, comma-separated), or undefined for none. */
export function warningHeader (warnings: string[]): string | undefined {
  if (warnings.length === 0) return undefined
  return warnings.map(w => `299 - "${w.replace(/["\\]/g, m => `\\${m}`)}"`).join(', ')
}
