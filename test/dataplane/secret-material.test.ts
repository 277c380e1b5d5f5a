import t from 'tap'
import { prepareObject } from '../../src/resources/kinds.js'
import { generateSelfSigned } from '../../src/resources/tls-material.js'
import { SnapshotReader } from '../../src/dataplane/snapshot.js'
import { isTlsSecret, secretLookup, type SecretSnapshot } from '../../src/dataplane/secret-material.js'
import { openDatabase } from '../../src/store/database.js'
import { ObjectStore } from '../../src/store/object-store.js'
import type { Secret } from '../../src/resources/secret.js'

function openStore (t: { teardown: (fn: () => void) => void }): { store: ObjectStore, put: (obj: unknown) => void, del: (name: string, namespace?: string) => void } {
  const db = openDatabase(':memory:')
  t.teardown(() => { db.close() })
  const store = new ObjectStore(db)
  return {
    store,
    put: obj => { store.write(() => store.put(prepareObject(obj, {}, (ns, n) => store.privateKey(ns, n)), 'apply')) },
    del: (name, namespace = 'default') => { store.write(() => store.delete('Secret', namespace, name, { group: '' })) }
  }
}

function secret (name: string, body: Record<string, unknown>, namespace = 'default'): unknown {
  return { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace }, ...body }
}

const HTPASSWD = 'alice:$apr1$J1l2iFf7$yZ3T3VZsM8d8xNHNb6cYw1\n'

t.test('a lookup gives every value as text: TLS material with its key, write-only values of the other types', async t => {
  const { store, put } = openStore(t)
  const [pair, ca] = await Promise.all([
    generateSelfSigned({ commonName: 'a.example.com', dnsNames: ['a.example.com'], keyType: 'ec' }),
    generateSelfSigned({ commonName: 'Client CA', isCA: true, keyType: 'ec' })
  ])
  put(secret('tls', { type: 'kubernetes.io/tls', stringData: { 'tls.crt': pair.cert, 'tls.key': pair.key, 'ca.crt': ca.cert } }))
  put(secret('basic-auth', { type: 'Opaque', data: { auth: Buffer.from(HTPASSWD).toString('base64') } }))
  put(secret('users', { stringData: { alice: '{SHA}abc=', bob: '$apr1$x$y' } }, 'team'))
  put(secret('creds', { type: 'kubernetes.io/basic-auth', stringData: { username: 'admin', password: 'pässwörd' } }))
  put(secret('ca-secret', { stringData: { 'ca.crt': ca.cert } }))
  put(secret('empty', { type: 'Opaque' }))

  const read = new SnapshotReader(store).read()
  const lookup = secretLookup(read.snapshot)
  t.same(lookup('default', 'tls'), { type: 'kubernetes.io/tls', data: { 'tls.crt': pair.cert, 'ca.crt': ca.cert, 'tls.key': pair.key } })
  t.same(lookup('default', 'basic-auth'), { type: 'Opaque', data: { auth: HTPASSWD } })
  t.same(lookup('team', 'users'), { type: 'Opaque', data: { alice: '{SHA}abc=', bob: '$apr1$x$y' } })
  t.same(lookup('default', 'creds'), { type: 'kubernetes.io/basic-auth', data: { username: 'admin', password: 'pässwörd' } }, 'UTF-8 text')
  t.same(lookup('default', 'ca-secret'), { type: 'Opaque', data: { 'ca.crt': ca.cert } })
  t.same(lookup('default', 'empty'), { type: 'Opaque', data: {} })
  t.equal(lookup('default', 'missing'), undefined)
  t.equal(lookup('team', 'basic-auth'), undefined, 'another namespace is another Secret')
  t.ok(Object.isFrozen(lookup('default', 'creds')) && Object.isFrozen(lookup('default', 'creds')?.data), 'materials are shared, so frozen')

  t.same([...read.snapshot.privateKeys.keys()], ['default/tls'], 'the SNI compile sees TLS keys only')
  t.same([...read.snapshot.secretValues.keys()].sort(), ['default/basic-auth', 'default/ca-secret', 'default/creds', 'default/empty', 'team/users'])
  t.ok(read.snapshot.secrets.every(s => isTlsSecret(s) === (s.metadata.name === 'tls')))
})

t.test('a change to one Secret is seen after the next incremental read, and decodes that Secret only', async t => {
  const { store, put, del } = openStore(t)
  put(secret('auth', { type: 'Opaque', stringData: { auth: 'alice:one' } }))
  put(secret('other', { type: 'Opaque', stringData: { auth: 'bob:two' } }))
  const reader = new SnapshotReader(store)

  const first = reader.read()
  const lookup1 = secretLookup(first.snapshot)
  const auth1 = lookup1('default', 'auth')
  const other1 = lookup1('default', 'other')
  t.equal(auth1?.data.auth, 'alice:one')
  t.equal(lookup1('default', 'auth'), auth1, 'a second lookup gives the same object')

  const same = reader.read()
  t.equal(secretLookup(same.snapshot)('default', 'auth'), auth1, 'no change: the next snapshot gives the same object')

  put(secret('auth', { type: 'Opaque', stringData: { auth: 'alice:three', extra: 'x' } }))
  const second = reader.read()
  t.equal(reader.fullLastRead, false, 'an incremental read')
  t.equal(reader.parsedLastRead, 1)
  const lookup2 = secretLookup(second.snapshot)
  t.same(lookup2('default', 'auth'), { type: 'Opaque', data: { auth: 'alice:three', extra: 'x' } }, 'the new values')
  t.equal(lookup2('default', 'other'), other1, 'the unchanged Secret is not decoded again')
  t.equal(lookup1('default', 'auth'), auth1, 'the previous snapshot still gives the previous values')
  t.equal(first.snapshot.secretValues.get('default/auth'), JSON.stringify({ auth: Buffer.from('alice:one').toString('base64') }), 'the previous snapshot\'s map is untouched')

  put(secret('auth', { type: 'Opaque', metadata: { name: 'auth', labels: { a: 'b' } } }))
  const labelled = reader.read()
  t.same(secretLookup(labelled.snapshot)('default', 'auth')?.data, { auth: 'alice:three', extra: 'x' }, 'a metadata-only write keeps the values')

  // Deleted and created again with another type between two reads: the material moves between the maps.
  const pair = await generateSelfSigned({ commonName: 'auth.example.com', dnsNames: ['auth.example.com'], keyType: 'ec' })
  del('auth')
  put(secret('auth', { type: 'kubernetes.io/tls', stringData: { 'tls.crt': pair.cert, 'tls.key': pair.key } }))
  const retyped = reader.read()
  t.equal(reader.fullLastRead, false)
  t.same(secretLookup(retyped.snapshot)('default', 'auth'), { type: 'kubernetes.io/tls', data: { 'tls.crt': pair.cert, 'tls.key': pair.key } })
  t.equal(retyped.snapshot.secretValues.has('default/auth'), false)
  t.equal(retyped.snapshot.privateKeys.get('default/auth'), pair.key)

  del('auth')
  put(secret('auth', { type: 'kubernetes.io/basic-auth', stringData: { username: 'u' } }))
  const back = reader.read()
  t.same(secretLookup(back.snapshot)('default', 'auth'), { type: 'kubernetes.io/basic-auth', data: { username: 'u' } })
  t.equal(back.snapshot.privateKeys.has('default/auth'), false)

  del('other')
  const gone = reader.read()
  t.equal(secretLookup(gone.snapshot)('default', 'other'), undefined, 'a deleted Secret is gone')
  t.equal(gone.snapshot.secretValues.has('default/other'), false)
})

t.test('the lookup is lazy and keeps its index per Secret list', async t => {
  const secrets: Secret[] = [
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'a', namespace: 'default' } as Secret['metadata'], type: 'Opaque', data: {} }
  ]
  let reads = 0
  const values = new Map([['default/a', JSON.stringify({ k: Buffer.from('v1').toString('base64') })]])
  const snapshot: SecretSnapshot = {
    get secrets () { reads++; return secrets },
    privateKeys: new Map(),
    secretValues: values
  }
  const lookup = secretLookup(snapshot)
  t.equal(reads, 0, 'nothing is read before the first lookup')
  t.same(lookup('default', 'a')?.data, { k: 'v1' })
  lookup('default', 'a')
  t.equal(reads, 1, 'the index is built once per lookup function')
  // The same Secret object with other write-only text (a hand-built snapshot) is decoded again.
  values.set('default/a', JSON.stringify({ k: Buffer.from('v2').toString('base64') }))
  t.same(lookup('default', 'a')?.data, { k: 'v2' })
  values.set('default/a', 'not json')
  t.same(lookup('default', 'a')?.data, {}, 'unreadable text gives no values rather than an exception')
})

t.test('random creates, updates, deletes and re-creates with another type: every incremental read looks up as a fresh full read does', async t => {
  const { store, put, del } = openStore(t)
  const pem = await generateSelfSigned({ commonName: 's.example.com', dnsNames: ['s.example.com'], keyType: 'ec' })
  let state = 7
  const random = (n: number): number => {
    state = (state * 1103515245 + 12345) & 0x7fffffff
    return state % n
  }
  const names: Array<[string, string]> = []
  for (const ns of ['default', 'team']) for (let i = 0; i < 8; i++) names.push([ns, `s-${i}`])
  const reader = new SnapshotReader(store)
  const view = (snapshot: SecretSnapshot): string => {
    const lookup = secretLookup(snapshot)
    return JSON.stringify(names.map(([ns, n]) => lookup(ns, n) ?? null))
  }
  let incremental = 0
  for (let step = 0; step < 200; step++) {
    for (let c = 1 + random(3); c > 0; c--) {
      const [namespace, name] = names[random(names.length)] as [string, string]
      const existing = store.get('Secret', namespace, name)
      if (existing !== undefined && random(3) === 0) {
        del(name, namespace)
        continue
      }
      const type = existing === undefined ? (['Opaque', 'kubernetes.io/basic-auth', 'kubernetes.io/tls'] as const)[random(3)] : existing.content.type
      const body = type === 'kubernetes.io/tls'
        ? { type, stringData: { 'tls.crt': pem.cert, 'tls.key': pem.key } }
        : existing !== undefined && random(4) === 0
          ? { type, metadata: { name, namespace, labels: { step: String(step) } } }
          : { type, stringData: { username: `u${random(5)}`, [`k${random(3)}`]: `v${step}` } }
      put(secret(name, body, namespace))
    }
    const got = reader.read()
    if (!reader.fullLastRead) incremental++
    const fresh = new SnapshotReader(store).read()
    if (view(got.snapshot) !== view(fresh.snapshot)) {
      t.fail(`step ${step}: the incremental read looks up other values than a full read`)
      return
    }
    t.same([...got.snapshot.secretValues].sort(), [...fresh.snapshot.secretValues].sort(), `step ${step}: secretValues`)
    t.same([...got.snapshot.privateKeys].sort(), [...fresh.snapshot.privateKeys].sort(), `step ${step}: privateKeys`)
  }
  t.equal(incremental, 199, 'every read after the first was incremental')
})
