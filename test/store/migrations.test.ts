import t from 'tap'
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { IngressdError } from '../../src/errors.js'
import { BUSY_TIMEOUT_MS, openDatabase } from '../../src/store/database.js'
import { MIGRATIONS_DIR, applyMigrations, loadMigrations } from '../../src/store/migrations.js'
import { runCli } from '../helpers/child-gateway.js'

function tempDir (t: { teardown: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'ingressd-migrations-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

function userVersion (db: Database.Database): number {
  return db.pragma('user_version', { simple: true }) as number
}

function tables (db: Database.Database): string[] {
  return (db.prepare('SELECT name FROM sqlite_master WHERE type = \'table\' ORDER BY name').all() as { name: string }[]).map(r => r.name)
}

const shipped = loadMigrations()
const latest = shipped.at(-1)?.version ?? 0

t.test('the shipped migrations are numbered 1, 2, 3... without gaps', async t => {
  t.ok(shipped.length > 0)
  t.same(shipped.map(m => m.version), shipped.map((_m, i) => i + 1))
})

t.test('a new file is brought to the latest version; a second run applies nothing', async t => {
  const dir = tempDir(t)
  const db = new Database(join(dir, 'fresh.db'))
  t.teardown(() => db.close())
  t.equal(userVersion(db), 0)
  const applied = applyMigrations(db)
  t.same(applied, shipped.map(m => m.name), 'every shipped migration, in order')
  t.equal(userVersion(db), latest, 'user_version is the latest migration number')
  const declared = shipped.flatMap(m => [...m.sql.matchAll(/CREATE TABLE (?:IF NOT EXISTS )?(\w+)/gi)].map(x => x[1] as string)).sort()
  t.ok(declared.includes('objects') && declared.includes('store_state') && declared.includes('object_status'))
  t.same(tables(db), declared, 'every table the migrations declare exists')
  t.same(db.prepare('SELECT id, resource_version FROM store_state').all(), [{ id: 1, resource_version: 0 }], 'the store starts at resourceVersion 0')

  t.same(applyMigrations(db), [], 'nothing left to apply')
  t.equal(userVersion(db), latest)
  t.same(db.prepare('SELECT count(*) AS n FROM store_state').get(), { n: 1 }, 'the seed row was not inserted twice')
})

t.test('ingressd migrate says what it applied, then that the schema is up to date', async t => {
  const dir = tempDir(t)
  const file = join(dir, 'nested', 'ingressd.db')
  const first = runCli(['migrate', '--db', file])
  t.equal((await first.exited).code, 0, first.stderr())
  t.equal(first.lines.join('\n').trim(), `${file}: applied ${shipped.map(m => m.name).join(', ')}`)
  const second = runCli(['migrate'], { INGRESSD_DB: file })
  t.equal((await second.exited).code, 0, second.stderr())
  t.equal(second.lines.join('\n').trim(), `${file}: schema is up to date`)
  const db = new Database(file, { readonly: true })
  t.equal(userVersion(db), latest)
  db.close()
})

t.test('a store at version N keeps its rows when migrated again and when later migrations come', async t => {
  const dir = tempDir(t)
  const file = join(dir, 'ingressd.db')
  const db = openDatabase(file)
  db.prepare('INSERT INTO objects (kind, namespace, name, uid, resource_version, generation, created_at, content) VALUES (\'Service\', \'default\', \'web\', \'u-1\', 1, 1, \'2030-01-01T00:00:00Z\', \'{}\')').run()
  db.prepare('UPDATE store_state SET resource_version = 1').run()
  db.close()

  const again = openDatabase(file)
  t.equal(userVersion(again), latest)
  t.same(again.prepare('SELECT kind, name, uid FROM objects').all(), [{ kind: 'Service', name: 'web', uid: 'u-1' }], 'rows survive re-opening')
  t.same(applyMigrations(again), [])

  // A later release adds a migration: only it runs, and the rows stay.
  const next = join(dir, 'migrations')
  mkdirSync(next)
  for (const m of shipped) copyFileSync(join(MIGRATIONS_DIR, m.name), join(next, m.name))
  const added = `${String(latest + 1).padStart(4, '0')}-add-notes.sql`
  writeFileSync(join(next, added), 'ALTER TABLE objects ADD COLUMN note TEXT;\nUPDATE objects SET note = \'migrated\';\n')
  writeFileSync(join(next, 'README.md'), 'not a migration')
  t.same(applyMigrations(again, { dir: next }), [added])
  t.equal(userVersion(again), latest + 1)
  t.same(again.prepare('SELECT name, uid, note FROM objects').all(), [{ name: 'web', uid: 'u-1', note: 'migrated' }])
  t.same(again.prepare('SELECT resource_version FROM store_state').get(), { resource_version: 1 })
  again.close()
})

t.test('a migration that fails leaves the store at the last version that applied', async t => {
  const dir = tempDir(t)
  const folder = join(dir, 'migrations')
  mkdirSync(folder)
  for (const m of shipped) copyFileSync(join(MIGRATIONS_DIR, m.name), join(folder, m.name))
  const good = `${String(latest + 1).padStart(4, '0')}-good.sql`
  const bad = `${String(latest + 2).padStart(4, '0')}-bad.sql`
  writeFileSync(join(folder, good), 'CREATE TABLE good_one (x INTEGER);\n')
  writeFileSync(join(folder, bad), 'CREATE TABLE half_done (x INTEGER);\nINSERT INTO no_such_table VALUES (1);\n')
  const db = new Database(join(dir, 'ingressd.db'))
  t.teardown(() => db.close())

  t.same(applyMigrations(db, { dir: folder, target: latest }), shipped.map(m => m.name), 'target stops at the version asked for')
  t.equal(userVersion(db), latest)
  let thrown: unknown
  try {
    applyMigrations(db, { dir: folder })
  } catch (err) {
    thrown = err
  }
  t.ok(thrown instanceof IngressdError)
  t.equal((thrown as IngressdError).code, 'INGRESSD_ERR_MIGRATION')
  t.match((thrown as IngressdError).message, bad)
  t.equal(userVersion(db), latest + 1, 'the good migration stays applied')
  t.ok(tables(db).includes('good_one'))
  t.notOk(tables(db).includes('half_done'), 'the failed migration left nothing behind')
})

t.test('openDatabase sets WAL, the busy timeout, full sync and foreign keys', async t => {
  const dir = tempDir(t)
  const file = join(dir, 'deeper', 'still', 'ingressd.db')
  const db = openDatabase(file)
  t.teardown(() => db.close())
  t.equal(db.pragma('journal_mode', { simple: true }), 'wal')
  t.equal(db.pragma('busy_timeout', { simple: true }), BUSY_TIMEOUT_MS)
  t.equal(BUSY_TIMEOUT_MS, 5000)
  t.equal(db.pragma('synchronous', { simple: true }), 2, 'synchronous = FULL')
  t.equal(db.pragma('foreign_keys', { simple: true }), 1)
  t.equal(userVersion(db), latest, 'and migrates by default')

  const plain = openDatabase(join(dir, 'plain.db'), { migrate: false })
  t.equal(userVersion(plain), 0, 'migrate: false leaves the schema alone')
  t.equal(plain.pragma('journal_mode', { simple: true }), 'wal')
  plain.close()

  // WAL is a property of the file: another connection sees it too.
  const other = new Database(file, { readonly: true })
  t.equal(other.pragma('journal_mode', { simple: true }), 'wal')
  other.close()
})
