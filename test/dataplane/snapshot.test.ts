import t from 'tap'
import { openDatabase } from '../../src/store/database.js'
import { ObjectStore } from '../../src/store/object-store.js'
import { prepareObject } from '../../src/resources/kinds.js'
import { SnapshotReader } from '../../src/dataplane/snapshot.js'
import { generateSelfSigned } from '../../src/resources/tls-material.js'

function ingress (name: string, host: string): unknown {
  return { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name }, spec: { rules: [{ host, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'web', port: { number: 80 } } } }] } }] } }
}

t.test('a snapshot re-reads only the objects whose version moved, and stays complete and consistent', async t => {
  const db = openDatabase(':memory:')
  t.teardown(() => { db.close() })
  const store = new ObjectStore(db)
  const put = (obj: unknown, mode: 'create' | 'replace' | 'apply' = 'apply'): void => { store.write(() => store.put(prepareObject(obj, {}, (ns, n) => store.privateKey(ns, n)), mode)) }
  for (let i = 0; i < 50; i++) put(ingress(`app-${i}`, `app-${i}.example.com`))
  const reader = new SnapshotReader(store)

  const first = reader.read()
  t.equal(reader.parsedLastRead, 50)
  t.equal(first.snapshot.ingresses.length, 50)
  t.equal(first.resourceVersion, store.resourceVersion())

  const again = reader.read()
  t.equal(reader.parsedLastRead, 0, 'nothing changed: nothing parsed')
  t.equal(again.snapshot.ingresses[7], first.snapshot.ingresses[7], 'unchanged objects are the same objects')

  put(ingress('app-7', 'moved.example.com'))
  store.write(() => store.delete('Ingress', 'default', 'app-3', { group: 'networking.k8s.io' }))
  put(ingress('zzz-new', 'new.example.com'))
  const third = reader.read()
  t.equal(reader.parsedLastRead, 2, 'one changed and one new object parsed')
  t.equal(third.snapshot.ingresses.length, 50)
  t.notOk(third.snapshot.ingresses.some(i => i.metadata.name === 'app-3'), 'a deleted object is gone')
  t.equal(third.snapshot.ingresses.find(i => i.metadata.name === 'app-7')?.spec.rules?.[0]?.host, 'moved.example.com')
  t.same(third.snapshot.ingresses.map(i => i.metadata.name), [...third.snapshot.ingresses.map(i => i.metadata.name)].sort(), 'key order, as the store lists them')

  // Secrets come with their private key, refreshed when the Secret changes.
  const a = await generateSelfSigned({ commonName: 'a.example.com', dnsNames: ['a.example.com'], keyType: 'ec' })
  const b = await generateSelfSigned({ commonName: 'a.example.com', dnsNames: ['a.example.com'], keyType: 'ec' })
  const secret = (pem: { cert: string, key: string }): unknown => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'tls' }, type: 'kubernetes.io/tls', stringData: { 'tls.crt': pem.cert, 'tls.key': pem.key } })
  put(secret(a))
  t.equal(reader.read().snapshot.privateKeys.get('default/tls'), a.key)
  put(secret(b))
  const rotated = reader.read()
  t.equal(reader.parsedLastRead, 1)
  t.equal(rotated.snapshot.privateKeys.get('default/tls'), b.key, 'the rotated key is read with its Secret')
})
