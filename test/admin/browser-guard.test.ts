/**
 * A web page must not drive the admin API from a visitor's browser: cross-origin requests are
 * refused, and without a token so is any Host that is not a loopback name (DNS rebinding).
 */
import t from 'tap'
import { startTestGateway } from '../helpers/gateway.js'

const LIST = '/apis/networking.k8s.io/v1/ingresses'

t.test('without a token: only loopback Host names, only same-origin pages', async t => {
  const gw = await startTestGateway(t, { INGRESSD_ADMIN_ALLOWED_HOSTS: 'ingressd' })
  const port = new URL(gw.admin).port
  const cases: [Record<string, string>, number][] = [
    [{}, 200],
    [{ host: `localhost:${port}` }, 200],
    [{ host: `127.0.0.1:${port}` }, 200],
    [{ host: `[::1]:${port}` }, 200],
    [{ host: `ingressd:${port}` }, 200],
    [{ host: `rebind.attacker.example:${port}` }, 403],
    [{ host: `127.0.0.1.nip.io:${port}` }, 403],
    [{ origin: `http://127.0.0.1:${port}` }, 200],
    [{ origin: 'http://attacker.example' }, 403],
    [{ origin: 'null' }, 403]
  ]
  for (const [headers, status] of cases) {
    const res = await gw.api('GET', LIST, undefined, headers)
    t.equal(res.status, status, JSON.stringify(headers))
    if (status === 403) {
      t.equal(res.body.reason, 'Forbidden')
      t.equal(res.body.details.errorCode, 'INGRESSD_ERR_FORBIDDEN')
    }
  }
  const write = await gw.api('POST', '/apis/networking.k8s.io/v1/namespaces/default/ingresses', { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'x' }, spec: { defaultBackend: { service: { name: 'a', port: { number: 80 } } } } }, { origin: 'http://attacker.example' })
  t.equal(write.status, 403, 'a cross-origin write is refused')
  t.equal((await gw.api('GET', LIST)).body.items.length, 0, 'and stored nothing')
  t.equal((await gw.api('GET', '/healthz', undefined, { host: 'probe.example:1' })).status, 200, 'health stays open to probes')
  t.ok(gw.logs.some(l => l.includes('admin request refused') && l.includes('attacker.example')), 'refusals are logged')
})

t.test('with a token: any Host (the token protects), still no cross-origin pages', async t => {
  const gw = await startTestGateway(t, { INGRESSD_ADMIN_TOKEN: 'guard-token-0123456789' })
  t.equal((await gw.api('GET', LIST, undefined, { host: 'ingressd:8001' })).status, 200)
  t.equal((await gw.api('GET', LIST, undefined, { origin: 'http://attacker.example' })).status, 403)
})
