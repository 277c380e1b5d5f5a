/**
 * Annotations are an allow-list of typed keys, checked on write: a malformed value or a raw
 * configuration snippet is refused with the field named; an unknown key is stored and reported
 * as ignored.
 */
import t from 'tap'
import { startTestGateway } from '../helpers/gateway.js'

const ING = '/apis/networking.k8s.io/v1/namespaces/default/ingresses'
const ingress = (name: string, annotations: Record<string, string>): unknown => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'Ingress',
  metadata: { name, annotations },
  spec: { rules: [{ host: `${name}.example.com`, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'web', port: { number: 80 } } } }] } }] }
})

t.test('malformed values and snippets are refused on write; nothing is stored', async t => {
  const gw = await startTestGateway(t)
  const cases: [string, Record<string, string>, string][] = [
    ['snippet', { 'nginx.ingress.kubernetes.io/configuration-snippet': 'more_set_headers "X: y";' }, 'configuration-snippet'],
    ['server-snippet', { 'nginx.ingress.kubernetes.io/server-snippet': 'location /x { return 200; }' }, 'server-snippet'],
    ['timeout', { 'nginx.ingress.kubernetes.io/proxy-read-timeout': 'soon' }, 'proxy-read-timeout'],
    ['body-size', { 'nginx.ingress.kubernetes.io/proxy-body-size': 'lots' }, 'proxy-body-size'],
    ['redirect', { 'nginx.ingress.kubernetes.io/ssl-redirect': 'yes' }, 'ssl-redirect']
  ]
  for (const [name, annotations, key] of cases) {
    const res = await gw.api('POST', ING, ingress(name, annotations))
    t.equal(res.status, 422, `${name} is refused`)
    t.equal(res.body.reason, 'Invalid')
    t.equal(res.body.details.causes[0].field, `metadata.annotations[nginx.ingress.kubernetes.io/${key}]`)
    t.equal((await gw.api('GET', `${ING}/${name}`)).status, 404, 'nothing stored')
  }
})

t.test('an unknown nginx annotation is accepted and reported as ignored', async t => {
  const gw = await startTestGateway(t)
  const res = await gw.api('POST', ING, ingress('otel', { 'nginx.ingress.kubernetes.io/enable-opentelemetry': 'true', 'example.com/team': 'a' }))
  t.equal(res.status, 201)
  const ignored = res.body.status.conditions.find((c: any) => c.type === 'AnnotationsIgnored')
  t.match(ignored?.message, 'nginx.ingress.kubernetes.io/enable-opentelemetry')
  t.notMatch(ignored?.message, 'example.com/team', 'annotations of other tools are not ours to report')
})
