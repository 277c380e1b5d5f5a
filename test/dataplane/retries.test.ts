/**
 * Failing upstreams: retries to another endpoint only when they cannot do harm, never a POST
 * sent twice, and passive health taking a failing endpoint out of rotation and back.
 */
import { createServer as createNetServer, type Server } from 'node:net'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { request } from 'undici'
import { startTestGateway } from '../helpers/gateway.js'
import { startOrigin } from '../helpers/origin.js'
import { apply } from '../helpers/backends.js'

/** An upstream that reads a whole request and then resets the connection, counting what it received. */
async function resetter (t: { teardown: (fn: () => void) => void }, host: string, port = 0): Promise<{ server: Server, port: number, requests: string[] }> {
  const requests: string[] = []
  const server = createNetServer(sock => {
    let buf = ''
    sock.on('data', d => {
      buf += d.toString('latin1')
      if (buf.includes('\r\n\r\n')) {
        requests.push(buf.split('\r\n')[0] ?? '')
        sock.resetAndDestroy()
      }
    })
    sock.on('error', () => {})
  })
  await new Promise<void>(resolve => server.listen(port, host, resolve))
  t.teardown(() => { server.close() })
  return { server, port: (server.address() as AddressInfo).port, requests }
}

function service (name: string, addresses: string[], port: number): unknown[] {
  return [
    { apiVersion: 'v1', kind: 'Service', metadata: { name }, spec: { ports: [{ name: 'http', port: 8080, targetPort: 'http' }] } },
    { apiVersion: 'v1', kind: 'Endpoints', metadata: { name }, subsets: [{ addresses: addresses.map(ip => ({ ip })), ports: [{ name: 'http', port }] }] }
  ]
}

function ingress (name: string, host: string, svc: string): unknown {
  return { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name }, spec: { rules: [{ host, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: svc, port: { number: 8080 } } } }] } }] } }
}

t.test('a refused endpoint is skipped: every request still succeeds on the live one', async t => {
  const gw = await startTestGateway(t)
  const live = await startOrigin(t, 'live', undefined, { host: '127.0.0.3' })
  const port = live.port
  // Same port on two addresses: 127.0.0.2 has nothing listening on it.
  const probe = createNetServer()
  const free = await new Promise<boolean>(resolve => { probe.once('error', () => resolve(false)); probe.listen(port, '127.0.0.2', () => { probe.close(); resolve(true) }) })
  t.ok(free, 'the dead address has no listener')
  await apply(gw, [...service('mixed', ['127.0.0.2', '127.0.0.3'], port), ingress('mixed', 'mixed.example.com', 'mixed')])
  for (let i = 0; i < 20; i++) {
    for (const method of ['GET', 'DELETE', 'POST']) {
      const res = await request(`${gw.http}/x`, { method: method as 'GET', headers: { host: 'mixed.example.com' } })
      const text = await res.body.text()
      t.equal(res.statusCode, 200, `${method} ${i}: ${text.slice(0, 60)}`)
    }
  }
  t.equal(live.seen.length, 60, 'the live endpoint answered every request, retries included')
})

t.test('a POST that reached an upstream is never sent twice; an idempotent request goes to the next endpoint', async t => {
  const gw = await startTestGateway(t, { INGRESSD_UPSTREAM_MAX_FAILS: '0' })
  const bad = await resetter(t, '127.0.0.4')
  const good = await startOrigin(t, 'good', undefined, { host: '127.0.0.5', port: bad.port })
  await apply(gw, [...service('flaky', ['127.0.0.4', '127.0.0.5'], bad.port), ingress('flaky', 'flaky.example.com', 'flaky')])

  let postsAnsweredByGood = 0
  let postsFailed = 0
  for (let i = 0; i < 10; i++) {
    const res = await request(`${gw.http}/order`, { method: 'POST', headers: { host: 'flaky.example.com', 'content-type': 'text/plain' }, body: `order-${i}` })
    await res.body.text()
    if (res.statusCode === 200) postsAnsweredByGood++
    else {
      t.equal(res.statusCode, 502)
      postsFailed++
    }
  }
  const postsAtBad = bad.requests.filter(l => l.startsWith('POST')).length
  const postsAtGood = good.seen.filter(r => r.method === 'POST').length
  t.equal(postsAtBad + postsAtGood, 10, 'each POST reached exactly one upstream, once')
  t.equal(postsFailed, postsAtBad, 'a POST the upstream reset is answered 502, not retried')
  t.equal(postsAnsweredByGood, postsAtGood)
  t.ok(postsAtBad > 0, 'round robin sent some POSTs to the resetting endpoint')

  for (let i = 0; i < 10; i++) {
    const res = await request(`${gw.http}/item`, { headers: { host: 'flaky.example.com' } })
    await res.body.text()
    t.equal(res.statusCode, 200, 'a GET reset by one endpoint is retried on the next')
  }
  t.ok(bad.requests.some(l => l.startsWith('GET')), 'the resetting endpoint did receive GETs')
})

t.test('passive health: a failing endpoint leaves rotation, and comes back on its own', async t => {
  const gw = await startTestGateway(t, { INGRESSD_UPSTREAM_MAX_FAILS: '2', INGRESSD_UPSTREAM_FAIL_TIMEOUT: '1s', INGRESSD_PROXY_NEXT_UPSTREAM_TRIES: '1' })
  const bad = await resetter(t, '127.0.0.6')
  const good = await startOrigin(t, 'good', undefined, { host: '127.0.0.7', port: bad.port })
  await apply(gw, [...service('hc', ['127.0.0.6', '127.0.0.7'], bad.port), ingress('hc', 'hc.example.com', 'hc')])
  const get = async (): Promise<number> => { const res = await request(`${gw.http}/`, { headers: { host: 'hc.example.com' } }); await res.body.text(); return res.statusCode }
  const statuses: number[] = []
  for (let i = 0; i < 4; i++) statuses.push(await get())
  t.equal(statuses.filter(s => s === 502).length, 2, 'two failures (no retries in this test) take it out of rotation')
  const before = bad.requests.length
  for (let i = 0; i < 10; i++) t.equal(await get(), 200, 'while it is out, every request goes to the healthy endpoint')
  t.equal(bad.requests.length, before, 'the failing endpoint received nothing while out of rotation')
  await new Promise(resolve => setTimeout(resolve, 1200))
  for (let i = 0; i < 4; i++) await get()
  t.ok(bad.requests.length > before, 'after the fail timeout it is tried again')
  t.ok(good.seen.length >= 12)
})

t.test('Retry-After from an upstream is passed to the client, never waited on', async t => {
  const gw = await startTestGateway(t)
  const busy = await startOrigin(t, 'busy', (_req, res) => { res.writeHead(503, { 'retry-after': '120' }); res.end('busy') })
  await apply(gw, [...service('busy', ['127.0.0.1'], busy.port), ingress('busy', 'busy.example.com', 'busy')])
  const started = Date.now()
  const res = await request(`${gw.http}/`, { headers: { host: 'busy.example.com' } })
  await res.body.text()
  t.equal(res.statusCode, 503)
  t.equal(res.headers['retry-after'], '120')
  t.equal(busy.seen.length, 1, 'a 503 answer is not retried')
  t.ok(Date.now() - started < 2000)
})

t.test('a truncated upstream response is never passed off as complete', async t => {
  const gw = await startTestGateway(t)
  // Promises 100 bytes, sends 10, then closes.
  const liar = createNetServer(sock => {
    sock.once('data', () => sock.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\nContent-Type: text/plain\r\n\r\n0123456789'))
    sock.on('error', () => {})
  })
  await new Promise<void>(resolve => liar.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { liar.close() })
  const chunked = createNetServer(sock => {
    sock.once('data', () => sock.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n'))
    sock.on('error', () => {})
  })
  await new Promise<void>(resolve => chunked.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { chunked.close() })
  await apply(gw, [
    ...service('liar', ['127.0.0.1'], (liar.address() as AddressInfo).port), ingress('liar', 'liar.example.com', 'liar'),
    ...service('chunky', ['127.0.0.1'], (chunked.address() as AddressInfo).port), ingress('chunky', 'chunky.example.com', 'chunky')
  ])
  for (const host of ['liar.example.com', 'chunky.example.com']) {
    let completed = false
    try {
      const res = await request(`${gw.http}/`, { headers: { host } })
      await res.body.text()
      completed = true
    } catch (err) {
      t.pass(`${host}: the client sees the response fail (${(err as Error).message})`)
    }
    t.notOk(completed, `${host}: the client never gets it as a complete response`)
  }
})

t.test('the admin API answers no request that arrives on the data ports', async t => {
  const gw = await startTestGateway(t)
  for (const path of ['/apis/networking.k8s.io/v1/ingresses', '/api/v1/secrets', '/apply', '/metrics', '/audit', '/docs/']) {
    const res = await request(`${gw.http}${path}`, { method: path === '/apply' ? 'POST' : 'GET', headers: { host: 'anything.example.com' }, body: path === '/apply' ? '[]' : undefined })
    const text = await res.body.text()
    t.equal(res.statusCode, 404, `${path} on the HTTP port is just an unrouted request`)
    t.match(text, 'INGRESSD_ERR_NO_ROUTE')
  }
})
