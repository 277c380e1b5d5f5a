/**
 * Cluster mode at start-up, with the real command as a child process (so kill -9 is real and exit
 * codes are the process's): a node killed with SIGKILL comes back while PostgreSQL is down and
 * serves its mirror; a brand-new node is not ready until PostgreSQL returns; a configuration that
 * no retry fixes (a malformed URL, a wrong password, a missing database) exits 2 in one line that
 * names INGRESSD_POSTGRES_URL and never shows the password; an unreachable database with a mirror
 * present starts and serves.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import t from 'tap'
import { serviceManifests } from '../helpers/backends.js'
import { startChildGateway, runCli, type ChildGateway } from '../helpers/child-gateway.js'
import { call, hostStatus, ING, ingress, until } from '../helpers/cluster.js'
import { startFaultProxy } from '../helpers/fault-proxy.js'
import { startTestGateway } from '../helpers/gateway.js'
import { startOrigin } from '../helpers/origin.js'
import { sharedPostgres, startPrivatePostgres } from '../helpers/postgres.js'

interface Teardownable { teardown: (fn: () => unknown) => void }

function tempDir (t: Teardownable, name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `ingressd-${name}-`))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Environment for a child node: every listener on a free loopback port. */
function nodeEnv (db: string, url: string, name: string, extra: Record<string, string> = {}): Record<string, string> {
  return { INGRESSD_DB: db, INGRESSD_POSTGRES_URL: url, INGRESSD_NODE_NAME: name, INGRESSD_ADMIN_ADDR: '127.0.0.1:0', INGRESSD_HTTP_ADDR: '127.0.0.1:0', INGRESSD_HTTPS_ADDR: '127.0.0.1:0', ...extra }
}

interface Child { run: ChildGateway, http: string }

/** Starts `ingressd serve` as a child; stopped (SIGTERM, then SIGKILL) at teardown if still running. */
async function child (t: Teardownable, env: Record<string, string>): Promise<Child> {
  const run = await startChildGateway(env)
  t.teardown(async () => {
    if (run.child.exitCode !== null || run.child.signalCode !== null) return
    run.child.kill('SIGTERM')
    const timer = setTimeout(() => run.child.kill('SIGKILL'), 5000)
    await run.exited
    clearTimeout(timer)
  })
  return { run, http: `http://${String(run.started.http)}` }
}

const fmt = (ms: number): string => `${ms.toFixed(0)} ms`

t.test('a node killed with SIGKILL and restarted while PostgreSQL is down serves its last configuration, ready', async t => {
  const pgs = await sharedPostgres()
  const url = await pgs.createDatabase()
  const proxy = await startFaultProxy(t, { host: pgs.host, port: pgs.port })
  const web = await startOrigin(t, 'web')
  const db = join(tempDir(t, 'killed'), 'ingressd.db')
  const env = nodeEnv(db, proxy.url(url), 'node-k')

  const first = await child(t, env)
  t.equal((await call(first.run, 'POST', '/apply', [...serviceManifests('web', [web]), ingress('kept', 'kept.example.com', 'web')])).status, 200, 'configured through the admin API')
  t.equal(await hostStatus(first.http, 'kept.example.com'), 200, 'kept.example.com is served')

  first.run.child.kill('SIGKILL')
  t.same(await first.run.exited, { code: null, signal: 'SIGKILL' }, 'killed with SIGKILL')
  proxy.mode('cut')

  // Back while PostgreSQL is unreachable, with two workers this time (the primary/worker path).
  const started = performance.now()
  const again = await child(t, { ...env, INGRESSD_WORKERS: '2' })
  t.comment(`restarted in ${fmt(performance.now() - started)} with PostgreSQL unreachable`)
  t.equal(await hostStatus(again.http, 'kept.example.com'), 200, 'it serves its last configuration: kept.example.com answers 200')
  t.equal(await hostStatus(again.http, 'other.example.com'), 404, 'and nothing else')
  t.equal((await call(again.run, 'GET', '/readyz')).status, 200, '/readyz 200: it has a mirror')
  const read = await call(again.run, 'GET', `${ING}/kept`)
  t.equal(read.status, 200, 'reads answer from the mirror')
  t.match(read.headers?.warning, /^299 - "PostgreSQL is unreachable since /, 'with the outage warning')
  const write = await call(again.run, 'POST', ING, ingress('new', 'new.example.com', 'web'))
  t.equal(write.status, 503, `writes answer 503 (${fmt(write.ms)})`)
  t.equal(write.body?.details?.errorCode, 'INGRESSD_ERR_STORE_UNAVAILABLE')
  t.ok(write.ms < 5000, 'within 5 s')

  proxy.mode('pass')
  const back = await until(async () => {
    const r = await call(again.run, 'POST', ING, ingress('new', 'new.example.com', 'web'))
    return r.status === 201 ? r : false
  }, 10_000, 'a write accepted once PostgreSQL is reachable', 100)
  t.comment(`writes accepted again ${fmt(back.ms)} after the link came back`)
  await until(async () => (await hostStatus(again.http, 'new.example.com')) === 200, 3000, 'the new host served by the restarted node')
  t.ok(again.run.lines.some(l => l.includes('PostgreSQL is unreachable')), 'the restarted node logged the outage')
})

t.test('a brand-new node started while PostgreSQL is down: not ready until PostgreSQL returns, then ready and serving', async t => {
  const pgs = await sharedPostgres()
  const url = await pgs.createDatabase()
  const web = await startOrigin(t, 'web')
  // The store already has a configuration, written by a node that has PostgreSQL.
  const seed = await startTestGateway(t, { INGRESSD_POSTGRES_URL: url, INGRESSD_NODE_NAME: 'seed' })
  t.equal((await call(seed, 'POST', '/apply', [...serviceManifests('web', [web]), ingress('kept', 'kept.example.com', 'web')])).status, 200)

  const proxy = await startFaultProxy(t, { host: pgs.host, port: pgs.port })
  proxy.mode('cut')
  const fresh = await child(t, { ...nodeEnv(join(tempDir(t, 'fresh'), 'ingressd.db'), proxy.url(url), 'node-new'), INGRESSD_WORKERS: '2' })
  t.pass('it starts without PostgreSQL and without a mirror')
  const notReady = await call(fresh.run, 'GET', '/readyz')
  t.equal(notReady.status, 503, '/readyz 503: it has nothing to serve yet')
  t.equal(await hostStatus(fresh.http, 'kept.example.com'), 404, 'it serves nothing')
  await new Promise(resolve => setTimeout(resolve, 1500))
  t.equal((await call(fresh.run, 'GET', '/readyz')).status, 503, 'still not ready while PostgreSQL is away')

  proxy.mode('pass')
  const ready = await until(async () => (await call(fresh.run, 'GET', '/readyz')).status === 200, 10_000, '/readyz 200 once PostgreSQL is back', 50)
  t.comment(`ready ${fmt(ready.ms)} after PostgreSQL became reachable`)
  t.equal(await hostStatus(fresh.http, 'kept.example.com'), 200, 'and serves the store\'s configuration')
})

t.test('start-up refusals exit 2 in one line naming INGRESSD_POSTGRES_URL, without the password; an unreachable database with a mirror starts', async t => {
  // A cluster of our own with password authentication for the role `gateway`.
  const pgp = await startPrivatePostgres(t)
  const admin = new pg.Client(pgp.admin)
  await admin.connect()
  t.teardown(async () => { await admin.end() })
  await admin.query("CREATE ROLE gateway LOGIN PASSWORD 'right-pa55word'")
  const url = await pgp.createDatabase('ingressd_store')
  await admin.query('ALTER DATABASE ingressd_store OWNER TO gateway')
  const hba = join(pgp.dir, 'data', 'pg_hba.conf')
  writeFileSync(hba, `host all gateway ${pgp.host}/32 scram-sha-256\n${readFileSync(hba, 'utf8')}`)
  await admin.query('SELECT pg_reload_conf()')
  const as = (user: string, password: string, database = 'ingressd_store'): string => {
    const u = new URL(url)
    u.username = user
    u.password = password
    u.pathname = `/${database}`
    return u.toString()
  }

  const refusals: Array<{ what: string, url: string, secret: string, cause: RegExp }> = [
    { what: 'a malformed URL', url: 'postgres://u:secret@', secret: 'secret', cause: /the URL names no host|expected a PostgreSQL URL/ },
    { what: 'a wrong password', url: as('gateway', 'wrong-pa55word'), secret: 'wrong-pa55word', cause: /PostgreSQL refused the credentials/ },
    { what: 'a missing database', url: as('gateway', 'right-pa55word', 'ingressd_missing'), secret: 'right-pa55word', cause: /the database does not exist/ }
  ]
  const runs = await Promise.all(refusals.map(async r => {
    const dir = tempDir(t, 'refused')
    const run = runCli(['serve'], nodeEnv(join(dir, 'ingressd.db'), r.url, 'node-refused'))
    const timer = setTimeout(() => run.child.kill('SIGKILL'), 30_000)
    const exit = await run.exited
    clearTimeout(timer)
    return { ...r, exit, stderr: run.stderr(), stdout: run.lines.join('\n') }
  }))
  for (const r of runs) {
    t.same(r.exit, { code: 2, signal: null }, `${r.what}: exit code 2`)
    const lines = r.stderr.split('\n').filter(l => l !== '')
    t.equal(lines.length, 1, `${r.what}: one stderr line: ${r.stderr}`)
    t.match(lines[0], /INGRESSD_POSTGRES_URL/, `${r.what}: names INGRESSD_POSTGRES_URL`)
    t.match(lines[0], r.cause, `${r.what}: says why`)
    t.notOk(`${r.stdout}\n${r.stderr}`.includes(r.secret), `${r.what}: the password appears in no output`)
    t.notOk(r.stdout.includes('ingressd serving'), `${r.what}: it never served`)
    if (!`${r.stdout}\n${r.stderr}`.includes(r.secret)) t.comment(`${r.what}: ${lines.join(' / ')}`)
  }

  // The right password: a node starts, makes a mirror, and is stopped.
  const proxy = await startFaultProxy(t, { host: pgp.host, port: pgp.port })
  const web = await startOrigin(t, 'web')
  const dir = tempDir(t, 'mirror')
  const env = nodeEnv(join(dir, 'ingressd.db'), proxy.url(as('gateway', 'right-pa55word')), 'node-pw')
  const first = await child(t, env)
  t.equal((await call(first.run, 'POST', '/apply', [...serviceManifests('web', [web]), ingress('kept', 'kept.example.com', 'web')])).status, 200, 'the right password: the node writes through PostgreSQL')
  first.run.child.kill('SIGTERM')
  t.same(await first.run.exited, { code: 0, signal: null }, 'stopped cleanly')

  // Unreachable at start (a blackholed link: connections hang), with the mirror present: it starts and serves.
  proxy.mode('blackhole')
  const started = performance.now()
  const again = await child(t, env)
  t.comment(`started in ${fmt(performance.now() - started)} with PostgreSQL unreachable (blackholed: the 3 s connect timeout)`)
  t.equal(await hostStatus(again.http, 'kept.example.com'), 200, 'it serves its mirror')
  t.equal((await call(again.run, 'GET', '/readyz')).status, 200, 'ready')
  const write = await call(again.run, 'POST', ING, ingress('later', 'later.example.com', 'web'))
  t.equal(write.status, 503, `writes answer 503 (${fmt(write.ms)})`)
  const metrics = await call(again.run, 'GET', '/metrics')
  t.equal(metrics.status, 200)
  t.match(metrics.text, /ingressd_cluster_store_up(\{[^}]*\})? 0/, '/metrics says the store is down')

  proxy.mode('pass')
  await until(async () => (await call(again.run, 'POST', ING, ingress('later', 'later.example.com', 'web'))).status === 201, 15_000, 'writes once the link heals', 100)
  const up = await call(again.run, 'GET', '/metrics')
  for (const text of [metrics.text ?? '', up.text ?? '', again.run.lines.join('\n'), again.run.stderr(), first.run.lines.join('\n'), first.run.stderr()]) {
    if (text.includes('right-pa55word')) t.fail(`the password appears: ${text.split('\n').filter(l => l.includes('right-pa55word')).join('\n').slice(0, 500)}`)
  }
  t.pass('the password appears in no log line of either run and not in /metrics')
})
