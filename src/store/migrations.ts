/**
 * The migration runner: `migrations/NNNN-slug.sql`, applied in order, each in its own
 * transaction, the version kept in `PRAGMA user_version`. A shipped migration is never edited.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type Database from 'better-sqlite3'
import { IngressdError } from '../errors.js'

/** The migrations folder: beside src/ and dist/ alike, at the package root. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url))

export interface Migration {
  version: number
  name: string
  sql: string
}

/** Every migration in the folder, in version order. */
export function loadMigrations (dir = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir)
    .filter(f => /^\d{4}-[a-z0-9-]+\.sql$/.test(f))
    .sort()
    .map(f => ({ version: Number(f.slice(0, 4)), name: f, sql: readFileSync(join(dir, f), 'utf8') }))
}

/** Applies the migrations above the store's version, up to `target` (all by default); returns the names applied. */
export function applyMigrations (db: Database.Database, opts: { dir?: string, target?: number } = {}): string[] {
  const current = db.pragma('user_version', { simple: true }) as number
  const applied: string[] = []
  for (const m of loadMigrations(opts.dir)) {
    if (m.version <= current || (opts.target !== undefined && m.version > opts.target)) continue
    try {
      db.transaction(() => {
        db.exec(m.sql)
        db.pragma(`user_version = ${m.version}`)
      }).immediate()
    } catch (err) {
      throw new IngressdError('INGRESSD_ERR_MIGRATION', `migration ${m.name} failed: ${(err as Error).message}`, { cause: err })
    }
    applied.push(m.name)
  }
  return applied
}
