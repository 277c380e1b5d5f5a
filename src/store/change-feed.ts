/**
 * Where the admin plane and the data plane meet besides the tables: data-plane followers report
 * the resourceVersion they serve, and an admin write waits until every follower serves its
 * commit, so a request sent after the write returns sees the new routes.
 */

interface Waiter {
  resourceVersion: number
  resolve: (outcome: ServeOutcome) => void
  timer: NodeJS.Timeout
}

/** What a writer learns: whether every follower took the version in time, and any that could not compile it. */
export interface ServeOutcome {
  served: boolean
  problems: string[]
}

/** Tracks what each data-plane follower serves, and who is waiting for what. */
export class ChangeFeed {
  private readonly served = new Map<string, number>()
  /** The last compile failure per follower, with the version it happened at. */
  private readonly failures = new Map<string, { resourceVersion: number, message: string }>()
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

  /**
   * A follower has processed `resourceVersion`: it serves tables built from it, or, with
   * `problem`, it could not compile them and keeps serving its last good tables.
   */
  reportServed (followerId: string, resourceVersion: number, problem?: string): void {
    if (problem !== undefined) this.failures.set(followerId, { resourceVersion, message: problem })
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

  /** Resolves once every follower has processed `resourceVersion`, or after `timeoutMs` with served false. */
  waitServed (resourceVersion: number, timeoutMs: number): Promise<ServeOutcome> {
    if (this.servedByAll() >= resourceVersion) return Promise.resolve(this.outcome(resourceVersion, true))
    return new Promise(resolve => {
      const waiter: Waiter = {
        resourceVersion,
        resolve,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter(w => w !== waiter)
          resolve(this.outcome(resourceVersion, false))
        }, timeoutMs)
      }
      this.waiters.push(waiter)
    })
  }

  /** The compile failures reported at or after `resourceVersion`. */
  problemsAt (resourceVersion: number): string[] {
    return this.outcome(resourceVersion, true).problems
  }

  private outcome (resourceVersion: number, served: boolean): ServeOutcome {
    const problems = [...this.failures.values()].filter(f => f.resourceVersion >= resourceVersion).map(f => f.message)
    return { served, problems }
  }

  private settle (): void {
    const floor = this.servedByAll()
    this.waiters = this.waiters.filter(w => {
      if (w.resourceVersion > floor) return true
      clearTimeout(w.timer)
      w.resolve(this.outcome(w.resourceVersion, true))
      return false
    })
  }
}
