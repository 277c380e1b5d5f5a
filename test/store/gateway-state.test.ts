/**
 * Migration 0002 (gateway_state), its repository, and the generated default certificate kept in it.
 */
import { X509Certificate } from 'node:crypto'
import t from 'tap'
import { openDatabase } from '../../src/store/database.js'
import { applyMigrations } from '../../src/store/migrations.js'
import { GatewayState } from '../../src/store/gateway-state.js'
import { ensureDefaultCertificate, FAKE_CERTIFICATE_CN } from '../../src/dataplane/default-certificate.js'

t.test('0002 adds gateway_state to a store at version 1 and keeps its objects', async t => {
  const db = openDatabase(':memory:', { migrate: false })
  t.teardown(() => { db.close() })
  t.same(applyMigrations(db, { target: 1 }), ['0001-objects.sql'])
  db.prepare('INSERT INTO objects (kind, namespace, name, uid, resource_version, generation, created_at, content) VALUES (\'Service\', \'default\', \'web\', \'u1\', 1, 1, \'2030-01-01T00:00:00Z\', \'{}\')').run()
  db.prepare('UPDATE store_state SET resource_version = 1').run()
  t.same(applyMigrations(db, { target: 2 }), ['0002-gateway-state.sql'])
  t.equal(db.pragma('user_version', { simple: true }), 2)
  t.equal((db.prepare('SELECT count(*) AS n FROM objects').get() as { n: number }).n, 1, 'objects survive')
  t.equal((db.prepare('SELECT resource_version FROM store_state').get() as { resource_version: number }).resource_version, 1, 'and the resourceVersion')
  t.same(db.prepare('SELECT * FROM gateway_state').all(), [])
  t.same(applyMigrations(db, { target: 2 }), [], 'applying again does nothing')
})

t.test('0003 adds routing_version, starting at 0, and keeps the resourceVersion', async t => {
  const db = openDatabase(':memory:', { migrate: false })
  t.teardown(() => { db.close() })
  applyMigrations(db, { target: 2 })
  db.prepare('UPDATE store_state SET resource_version = 41').run()
  t.same(applyMigrations(db, { target: 3 }), ['0003-routing-version.sql'])
  t.same(db.prepare('SELECT resource_version, routing_version FROM store_state').get(), { resource_version: 41, routing_version: 0 })
})

t.test('GatewayState: first writer wins, compare-and-set replaces', async t => {
  const db = openDatabase(':memory:')
  t.teardown(() => { db.close() })
  const a = new GatewayState(db)
  const b = new GatewayState(db)
  t.equal(a.get('k'), undefined)
  t.same(a.setIfAbsent('k', { v: 1 }), { v: 1 })
  t.same(b.setIfAbsent('k', { v: 2 }), { v: 1 }, 'a second process gets the first one\'s value')
  t.same(b.replace('k', { v: 9 }, { v: 3 }), { v: 1 }, 'a stale expectation changes nothing')
  t.same(b.replace('k', { v: 1 }, { v: 3 }), { v: 3 })
  t.same(a.get('k'), { v: 3 })
})

t.test('the default certificate is generated once, kept, and renewed before it ends', async t => {
  const db = openDatabase(':memory:')
  t.teardown(() => { db.close() })
  const state = new GatewayState(db)
  const first = await ensureDefaultCertificate(state)
  const cert = new X509Certificate(first.cert)
  t.equal(cert.subject, `CN=${FAKE_CERTIFICATE_CN}`)
  t.equal(cert.subjectAltName, undefined, 'it names no host')
  t.ok(cert.checkPrivateKey((await import('node:crypto')).createPrivateKey(first.key)))
  t.same(await ensureDefaultCertificate(state), first, 'a later start reuses it')

  const nearEnd = new Date(new Date(cert.validTo).getTime() - 10 * 86_400_000)
  const renewed = await ensureDefaultCertificate(state, nearEnd)
  t.not(renewed.cert, first.cert, 'ten days before its end it is replaced')
  t.same(await ensureDefaultCertificate(state, nearEnd), renewed, 'and the replacement is kept')

  db.prepare('UPDATE gateway_state SET value = ?').run(JSON.stringify({ cert: 'garbage', key: 'garbage' }))
  const repaired = await ensureDefaultCertificate(state)
  t.equal(new X509Certificate(repaired.cert).subject, `CN=${FAKE_CERTIFICATE_CN}`, 'an unreadable stored one is replaced')
  db.prepare('UPDATE gateway_state SET value = ?').run(JSON.stringify({ cert: repaired.cert, key: first.key }))
  const matched = await ensureDefaultCertificate(state)
  t.not(matched.cert, repaired.cert, 'so is one whose key does not match')
  t.ok(new X509Certificate(matched.cert).checkPrivateKey((await import('node:crypto')).createPrivateKey(matched.key)))
})
