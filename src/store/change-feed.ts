/**
 * Where the admin plane and the data plane meet besides the tables: data-plane followers report
 * the resourceVersion they serve, and an admin write waits until every follower serves its
 * commit, so a request sent after the write returns sees the new routes.
 */

interface Waiter {
  resourceVersion: number
  resolve: (served: boolean) => void
  timer: NodeJS.Timeout
}

/** Tracks what each data-plane follower serves, and who is waiting for what. */
export class ChangeFeed {
  private readonly served = new Map<string, number>()
  private waiters: Waiter[] = []

  /** A follower joins; until it reports, writes wait for it. */
  register (followerId: string, servedVersion = 0): void {
    this.served.set(followerId, servedVersion)
  }

  /** A follower leaves (shutdown); writes stop waiting for it. */
  unregister (followerId: string): void {
    this.served.delete(followerId)
    this.settle()
  }

  /** A follower now serves tables built from `resourceVersion` (or later). */
  reportServed (followerId: string, resourceVersion: number): void {
    if ((this.served.get(followerId) ?? -1) >= resourceVersion) return
    this.served.set(followerId, resourceVersion)
    this.settle()
  }

  /** The lowest version every follower serves. */
  servedByAll (): number {
    let min = Infinity
    for (const v of this.served.values()) min = Math.min(min, v)
    return min
  }

  /** Resolves true once every follower serves `resourceVersion`, false after `timeoutMs`. */
  waitServed (resourceVersion: number, timeoutMs: number): Promise<boolean> {
    if (this.servedByAll() >= resourceVersion) return Promise.resolve(true)
    return new Promise(resolve => {
      const waiter: Waiter = {
        resourceVersion,
        resolve,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter(w => w !== waiter)
          resolve(false)
        }, timeoutMs)
      }
      this.waiters.push(waiter)
    })
  }

  private settle (): void {
    const floor = this.servedByAll()
    this.waiters = this.waiters.filter(w => {
      if (w.resourceVersion > floor) return true
      clearTimeout(w.timer)
      w.resolve(true)
      return false
    })
  }
}
