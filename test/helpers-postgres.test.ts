/**
 * The PostgreSQL test helpers themselves: the shared cluster hands out isolated databases, a
 * private cluster survives crashes and restarts, the fault proxy's modes do what they say to a real
 * `pg` client, and nothing outlives its test.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import pg from 'pg'
import t from 'tap'
import { startFaultProxy } from './helpers/fault-proxy.js'
import { sharedPostgres, startPrivatePostgres } from './helpers/postgres.js'

type Teardownable = { teardown: (fn: () => unknown) => void }

/** A connected client closed at teardown; `error` events (expected when a test breaks the link) are recorded. */
async function client (t: Teardownable, config: pg.ClientConfig): Promise<{ c: pg.Client, errors: Error[] }> {
  const c = new pg.Client(config)
  const errors: Error[] = []
  c.on('error', err => errors.push(err))
  t.teardown(() => {
    // end() would wait for an answer a broken link never brings.
    c.connection.stream.destroy()
  })
  await c.connect()
  return { c, errors }
}

async function timed<T> (fn: () => Promise<T>): Promise<{ ms: number, value?: T, error?: Error }> {
  const start = performance.now()
  try {
    const value = await fn()
    return { ms: performance.now() - start, value }
  } catch (error) {
    return { ms: performance.now() - start, error: error as Error }
  }
}

t.test('shared cluster: one per run, a database of its own per test', async t => {
  const pgs = await sharedPostgres()
  t.equal(await sharedPostgres(), pgs, 'the same cluster on every call')
  const a = await pgs.createDatabase()
  const b = await pgs.createDatabase()
  t.not(a, b)
  t.match(a, /^postgres:\/\/ingressd@127\.0\.0\.1:\d+\/ingressd_[0-9a-f]{12}$/)

  const ca = (await client(t, { connectionString: a })).c
  const cb = (await client(t, { connectionString: b })).c
  await ca.query('CREATE TABLE t (v text); INSERT INTO t VALUES ($$in a$$)')
  t.same((await ca.query('SELECT v FROM t')).rows, [{ v: 'in a' }])
  t.same((await cb.query("SELECT to_regclass('public.t') AS t")).rows, [{ t: null }], 'b does not see a\'s table')

  const named = await pgs.createDatabase('ingressd_named_helper_test')
  t.match(named, /\/ingressd_named_helper_test$/)
  await t.rejects(pgs.createDatabase('bad-name; DROP'), /database name/)
  await t.rejects(pgs.pgCtl('stop-fast'), /startPrivatePostgres/, 'the shared cluster cannot be stopped')

  const admin = (await client(t, pgs.admin)).c
  const version = Number((await admin.query('SHOW server_version_num')).rows[0].server_version_num)
  t.ok(version >= 150000, `PostgreSQL ${version} is 15 or newer`)
  t.equal((await admin.query('SHOW fsync')).rows[0].fsync, 'off')
})

t.test('private cluster: stop-immediate, stop-fast and start keep committed data', async t => {
  let dir = ''
  let postmaster = 0
  await t.test('the cluster', async t => {
    const pgp = await startPrivatePostgres(t)
    dir = pgp.dir
    t.not(pgp.port, (await sharedPostgres()).port, 'its own port')
    const url = await pgp.createDatabase()
    const c1 = (await client(t, { connectionString: url })).c
    await c1.query('CREATE TABLE t (v int); INSERT INTO t VALUES (1)')

    const { c: c2, errors } = await client(t, { connectionString: url })
    await pgp.pgCtl('stop-immediate')
    await t.rejects(c2.query('SELECT 1'), 'a client connected across the crash fails')
    t.ok(errors.length > 0, 'and saw its connection end')
    const refused = await timed(() => new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 }).connect())
    t.match(refused.error?.message, /ECONNREFUSED/, 'new connections are refused while it is down')

    await pgp.pgCtl('start')
    const c3 = (await client(t, { connectionString: url })).c
    t.same((await c3.query('SELECT v FROM t')).rows, [{ v: 1 }], 'committed row survives the crash')
    await c3.query('INSERT INTO t VALUES (2)')
    await pgp.pgCtl('stop-fast')
    await pgp.pgCtl('start')
    const c4 = (await client(t, { connectionString: url })).c
    t.same((await c4.query('SELECT v FROM t ORDER BY v')).rows, [{ v: 1 }, { v: 2 }], 'and the clean restart')
    postmaster = Number(readFileSync(join(dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0])
  })
  t.notOk(existsSync(dir), 'its folder is gone after the test')
  t.ok(postmaster > 0)
  t.throws(() => process.kill(postmaster, 0), { code: 'ESRCH' }, 'and its postmaster')
})

t.test('fault proxy modes, with a real pg client', async t => {
  const pgs = await sharedPostgres()
  const url = await pgs.createDatabase()
  const proxy = await startFaultProxy(t, { host: pgs.host, port: pgs.port })
  const via = proxy.url(url)
  t.equal(new URL(via).port, String(proxy.port))
  t.equal(new URL(via).pathname, new URL(url).pathname)

  await t.test('pass', async t => {
    const { c } = await client(t, { connectionString: via })
    t.equal((await c.query('SELECT 41 + 1 AS n')).rows[0].n, 42)
    t.equal(proxy.connections(), 1)
  })

  await t.test('delay adds the latency in each direction', async t => {
    const { c } = await client(t, { connectionString: via })
    const base = await timed(() => c.query('SELECT 1'))
    proxy.mode({ delay: 150 })
    const slow = await timed(() => c.query('SELECT 1'))
    t.ok(slow.ms >= 290, `round trip ${slow.ms.toFixed(0)} ms ≥ 2 × 150 ms (it was ${base.ms.toFixed(1)} ms)`)
    t.ok(slow.ms < 1000, 'and not much more')
    proxy.mode('pass')
    t.ok((await timed(() => c.query('SELECT 1'))).ms < 100, 'fast again in pass')
  })

  await t.test('blackhole: queries hang until the client gives up; the link resumes when healed', async t => {
    const { c: held } = await client(t, { connectionString: via })
    const { c: timing } = await client(t, { connectionString: via, query_timeout: 400 })
    proxy.mode('blackhole')
    const pending = held.query('SELECT 7 AS n')
    const timedOut = await timed(() => timing.query('SELECT 1'))
    t.match(timedOut.error?.message, /timeout/i, 'a query gets no answer: the client\'s own timeout fires')
    t.ok(timedOut.ms >= 380 && timedOut.ms < 1500, `after ${timedOut.ms.toFixed(0)} ms`)

    const connect = await timed(() => new pg.Client({ connectionString: via, connectionTimeoutMillis: 300 }).connect())
    t.match(connect.error?.message, /timeout/i, 'a new connection is accepted but never answered')
    t.ok(proxy.connections() >= 3, 'connections stay open')

    let settled = false
    pending.then(() => { settled = true }, () => { settled = true })
    await new Promise(resolve => setTimeout(resolve, 100))
    t.notOk(settled, 'the held query is still waiting')
    proxy.mode('pass')
    t.equal((await pending).rows[0].n, 7, 'and is answered once the partition heals')
  })

  await t.test('cut: established connections fail at once, new ones are refused', async t => {
    const { c, errors } = await client(t, { connectionString: via })
    proxy.mode('cut')
    const failed = await timed(() => c.query('SELECT 1'))
    t.ok(failed.error !== undefined, `the query fails: ${failed.error?.message}`)
    t.ok(failed.ms < 500, `quickly (${failed.ms.toFixed(0)} ms)`)
    t.ok(errors.length > 0, 'the client saw the connection end')
    t.equal(proxy.connections(), 0)
    const fresh = await timed(() => new pg.Client({ connectionString: via, connectionTimeoutMillis: 2000 }).connect())
    t.ok(fresh.error !== undefined && fresh.ms < 500, `a new connection fails quickly: ${fresh.error?.message}`)
  })

  await t.test('back to pass', async t => {
    proxy.mode('pass')
    const { c } = await client(t, { connectionString: via })
    t.equal((await c.query('SELECT 1 AS n')).rows[0].n, 1)
  })
})
