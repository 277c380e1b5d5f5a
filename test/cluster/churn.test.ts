/**
 * Cluster mode under concurrent writers: 1,000 changes spread over three nodes while keep-alive
 * loads run against every node's data plane, and parallel writers racing on the same objects.
 * Every write answers 2xx (or 409 where the test makes a conflict, never a 5xx), versions stay
 * dense and in commit order, and every node ends with exactly PostgreSQL's objects.
 */
import t from 'tap'
import { serviceManifests } from '../helpers/backends.js'
import { applyOn, converged, ING, ingress, ingressVersions, mirrorState, pgQuery, pgState, startCluster, until, type ClusterNode } from '../helpers/cluster.js'
import { startSteadyLoad } from '../helpers/load.js'
import { startOrigin } from '../helpers/origin.js'
import { sharedPostgres } from '../helpers/postgres.js'

const CHANGES = 1000

t.test(`${CHANGES} changes from concurrent writers on three nodes: no failed request on a stable host, dense versions, every node converged`, async t => {
  const url = await (await sharedPostgres()).createDatabase()
  const stable = await startOrigin(t, 'stable')
  const churn = await startOrigin(t, 'churn')
  // warn: 1,000 writes would log as many lines per node.
  const nodes = await startCluster(t, { url, env: { INGRESSD_LOG_LEVEL: 'warn' } })
  await applyOn(nodes[0]!.gw, [...serviceManifests('stable', [stable]), ...serviceManifests('churn', [churn]), ingress('stable', 'stable.example.com', 'stable')])
  await until(() => converged(url, nodes), 5000, 'the initial objects on every node')
  const initial = (await pgState(url)).resourceVersion
  t.ok(initial > 0, `initial objects at resourceVersion ${initial}`)
  const stableVersion = String((await nodes[1]!.gw.api('GET', `${ING}/stable`)).body.metadata.resourceVersion)

  const loads = nodes.map(n => startSteadyLoad(t, n.gw.http, { host: 'stable.example.com', path: '/stable', origin: stable, connections: 2 }))

  // Writers: WRITERS_PER_NODE loops on each node. An object is created on one node, replaced (with
  // its resourceVersion as a precondition) on the next and, one in two, deleted on the third. Every
  // tenth object also gets a replace with a stale resourceVersion: a deliberate 409.
  const WRITERS_PER_NODE = 2
  let changes = 0
  // A slot is taken before each change is sent, so that exactly CHANGES are made.
  let reserved = 0
  const claim = (): boolean => reserved < CHANGES && ++reserved > 0
  let conflicts = 0
  const unexpected: string[] = []
  const versions: number[] = []
  const live = new Map<string, string>()
  const perWriterOrdered: boolean[] = []
  const perNode = new Map<string, number>(nodes.map(n => [n.name, 0]))
  const expect = (what: string, res: { status: number, text: string }, want: number): boolean => {
    if (res.status === want) return true
    unexpected.push(`${what}: ${res.status} ${res.text.slice(0, 200)}`)
    return false
  }
  const started = performance.now()
  const writers = nodes.flatMap((_, n) => Array.from({ length: WRITERS_PER_NODE }, async (_unused, w) => {
    const mine: number[] = []
    const on = (k: number): ClusterNode => nodes[(n + k) % nodes.length]!
    const count = (node: ClusterNode, version?: string): void => {
      changes++
      perNode.set(node.name, (perNode.get(node.name) ?? 0) + 1)
      if (version !== undefined) {
        versions.push(Number(version))
        mine.push(Number(version))
      }
    }
    for (let i = 0; unexpected.length === 0 && claim(); i++) {
      const name = `churn-${n}-${w}-${i}`
      const host = `${name}.example.com`
      const created = await on(0).gw.api('POST', ING, ingress(name, host, 'churn'))
      if (!expect(`create ${name} on ${on(0).name}`, created, 201)) break
      count(on(0), created.body.metadata.resourceVersion)
      if (!claim()) { live.set(name, created.body.metadata.resourceVersion); break }
      const next = ingress(name, host, 'churn', { resourceVersion: created.body.metadata.resourceVersion, labels: { round: 'two' } })
      const replaced = await on(1).gw.api('PUT', `${ING}/${name}`, next)
      if (!expect(`replace ${name} on ${on(1).name}`, replaced, 200)) break
      count(on(1), replaced.body.metadata.resourceVersion)
      if (i % 10 === 0) {
        const stale = await on(2).gw.api('PUT', `${ING}/${name}`, next)
        if (!expect(`stale replace ${name} on ${on(2).name}`, stale, 409)) break
        if (stale.body?.reason !== 'Conflict') unexpected.push(`stale replace ${name}: ${stale.text.slice(0, 200)}`)
        conflicts++
      }
      if (i % 2 === 1 || !claim()) { live.set(name, replaced.body.metadata.resourceVersion); continue }
      const deleted = await on(2).gw.api('DELETE', `${ING}/${name}`)
      if (!expect(`delete ${name} on ${on(2).name}`, deleted, 200)) break
      count(on(2))
    }
    perWriterOrdered.push(mine.every((v, k) => k === 0 || v > (mine[k - 1] as number)))
  }))
  await Promise.all(writers)
  const elapsed = performance.now() - started
  await Promise.all(loads.map(async l => await l.stop()))

  t.same(unexpected, [], 'every write answered 201/200, and every stale replace 409 Conflict')
  t.comment(`${changes} changes (${[...perNode].map(([k, v]) => `${k}: ${v}`).join(', ')}) and ${conflicts} deliberate conflicts from ${nodes.length * WRITERS_PER_NODE} writers in ${(elapsed / 1000).toFixed(1)} s (${(changes / elapsed * 1000).toFixed(0)} changes/s)`)
  t.equal(changes, CHANGES, `${CHANGES} changes made`)
  for (const [i, load] of loads.entries()) {
    t.equal(load.failed, 0, `0 failed requests on the stable host on ${nodes[i]!.name} (${load.ok} ok) ${load.failures.join(' | ')}`)
    t.ok(load.ok > 0, `the load on ${nodes[i]!.name} ran (${load.ok} requests)`)
  }

  // Dense and in commit order: PostgreSQL's version is the initial ones plus one per change; the
  // versions the writes answered with plus the deletions' are exactly initial+1 … head, once each.
  const truth = await pgState(url)
  t.equal(truth.resourceVersion, initial + changes, `store_state.resource_version = ${initial} initial + ${changes} changes`)
  const deletions = (await pgQuery(url, 'SELECT resource_version FROM object_deletions WHERE resource_version > $1', [initial])).map(r => Number(r.resource_version))
  const all = [...versions, ...deletions].sort((a, b) => a - b)
  t.equal(all.length, changes, 'one version per change')
  t.ok(all.every((v, k) => v === initial + 1 + k), 'the versions are initial+1 … head with no gap and no repeat')
  t.ok(perWriterOrdered.every(Boolean), 'each writer saw its versions increase')

  // Every node converged: the same mirror version and rows as PostgreSQL, the same list on each admin API.
  await until(() => converged(url, nodes), 10_000, 'every mirror equal to PostgreSQL')
  for (const n of nodes) {
    const m = mirrorState(n.gw.db)
    t.equal(m.resourceVersion, truth.resourceVersion, `${n.name}'s mirror is at PostgreSQL's version`)
    t.equal(m.digest, truth.digest, `${n.name}'s objects rows equal PostgreSQL's (${m.count} rows)`)
  }
  const lists = await Promise.all(nodes.map(async n => await ingressVersions(n.gw)))
  const expected: Record<string, string> = Object.fromEntries([...live, ['stable', stableVersion] as [string, string]].sort((x, y) => x[0] < y[0] ? -1 : 1))
  t.same(lists[0], expected, 'node-a lists exactly the ingresses left, at the versions their last write answered')
  t.same(lists[1], lists[0], 'node-b lists the same')
  t.same(lists[2], lists[0], 'node-c lists the same')
})

t.test('3 × 50 parallel creates and replaces on different nodes, some racing on the same objects: only 2xx and 409', async t => {
  const url = await (await sharedPostgres()).createDatabase()
  const nodes = await startCluster(t, { url, env: { INGRESSD_LOG_LEVEL: 'warn' } })
  const SHARED = 5
  for (let s = 0; s < SHARED; s++) t.equal((await nodes[0]!.gw.api('POST', ING, ingress(`shared-${s}`, `shared-${s}.example.com`, 'web'))).status, 201)
  await until(() => converged(url, nodes), 5000, 'the shared objects on every node')

  const statuses = new Map<number, number>()
  const bad: string[] = []
  const replaced = new Map<string, number>()
  const results = await Promise.all(nodes.flatMap((node, n) => Array.from({ length: 50 }, async (_, i) => {
    let res: { status: number, text: string, body: any }
    let what: string
    if (i % 5 === 0) {
      // The same name created on all three nodes at once: one wins, the others 409 AlreadyExists.
      what = `create race-${i} on ${node.name}`
      res = await node.gw.api('POST', ING, ingress(`race-${i}`, `race-${i}.example.com`, 'web'))
    } else if (i % 2 === 0) {
      what = `create own-${n}-${i} on ${node.name}`
      res = await node.gw.api('POST', ING, ingress(`own-${n}-${i}`, `own-${n}-${i}.example.com`, 'web'))
    } else {
      // Read on this node, replace with that resourceVersion: 200, or 409 Conflict when another write got in between.
      const name = `shared-${i % SHARED}`
      what = `replace ${name} on ${node.name}`
      const read = await node.gw.api('GET', `${ING}/${name}`)
      // Another backend each time: the content changes, so the generation counts successful replaces.
      const next = ingress(name, `${name}.example.com`, `web-${n}-${i}`, { resourceVersion: read.body.metadata.resourceVersion })
      res = await node.gw.api('PUT', `${ING}/${name}`, next)
      if (res.status === 200) replaced.set(name, (replaced.get(name) ?? 0) + 1)
    }
    statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1)
    if (res.status >= 300 && res.status !== 409) bad.push(`${what}: ${res.status} ${res.text.slice(0, 200)}`)
    if (res.status === 409 && !['Conflict', 'AlreadyExists'].includes(res.body?.reason)) bad.push(`${what}: 409 with reason ${String(res.body?.reason)}`)
    return { what, status: res.status }
  })))
  t.comment(`statuses: ${[...statuses].sort().map(([s, n]) => `${s} × ${n}`).join(', ')}`)
  t.same(bad, [], 'only 2xx and 409')
  t.equal(results.length, 150)
  t.notOk(results.some(r => r.status >= 500), 'no 5xx')
  for (let i = 0; i < 50; i += 5) {
    const race = results.filter(r => r.what.startsWith(`create race-${i} `))
    t.same(race.map(r => r.status).sort(), [201, 409, 409], `race-${i}: one create wins, two get 409`)
  }
  await until(() => converged(url, nodes), 10_000, 'every mirror equal to PostgreSQL')
  // Each successful replace is one generation: the generation counts them (created at 1).
  for (let s = 0; s < SHARED; s++) {
    const name = `shared-${s}`
    const got = await nodes[2]!.gw.api('GET', `${ING}/${name}`)
    t.equal(Number(got.body.metadata.generation), 1 + (replaced.get(name) ?? 0), `${name}: one generation per successful replace (${replaced.get(name) ?? 0})`)
  }
  const lists = await Promise.all(nodes.map(async n => await ingressVersions(n.gw)))
  t.equal(Object.keys(lists[0]!).length, SHARED + 10 + 3 * 20, 'every create that answered 201 is listed')
  t.same(lists[1], lists[0])
  t.same(lists[2], lists[0])
})
