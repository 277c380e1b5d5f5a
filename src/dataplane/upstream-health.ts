/**
 * Passive health, as nginx's max_fails / fail_timeout: an upstream address that fails
 * `maxFails` times in a row is taken out of rotation for `failTimeoutMs`, then comes back on its
 * own (the next request tries it again). Nothing probes actively; the traffic itself is the probe.
 */
import type { Upstream } from './route-table.js'

interface State {
  fails: number
  downUntil: number
}

export class UpstreamHealth {
  private readonly states = new Map<string, State>()

  constructor (private readonly maxFails: number, private readonly failTimeoutMs: number) {}

  private key (u: Upstream): string {
    return `${u.host}:${u.port}`
  }

  /** False while the address is out of rotation. */
  isAvailable (u: Upstream, now = Date.now()): boolean {
    if (this.maxFails <= 0) return true
    const state = this.states.get(this.key(u))
    return state === undefined || state.downUntil <= now
  }

  /** A connection failure, reset or timeout against the address. */
  recordFailure (u: Upstream, now = Date.now()): void {
    if (this.maxFails <= 0) return
    const key = this.key(u)
    const state = this.states.get(key) ?? { fails: 0, downUntil: 0 }
    state.fails++
    if (state.fails >= this.maxFails) {
      state.downUntil = now + this.failTimeoutMs
      state.fails = 0
    }
    this.states.set(key, state)
  }

  /** A response arrived: the address is healthy again. */
  recordSuccess (u: Upstream): void {
    if (this.states.size !== 0) this.states.delete(this.key(u))
  }
}
