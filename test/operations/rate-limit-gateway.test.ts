/**
 * Rate limits through the real gateway: limit-rps holds per node, whatever INGRESSD_WORKERS is (a
 * client with connections on every worker gets the configured rate, not N times it), over 10 s,
 * within 10 %; limit-connections, the allowlist and the status setting, end to end.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { Pool, request } from 'undici'
import { alive, startChildGateway } from '../helpers/child-gateway.js'
import { startOrigin } from '../helpers/origin.js'
import { serviceManifests, apply } from '../helpers/backends.js'
import { startTestGateway } from '../helpers/gateway.js'

const P = 'nginx.ingress.kubernetes.io/'

function ingress (name: string, annotations: Record<string, string>): unknown {
  return { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name, annotations }, spec: { rules: [{ host: `${name}.example.com`, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'echo', port: { number: 8080 } } } }] } }] } }
}

/** Sends requests as fast as `connections` keep-alive connections allow for `ms`; counts answers by status. */
async function flood (url: string, host: string, connections: number, ms: number): Promise<Map<number, number>> {
  const pool = new Pool(url, { connections, pipelining: 1 })
  const counts = new Map<number, number>()
  const until = Date.now() + ms
  await Promise.all(Array.from({ length: connections }, async () => {
    while (Date.now() < until) {
      const res = await pool.request({ path: '/', method: 'GET', headers: { host } })
      await res.body.dump()
      counts.set(res.statusCode, (counts.get(res.statusCode) ?? 0) + 1)
    }
  }))
  await pool.close()
  return counts
}

for (const workers of [1, 2]) {
  t.test(`limit-rps over 10 s with ${workers} worker(s): the configured rate plus the burst, within 10 %`, async t => {
    const dir = mkdtempSync(join(tmpdir(), 'ingressd-limits-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const origin = await startOrigin(t, 'echo')
    const gw = await startChildGateway({ INGRESSD_WORKERS: String(workers), INGRESSD_DB: join(dir, 'db.sqlite'), INGRESSD_ADMIN_ADDR: '127.0.0.1:0', INGRESSD_HTTP_ADDR: '127.0.0.1:0', INGRESSD_HTTPS_ADDR: '127.0.0.1:0', INGRESSD_SHUTDOWN_GRACE: '2s' })
    const pids = (gw.started.workers as number[] | undefined) ?? []
    t.teardown(() => {
      if (gw.child.exitCode === null) gw.child.kill('SIGKILL')
      for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL')
    })
    const res = await request(`${gw.admin}/apply`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify([...serviceManifests('echo', [origin]), ingress('limited', { [`${P}limit-rps`]: '20', [`${P}limit-burst-multiplier`]: '5' })]) })
    await res.body.dump()
    t.equal(res.statusCode, 200)
    // 16 keep-alive connections: the primary hands them out round robin, so with two workers each serves half.
    const counts = await flood(`http://${String(gw.started.http)}`, 'limited.example.com', 16, 10_000)
    const allowed = counts.get(200) ?? 0
    const expected = 20 * 10 + 100
    t.ok(Math.abs(allowed - expected) <= expected * 0.1, `${allowed} requests let through, ${expected} expected (20/s for 10 s and a burst of 100)`)
    t.ok((counts.get(503) ?? 0) > allowed, 'the rest were refused with 503')
    t.same([...counts.keys()].filter(s => s !== 200 && s !== 503), [], 'nothing else')
    t.ok(origin.seen.length <= allowed, 'refused requests never reached the backend')
  })
}

t.test('limit-connections, the allowlist and INGRESSD_LIMIT_REQ_STATUS_CODE', async t => {
  const gw = await startTestGateway(t, { INGRESSD_LIMIT_REQ_STATUS_CODE: '429' })
  const slow = await startOrigin(t, 'echo', (_req, res) => { setTimeout(() => { res.writeHead(200); res.end('slow') }, 400) })
  await apply(gw, [
    ...serviceManifests('echo', [slow]),
    ingress('conns', { [`${P}limit-connections`]: '3' }),
    ingress('allowed', { [`${P}limit-rps`]: '1', [`${P}limit-burst-multiplier`]: '1', [`${P}limit-allowlist`]: '127.0.0.0/8' }),
    ingress('tight', { [`${P}limit-rps`]: '1', [`${P}limit-burst-multiplier`]: '1' })
  ])
  const get = async (host: string): Promise<number> => {
    const res = await request(`${gw.http}/`, { headers: { host } })
    await res.body.dump()
    return res.statusCode
  }
  const statuses = await Promise.all(Array.from({ length: 8 }, async () => await get('conns.example.com')))
  t.equal(statuses.filter(s => s === 200).length, 3, 'three requests in flight at once')
  t.equal(statuses.filter(s => s === 429).length, 5, 'the others get the configured status')
  t.equal(await get('conns.example.com'), 200, 'the slots are given back when the requests end')
  const allowlisted = await Promise.all(Array.from({ length: 4 }, async () => await get('allowed.example.com')))
  t.same(allowlisted, [200, 200, 200, 200], 'an allowlisted client is not limited')
  const tight = [await get('tight.example.com'), await get('tight.example.com')]
  t.same(tight, [200, 429], 'a burst of one, then refused')
  const refused = await request(`${gw.http}/`, { headers: { host: 'tight.example.com' } })
  t.match(await refused.body.text(), 'INGRESSD_ERR_RATE_LIMITED')
})
