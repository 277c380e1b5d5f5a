/**
 * The gateway's own state (migrations/0002-gateway-state.sql): small JSON values by key, such as
 * the generated default certificate and the admin API's CA (INGRESSD_ADMIN_TLS=auto). Not API
 * objects: nothing here is served by the admin API (the admin CA's public certificate only, at
 * GET /ca.crt), and writes do not bump the resourceVersion the data plane follows.
 */
import type Database from 'better-sqlite3'

/** A key-value repository over the `gateway_state` table. Statements are prepared once. */
export class GatewayState {
  private readonly stmt

  constructor (db: Database.Database) {
    this.stmt = {
      get: db.prepare<[string], { value: string }>('SELECT value FROM gateway_state WHERE key = ?'),
      insert: db.prepare<[string, string, string]>('INSERT INTO gateway_state (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING'),
      replace: db.prepare<[string, string, string, string]>('UPDATE gateway_state SET value = ?, updated_at = ? WHERE key = ? AND value = ?')
    }
  }

  /** The value stored under `key`, or undefined. */
  get<T> (key: string): T | undefined {
    const row = this.stmt.get.get(key)
    return row === undefined ? undefined : JSON.parse(row.value) as T
  }

  /**
   * Stores `value` unless another writer stored one first, and returns whichever is stored, so
   * two processes starting on the same store agree on one value.
   */
  setIfAbsent<T> (key: string, value: T): T {
    this.stmt.insert.run(key, JSON.stringify(value), new Date().toISOString())
    return this.get<T>(key) as T
  }

  /**
   * Replaces the value under `key` only if it still is `expected` (compare and set), and returns
   * whichever value is stored afterwards.
   */
  replace<T> (key: string, expected: T, value: T): T {
    this.stmt.replace.run(JSON.stringify(value), new Date().toISOString(), key, JSON.stringify(expected))
    return this.get<T>(key) as T
  }

  /**
   * The value under `key` if `usable` accepts it; otherwise a new one from `generate`, stored
   * before it is returned. When another process stores one while this one generates, theirs is
   * kept and returned: every process sharing the store ends up with the same value.
   */
  async ensure<T> (key: string, usable: (stored: T | undefined) => stored is T, generate: () => Promise<T>): Promise<T> {
    const stored = this.get<T>(key)
    if (usable(stored)) return stored
    const fresh = await generate()
    return stored === undefined ? this.setIfAbsent(key, fresh) : this.replace(key, stored, fresh)
  }
}
