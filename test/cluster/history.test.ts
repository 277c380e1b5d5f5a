/**
 * A store restored from an older backup and written again PAST a node's version while that node
 * was away: its version did not go backwards from the node's point of view, but the history did.
 * The node must tell (the commit id PostgreSQL recorded for the node's version differs) and copy
 * the store whole; applying only the newer versions would serve a mix of the two histories.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import t from 'tap'
import { request } from 'undici'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { startOrigin } from '../helpers/origin.js'
import { serviceManifests } from '../helpers/backends.js'
import { sharedPostgres } from '../helpers/postgres.js'

function ingress (name: string): unknown {
  return { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name }, spec: { rules: [{ host: `${name}.example.com`, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'echo', port: { number: 8080 } } } }] } }] } }
}

async function status (gw: TestGateway, host: string): Promise<number> {
  const res = await request(`${gw.http}/`, { headers: { host } })
  await res.body.dump()
  return res.statusCode
}

async function until (what: string, fn: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(50)
  }
}

t.test('a restored store rewritten past a node\'s version is copied whole by that node, never mixed', async t => {
  const url = await (await sharedPostgres()).createDatabase()
  const sql = new pg.Client({ connectionString: url })
  await sql.connect()
  t.teardown(async () => { await sql.end() })
  const origin = await startOrigin(t, 'echo')
  const dirB = mkdtempSync(join(tmpdir(), 'ingressd-node-b-'))
  t.teardown(() => rmSync(dirB, { recursive: true, force: true }))
  const a = await startTestGateway(t, { INGRESSD_POSTGRES_URL: url, INGRESSD_NODE_NAME: 'a' })
  let b = await startTestGateway(t, { INGRESSD_POSTGRES_URL: url, INGRESSD_NODE_NAME: 'b' }, { dir: dirB })

  t.equal((await a.api('POST', '/apply', [...serviceManifests('echo', [origin]), ingress('keep')])).status, 200)
  // The backup: every table of the store, as pg_dump would give them back.
  for (const table of ['objects', 'object_deletions', 'commit_history', 'store_state']) await sql.query(`CREATE TABLE backup_${table} AS SELECT * FROM ${table}`)

  t.equal((await a.api('POST', '/apply', [ingress('late')])).status, 200)
  await until('node b to serve late.example.com', async () => await status(b, 'late.example.com') === 200)
  await b.close()

  // The restore, then writes past node b's version on the restored history.
  await sql.query('BEGIN')
  for (const table of ['objects', 'object_deletions', 'commit_history']) {
    await sql.query(`DELETE FROM ${table}`)
    await sql.query(`INSERT INTO ${table} SELECT * FROM backup_${table}`)
  }
  await sql.query('UPDATE store_state SET resource_version = b.resource_version, routing_version = b.routing_version FROM backup_store_state b')
  await sql.query('COMMIT')
  await until('node a to copy the restored store', async () => await status(a, 'late.example.com') === 404)
  for (const name of ['n1', 'n2', 'n3']) t.equal((await a.api('POST', '/apply', [ingress(name)])).status, 200, `${name} written on the restored store`)
  const head = Number((await sql.query('SELECT resource_version FROM store_state')).rows[0].resource_version)

  b = await startTestGateway(t, { INGRESSD_POSTGRES_URL: url, INGRESSD_NODE_NAME: 'b' }, { dir: dirB })
  await until('node b to serve n3.example.com', async () => await status(b, 'n3.example.com') === 200)
  t.equal(await status(b, 'late.example.com'), 404, 'what only the lost history had is gone')
  for (const host of ['keep', 'n1', 'n2', 'n3']) t.equal(await status(b, `${host}.example.com`), 200, `${host} served`)
  const list = await b.api('GET', '/apis/networking.k8s.io/v1/namespaces/default/ingresses')
  t.same(list.body.items.map((i: { metadata: { name: string } }) => i.metadata.name).sort(), ['keep', 'n1', 'n2', 'n3'], 'the same ingresses as PostgreSQL')
  t.equal(Number(list.body.metadata.resourceVersion), head, 'at PostgreSQL\'s version')
})
