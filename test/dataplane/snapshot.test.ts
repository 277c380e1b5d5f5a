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

function service (name: string, port = 80): unknown {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name }, spec: { ports: [{ port }] } }
}

t.test('after the first read, a read costs what changed: deletes, re-creates, other kinds, IngressClass changes', async t => {
  const db = openDatabase(':memory:')
  t.teardown(() => { db.close() })
  const store = new ObjectStore(db)
  const put = (obj: unknown): void => { store.write(() => store.put(prepareObject(obj, {}, (ns, n) => store.privateKey(ns, n)), 'apply')) }
  const del = (kind: 'Ingress' | 'Service', name: string): void => { store.write(() => store.delete(kind, 'default', name, { group: '' })) }
  for (let i = 0; i < 20; i++) put(ingress(`app-${i}`, `app-${i}.example.com`))
  put(service('web'))
  const reader = new SnapshotReader(store)
  const first = reader.read()
  t.equal(reader.fullLastRead, true, 'the first read reads everything')

  put(ingress('app-5', 'five.example.com'))
  const second = reader.read()
  t.equal(reader.fullLastRead, false)
  t.equal(reader.parsedLastRead, 1)
  t.equal(second.snapshot.services, first.snapshot.services, 'a kind with no change keeps its list')
  t.not(second.snapshot.ingresses, first.snapshot.ingresses, 'a changed kind gets a new list')
  t.equal(first.snapshot.ingresses.find(i => i.metadata.name === 'app-5')?.spec.rules?.[0]?.host, 'app-5.example.com', 'the previous snapshot is untouched')

  // Deleted and created again between two reads; created and deleted between two reads.
  del('Ingress', 'app-9')
  put(ingress('app-9', 'nine-again.example.com'))
  put(ingress('fleeting', 'fleeting.example.com'))
  del('Ingress', 'fleeting')
  del('Service', 'web')
  const third = reader.read()
  t.equal(reader.fullLastRead, false)
  t.equal(third.snapshot.ingresses.length, 20)
  t.equal(third.snapshot.ingresses.find(i => i.metadata.name === 'app-9')?.spec.rules?.[0]?.host, 'nine-again.example.com')
  t.notOk(third.snapshot.ingresses.some(i => i.metadata.name === 'fleeting'))
  t.same(third.snapshot.services, [])

  // Objects the tables do not read (IngressClass) move the version but no list.
  store.write(() => store.put(prepareObject({ apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass', metadata: { name: 'ingressd' }, spec: { controller: 'ingressd.dev/controller' } }, {}, () => undefined), 'apply'))
  const fourth = reader.read()
  t.equal(reader.parsedLastRead, 0)
  t.equal(fourth.snapshot.ingresses, third.snapshot.ingresses)
  t.equal(fourth.resourceVersion, store.resourceVersion())
})

t.test('a delete the store did not record, or a reader too far behind, reads everything again', async t => {
  const db = openDatabase(':memory:')
  t.teardown(() => { db.close() })
  const store = new ObjectStore(db)
  const put = (obj: unknown): void => { store.write(() => store.put(prepareObject(obj, {}, () => undefined), 'apply')) }
  for (let i = 0; i < 5; i++) put(ingress(`app-${i}`, `app-${i}.example.com`))
  const reader = new SnapshotReader(store)
  reader.read()

  // As an older ingressd would delete: no row in object_deletions.
  store.write(() => {
    db.prepare('DELETE FROM objects WHERE kind = \'Ingress\' AND name = \'app-2\'').run()
    db.prepare('UPDATE store_state SET resource_version = resource_version + 1').run()
  })
  put(ingress('app-3', 'three.example.com'))
  const after = reader.read()
  t.equal(reader.fullLastRead, true, 'the count disagreed: everything was read')
  t.same(after.snapshot.ingresses.map(i => i.metadata.name), ['app-0', 'app-1', 'app-3', 'app-4'])

  store.write(() => db.prepare('UPDATE store_state SET resource_version = resource_version + 200000').run())
  put(ingress('app-4', 'four.example.com'))
  const far = reader.read()
  t.equal(reader.fullLastRead, true, 'deletions are not kept that far back')
  t.equal(far.snapshot.ingresses.find(i => i.metadata.name === 'app-4')?.spec.rules?.[0]?.host, 'four.example.com')
})

t.test('random creates, updates and deletes: every incremental read equals a fresh full read', async t => {
  const db = openDatabase(':memory:')
  t.teardown(() => { db.close() })
  const store = new ObjectStore(db)
  const pem = await generateSelfSigned({ commonName: 's.example.com', dnsNames: ['s.example.com'], keyType: 'ec' })
  let state = 4242
  const random = (n: number): number => {
    state = (state * 1103515245 + 12345) & 0x7fffffff
    return state % n
  }
  const reader = new SnapshotReader(store)
  const view = (s: ReturnType<SnapshotReader['read']>): string => JSON.stringify({ ...s.snapshot, privateKeys: [...s.snapshot.privateKeys] })
  let incrementalReads = 0
  for (let step = 0; step < 300; step++) {
    const commits = 1 + random(3)
    for (let c = 0; c < commits; c++) {
      const kind = (['Ingress', 'Service', 'Endpoints', 'Secret'] as const)[random(4)] as 'Ingress' | 'Service' | 'Endpoints' | 'Secret'
      const namespace = random(4) === 0 ? 'team' : 'default'
      const name = `o-${random(12)}`
      const exists = store.get(kind, namespace, name) !== undefined
      if (exists && random(3) === 0) {
        store.write(() => store.delete(kind, namespace, name, { group: '' }))
        continue
      }
      const metadata = { name, namespace }
      const body = kind === 'Ingress'
        ? { ...(ingress(name, `h${random(5)}.example.com`) as object), metadata }
        : kind === 'Service'
          ? { ...(service(name, 80 + random(3)) as object), metadata }
          : kind === 'Endpoints'
            ? { apiVersion: 'v1', kind: 'Endpoints', metadata, subsets: [{ addresses: [{ ip: `10.0.0.${random(9)}` }], ports: [{ port: 80 }] }] }
            : { apiVersion: 'v1', kind: 'Secret', metadata, type: 'kubernetes.io/tls', stringData: { 'tls.crt': pem.cert, 'tls.key': pem.key }, ...(random(2) === 0 ? { metadata: { ...metadata, labels: { v: String(step) } } } : {}) }
      store.write(() => store.put(prepareObject(body, {}, (ns, n) => store.privateKey(ns, n)), 'apply'))
    }
    const got = reader.read()
    if (!reader.fullLastRead) incrementalReads++
    const fresh = new SnapshotReader(store).read()
    if (view(got) !== view(fresh)) {
      t.fail(`step ${step}: the incremental read differs from a full read`)
      return
    }
  }
  t.equal(incrementalReads, 299, 'every read after the first was incremental')
})
