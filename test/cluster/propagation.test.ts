/**
 * Cluster mode, as a user sees it: three nodes sharing one PostgreSQL, each with its own mirror
 * and its own link to PostgreSQL. A write on any node is live on the others' data planes within a
 * second (NOTIFY); with the listeners killed it still arrives within the poll. Real PostgreSQL
 * (test/helpers/postgres.ts), real gateways (test/helpers/gateway.ts), real HTTP requests.
 */
import t from 'tap'
import { serviceManifests } from '../helpers/backends.js'
import { applyOn, converged, hostStatus, ING, ingress, pgQuery, startCluster, until, type ClusterNode } from '../helpers/cluster.js'
import { startOrigin } from '../helpers/origin.js'
import { sharedPostgres } from '../helpers/postgres.js'

/** Polls every node's data plane until `host` answers `status`; the time each took, from `since`. */
async function liveOn (nodes: ClusterNode[], host: string, status: number, since: number, ms: number): Promise<number[]> {
  return await Promise.all(nodes.map(async n => {
    await until(async () => (await hostStatus(n.gw.http, host)) === status, ms, `${host} → ${status} on ${n.name}`, 10)
    return performance.now() - since
  }))
}

const fmt = (ms: number[]): string => ms.map(m => `${m.toFixed(0)} ms`).join(', ')

t.test('a write on one node is live on the other two within 1 s', async t => {
  const url = await (await sharedPostgres()).createDatabase()
  const web = await startOrigin(t, 'web')
  const nodes = await startCluster(t, { url })
  await applyOn(nodes[0]!.gw, serviceManifests('web', [web]))
  await until(() => converged(url, nodes), 5000, 'the backend on every node')

  const worst: number[] = []
  // Each node writes in turn; the other two must route the new host within a second of the request.
  for (let round = 0; round < 6; round++) {
    const writer = nodes[round % 3]!
    const others = nodes.filter(n => n !== writer)
    const host = `prop-${round}.example.com`
    const sent = performance.now()
    const created = await writer.gw.api('POST', ING, ingress(`prop-${round}`, host, 'web'))
    const answered = performance.now() - sent
    t.equal(created.status, 201, `create on ${writer.name}`)
    t.equal(await hostStatus(writer.gw.http, host), 200, `live on the writer (${writer.name}) when its write returns`)
    const times = await liveOn(others, host, 200, sent, 3000)
    t.comment(`write on ${writer.name} answered in ${answered.toFixed(0)} ms; live on ${others.map(n => n.name).join(', ')} after ${fmt(times)} (from the request)`)
    worst.push(Math.max(...times))
    t.ok(Math.max(...times) < 1000, `live on every other node within 1 s of the request (${fmt(times)})`)

    // And a delete goes the same way.
    const delSent = performance.now()
    t.equal((await writer.gw.api('DELETE', `${ING}/prop-${round}`)).status, 200, 'delete')
    const gone = await liveOn(others, host, 404, delSent, 3000)
    t.ok(Math.max(...gone) < 1000, `the delete is live everywhere within 1 s (${fmt(gone)})`)
  }
  worst.sort((a, b) => a - b)
  t.comment(`propagation to the slowest other node: median ${worst[Math.floor(worst.length / 2)]!.toFixed(0)} ms, max ${worst.at(-1)!.toFixed(0)} ms`)
})

t.test('listeners killed right before a write: the change still arrives within the poll', async t => {
  const url = await (await sharedPostgres()).createDatabase()
  const web = await startOrigin(t, 'web')
  const nodes = await startCluster(t, { url })
  const [a, b, c] = nodes as [ClusterNode, ClusterNode, ClusterNode]
  await applyOn(a.gw, serviceManifests('web', [web]))
  await until(() => converged(url, nodes), 5000, 'the backend on every node')
  const database = new URL(url).pathname.slice(1)
  const listeners = async (): Promise<number> => Number((await pgQuery(url, 'SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = \'ingressd/listener\' AND datname = $1', [database]))[0].n)
  await until(async () => (await listeners()) === 3, 5000, 'one listener per node')

  for (let round = 0; round < 3; round++) {
    // Only this test's database: the shared cluster serves other test files' listeners too.
    const killed = await pgQuery(url, 'SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = \'ingressd/listener\' AND datname = $1', [database])
    t.equal(killed.length, 3, 'the three listeners terminated')
    const host = `after-kill-${round}.example.com`
    const sent = performance.now()
    t.equal((await a.gw.api('POST', ING, ingress(`after-kill-${round}`, host, 'web'))).status, 201, 'the write on node-a succeeds')
    const times = await liveOn([b, c], host, 200, sent, 5000)
    t.comment(`round ${round}: with the listeners killed, live on node-b, node-c after ${fmt(times)}`)
    t.ok(Math.max(...times) < 3000, `arrives within the poll (< 3 s): ${fmt(times)}`)
    await until(async () => (await listeners()) === 3, 5000, 'the listeners reconnect')
  }
  const ids = (await pgQuery(url, 'SELECT pid FROM pg_stat_activity WHERE application_name = \'ingressd/listener\' AND datname = $1', [database])).length
  t.equal(ids, 3, 'every node has its listener back, without a restart')
})
