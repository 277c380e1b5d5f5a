/**
 * Holds an admin write's reply until every data-plane follower serves the store's new version,
 * so "the call returned" means "the gateway routes by it".
 */
import type { ChangeFeed } from '../store/change-feed.js'
import type { ObjectStore } from '../store/object-store.js'

export interface WriteSync {
  /** Waits for the data plane to serve the store's current version; returns a warning if it did not in time. */
  afterWrite: () => Promise<string | undefined>
}

/** A WriteSync over the store's change feed. */
export function createWriteSync (store: ObjectStore, feed: ChangeFeed, timeoutMs: number): WriteSync {
  return {
    async afterWrite () {
      const version = store.resourceVersion()
      const { served, problems } = await feed.waitServed(version, timeoutMs)
      if (!served) return `the change is stored (resourceVersion ${version}) but the data plane did not confirm serving it within ${timeoutMs} ms`
      if (problems.length > 0) return `the change is stored (resourceVersion ${version}) but the data plane could not compile it and keeps serving the previous configuration: ${problems.join('; ')}`
      return undefined
    }
  }
}
