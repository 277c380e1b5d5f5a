/**
 * What the store keeps for followers that read by version: changed rows, recorded deletes, and
 * statuses that never outlive their object.
 */
import t from 'tap'
import { openDatabase } from '../../src/store/database.js'
import { DELETIONS_KEPT, ObjectStore } from '../../src/store/object-store.js'
import { prepareObject } from '../../src/resources/kinds.js'

function ingress (name: string, host = `${name}.example.com`): unknown {
  return { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name }, spec: { rules: [{ host, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'web', port: { number: 80 } } } }] } }] } }
}

t.test('changedSince and deletedSince say what moved after a version', async t => {
  const db = openDatabase(':memory:')
  t.teardown(() => { db.close() })
  const store = new ObjectStore(db)
  const put = (name: string, host?: string): void => { store.write(() => store.put(prepareObject(ingress(name, host), {}, () => undefined), 'apply')) }
  put('a')
  put('b')
  const mark = store.resourceVersion()
  put('c')
  put('a', 'moved.example.com')
  store.write(() => store.delete('Ingress', 'default', 'b', { group: 'networking.k8s.io' }))
  t.same(store.changedSince(mark).map(o => o.meta.name), ['c', 'a'], 'oldest change first')
  t.same(store.deletedSince(mark)?.map(d => `${d.kind} ${d.namespace}/${d.name} @${d.resourceVersion}`), [`Ingress default/b @${store.resourceVersion()}`])
  t.same(store.deletedSince(store.resourceVersion()), [])
  t.equal(store.count('Ingress'), 2)
  t.equal(store.deletedSince(store.resourceVersion() - DELETIONS_KEPT - 1), undefined, 'too far back: the caller reads everything')
  const plan = db.prepare(`EXPLAIN QUERY PLAN SELECT kind FROM objects WHERE resource_version > ${mark}`).all() as { detail: string }[]
  t.match(plan.map(p => p.detail).join(' '), /objects_by_resource_version/, 'an index range, not a scan')
})

t.test('recorded deletes are pruned once far enough behind', async t => {
  const db = openDatabase(':memory:')
  t.teardown(() => { db.close() })
  const store = new ObjectStore(db)
  store.write(() => store.put(prepareObject(ingress('old'), {}, () => undefined), 'apply'))
  store.write(() => store.delete('Ingress', 'default', 'old', { group: 'networking.k8s.io' }))
  // Jump to just before a multiple of 1,000 far ahead, where a delete prunes.
  const target = Math.ceil((store.resourceVersion() + DELETIONS_KEPT + 10) / 1000) * 1000
  store.write(() => db.prepare('UPDATE store_state SET resource_version = ?').run(target - 2))
  store.write(() => store.put(prepareObject(ingress('new'), {}, () => undefined), 'apply'))
  store.write(() => store.delete('Ingress', 'default', 'new', { group: 'networking.k8s.io' }))
  t.equal(store.resourceVersion() % 1000, 0)
  t.same((db.prepare('SELECT name FROM object_deletions').all() as { name: string }[]).map(r => r.name), ['new'])
})

t.test('setStatuses never writes the status of an object deleted since; prune removes strays', async t => {
  const db = openDatabase(':memory:')
  t.teardown(() => { db.close() })
  const store = new ObjectStore(db)
  store.write(() => store.put(prepareObject(ingress('kept'), {}, () => undefined), 'apply'))
  store.write(() => store.put(prepareObject(ingress('gone'), {}, () => undefined), 'apply'))
  store.write(() => store.delete('Ingress', 'default', 'gone', { group: 'networking.k8s.io' }))
  // A report compiled before the delete arrives after it.
  store.setStatuses([
    { kind: 'Ingress', namespace: 'default', name: 'kept', status: { conditions: [] } },
    { kind: 'Ingress', namespace: 'default', name: 'gone', status: '{"conditions":[]}' }
  ], store.resourceVersion(), { prune: false })
  t.same(store.status('Ingress', 'default', 'kept'), { status: { conditions: [] }, observedVersion: store.resourceVersion() })
  t.equal(store.status('Ingress', 'default', 'gone'), undefined)

  db.prepare('INSERT INTO object_status (kind, namespace, name, status, observed_version) VALUES (\'Ingress\', \'default\', \'stray\', \'{}\', 1)').run()
  store.setStatuses([], store.resourceVersion(), { prune: false })
  t.equal((db.prepare('SELECT count(*) AS n FROM object_status').get() as { n: number }).n, 2, 'no prune: the stray stays')
  store.setStatuses([], store.resourceVersion())
  t.equal(store.status('Ingress', 'default', 'stray'), undefined, 'pruned')
  t.ok(store.status('Ingress', 'default', 'kept'))
})

t.test('a status write does not wait for its own fsync, and leaves the connection as it found it', async t => {
  const db = openDatabase(':memory:')
  t.teardown(() => { db.close() })
  const store = new ObjectStore(db)
  t.equal(db.pragma('synchronous', { simple: true }), 2, 'FULL, as openDatabase sets it')
  store.setStatuses([], 0)
  t.equal(db.pragma('synchronous', { simple: true }), 2, 'still FULL for the admin writes')
  // A write that fails (a status JSON cannot hold) restores it too.
  t.throws(() => { store.setStatuses([{ kind: 'Ingress', namespace: 'default', name: 'x', status: { n: 1n } }], 0) })
  t.equal(db.pragma('synchronous', { simple: true }), 2, 'FULL again after a failed write')
})
