/**
 * Cluster mode after PostgreSQL is restored from an older backup: the store's version goes back
 * (the same store uid, a lower resourceVersion). Every node must notice, copy the restored store
 * whole and serve exactly it: a host created after the dump answers 404 everywhere, a host deleted
 * after the dump answers 200 again, and no node ever serves a mix of the two configurations.
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { serviceManifests } from '../helpers/backends.js'
import { applyOn, call, converged, hostAnswer, ING, ingress, ingressVersions, mirrorState, pgQuery, pgState, startCluster, until, type ClusterNode } from '../helpers/cluster.js'
import { startOrigin } from '../helpers/origin.js'
import { findPostgresBin, sharedPostgres } from '../helpers/postgres.js'

async function run (file: string, args: string[]): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    execFile(file, args, { timeout: 60_000 }, (err, stdout, stderr) => {
      if (err === null) resolve()
      else reject(new Error(`${file} ${args.join(' ')}: ${err.message}\n${stdout}${stderr}`))
    })
  })
}

/** What a node's data plane serves for the hosts the restore changes, as one comparable string. */
type View = Record<string, string>
async function view (n: ClusterNode, hosts: string[]): Promise<View> {
  const out: View = {}
  for (const host of hosts) {
    const a = await hostAnswer(n.gw.http, host)
    out[host] = a.status === 200 ? `200 ${a.server ?? ''}` : String(a.status)
  }
  return out
}

t.test('PostgreSQL restored from an older dump: every node serves exactly the restored configuration, never a mix', async t => {
  const bin = findPostgresBin()
  const pgs = await sharedPostgres()
  const url = await pgs.createDatabase()
  const database = new URL(url).pathname.slice(1)
  const dumpDir = mkdtempSync(join(tmpdir(), 'ingressd-dump-'))
  t.teardown(() => rmSync(dumpDir, { recursive: true, force: true }))
  const dump = join(dumpDir, 'store.dump')

  const v1 = await startOrigin(t, 'v1')
  const v2 = await startOrigin(t, 'v2')
  const nodes = await startCluster(t, { url })
  const [a, b, c] = nodes as [ClusterNode, ClusterNode, ClusterNode]
  await applyOn(a.gw, [
    ...serviceManifests('v1', [v1]),
    ...serviceManifests('v2', [v2]),
    ingress('kept', 'kept.example.com', 'v1'),
    ingress('changed', 'changed.example.com', 'v1'),
    ingress('deleted-later', 'deleted-later.example.com', 'v1')
  ])
  await until(() => converged(url, nodes), 5000, 'every node at the first configuration')

  // The backup, taken while the nodes run.
  await run(join(bin, 'pg_dump'), ['-h', pgs.host, '-p', String(pgs.port), '-U', pgs.admin.user, '-Fc', '-f', dump, database])
  const dumped = await pgState(url)
  const dumpedList = await ingressVersions(a.gw)
  t.comment(`dump at resourceVersion ${dumped.resourceVersion} (${dumped.count} objects)`)

  // More writes after the dump, on every node: creates, a delete, a change of backend.
  t.equal((await call(a.gw, 'POST', ING, ingress('created-later', 'created-later.example.com', 'v1'))).status, 201)
  t.equal((await call(b.gw, 'POST', ING, ingress('created-later-2', 'created-later-2.example.com', 'v2'))).status, 201)
  t.equal((await call(c.gw, 'DELETE', `${ING}/deleted-later`)).status, 200)
  const changed = await call(a.gw, 'GET', `${ING}/changed`)
  t.equal((await call(b.gw, 'PUT', `${ING}/changed`, ingress('changed', 'changed.example.com', 'v2', { resourceVersion: changed.body.metadata.resourceVersion }))).status, 200)
  for (let i = 0; i < 5; i++) t.equal((await call(nodes[i % 3]!.gw, 'POST', ING, ingress(`filler-${i}`, `filler-${i}.example.com`, 'v2'))).status, 201)
  await until(() => converged(url, nodes), 5000, 'every node at the later configuration')

  const hosts = ['created-later.example.com', 'created-later-2.example.com', 'filler-4.example.com', 'deleted-later.example.com', 'changed.example.com', 'kept.example.com']
  const later: View = { 'created-later.example.com': '200 v1', 'created-later-2.example.com': '200 v2', 'filler-4.example.com': '200 v2', 'deleted-later.example.com': '404', 'changed.example.com': '200 v2', 'kept.example.com': '200 v1' }
  const restored: View = { 'created-later.example.com': '404', 'created-later-2.example.com': '404', 'filler-4.example.com': '404', 'deleted-later.example.com': '200 v1', 'changed.example.com': '200 v1', 'kept.example.com': '200 v1' }
  for (const n of nodes) t.same(await view(n, hosts), later, `${n.name} serves the later configuration before the restore`)
  const laterVersion = (await pgState(url)).resourceVersion

  // Watch every node's data plane through the restore: each view is the later configuration, the
  // restored one, or (once per node, the moment its tables switch under the requests of one view)
  // the later one for the hosts asked first and the restored one for the rest. Never anything else.
  const watching = { on: true }
  const seen = new Map<string, Array<{ at: number, v: View }>>(nodes.map(n => [n.name, []]))
  const watchers = nodes.map(async n => {
    while (watching.on) {
      seen.get(n.name)!.push({ at: performance.now(), v: await view(n, hosts) })
      await new Promise(resolve => setTimeout(resolve, 20))
    }
  })

  // The restore, as an operator would: drop the database (its connections with it), create it
  // again, restore the dump in one transaction (so no node reads a half-restored store).
  const admin = pgs.url
  const restoreStart = performance.now()
  await pgQuery(admin, `DROP DATABASE "${database}" WITH (FORCE)`)
  await pgQuery(admin, `CREATE DATABASE "${database}"`)
  await run(join(bin, 'pg_restore'), ['-h', pgs.host, '-p', String(pgs.port), '-U', pgs.admin.user, '--single-transaction', '-d', database, dump])
  const restoredAt = performance.now()
  const back = await pgState(url)
  t.equal(back.resourceVersion, dumped.resourceVersion, `PostgreSQL went back from ${laterVersion} to ${back.resourceVersion}`)
  t.equal(back.storeUid, dumped.storeUid, 'the same store uid: only the version tells')

  const times = await Promise.all(nodes.map(async n => (await until(async () => JSON.stringify(await view(n, hosts)) === JSON.stringify(restored), 10_000, `${n.name} serving the restored configuration`)).ms))
  t.comment(`restore took ${(restoredAt - restoreStart).toFixed(0)} ms; nodes serve the restored configuration ${times.map(ms => `${ms.toFixed(0)} ms`).join(', ')} after it committed`)
  t.ok(times.every(ms => ms < 10_000), 'within 10 s on every node')
  await until(() => converged(url, nodes), 10_000, 'every mirror equal to the restored store')
  // A little longer: a node must not flip back.
  await new Promise(resolve => setTimeout(resolve, 1500))
  watching.on = false
  await Promise.all(watchers)

  const key = (v: View): string => JSON.stringify(v)
  for (const n of nodes) {
    const views = seen.get(n.name)!
    let phase: 'later' | 'restored' = 'later'
    let transitional = 0
    const bad: string[] = []
    for (const { v } of views) {
      if (key(v) === key(later)) {
        if (phase === 'restored') bad.push(`back to the later configuration: ${key(v)}`)
      } else if (key(v) === key(restored)) {
        phase = 'restored'
      } else {
        // A switch between two requests of this view: a prefix of later, then restored.
        const k = hosts.findIndex(h => v[h] !== later[h])
        const ok = k > 0 && hosts.slice(k).every(h => v[h] === restored[h]) && phase === 'later'
        if (ok) {
          transitional++
          t.comment(`${n.name} caught mid-switch: the later configuration for ${hosts.slice(0, k).join(', ')}, the restored one for the rest`)
        } else bad.push(`a mix: ${key(v)}`)
        if (ok) phase = 'restored'
      }
    }
    t.same(bad, [], `${n.name}: ${views.length} views during the restore, each the later or the restored configuration (${transitional} caught mid-switch)`)
    t.equal(phase, 'restored', `${n.name} ends on the restored configuration`)
    const m = mirrorState(n.gw.db)
    t.equal(m.resourceVersion, back.resourceVersion, `${n.name}'s mirror is at the restored version`)
    t.equal(m.digest, back.digest, `${n.name}'s objects rows are exactly the restored ones`)
    t.same(await ingressVersions(n.gw), dumpedList, `${n.name}'s admin API lists the ingresses of the dump, at their versions`)
    t.ok(n.gw.logs.some(l => l.includes('copied whole from PostgreSQL')), `${n.name} logged the full copy`)
  }

  // And the restored store takes writes again, from every node, and versions go on from the dump's.
  const next = await until(async () => {
    const r = await call(b.gw, 'POST', ING, ingress('after-restore', 'after-restore.example.com', 'v2'))
    return r.status === 201 ? r : false
  }, 10_000, 'a write after the restore', 100)
  t.equal(Number(next.value.body.metadata.resourceVersion), back.resourceVersion + 1, 'the next write takes the version after the dump\'s')
  await until(async () => (await Promise.all(nodes.map(async n => (await hostAnswer(n.gw.http, 'after-restore.example.com')).status))).every(s => s === 200), 3000, 'the new host on every node')
})

t.test('a node cut off while the store is restored and written past its version: and given a new store uid, it copies the store whole when it is back', async t => {
  const bin = findPostgresBin()
  const pgs = await sharedPostgres()
  const url = await pgs.createDatabase()
  const database = new URL(url).pathname.slice(1)
  const dumpDir = mkdtempSync(join(tmpdir(), 'ingressd-dump-'))
  t.teardown(() => rmSync(dumpDir, { recursive: true, force: true }))
  const dump = join(dumpDir, 'store.dump')
  const web = await startOrigin(t, 'web')
  const nodes = await startCluster(t, { url, count: 2, names: ['node-a', 'node-c'] })
  const [a, c] = nodes as [ClusterNode, ClusterNode]
  await applyOn(a.gw, [...serviceManifests('web', [web]), ingress('deleted-later', 'deleted-later.example.com', 'web')])
  await run(join(bin, 'pg_dump'), ['-h', pgs.host, '-p', String(pgs.port), '-U', pgs.admin.user, '-Fc', '-f', dump, database])
  for (let i = 0; i < 3; i++) t.equal((await call(a.gw, 'POST', ING, ingress(`created-later-${i}`, `created-later-${i}.example.com`, 'web'))).status, 201)
  t.equal((await call(a.gw, 'DELETE', `${ING}/deleted-later`)).status, 200)
  await until(() => converged(url, nodes), 5000, 'both nodes at the later configuration')
  const cVersion = mirrorState(c.gw.db).resourceVersion

  // node-c is cut off; the store is restored, given a new identity (docs/cluster.md, "Restores"), and written past node-c's version.
  c.proxy.mode('cut')
  await pgQuery(pgs.url, `DROP DATABASE "${database}" WITH (FORCE)`)
  await pgQuery(pgs.url, `CREATE DATABASE "${database}"`)
  await run(join(bin, 'pg_restore'), ['-h', pgs.host, '-p', String(pgs.port), '-U', pgs.admin.user, '--single-transaction', '-d', database, dump])
  await pgQuery(url, 'UPDATE store_state SET store_uid = md5(random()::text || clock_timestamp()::text) WHERE id = 1')
  for (let i = 0; (await pgState(url)).resourceVersion <= cVersion + 1; i++) {
    const r = await until(async () => {
      const res = await call(a.gw, 'POST', ING, ingress(`after-restore-${i}`, `after-restore-${i}.example.com`, 'web'))
      return res.status === 201 ? res : false
    }, 10_000, `after-restore-${i} on node-a`, 100)
    t.ok(r.value.status === 201, `after-restore-${i} created`)
  }
  t.equal(await hostAnswer(c.gw.http, 'created-later-0.example.com').then(r => r.status), 200, 'node-c, cut off, still serves its old mirror')

  c.proxy.mode('pass')
  const healed = await until(async () => {
    const [later, deleted, after] = await Promise.all(['created-later-0', 'deleted-later', 'after-restore-0'].map(async h => (await hostAnswer(c.gw.http, `${h}.example.com`)).status))
    return later === 404 && deleted === 200 && after === 200
  }, 10_000, 'node-c serving the restored store and the writes after it')
  t.comment(`node-c serves the restored store ${healed.ms.toFixed(0)} ms after its link healed`)
  await until(() => converged(url, nodes), 5000, 'both mirrors equal to PostgreSQL')
  t.same(await ingressVersions(c.gw), await ingressVersions(a.gw), 'node-c lists what node-a lists')
})
