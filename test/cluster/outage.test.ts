/**
 * Cluster mode when PostgreSQL goes away, as a user sees it: PostgreSQL crashed under a stream of
 * writes and restarted, one node's link blackholed and healed, and the password of the URL kept
 * out of every log line and /metrics through it all. The data planes keep serving, admin writes
 * answer 503 INGRESSD_ERR_STORE_UNAVAILABLE quickly (never a 500, never a hang), reads answer from
 * the mirror with a Warning, and the nodes catch up on their own once PostgreSQL is back.
 */
import t from 'tap'
import { serviceManifests } from '../helpers/backends.js'
import { applyOn, call, converged, hostStatus, ING, ingress, ingressVersions, mirrorState, pgState, startCluster, until, type ClusterNode, type TimedCall } from '../helpers/cluster.js'
import { startSteadyLoad } from '../helpers/load.js'
import { startOrigin } from '../helpers/origin.js'
import { sharedPostgres, startPrivatePostgres } from '../helpers/postgres.js'

const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))

interface Write extends TimedCall { name: string, node: string, sentAt: number }

/** One writer loop per node creating ingresses until stopped; every answer kept. */
function writeStream (nodes: ClusterNode[], origin0: number, service: string): { writes: Write[], stop: () => Promise<void> } {
  const writes: Write[] = []
  const state = { running: true }
  const loops = nodes.map(async (node, n) => {
    for (let i = 0; state.running; i++) {
      const name = `stream-${n}-${i}`
      const sentAt = performance.now() - origin0
      const res = await call(node.gw, 'POST', ING, ingress(name, `${name}.example.com`, service), 20_000)
      writes.push({ ...res, name, node: node.name, sentAt })
      // A refused write comes back in milliseconds: do not spin on it.
      if (res.status !== 201) await sleep(100)
    }
  })
  return { writes, stop: async () => { state.running = false; await Promise.all(loops) } }
}

const fmt = (ms: number): string => `${ms.toFixed(0)} ms`

t.test('PostgreSQL killed under a stream of writes, then restarted: acknowledged writes survive, nodes serve throughout and catch up', async t => {
  const pgp = await startPrivatePostgres(t)
  const url = await pgp.createDatabase()
  const web = await startOrigin(t, 'web')
  const nodes = await startCluster(t, { url })
  await applyOn(nodes[0]!.gw, [...serviceManifests('web', [web]), ingress('stable', 'stable.example.com', 'web')])
  await until(() => converged(url, nodes), 5000, 'the initial objects on every node')

  const loads = nodes.map(n => startSteadyLoad(t, n.gw.http, { host: 'stable.example.com', path: '/stable', origin: web, connections: 2 }))
  const t0 = performance.now()
  const stream = writeStream(nodes, t0, 'web')
  await until(() => stream.writes.filter(w => w.status === 201).length >= 30, 10_000, '30 acknowledged writes before the crash')

  // The crash.
  const killedAt = performance.now() - t0
  await pgp.pgCtl('stop-immediate')
  const downAt = performance.now() - t0
  t.comment(`PostgreSQL stopped (immediate) at ${fmt(killedAt)}, down at ${fmt(downAt)}`)

  // During the outage, on every node: /readyz stays 200, reads answer 200 with a Warning 299,
  // admin writes answer 503 INGRESSD_ERR_STORE_UNAVAILABLE within 5 s.
  const readyz: number[] = []
  const probing = { on: true }
  const probes = (async () => {
    while (probing.on) {
      for (const n of nodes) readyz.push((await call(n.gw, 'GET', '/readyz', undefined, 5000)).status)
      await sleep(100)
    }
  })()
  for (const n of nodes) {
    const warned = await until(async () => {
      const r = await call(n.gw, 'GET', ING, undefined, 5000)
      if (r.status !== 200) throw new Error(`read answered ${r.status}`)
      return typeof r.headers?.warning === 'string' && r.headers.warning.startsWith('299 ') ? r : false
    }, 5000, `a Warning on reads from ${n.name}`)
    t.pass(`${n.name}: reads answer 200 with "Warning: 299 …" ${fmt(warned.ms)} after the outage began: ${String(warned.value.headers?.warning).slice(0, 120)}…`)
    const one = await call(n.gw, 'GET', `${ING}/stable`, undefined, 5000)
    t.equal(one.status, 200, `${n.name}: reading one object answers 200`)
    t.match(one.headers?.warning, /^299 - "PostgreSQL is unreachable since /, 'with the outage warning')
    const write = await call(n.gw, 'POST', ING, ingress(`during-${n.name}`, `during-${n.name}.example.com`, 'web'), 20_000)
    t.equal(write.status, 503, `${n.name}: a write during the outage answers 503`)
    t.equal(write.body?.details?.errorCode, 'INGRESSD_ERR_STORE_UNAVAILABLE', 'INGRESSD_ERR_STORE_UNAVAILABLE')
    t.ok(write.ms < 5000, `${n.name}: within 5 s (${fmt(write.ms)})`)
  }
  // Keep PostgreSQL down a while longer, the stream still writing and the loads still running.
  await sleep(2000)
  probing.on = false
  await probes
  t.ok(readyz.length > 0 && readyz.every(s => s === 200), `/readyz stayed 200 on every node during the outage (${readyz.length} probes; ${[...new Set(readyz)].join(', ')})`)

  // Back.
  const startAt = performance.now()
  await pgp.pgCtl('start')
  const upAt = performance.now() - t0
  const writable = await Promise.all(nodes.map(async n => {
    const took = await until(async () => {
      const r = await call(n.gw, 'POST', ING, ingress(`after-${n.name}`, `after-${n.name}.example.com`, 'web'), 15_000)
      if (r.status === 201) return r
      if (r.status === 409) return r // an earlier attempt that PostgreSQL committed but whose answer was lost
      if (r.status !== 503) throw new Error(`a write answered ${r.status} ${r.text?.slice(0, 200)}`)
      return false
    }, 10_000, `a write accepted by ${n.name}`, 100)
    return took.ms
  }))
  t.comment(`PostgreSQL up at ${fmt(upAt)}; writes accepted again after ${writable.map(fmt).join(', ')}`)
  t.ok(writable.every(ms => ms < 10_000), 'every node takes writes again within 10 s, without a restart')
  await stream.stop()
  const caughtUp = await until(() => converged(url, nodes), 10_000, 'every mirror equal to PostgreSQL')
  t.comment(`every node caught up ${fmt(performance.now() - startAt)} after the restart began (converged check: ${fmt(caughtUp.ms)})`)
  await Promise.all(loads.map(async l => await l.stop()))

  // The writes: 201 or 503, each within 15 s; the ones in flight at the crash included.
  const statuses = new Map<number, number>()
  for (const w of stream.writes) statuses.set(w.status, (statuses.get(w.status) ?? 0) + 1)
  const acked = stream.writes.filter(w => w.status === 201)
  const refused = stream.writes.filter(w => w.status === 503)
  const inFlight = stream.writes.filter(w => w.sentAt < killedAt && w.sentAt + w.ms > killedAt)
  const slowest = Math.max(...stream.writes.map(w => w.ms))
  t.comment(`stream: ${stream.writes.length} writes (${[...statuses].map(([s, n]) => `${s} × ${n}`).join(', ')}); in flight at the crash: ${inFlight.map(w => `${w.status} in ${fmt(w.ms)}`).join(', ') || 'none'}; slowest ${fmt(slowest)}`)
  t.same(stream.writes.filter(w => w.status !== 201 && w.status !== 503).map(w => `${w.name} on ${w.node}: ${w.status} ${w.error ?? w.text?.slice(0, 200)}`), [], 'every write answered 201 or 503: never a 500, never a hang')
  t.ok(slowest < 15_000, `every write answered within 15 s (slowest ${fmt(slowest)})`)
  t.ok(refused.every(w => w.body?.details?.errorCode === 'INGRESSD_ERR_STORE_UNAVAILABLE'), 'every 503 is INGRESSD_ERR_STORE_UNAVAILABLE')
  t.ok(refused.length > 0, `some writes were refused during the outage (${refused.length})`)
  const afterCrash = stream.writes.filter(w => w.sentAt > downAt && w.sentAt + w.ms < upAt)
  t.ok(afterCrash.every(w => w.status === 503 && w.ms < 5000), `writes sent while PostgreSQL was down answered 503 within 5 s (${afterCrash.length}, slowest ${fmt(Math.max(0, ...afterCrash.map(w => w.ms)))})`)

  // Every acknowledged write is on every node: its admin API and its data plane.
  const lists = await Promise.all(nodes.map(async n => await ingressVersions(n.gw)))
  for (const [i, n] of nodes.entries()) {
    const missing = acked.filter(w => lists[i]![w.name] === undefined).map(w => w.name)
    t.same(missing, [], `${n.name} lists every one of the ${acked.length} acknowledged writes`)
    const sample = [acked[0]!, acked[Math.floor(acked.length / 2)]!, acked.at(-1)!]
    for (const w of sample) t.equal(await hostStatus(n.gw.http, `${w.name}.example.com`), 200, `${n.name} routes ${w.name}`)
  }
  t.same(lists[1], lists[0], 'node-b lists what node-a lists')
  t.same(lists[2], lists[0], 'node-c lists what node-a lists')
  const truth = await pgState(url)
  for (const n of nodes) t.equal(mirrorState(n.gw.db).digest, truth.digest, `${n.name}'s mirror equals PostgreSQL`)

  for (const [i, load] of loads.entries()) t.equal(load.failed, 0, `${nodes[i]!.name}: 0 failed requests on the stable host through the outage (${load.ok} ok) ${load.failures.join(' | ')}`)
  for (const n of nodes) {
    t.ok(n.gw.logs.some(l => l.includes('PostgreSQL is unreachable')), `${n.name} logged the outage`)
    t.ok(n.gw.logs.some(l => l.includes('PostgreSQL is reachable again')), `${n.name} logged the recovery`)
  }
})

t.test('a blackholed link to PostgreSQL: the node keeps serving, and converges without a restart when the link heals', async t => {
  const url = await (await sharedPostgres()).createDatabase()
  const web = await startOrigin(t, 'web')
  const nodes = await startCluster(t, { url })
  const [a, b, c] = nodes as [ClusterNode, ClusterNode, ClusterNode]
  await applyOn(a.gw, [...serviceManifests('web', [web]), ingress('stable', 'stable.example.com', 'web'), ingress('doomed', 'doomed.example.com', 'web')])
  await until(() => converged(url, nodes), 5000, 'the initial objects on every node')
  const load = startSteadyLoad(t, c.gw.http, { host: 'stable.example.com', path: '/stable', origin: web, connections: 2 })

  c.proxy.mode('blackhole')
  const cutAt = performance.now()
  // The others go on: new hosts, and one deleted.
  for (let i = 0; i < 5; i++) t.equal((await call(i % 2 === 0 ? a.gw : b.gw, 'POST', ING, ingress(`partition-${i}`, `partition-${i}.example.com`, 'web'))).status, 201, `partition-${i} created`)
  t.equal((await call(b.gw, 'DELETE', `${ING}/doomed`)).status, 200, 'doomed deleted')
  t.equal(await hostStatus(a.gw.http, 'partition-0.example.com'), 200, 'live on node-a')

  // node-c: serves what it had, refuses writes with a 503 (a statement timeout, not a hang), stays ready.
  const write = await call(c.gw, 'POST', ING, ingress('from-c', 'from-c.example.com', 'web'), 20_000)
  t.equal(write.status, 503, `a write on the partitioned node answers 503 (${fmt(write.ms)})`)
  t.equal(write.body?.details?.errorCode, 'INGRESSD_ERR_STORE_UNAVAILABLE')
  t.ok(write.ms < 15_000, `within 15 s (${fmt(write.ms)})`)
  t.equal(await hostStatus(c.gw.http, 'doomed.example.com'), 200, 'node-c still serves its last configuration (doomed is there)')
  t.equal(await hostStatus(c.gw.http, 'partition-0.example.com'), 404, 'and has not seen the new hosts')
  t.equal((await call(c.gw, 'GET', '/readyz')).status, 200, 'node-c stays ready')
  const read = await call(c.gw, 'GET', ING)
  t.equal(read.status, 200, 'reads on node-c answer 200')
  t.match(read.headers?.warning, /^299 /, 'with a Warning')
  // Long enough for the listener check (3 s) and the statement timeout (4 s) to have fired.
  await sleep(Math.max(0, 6000 - (performance.now() - cutAt)))

  c.proxy.mode('pass')
  const healed = performance.now()
  const caughtUp = await until(async () => (await hostStatus(c.gw.http, 'partition-4.example.com')) === 200 && (await hostStatus(c.gw.http, 'doomed.example.com')) === 404, 10_000, 'node-c serving the changes made during the partition')
  t.comment(`partition of ${fmt(healed - cutAt)}; node-c serves the changes ${fmt(caughtUp.ms)} after the link healed`)
  await until(() => converged(url, nodes), 10_000, 'every mirror equal to PostgreSQL')
  t.ok(performance.now() - healed < 10_000, `converged within 10 s of the heal, without a restart (${fmt(performance.now() - healed)})`)
  const after = await until(async () => {
    const r = await call(c.gw, 'POST', ING, ingress('from-c', 'from-c.example.com', 'web'), 15_000)
    return r.status === 201 ? r : false
  }, 10_000, 'node-c taking writes again', 100)
  t.pass(`node-c takes writes again (${fmt(after.ms)})`)
  await until(async () => (await hostStatus(a.gw.http, 'from-c.example.com')) === 200 && (await hostStatus(b.gw.http, 'from-c.example.com')) === 200, 3000, 'node-c\'s write live on node-a and node-b')
  await load.stop()
  t.equal(load.failed, 0, `0 failed requests on node-c through the partition (${load.ok} ok) ${load.failures.join(' | ')}`)
  t.ok(c.gw.logs.some(l => l.includes('PostgreSQL is unreachable')), 'node-c logged the partition')
})

t.test('the password of INGRESSD_POSTGRES_URL appears in no log line, no response and not in /metrics, outage included', async t => {
  // The shared cluster trusts local connections: the password is accepted and ignored, and only its secrecy is tested.
  const SECRET = 's3cr3tpass'
  const plain = new URL(await (await sharedPostgres()).createDatabase())
  plain.password = SECRET
  const url = plain.toString()
  const nodes = await startCluster(t, { url, count: 2, env: { INGRESSD_LOG_LEVEL: 'debug' } })
  const [a, b] = nodes as [ClusterNode, ClusterNode]
  const answers: TimedCall[] = []
  const keep = async (r: Promise<TimedCall>): Promise<TimedCall> => { const got = await r; answers.push(got); return got }
  t.equal((await keep(call(a.gw, 'POST', ING, ingress('one', 'one.example.com', 'web')))).status, 201)
  t.equal((await keep(call(a.gw, 'POST', ING, ingress('one', 'one.example.com', 'web')))).status, 409, 'a conflict')
  t.equal((await keep(call(a.gw, 'POST', ING, '{"kind": "Ingress", '))).status, 400, 'a malformed body')

  // An outage: a refused link on node-a (resets), a blackholed one on node-b (timeouts).
  a.proxy.mode('cut')
  b.proxy.mode('blackhole')
  t.equal((await keep(call(a.gw, 'POST', ING, ingress('two', 'two.example.com', 'web')))).status, 503, 'a write on node-a during the outage')
  t.equal((await keep(call(b.gw, 'POST', ING, ingress('two', 'two.example.com', 'web')))).status, 503, 'a write on node-b during the outage (timed out)')
  for (const n of nodes) {
    await until(async () => {
      const r = await keep(call(n.gw, 'GET', ING))
      return typeof r.headers?.warning === 'string'
    }, 8000, `${n.name} reporting the outage`)
    await keep(call(n.gw, 'GET', '/apis/ingressd.io/v1/nodes'))
    await keep(call(n.gw, 'GET', '/readyz'))
  }
  const metricsDown = await Promise.all(nodes.map(async n => await keep(call(n.gw, 'GET', '/metrics'))))
  a.proxy.mode('pass')
  b.proxy.mode('pass')
  await until(() => converged(url, nodes), 10_000, 'both nodes back')
  t.equal((await keep(call(b.gw, 'POST', ING, ingress('two', 'two.example.com', 'web')))).status, 201, 'writes work again')
  const metricsUp = await Promise.all(nodes.map(async n => await keep(call(n.gw, 'GET', '/metrics'))))
  for (const m of [...metricsDown, ...metricsUp]) t.equal(m.status, 200, '/metrics answers')

  for (const n of nodes) {
    const logs = n.gw.logs.join('')
    t.ok(n.gw.logs.length > 5, `${n.name} wrote ${n.gw.logs.length} log lines`)
    t.ok(logs.includes('PostgreSQL is unreachable'), `${n.name} logged the outage`)
    t.notOk(logs.includes(SECRET), `${n.name}'s logs never hold the password`)
    const leaked = n.gw.logs.filter(l => l.includes(SECRET))
    if (leaked.length > 0) t.comment(`leaking lines: ${leaked.join('')}`)
  }
  for (const r of answers) {
    const text = `${JSON.stringify(r.headers ?? {})} ${r.text ?? ''} ${r.error ?? ''}`
    if (text.includes(SECRET)) t.fail(`an answer holds the password: ${r.status} ${text.slice(0, 400)}`)
  }
  t.ok(answers.every(r => !`${JSON.stringify(r.headers ?? {})}${r.text ?? ''}`.includes(SECRET)), `none of the ${answers.length} answers (metrics, errors, warnings, node lists) holds the password`)
})
