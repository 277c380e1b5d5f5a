/**
 * Steady keep-alive load on one route, for tests that change the configuration under it: N loops
 * over a pool, each request checked against what the origin must answer. Counts what succeeded
 * and what failed (with the first few failures' texts) until stopped.
 */
import { Pool } from 'undici'
import type { Origin } from './origin.js'

export interface SteadyLoad {
  /** Responses that were 200 from the expected origin. */
  readonly ok: number
  /** Anything else: another status or origin, or a request error. */
  readonly failed: number
  /** The first failures, as status and body start or error message. */
  readonly failures: readonly string[]
  /** Ends the loops once their requests in flight are answered. */
  stop: () => Promise<void>
  /** Closes the pool (idempotent; also done at teardown). */
  close: () => Promise<void>
}

const KEPT_FAILURES = 10

/** Starts `connections` loops of GET `path` with Host `host` against `base`, expecting an answer from `origin`. */
export function startSteadyLoad (t: { teardown: (fn: () => Promise<void>) => void }, base: string, opts: { host: string, path: string, origin: Origin, connections: number }): SteadyLoad {
  const pool = new Pool(base, { connections: opts.connections })
  let closed = false
  const run = { running: true }
  const close = async (): Promise<void> => {
    if (closed) return
    closed = true
    await pool.close()
  }
  t.teardown(close)
  const expected = `"server":"${opts.origin.name}"`
  const state = { ok: 0, failed: 0, failures: [] as string[] }
  const fail = (text: string): void => {
    state.failed++
    if (state.failures.length < KEPT_FAILURES) state.failures.push(text)
  }
  const loops = Array.from({ length: opts.connections }, async () => {
    while (run.running) {
      try {
        const res = await pool.request({ path: opts.path, method: 'GET', headers: { host: opts.host } })
        const body = await res.body.text()
        if (res.statusCode === 200 && body.includes(expected)) state.ok++
        else fail(`${res.statusCode} ${body.slice(0, 80)}`)
      } catch (err) {
        fail((err as Error).message)
      }
      // The echo origin remembers every request; keep that from growing for as long as the load runs.
      if (opts.origin.seen.length > 1000) opts.origin.seen.length = 0
    }
  })
  return {
    get ok () { return state.ok },
    get failed () { return state.failed },
    get failures () { return state.failures },
    stop: async () => {
      run.running = false
      await Promise.all(loops)
    },
    close
  }
}
