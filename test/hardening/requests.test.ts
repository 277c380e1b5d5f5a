/**
 * The hostile-request corpus (corpus.ts), sent as raw bytes to a real gateway in front of real
 * origins: each request gets its expected status; rejected ones close the connection and never
 * reach an origin; routed ones reach the right origin with exactly the normalized target.
 */
import t, { type Test } from 'tap'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { startOrigin, type Origin } from '../helpers/origin.js'
import { apply, serviceManifests } from '../helpers/backends.js'
import { sendRaw } from '../helpers/raw.js'
import { CORPUS, forwardedCases, req, type Case } from './corpus.js'

function ingress (name: string, host: string | undefined, path: string, service: string): unknown {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name },
    spec: { rules: [{ ...(host === undefined ? {} : { host }), http: { paths: [{ path, pathType: 'Prefix', backend: { service: { name: service, port: { number: 8080 } } } }] } }] }
  }
}

async function corpusGateway (t: Test, env: Record<string, string> = {}): Promise<{ gw: TestGateway, origins: Record<'a' | 'b' | 'c', Origin> }> {
  const gw = await startTestGateway(t, env)
  const origins = { a: await startOrigin(t, 'a'), b: await startOrigin(t, 'b'), c: await startOrigin(t, 'c') }
  await apply(gw, [
    ...serviceManifests('svc-a', [origins.a]), ...serviceManifests('svc-b', [origins.b]), ...serviceManifests('svc-c', [origins.c]),
    ingress('a-root', 'a.example', '/', 'svc-a'), ingress('a-private', 'a.example', '/private', 'svc-b'), ingress('catch-all', undefined, '/', 'svc-c')
  ])
  return { gw, origins }
}

/** Sends one case and asserts everything it promises; returns the status seen. */
async function runCase (t: Test, gw: TestGateway, origins: Record<'a' | 'b' | 'c', Origin>, c: Case): Promise<number> {
  for (const o of Object.values(origins)) o.seen.length = 0
  const answer = await sendRaw(gw.httpPort, c.raw)
  // Let anything the gateway may have started upstream arrive before looking at the origins.
  await new Promise(resolve => setTimeout(resolve, 30))
  const label = `[${c.group}] ${c.name}`
  t.equal(answer.status, c.status, `${label}: ${c.status}`)
  if (c.code !== undefined) t.match(answer.body, `code: ${c.code}`, `${label}: ${c.code}`)
  if (c.status >= 400) {
    // Refused by the gateway or by Node's parser: in the gateway's format either way.
    t.match(answer.body, /code: INGRESSD_ERR_[A-Z_]+/, `${label}: names its error code`)
    t.match(answer.head, /\r\nx-request-id: [0-9a-f]{32}/i, `${label}: with a request id`)
    t.match(answer.head, /\r\ncontent-type: text\/plain/i, `${label}: in plain text`)
  }
  const seen = Object.values(origins).flatMap(o => o.seen)
  if (c.origin === undefined) {
    t.ok(answer.closed, `${label}: the connection is closed`)
    t.same(seen.map(s => `${s.server} ${s.method} ${s.url}`), [], `${label}: no origin saw the request`)
  } else {
    t.same(seen.map(s => `${s.server} ${s.url}`), [`${c.origin} ${c.url ?? ''}`], `${label}: origin ${c.origin} got exactly ${String(c.url).slice(0, 60)}`)
    const problem = seen[0] === undefined ? undefined : c.check?.(seen[0])
    t.equal(problem, undefined, `${label}: what the origin received`)
  }
  return answer.status
}

function tally (statuses: number[]): string {
  const counts = new Map<number, number>()
  for (const s of statuses) counts.set(s, (counts.get(s) ?? 0) + 1)
  return [...counts].sort((x, y) => x[0] - y[0]).map(([s, n]) => `${n}×${s === 0 ? 'closed' : s}`).join(', ')
}

t.test('the hostile-request corpus', async t => {
  const { gw, origins } = await corpusGateway(t)
  const cases = [...CORPUS, ...forwardedCases(gw.httpPort)]
  const byGroup = new Map<string, number[]>()
  for (const c of cases) {
    const status = await runCase(t, gw, origins, c)
    byGroup.set(c.group, [...(byGroup.get(c.group) ?? []), status])
  }
  t.comment(`corpus: ${cases.length} requests: ${tally([...byGroup.values()].flat())}`)
  for (const [group, statuses] of byGroup) t.comment(`  ${group}: ${statuses.length} requests: ${tally(statuses)}`)
})

t.test('a trusted proxy range keeps and appends forwarded headers', async t => {
  const { gw, origins } = await corpusGateway(t, { INGRESSD_TRUSTED_PROXIES: '127.0.0.0/8' })
  await runCase(t, gw, origins, {
    group: 'forwarded',
    name: 'trusted peer',
    raw: req(['GET / HTTP/1.1', 'Host: a.example', 'Connection: close', 'X-Forwarded-For: 203.0.113.7', 'X-Real-IP: 203.0.113.7', 'X-Forwarded-Proto: https', 'X-Forwarded-Host: shop.example', 'X-Forwarded-Port: 443']),
    status: 200,
    origin: 'a',
    url: '/',
    check: s => {
      const want = { 'x-forwarded-for': '203.0.113.7, 127.0.0.1', 'x-real-ip': '203.0.113.7', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'shop.example', 'x-forwarded-port': '443' }
      for (const [k, v] of Object.entries(want)) if (s.headers[k] !== v) return `${k}: ${String(s.headers[k])}`
      return undefined
    }
  })
})

t.test('a chunked body with bad framing aborts the upstream request it started', async t => {
  const { gw, origins } = await corpusGateway(t)
  const answer = await sendRaw(gw.httpPort, [req(['POST /upload HTTP/1.1', 'Host: a.example', 'Transfer-Encoding: chunked'], '4\r\nabcd\r\n'), 'zz\r\nxx\r\n0\r\n\r\n'], { gapMs: 100 })
  await new Promise(resolve => setTimeout(resolve, 100))
  t.ok(answer.status === 400 || answer.status === 0 || answer.status === 502, `answered ${answer.status}`)
  t.ok(answer.closed, 'the connection is closed')
  t.same(origins.a.seen, [], 'the origin never saw a complete request')
})
