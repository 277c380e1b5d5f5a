/**
 * What an operator watches: Prometheus metrics on the admin port, one access-log line per
 * request (never Authorization or cookies), readiness.
 */
import t from 'tap'
import { request } from 'undici'
import { startTestGateway } from '../helpers/gateway.js'
import { startOrigin } from '../helpers/origin.js'
import { apply, serviceManifests } from '../helpers/backends.js'
import { generateSelfSigned } from '../../src/resources/tls-material.js'

t.test('GET /metrics: requests, latency, upstream errors, connections, config, certificate expiry', async t => {
  const gw = await startTestGateway(t, { INGRESSD_ADMIN_TOKEN: 'metrics-token-0123456789' })
  const origin = await startOrigin(t, 'echo')
  const cert = await generateSelfSigned({ commonName: 'metrics.example.com', dnsNames: ['metrics.example.com'], days: 30 })
  await apply(gw, [
    ...serviceManifests('echo', [origin]),
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'dead' }, spec: { ports: [{ name: 'http', port: 8080 }] } },
    { apiVersion: 'v1', kind: 'Endpoints', metadata: { name: 'dead' }, subsets: [{ addresses: [{ ip: '127.0.0.1' }], ports: [{ name: 'http', port: 1 }] }] },
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'metrics-cert' }, type: 'kubernetes.io/tls', stringData: { 'tls.crt': cert.cert, 'tls.key': cert.key } },
    { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'm' }, spec: { rules: [{ host: 'metrics.example.com', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'echo', port: { number: 8080 } } } }, { path: '/dead', pathType: 'Prefix', backend: { service: { name: 'dead', port: { number: 8080 } } } }] } }] } }
  ])
  for (let i = 0; i < 3; i++) await (await request(`${gw.http}/`, { headers: { host: 'metrics.example.com' } })).body.text()
  await (await request(`${gw.http}/dead`, { headers: { host: 'metrics.example.com' } })).body.text()
  await (await request(`${gw.http}/`, { headers: { host: 'unknown.example.com' } })).body.text()

  t.equal((await gw.api('GET', '/metrics', undefined, { authorization: '' })).status, 401, 'metrics need the token')
  const res = await gw.api('GET', '/metrics')
  t.equal(res.status, 200)
  t.match(res.headers['content-type'], /text\/plain/)
  const text = res.text
  t.match(text, 'ingressd_requests_total{ingress="default/m",host="metrics.example.com",service="default/echo",status_class="2xx"} 3')
  t.match(text, 'ingressd_requests_total{ingress="default/m",host="metrics.example.com",service="default/dead",status_class="5xx"} 1')
  t.match(text, 'ingressd_requests_total{ingress="",host="",service="",status_class="4xx"} 1', 'an unmatched Host does not become a label value')
  t.notMatch(text, 'unknown.example.com')
  t.match(text, 'ingressd_upstream_errors_total{kind="INGRESSD_ERR_UPSTREAM_UNREACHABLE"} 1')
  t.match(text, /ingressd_request_duration_seconds_count\{status_class="2xx"\} 3/)
  t.match(text, /ingressd_upstream_response_seconds_count 3/)
  t.match(text, /ingressd_active_connections\{listener="http"\} \d/)
  const generation = Number(/ingressd_config_generation (\d+)/.exec(text)?.[1])
  t.equal(String(generation), (await gw.api('GET', '/api/v1/services')).body.metadata.resourceVersion, 'the generation is the store version served')
  t.match(text, /ingressd_config_last_reload_seconds \d/)
  t.match(text, 'ingressd_config_reload_failures_total 0')
  const expiry = Number(/ingressd_certificate_expiry_timestamp_seconds\{namespace="default",secret="metrics-cert"\} (\d+)/.exec(text)?.[1])
  t.ok(Math.abs(expiry - (Date.now() / 1000 + 30 * 86400)) < 2 * 86400, 'certificate expiry is the notAfter of the secret')
  t.match(text, 'ingressd_process_resident_memory_bytes')
})

t.test('access log: one line per request with its facts, never Authorization or cookies', async t => {
  const gw = await startTestGateway(t)
  const origin = await startOrigin(t, 'echo')
  await apply(gw, [...serviceManifests('echo', [origin]), { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'log' }, spec: { rules: [{ host: 'log.example.com', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'echo', port: { number: 8080 } } } }] } }] } }])
  const res = await request(`${gw.http}/hello?x=1`, { headers: { host: 'log.example.com', authorization: 'Bearer super-secret-credential', cookie: 'session=secret-cookie-value' } })
  await res.body.text()
  const requestId = res.headers['x-request-id']
  const lines = gw.logs.filter(l => l.includes('"msg":"access"'))
  t.equal(lines.length, 1, 'one access line per request')
  const entry = JSON.parse(lines[0] as string)
  t.equal(entry.reqId, requestId)
  t.equal(entry.client, '127.0.0.1')
  t.equal(entry.host, 'log.example.com')
  t.equal(entry.method, 'GET')
  t.equal(entry.path, '/hello?x=1')
  t.equal(entry.status, 200)
  t.ok(entry.bytes > 0)
  t.equal(entry.upstream, `127.0.0.1:${origin.port}`)
  t.equal(entry.ingress, 'default/log')
  t.type(entry.upstreamMs, 'number')
  t.type(entry.ms, 'number')
  t.type(entry.time, 'number')
  for (const line of gw.logs) {
    t.notMatch(line, 'super-secret-credential')
    t.notMatch(line, 'secret-cookie-value')
  }
})
