/**
 * Opens the SQLite store with the pragmas every process needs: WAL so the data plane reads while
 * the admin plane writes, a busy timeout so concurrent writers wait instead of failing, and
 * synchronous=FULL so an acknowledged write survives a crash of the process or the machine.
 */
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import Database from 'better-sqlite3'
import { applyMigrations } from './migrations.js'

export type SqliteDatabase = Database.Database

/** How long a writer waits for another's lock before the store answers busy. */
export const BUSY_TIMEOUT_MS = 5000

/**
 * SQLite's page cache per connection, in KiB (as `PRAGMA cache_size = -N` takes it): SQLite's own
 * default of 2 MiB. better-sqlite3 builds SQLite with 16 MiB, which a store of 10,000 ingresses
 * fills, in every process (each worker has its own connection): some 14 MB of resident memory
 * each for pages the operating system's page cache holds anyway. Reads are by key or changes
 * since a version, and a full read happens once per process start.
 */
export const PAGE_CACHE_KIB = 2048

/** Opens (creating when needed) the store at `path` and brings its schema up to date. */
export function openDatabase (path: string, opts: { migrate?: boolean } = {}): SqliteDatabase {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true })
  const db = new Database(path)
  db.pragma('journal_mode = WAL')
  db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`)
  db.pragma('synchronous = FULL')
  db.pragma('foreign_keys = ON')
  db.pragma(`cache_size = -${PAGE_CACHE_KIB}`)
  if (opts.migrate !== false) applyMigrations(db)
  return db
}
