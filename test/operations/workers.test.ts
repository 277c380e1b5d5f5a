/**
 * INGRESSD_WORKERS=2: `serve` runs the admin plane in the primary and the data plane in two
 * cluster workers sharing the HTTP port. Every admin write returns only once both workers serve
 * it, so no request sent after the reply, whichever worker takes it, misses the change.
 */
import { request as httpRequest } from 'node:http'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import { alive, startChildGateway, type ChildGateway } from '../helpers/child-gateway.js'
import { startOrigin } from '../helpers/origin.js'
import { serviceManifests } from '../helpers/backends.js'

/** One GET over a fresh connection (no keep-alive), so the primary hands each to the next worker. */
async function freshGet (address: string, host: string): Promise<number> {
  const [hostname, port] = address.split(':')
  return await new Promise((resolve, reject) => {
    const req = httpRequest({ hostname, port: Number(port), path: '/', headers: { host }, agent: false }, res => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
    req.end()
  })
}

function ingress (name: string, host: string): unknown {
  return { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name }, spec: { rules: [{ host, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'echo', port: { number: 8080 } } } }] } }] } }
}

async function apply (gw: ChildGateway, manifests: unknown[]): Promise<{ status: number, warning: string | undefined, body: any }> {
  const res = await request(`${gw.admin}/apply`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(manifests) })
  const warning = res.headers.warning
  return { status: res.statusCode, warning: typeof warning === 'string' ? warning : undefined, body: await res.body.json() }
}

t.test('two workers: every request after a write sees it, metrics add up, SIGTERM stops all', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'ingressd-workers-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const echo = await startOrigin(t, 'echo')
  const gw = await startChildGateway({ INGRESSD_WORKERS: '2', INGRESSD_DB: join(dir, 'db.sqlite'), INGRESSD_ADMIN_ADDR: '127.0.0.1:0', INGRESSD_HTTP_ADDR: '127.0.0.1:0', INGRESSD_HTTPS_ADDR: '127.0.0.1:0', INGRESSD_SHUTDOWN_GRACE: '5s' })
  let workers = gw.started.workers as number[]
  t.teardown(() => {
    if (gw.child.exitCode === null) gw.child.kill('SIGKILL')
    for (const pid of workers) if (alive(pid)) process.kill(pid, 'SIGKILL')
  })
  t.ok(Array.isArray(workers) && workers.length === 2, 'the start-up line names two worker pids')
  t.equal(new Set(workers).size, 2, 'two distinct worker processes')
  t.notOk(workers.includes(gw.child.pid ?? -1), 'neither is the primary')
  t.ok(workers.every(alive), 'both run')
  const http = String(gw.started.http)
  t.match(http, /^127\.0\.0\.1:\d+$/, 'the shared HTTP address, with the port the workers got')
  t.not(http.endsWith(':0'), true)

  const first = await apply(gw, [...serviceManifests('echo', [echo]), ingress('a', 'a.example.com')])
  t.equal(first.status, 200)
  t.equal(first.warning, undefined, 'both workers confirmed serving it')
  const statuses: number[] = []
  for (let batch = 0; batch < 10; batch++) {
    statuses.push(...await Promise.all(Array.from({ length: 20 }, async () => await freshGet(http, 'a.example.com'))))
  }
  t.equal(statuses.length, 200)
  t.same(statuses.filter(s => s !== 200), [], 'all 200 requests, right after the write, were routed')
  // Each worker logs its access lines with its own pid: both took a share of the connections.
  await new Promise(resolve => setTimeout(resolve, 300))
  const servedBy = new Map<number, number>()
  for (const line of gw.lines) {
    if (!line.includes('"msg":"access"') || !line.includes('a.example.com')) continue
    const pid = (JSON.parse(line) as { pid: number }).pid
    servedBy.set(pid, (servedBy.get(pid) ?? 0) + 1)
  }
  t.same([...servedBy.keys()].sort(), [...workers].sort(), 'both workers served some of them (access-log pids)')
  t.comment(`requests per worker: ${JSON.stringify(Object.fromEntries(servedBy))}`)

  const metrics = await (await request(`${gw.admin}/metrics`)).body.text()
  const total = metrics.split('\n').filter(l => l.startsWith('ingressd_requests_total{')).reduce((sum, l) => sum + Number(l.split(' ').pop()), 0)
  t.equal(total, 200, 'the admin /metrics sums both workers\' ingressd_requests_total')
  t.match(metrics, /ingressd_config_generation \d+/, 'the served generation is reported')

  const ready = await (await request(`${gw.admin}/readyz`)).body.json() as { workers?: number }
  t.equal(ready.workers, 2, '/readyz counts both workers')

  // Only one process writes statuses, and the reply carries it.
  const got = await (await request(`${gw.admin}/apis/networking.k8s.io/v1/namespaces/default/ingresses/a`)).body.json() as any
  t.match(got.status?.conditions, [{ type: 'Served', status: 'True' }], 'the ingress status was written by a worker')

  for (let i = 0; i < 20; i++) {
    const res = await apply(gw, [ingress(`h${i}`, `h${i}.example.com`)])
    t.equal(res.status, 200)
    const seen = await Promise.all([freshGet(http, `h${i}.example.com`), freshGet(http, `h${i}.example.com`)])
    if (seen.some(s => s !== 200)) t.fail(`change ${i}: a request right after the write got ${seen.join(', ')}`)
  }
  t.pass('20 writes, each seen by the requests right after it')

  // A worker that dies is replaced; writes stop waiting for it and then wait for its successor.
  process.kill(workers[1] as number, 'SIGKILL')
  const deadline = Date.now() + 15_000
  let replaced = false
  while (Date.now() < deadline && !replaced) {
    await new Promise(resolve => setTimeout(resolve, 100))
    replaced = gw.lines.some(l => l.includes('forking a replacement')) && (await request(`${gw.admin}/readyz`)).statusCode === 200
  }
  t.ok(replaced, 'the primary forked a replacement, and is ready again')
  const after = await apply(gw, [ingress('late', 'late.example.com')])
  t.equal(after.warning, undefined, 'a write after the replacement is confirmed by both workers')
  const late = await Promise.all(Array.from({ length: 10 }, async () => await freshGet(http, 'late.example.com')))
  t.same(late.filter(s => s !== 200), [], 'and seen by every request')
  workers = [...workers, ...gw.lines.flatMap(l => { try { const p = JSON.parse(l); return typeof p.worker === 'number' && typeof p.pid === 'number' ? [p.pid as number] : [] } catch { return [] } })]

  gw.child.kill('SIGTERM')
  const exit = await gw.exited
  t.equal(exit.code, 0, 'the primary exits 0')
  await new Promise(resolve => setTimeout(resolve, 200))
  t.same(workers.filter(alive), [], 'no worker outlives it')
})
