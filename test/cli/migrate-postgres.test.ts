/**
 * `ingressd migrate` in cluster mode: with INGRESSD_POSTGRES_URL it migrates the local SQLite
 * mirror and then PostgreSQL, prints one line per store (the URL without its password), says "up
 * to date" the second time, and fails in one line naming the setting, exit code 2, when
 * PostgreSQL refuses it (a wrong password, a missing database) or is not there. The password is
 * never printed. Real PostgreSQL: test/helpers/postgres.ts.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import t from 'tap'
import { runCli } from '../helpers/child-gateway.js'
import { sharedPostgres, startPrivatePostgres } from '../helpers/postgres.js'

interface Migrated { code: number | null, stdout: string[], stderr: string }

/** `ingressd migrate` as a child process (for the exit code), with its own SQLite file. */
async function migrate (t: { teardown: (fn: () => unknown) => void }, env: Record<string, string>, db?: string): Promise<Migrated & { db: string }> {
  let file = db
  if (file === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'ingressd-migrate-pg-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    file = join(dir, 'mirror.db')
  }
  const run = runCli(['migrate'], { INGRESSD_DB: file, ...env })
  const { code } = await run.exited
  return { code, stdout: run.lines.filter(l => l !== ''), stderr: run.stderr(), db: file }
}

/** A loopback port nothing listens on. */
async function closedPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>(resolve => server.close(() => resolve()))
  return port
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

t.test('migrate runs the SQLite and then the PostgreSQL migrations, and says "up to date" the second time', async t => {
  const pgs = await sharedPostgres()
  const url = await pgs.createDatabase()
  const first = await migrate(t, { INGRESSD_POSTGRES_URL: url })
  t.equal(first.code, 0, first.stderr)
  t.equal(first.stderr, '')
  t.equal(first.stdout.length, 2, 'one line per store')
  t.match(first.stdout[0], new RegExp(`^${escape(first.db)}: applied 0001-objects\\.sql, .*0006-replica-epoch\\.sql$`), 'the SQLite mirror first')
  t.equal(first.stdout[1], `${url}: applied 0001-cluster.sql, 0002-commit-history.sql`, 'then PostgreSQL, named by its URL')

  const client = new pg.Client({ connectionString: url })
  await client.connect()
  t.teardown(async () => { await client.end() })
  t.same((await client.query('SELECT version, name FROM schema_migrations ORDER BY version')).rows, [{ version: 1, name: '0001-cluster.sql' }, { version: 2, name: '0002-commit-history.sql' }])
  t.same((await client.query('SELECT resource_version FROM store_state')).rows.map(r => Number(r.resource_version)), [0], 'the store starts at version 0')
  const tables = (await client.query<{ t: string }>("SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")).rows.map(r => r.t)
  t.same(tables, ['audit_log', 'commit_history', 'nodes', 'object_deletions', 'objects', 'schema_migrations', 'store_state'])

  const again = await migrate(t, { INGRESSD_POSTGRES_URL: url }, first.db)
  t.equal(again.code, 0, again.stderr)
  t.same(again.stdout, [`${first.db}: schema is up to date`, `${url}: schema is up to date`])
  t.same((await client.query('SELECT count(*)::int AS n FROM schema_migrations')).rows, [{ n: 2 }], 'nothing applied twice')

  const without = await migrate(t, {})
  t.equal(without.code, 0)
  t.equal(without.stdout.length, 1, 'without INGRESSD_POSTGRES_URL only the SQLite store is migrated')
})

t.test('a missing database or an unreachable server: exit 2, one line naming INGRESSD_POSTGRES_URL', async t => {
  const pgs = await sharedPostgres()
  const missing = await migrate(t, { INGRESSD_POSTGRES_URL: `postgres://ingressd@127.0.0.1:${pgs.port}/ingressd_no_such_database` })
  t.equal(missing.code, 2)
  t.match(missing.stderr, /^ingressd: INGRESSD_POSTGRES_URL \(postgres:\/\/ingressd@127\.0\.0\.1:\d+\/ingressd_no_such_database\): the database does not exist .*\(INGRESSD_ERR_CONFIG\)\n$/)
  t.equal(missing.stdout.length, 1, 'the SQLite mirror was migrated before')

  const port = await closedPort()
  const away = await migrate(t, { INGRESSD_POSTGRES_URL: `postgres://ingressd:not-shown-either@127.0.0.1:${port}/ingressd` })
  t.equal(away.code, 2)
  t.match(away.stderr, new RegExp(`^ingressd: INGRESSD_POSTGRES_URL \\(postgres://ingressd:\\*\\*\\*@127\\.0\\.0\\.1:${port}/ingressd\\): PostgreSQL cannot be reached .*ECONNREFUSED.*\\(INGRESSD_ERR_STORE_UNAVAILABLE\\)\\n$`))
  t.notMatch(away.stderr + away.stdout.join('\n'), 'not-shown-either')
})

t.test('a wrong password: exit 2, one line naming INGRESSD_POSTGRES_URL, never the password', async t => {
  // The shared cluster trusts every local connection: a password is checked only where pg_hba.conf asks for one.
  const pgp = await startPrivatePostgres(t)
  const admin = new pg.Client(pgp.admin)
  await admin.connect()
  t.teardown(async () => { await admin.end() })
  await admin.query("CREATE ROLE gateway LOGIN PASSWORD 'right-s3cret-pw'")
  const url = await pgp.createDatabase('ingressd_cluster')
  await admin.query('ALTER DATABASE ingressd_cluster OWNER TO gateway')
  const hba = join(pgp.dir, 'data', 'pg_hba.conf')
  writeFileSync(hba, `host all gateway ${pgp.host}/32 scram-sha-256\n${readFileSync(hba, 'utf8')}`)
  await admin.query('SELECT pg_reload_conf()')
  const at = new URL(url)

  at.username = 'gateway'
  at.password = 'wrong-s3cret-pw'
  const wrong = await migrate(t, { INGRESSD_POSTGRES_URL: at.toString() })
  t.equal(wrong.code, 2)
  const lines = wrong.stderr.split('\n').filter(l => l !== '')
  t.equal(lines.length, 1, `one line: ${wrong.stderr}`)
  t.match(lines[0], /^ingressd: INGRESSD_POSTGRES_URL \(postgres:\/\/gateway:\*\*\*@127\.0\.0\.1:\d+\/ingressd_cluster\): PostgreSQL refused the credentials .*password authentication failed.*\(INGRESSD_ERR_CONFIG\)$/)
  t.notMatch(wrong.stderr + wrong.stdout.join('\n'), 'wrong-s3cret-pw', 'the password appears nowhere')

  at.password = 'right-s3cret-pw'
  const right = await migrate(t, { INGRESSD_POSTGRES_URL: at.toString() })
  t.equal(right.code, 0, right.stderr)
  t.match(right.stdout[1], /^postgres:\/\/gateway:\*\*\*@127\.0\.0\.1:\d+\/ingressd_cluster: applied 0001-cluster\.sql, 0002-commit-history\.sql$/, 'the right password migrates, and is not printed either')
  t.notMatch(right.stderr + right.stdout.join('\n'), 'right-s3cret-pw')
})

t.test('a malformed INGRESSD_POSTGRES_URL: exit 2 before anything is migrated, without the password', async t => {
  const bad = await migrate(t, { INGRESSD_POSTGRES_URL: 'mysql://root:hunter2-secret@db/ingressd' })
  t.equal(bad.code, 2)
  t.match(bad.stderr, /INGRESSD_POSTGRES_URL/)
  t.equal(bad.stderr.split('\n').filter(l => l !== '').length, 1, 'one line')
  t.notMatch(bad.stderr, 'hunter2-secret')
  t.same(bad.stdout, [], 'nothing migrated')
})
