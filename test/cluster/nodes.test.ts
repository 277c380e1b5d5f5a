/**
 * What users see of the nodes in cluster mode, on a real PostgreSQL with real in-process gateways:
 * GET /apis/ingressd.io/v1/nodes, `ingressd get nodes`, the addresses in an Ingress's status,
 * `?wait=all` and the lag warning, the cluster gauges, and the one-node list of embedded mode.
 */
import pg from 'pg'
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { startFaultProxy } from '../helpers/fault-proxy.js'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { sharedPostgres } from '../helpers/postgres.js'
import { run } from '../cli/run.js'

const NODES = '/apis/ingressd.io/v1/nodes'
const INGRESS = '/apis/networking.k8s.io/v1/namespaces/default/ingresses'

interface NodeItem { metadata: { name: string }, status: { addresses: string[], version: string, servedResourceVersion: string, storeResourceVersion: string, behind: number, state: string, lastHeartbeat: string, startedAt: string, problem?: string } }

/** Polls `fn` until it returns something other than undefined, failing after `ms`. */
async function until<T> (what: string, fn: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await fn()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(100)
  }
}

async function nodes (gw: TestGateway): Promise<{ items: NodeItem[], resourceVersion: string, warning: unknown }> {
  const res = await gw.api('GET', NODES)
  if (res.status !== 200) throw new Error(`GET ${NODES}: ${res.status} ${res.text}`)
  return { items: res.body.items, resourceVersion: res.body.metadata.resourceVersion, warning: res.headers.warning }
}

function manifests (name: string): unknown[] {
  return [
    { apiVersion: 'v1', kind: 'Service', metadata: { name }, spec: { ports: [{ port: 80, targetPort: 9 }] } },
    { apiVersion: 'v1', kind: 'Endpoints', metadata: { name }, subsets: [{ addresses: [{ ip: '127.0.0.1' }], ports: [{ port: 9 }] }] },
    { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name }, spec: { rules: [{ host: `${name}.example.com`, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name, port: { number: 80 } } } }] } }] } }
  ]
}

function service (name: string): unknown {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name }, spec: { ports: [{ port: 80 }] } }
}

t.test('cluster mode: the nodes as users see them', async t => {
  const url = await (await sharedPostgres()).createDatabase()
  const db = new pg.Client({ connectionString: url })
  await db.connect()
  t.teardown(async () => { await db.end() })
  const node = async (name: string, address: string, extra: Record<string, string> = {}): Promise<TestGateway> =>
    await startTestGateway(t, { INGRESSD_POSTGRES_URL: url, INGRESSD_NODE_NAME: name, INGRESSD_PUBLISH_ADDRESS: address, ...extra })
  const a = await node('a', '10.0.0.1')
  const b = await node('b', 'gw-b.example.net')

  t.test('the list shows each node, its addresses, and the version it serves', async t => {
    t.equal((await a.api('POST', '/apply', manifests('web'))).status, 200)
    const list = await until('both nodes to report the store\'s version', async () => {
      const l = await nodes(a)
      const ok = l.items.length === 2 && l.items.every(n => n.status.servedResourceVersion === n.status.storeResourceVersion && n.status.servedResourceVersion === l.resourceVersion)
      return ok ? l : undefined
    })
    const store = (await db.query('SELECT resource_version FROM store_state')).rows[0].resource_version
    t.equal(list.resourceVersion, String(store), 'metadata.resourceVersion is PostgreSQL\'s')
    t.same(list.items.map(n => n.metadata.name), ['a', 'b'], 'sorted by name')
    const [na, nb] = list.items as [NodeItem, NodeItem]
    t.same(na.status.addresses, ['10.0.0.1'])
    t.same(nb.status.addresses, ['gw-b.example.net'])
    for (const n of list.items) {
      t.match(n, { apiVersion: 'ingressd.io/v1', kind: 'Node', status: { state: 'Ready', behind: 0, version: /^\d+\.\d+\.\d+/ } })
      t.ok(Date.now() - Date.parse(n.status.lastHeartbeat) < 5000, 'a recent heartbeat')
      t.ok(Date.parse(n.status.startedAt) <= Date.parse(n.status.lastHeartbeat))
      t.notOk('problem' in n.status)
    }
    t.equal(list.warning, undefined)
    const one = await b.api('GET', `${NODES}/a`)
    t.equal(one.status, 200)
    t.match(one.body, { kind: 'Node', metadata: { name: 'a' }, status: { addresses: ['10.0.0.1'] } }, 'any node answers for every node')
    const missing = await a.api('GET', `${NODES}/nope`)
    t.equal(missing.status, 404)
    t.match(missing.body, { kind: 'Status', reason: 'NotFound', message: 'nodes.ingressd.io "nope" not found', details: { name: 'nope', kind: 'Node' } })
  })

  t.test('a served Ingress lists every live node\'s address', async t => {
    for (const gw of [a, b]) {
      const lb = await until(`both addresses in the status read from ${gw.config.nodeName ?? ''}`, async () => {
        const res = await gw.api('GET', `${INGRESS}/web`)
        const ingress = res.body.status.loadBalancer.ingress as unknown[] | undefined
        return ingress?.length === 2 ? ingress : undefined
      })
      t.same(lb, [{ ip: '10.0.0.1' }, { hostname: 'gw-b.example.net' }], 'an IP as ip, a name as hostname')
    }
    const list = await a.api('GET', `${INGRESS}`)
    t.same(list.body.items[0].status.loadBalancer.ingress.length, 2, 'lists too')
    const unserved = await a.api('POST', INGRESS, { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'other-class' }, spec: { ingressClassName: 'not-ours', rules: [{ host: 'x.example.com', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'web', port: { number: 80 } } } }] } }] } })
    t.equal(unserved.status, 201)
    t.same(unserved.body.status.loadBalancer, {}, 'an ingress no node serves lists no address')
  })

  t.test('?wait=all answers once every live node serves the write', async t => {
    const res = await a.api('POST', '/api/v1/namespaces/default/services?wait=all', service('waited'))
    t.equal(res.status, 201)
    t.equal(res.headers.warning, undefined, 'no node lagged')
    const version = Number(res.body.metadata.resourceVersion)
    const rows = (await db.query('SELECT name, served_resource_version FROM nodes ORDER BY name')).rows
    t.ok(rows.every(r => Number(r.served_resource_version) >= version || r.name === 'a'), `b reported serving ${version} before the write answered`)
    for (const [method, path, body] of [
      ['PUT', '/api/v1/namespaces/default/services/waited?wait=all', service('waited')],
      ['PATCH', '/api/v1/namespaces/default/services/waited?wait=all', { metadata: { labels: { x: 'y' } } }],
      ['POST', '/apply?wait=all', [service('applied')]],
      ['DELETE', '/api/v1/namespaces/default/services/waited?wait=all', undefined]
    ] as const) {
      const r = await b.api(method, path, body)
      t.equal(r.status, 200, `${method} ${path}`)
      t.equal(r.headers.warning, undefined)
    }
    const bad = await a.api('POST', '/api/v1/namespaces/default/services?wait=some', service('bad'))
    t.equal(bad.status, 400, 'wait takes only "all"')
    t.match(bad.body.message, 'wait')
  })

  t.test('a lagging live node is named in a Warning', async t => {
    // A node that stopped but whose last heartbeat is still within the liveness window.
    const c = await node('c', '10.0.0.3')
    // Its first heartbeat, sent before its data plane starts, says it serves nothing yet: wait for one that says it serves the store.
    await until('c to report serving the store', async () => {
      const l = await nodes(a)
      return l.items.some(n => n.metadata.name === 'c' && n.status.state === 'Ready' && n.status.behind === 0) ? true : undefined
    })
    await until('c in the Ingress status', async () => (await a.api('GET', `${INGRESS}/web`)).body.status.loadBalancer.ingress.length === 3 ? true : undefined)
    await c.close()
    const cServes = Number((await db.query('SELECT served_resource_version FROM nodes WHERE name = $1', ['c'])).rows[0].served_resource_version)
    const started = Date.now()
    const res = await a.api('POST', '/api/v1/namespaces/default/services?wait=all', service('lagged'))
    const took = Date.now() - started
    t.equal(res.status, 201, 'the write still succeeds')
    t.ok(took >= 4500 && took < 9000, `waited for c, bounded (${took} ms)`)
    t.match(res.headers.warning, `299 - "not every live node serves resourceVersion ${res.body.metadata.resourceVersion as string} (waited up to 5000 ms): node c serves ${cServes}"`)
    t.notMatch(res.headers.warning, /node [ab] /, 'the nodes that serve it are not named')

    // Without ?wait=all: one read of the table. A node whose heartbeat lacks versions committed
    // well before it is lagging; a fake row stands for a node whose replication is stuck.
    await db.query('INSERT INTO nodes (name, addresses, version, served_resource_version, problem, started_at, last_seen) VALUES ($1, $2, $3, 1, NULL, now(), now())', ['stuck', '["10.0.0.9"]', '0.1.0'])
    t.teardown(async () => { await db.query('DELETE FROM nodes WHERE name = $1', ['stuck']) })
    const quick = await a.api('POST', '/api/v1/namespaces/default/services', service('quick'))
    t.equal(quick.status, 201)
    t.match(quick.headers.warning, /live nodes are behind the store \(resourceVersion \d+\): node stuck serves 1; \?wait=all waits for every node/)
    t.notMatch(quick.headers.warning, /node c /, 'c was not lagging when it last reported')
    const stuck = (await nodes(b)).items.find(n => n.metadata.name === 'stuck')
    t.match(stuck, { status: { state: 'Behind', servedResourceVersion: '1' } })
    await db.query('DELETE FROM nodes WHERE name = $1', ['stuck'])

    t.test('and a node that stopped is Gone within 15 s, and leaves the Ingress status', async t => {
      const gone = await until('c to be Gone', async () => {
        const item = (await nodes(a)).items.find(n => n.metadata.name === 'c')
        return item?.status.state === 'Gone' ? item : undefined
      }, 15_000)
      t.ok(Date.now() - Date.parse(gone.status.lastHeartbeat) >= 9000, 'ten seconds without a heartbeat, by PostgreSQL\'s clock')
      const lb = await until('c out of the status', async () => {
        const ingress = (await a.api('GET', `${INGRESS}/web`)).body.status.loadBalancer.ingress as { ip?: string }[]
        return ingress.length === 2 ? ingress : undefined
      }, 5000)
      t.notOk(lb.some(e => e.ip === '10.0.0.3'))
      const started = Date.now()
      const res = await a.api('POST', '/api/v1/namespaces/default/services?wait=all', service('after-gone'))
      t.equal(res.headers.warning, undefined, 'a Gone node is not waited for')
      t.ok(Date.now() - started < 4000)

      // A node that took every version but could not compile the last: ?wait=all names it at once.
      await db.query('INSERT INTO nodes (name, addresses, version, served_resource_version, problem, started_at, last_seen) VALUES ($1, $2, $3, 1000000, $4, now(), now())', ['broken', '[]', '0.1.0', 'ingress default/web: "bad" path'])
      t.teardown(async () => { await db.query('DELETE FROM nodes WHERE name = $1', ['broken']) })
      const t0 = Date.now()
      const named = await a.api('POST', '/api/v1/namespaces/default/services?wait=all', service('named'))
      t.ok(Date.now() - t0 < 4000, 'not waited for: it processed the version')
      t.match(named.headers.warning, 'node broken serves 1000000 (could not compile: ingress default/web: \\"bad\\" path)', 'quotes escaped in the header')
      t.match((await nodes(a)).items.find(n => n.metadata.name === 'broken'), { status: { state: 'CompileError', problem: 'ingress default/web: "bad" path' } })
      await db.query('DELETE FROM nodes WHERE name = $1', ['broken'])
    })
  })

  t.test('ingressd get nodes', async t => {
    const now = new Date()
    const table = await run(['get', 'nodes', '--server', a.admin], { now })
    t.equal(table.code, 0, table.stderr)
    const lines = table.stdout.trimEnd().split('\n')
    t.match(lines[0], /^NAME\s+STATUS\s+VERSION\s+SERVED\s+BEHIND\s+LAST SEEN\s+ADDRESSES$/)
    t.match(lines[1], /^a\s+Ready\s+\d+\.\d+\.\d+\s+\d+\s+0\s+\d+s\s+10\.0\.0\.1$/)
    t.match(lines[2], /^b\s+Ready\s+\S+\s+\d+\s+0\s+\d+s\s+gw-b\.example\.net$/)
    const wide = await run(['get', 'no', '-o', 'wide', '--server', a.admin])
    t.match(wide.stdout.split('\n')[0], /ADDRESSES\s+AGE\s+PROBLEM$/)
    const json = await run(['get', 'node', 'b', '-o', 'json', '--server', a.admin])
    t.equal(json.code, 0)
    t.match(JSON.parse(json.stdout), { kind: 'Node', metadata: { name: 'b' }, status: { addresses: ['gw-b.example.net'] } })
    const yaml = await run(['get', 'nodes/a', '-o', 'yaml', '--server', a.admin])
    t.match(yaml.stdout, /^apiVersion: ingressd\.io\/v1\nkind: Node\n/)
    const name = await run(['get', 'nodes', '-o', 'name', '--server', a.admin])
    t.match(name.stdout, /^node\.ingressd\.io\/a\nnode\.ingressd\.io\/b\n/)
    const missing = await run(['get', 'node', 'nope', '--server', a.admin])
    t.equal(missing.code, 1)
    t.match(missing.stderr, 'nodes.ingressd.io "nope" not found')
    const described = await run(['describe', 'node', 'a', '--server', a.admin])
    t.equal(described.code, 0)
    t.match(described.stdout, /^Name:\s+a\nState:\s+Ready\nAddresses:\s+10\.0\.0\.1\n/)
  })

  t.test('the cluster gauges on /metrics', async t => {
    const res = await a.api('GET', '/metrics')
    t.equal(res.status, 200)
    const store = Number((await db.query('SELECT resource_version FROM store_state')).rows[0].resource_version)
    const gauge = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(res.text)?.[1])
    t.equal(gauge('ingressd_cluster_store_up'), 1)
    t.equal(gauge('ingressd_cluster_replica_version'), store)
    t.equal(gauge('ingressd_cluster_store_version'), store)
    t.equal(gauge('ingressd_cluster_full_resyncs_total'), 1, 'the empty mirror was copied once')
    t.match(res.text, /# TYPE ingressd_cluster_full_resyncs_total counter/)
    t.match(res.text, /^ingressd_config_generation /m, 'after the data plane\'s own metrics')
  })

  t.test('while PostgreSQL is away, the last list read, with a Warning', async t => {
    const target = new URL(url)
    const proxy = await startFaultProxy(t, { host: target.hostname, port: Number(target.port) })
    const d = await node('d', '10.0.0.4', { INGRESSD_POSTGRES_URL: proxy.url(url) })
    const before = await until('d to see a, b and itself', async () => {
      const l = await nodes(d)
      return ['a', 'b', 'd'].every(n => l.items.some(i => i.metadata.name === n)) ? l : undefined
    })
    t.equal(before.warning, undefined)
    proxy.mode('cut')
    const during = await until('a Warning', async () => {
      const l = await nodes(d)
      return l.warning === undefined ? undefined : l
    })
    t.match(during.warning, /^299 - "PostgreSQL (is unreachable|did not answer)/)
    t.same(during.items.map(n => n.metadata.name), before.items.map(n => n.metadata.name), 'the same nodes')
    t.same((await d.api('GET', `${NODES}/a`)).status, 200)
    await until('the store marked unreachable', async () => (await d.api('GET', '/metrics')).text.includes('ingressd_cluster_store_up 0') ? true : undefined)
    const lb = (await d.api('GET', `${INGRESS}/web`)).body.status.loadBalancer.ingress as unknown[]
    t.ok(lb.length >= 2, 'the Ingress status still lists the nodes')
    proxy.mode('pass')
    await until('no Warning again', async () => (await nodes(d)).warning === undefined ? true : undefined, 15_000)
    await d.close()
  })
})

t.test('embedded mode: the list is this node', async t => {
  const gw = await startTestGateway(t, { INGRESSD_NODE_NAME: 'solo', INGRESSD_PUBLISH_ADDRESS: '192.0.2.7' })
  t.equal((await gw.api('POST', '/apply?wait=all', manifests('web'))).headers.warning, undefined, '?wait=all is the local wait')
  const list = await nodes(gw)
  t.equal(list.items.length, 1)
  t.match(list.items[0], { metadata: { name: 'solo' }, status: { addresses: ['192.0.2.7'], state: 'Ready', behind: 0 } })
  t.equal(list.items[0]?.status.servedResourceVersion, list.resourceVersion)
  t.equal(list.resourceVersion, String(gw.gateway.store.resourceVersion()))
  t.equal((await gw.api('GET', `${NODES}/solo`)).status, 200)
  t.same((await gw.api('GET', `${INGRESS}/web`)).body.status.loadBalancer, { ingress: [{ ip: '192.0.2.7' }] }, 'the status as before')
  t.notMatch((await gw.api('GET', '/metrics')).text, 'ingressd_cluster_', 'no cluster gauges')
  const table = await run(['get', 'nodes', '--server', gw.admin])
  t.match(table.stdout, /\nsolo\s+Ready\s+/)
})
