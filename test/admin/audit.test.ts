/**
 * Every admin change leaves an audit entry in the same transaction: who, when, what, and never
 * the object's contents (so never key material).
 */
import t from 'tap'
import Database from 'better-sqlite3'
import { startTestGateway } from '../helpers/gateway.js'
import { generateSelfSigned } from '../../src/resources/tls-material.js'

t.test('creates, replaces, patches, deletes and applies are audited; reads and no-op writes are not', async t => {
  const gw = await startTestGateway(t, { INGRESSD_ADMIN_TOKEN: 'audit-token-0123456789' })
  const ING = '/apis/networking.k8s.io/v1/namespaces/default/ingresses'
  const ingress = { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'shop' }, spec: { defaultBackend: { service: { name: 'web', port: { number: 80 } } } } }
  t.equal((await gw.api('POST', ING, ingress)).status, 201)
  t.equal((await gw.api('PUT', `${ING}/shop`, ingress)).status, 200, 'an unchanged replace')
  t.equal((await gw.api('PATCH', `${ING}/shop`, { metadata: { labels: { a: 'b' } } })).status, 200)
  const pem = await generateSelfSigned({ commonName: 'shop.example.com', dnsNames: ['shop.example.com'], keyType: 'ec' })
  t.equal((await gw.api('POST', '/apply', [{ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'shop-tls' }, type: 'kubernetes.io/tls', stringData: { 'tls.crt': pem.cert, 'tls.key': pem.key } }])).status, 200)
  await gw.api('GET', `${ING}/shop`)
  t.equal((await gw.api('DELETE', `${ING}/shop`)).status, 200)

  const res = await gw.api('GET', '/audit')
  t.equal(res.status, 200)
  const entries = res.body.items.map((e: any) => `${e.verb} ${e.kind} ${e.namespace}/${e.name} ${e.outcome} ${e.actor}`)
  t.same(entries, [
    'delete Ingress default/shop deleted token',
    'apply Secret default/shop-tls created token',
    'patch Ingress default/shop configured token',
    'create Ingress default/shop created token'
  ], 'newest first; the unchanged replace and the reads left no entry')
  for (const e of res.body.items) {
    t.equal(e.client, '127.0.0.1')
    t.match(e.at, /^\d{4}-\d\d-\d\dT/)
    t.ok(e.resourceVersion > 0)
  }
  t.equal((await gw.api('GET', '/audit', undefined, { authorization: '' })).status, 401, 'the audit log needs the token')

  // The entries are in the store, and hold no object contents: no key, no certificate.
  const db = new Database(gw.db, { readonly: true })
  const rows = JSON.stringify(db.prepare('SELECT * FROM audit_log').all())
  db.close()
  t.notMatch(rows, 'PRIVATE KEY')
  t.notMatch(rows, pem.key.split('\n')[1] as string)
  t.notMatch(rows, 'CERTIFICATE')
})
