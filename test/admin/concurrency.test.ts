/**
 * Another writer holding the store's lock: the admin API waits for it (the busy timeout) and
 * answers 201, or 503 STORE_BUSY past the timeout, never a 500.
 *
 * The lock is held from a worker thread. better-sqlite3 is synchronous: while a write waits on the
 * busy timeout, the gateway's event loop waits with it, so a holder on this thread could not let
 * go until the wait had timed out. A worker (like another process sharing the store) can.
 */
import t from 'tap'
import { createRequire } from 'node:module'
import { Worker } from 'node:worker_threads'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'

const ING = '/apis/networking.k8s.io/v1/namespaces/default/ingresses'
const BETTER_SQLITE3 = createRequire(import.meta.url).resolve('better-sqlite3')

// Opens the store, takes the write lock, says so, and lets go after `holdMs` or when told to.
const HOLDER = `
const { parentPort, workerData } = require('node:worker_threads')
const Database = require(workerData.module)
const db = new Database(workerData.file)
db.exec('BEGIN IMMEDIATE')
db.prepare("UPDATE store_state SET resource_version = resource_version WHERE id = 1").run()
parentPort.postMessage('locked')
const release = () => { if (db.inTransaction) { db.exec('COMMIT'); db.close(); parentPort.postMessage('released') } }
if (workerData.holdMs !== undefined) setTimeout(release, workerData.holdMs)
parentPort.on('message', m => { if (m === 'release') release() })
`

interface Holder {
  worker: Worker
  released: Promise<void>
  release: () => void
}

async function holdLock (t: { teardown: (fn: () => Promise<unknown>) => void }, file: string, holdMs?: number): Promise<Holder> {
  const worker = new Worker(HOLDER, { eval: true, workerData: { module: BETTER_SQLITE3, file, holdMs } })
  t.teardown(async () => worker.terminate())
  const released = new Promise<void>(resolve => worker.on('message', m => { if (m === 'released') resolve() }))
  await new Promise<void>((resolve, reject) => {
    worker.on('message', m => { if (m === 'locked') resolve() })
    worker.once('error', reject)
  })
  return { worker, released, release: () => worker.postMessage('release') }
}

function ingress (name: string): Record<string, unknown> {
  return { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name }, spec: { defaultBackend: { service: { name: 'web', port: { number: 80 } } } } }
}

async function listNames (gw: TestGateway): Promise<string[]> {
  return (await gw.api('GET', ING)).body.items.map((i: any) => i.metadata.name)
}

t.test('20 concurrent creates while another connection holds the write lock briefly: all 201', async t => {
  const gw = await startTestGateway(t)
  const holder = await holdLock(t, gw.db, 300)
  const names = Array.from({ length: 20 }, (_, i) => `queued-${i}`)
  const results = await Promise.all(names.map(async name => gw.api('POST', ING, ingress(name))))
  await holder.released
  t.same(results.map(r => r.status), names.map(() => 201), 'every create waited for the lock and succeeded')
  t.notOk(results.some(r => r.status >= 500), 'none is a 5xx')
  const versions = results.map(r => Number(r.body.metadata.resourceVersion))
  t.equal(new Set(versions).size, 20, 'each create got its own resourceVersion')
  t.same((await listNames(gw)).sort(), [...names].sort(), 'all 20 are stored')
  t.notOk(gw.logs.some(l => l.includes('SQLITE_BUSY')), 'no busy error was logged')
})

t.test('a lock held past the busy timeout answers 503 STORE_BUSY, and nothing is stored', async t => {
  const gw = await startTestGateway(t)
  const holder = await holdLock(t, gw.db)
  // The gateway runs on this thread: the longest gap between ticks shows how long its event loop
  // (admin and data plane alike) stood still while the write waited. Reported, not asserted.
  let last = Date.now()
  let longestStall = 0
  const ticker = setInterval(() => {
    const now = Date.now()
    longestStall = Math.max(longestStall, now - last)
    last = now
  }, 20)
  const started = Date.now()
  const res = await gw.api('POST', ING, ingress('too-late'))
  clearInterval(ticker)
  t.comment(`the refused write took ${Date.now() - started} ms; the event loop stood still for up to ${longestStall} ms`)
  holder.release()
  await holder.released
  t.equal(res.status, 503, res.text.slice(0, 300))
  t.match(res.body, { kind: 'Status', status: 'Failure', reason: 'ServiceUnavailable', code: 503, details: { errorCode: 'INGRESSD_ERR_STORE_BUSY' } })
  t.match(res.body.message, /busy/)
  t.same(await listNames(gw), [], 'the refused create stored nothing')
  const retry = await gw.api('POST', ING, ingress('too-late'))
  t.equal(retry.status, 201, 'a retry once the lock is gone succeeds')
})
