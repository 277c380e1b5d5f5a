import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { Agent, request } from 'undici'
import { startChildGateway, type ChildGateway } from '../helpers/child-gateway.js'

const CYCLES = 8
const WRITERS = 4
const ING = '/apis/networking.k8s.io/v1/namespaces/default/ingresses'

function ingress (name: string, labels?: Record<string, string>): Record<string, unknown> {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name, ...(labels === undefined ? {} : { labels }) },
    spec: { rules: [{ host: `${name}.example.com`, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name, port: { number: 80 } } } }] } }] }
  }
}

/** Three objects that belong together: the apply of one is the apply of all. */
function bundle (batch: number): Record<string, unknown>[] {
  const name = `batch-${batch}`
  const labels = { batch: String(batch) }
  return [
    { apiVersion: 'v1', kind: 'Service', metadata: { name, labels }, spec: { ports: [{ port: 80, targetPort: 8080 }] } },
    { apiVersion: 'v1', kind: 'Endpoints', metadata: { name, labels }, subsets: [{ addresses: [{ ip: '127.0.0.1' }], ports: [{ port: 8080 }] }] },
    ingress(name, labels)
  ]
}

interface Ledger {
  next: number
  /** Ingress names whose create was answered 201. */
  singles: string[]
  /** Batches whose /apply was answered 200. */
  batches: number[]
  /** Every batch ever sent, answered or not. */
  sentBatches: number[]
  /** The highest resourceVersion any answer carried. */
  maxVersion: number
  /** Answers that were neither a success nor a dropped connection. */
  unexpected: string[]
  /** Requests cut off by the kill. */
  cut: number
}

/** Writes until the connection breaks: single creates and 3-object bundles, alternately. */
async function writer (base: string, dispatcher: Agent, ledger: Ledger): Promise<void> {
  for (;;) {
    const n = ledger.next++
    const single = n % 2 === 0
    if (!single) ledger.sentBatches.push(n)
    let status: number
    let text: string
    try {
      const res = await request(`${base}${single ? ING : '/apply'}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(single ? ingress(`single-${n}`) : bundle(n)),
        dispatcher
      })
      status = res.statusCode
      text = await res.body.text()
    } catch {
      ledger.cut++
      return
    }
    const body = JSON.parse(text)
    if (single && status === 201) {
      ledger.singles.push(`single-${n}`)
      ledger.maxVersion = Math.max(ledger.maxVersion, Number(body.metadata.resourceVersion))
    } else if (!single && status === 200) {
      ledger.batches.push(n)
      for (const item of body.items) ledger.maxVersion = Math.max(ledger.maxVersion, Number(item.resourceVersion))
    } else {
      ledger.unexpected.push(`${status} ${text.slice(0, 200)}`)
    }
  }
}

async function getJson (base: string, path: string): Promise<any> {
  const res = await request(`${base}${path}`)
  const text = await res.body.text()
  if (res.statusCode !== 200) throw new Error(`GET ${path}: ${res.statusCode} ${text}`)
  return JSON.parse(text)
}

/** What a restarted gateway serves: ingress names, objects per batch label, and the store's version. */
async function survey (gw: ChildGateway): Promise<{ ingresses: Set<string>, perBatch: Map<string, string[]>, version: number }> {
  const perBatch = new Map<string, string[]>()
  let ingresses = new Set<string>()
  let version = 0
  for (const path of ['/apis/networking.k8s.io/v1/ingresses', '/api/v1/services', '/api/v1/endpoints']) {
    const list = await getJson(gw.admin, path)
    version = Math.max(version, Number(list.metadata.resourceVersion))
    if (list.kind === 'IngressList') ingresses = new Set(list.items.map((i: any) => i.metadata.name))
    for (const item of list.items) {
      const batch = item.metadata.labels?.batch
      if (batch !== undefined) perBatch.set(batch, [...(perBatch.get(batch) ?? []), `${item.kind}/${item.metadata.name}`])
    }
  }
  return { ingresses, perBatch, version }
}

function integrity (db: string): { check: string, rows: number } {
  const conn = new Database(db, { readonly: true, fileMustExist: true })
  try {
    const check = conn.pragma('integrity_check', { simple: true }) as string
    const rows = (conn.prepare('SELECT count(*) AS n FROM objects').get() as { n: number }).n
    return { check, rows }
  } finally {
    conn.close()
  }
}

t.test('SIGKILL while writes are in flight loses no acknowledged write and never half a bundle', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'ingressd-crash-'))
  const db = join(dir, 'ingressd.db')
  const env = { INGRESSD_DB: db, INGRESSD_ADMIN_ADDR: '127.0.0.1:0', INGRESSD_HTTP_ADDR: '127.0.0.1:0', INGRESSD_HTTPS_ADDR: '127.0.0.1:0' }
  let current: ChildGateway | undefined
  t.teardown(async () => {
    if (current !== undefined && current.child.exitCode === null && current.child.signalCode === null) {
      current.child.kill('SIGKILL')
      await current.exited
    }
    rmSync(dir, { recursive: true, force: true })
  })
  const ledger: Ledger = { next: 0, singles: [], batches: [], sentBatches: [], maxVersion: 0, unexpected: [], cut: 0 }

  const verify = async (gw: ChildGateway, after: string): Promise<void> => {
    const seen = await survey(gw)
    const missing = ledger.singles.filter(n => !seen.ingresses.has(n))
    t.same(missing, [], `${after}: every acknowledged create is there (${ledger.singles.length})`)
    const lostBatches = ledger.batches.filter(b => seen.perBatch.get(String(b))?.length !== 3)
    t.same(lostBatches, [], `${after}: every acknowledged bundle is there whole (${ledger.batches.length})`)
    const partial = [...seen.perBatch].filter(([, objs]) => objs.length !== 3)
    t.same(partial, [], `${after}: every batch label has 0 or 3 objects (${seen.perBatch.size} batches stored of ${ledger.sentBatches.length} sent)`)
    t.ok(seen.version >= ledger.maxVersion, `${after}: the store's resourceVersion (${seen.version}) did not go back (highest acknowledged ${ledger.maxVersion})`)
  }

  for (let cycle = 1; cycle <= CYCLES; cycle++) {
    const gw = await startChildGateway(env)
    current = gw
    if (cycle > 1) await verify(gw, `restart ${cycle - 1}`)
    const before = { singles: ledger.singles.length, batches: ledger.batches.length, cut: ledger.cut }
    const dispatcher = new Agent({ connections: WRITERS })
    const writers = Array.from({ length: WRITERS }, async () => writer(gw.admin, dispatcher, ledger))
    const delay = 50 + Math.floor(Math.random() * 351)
    await new Promise(resolve => setTimeout(resolve, delay))
    gw.child.kill('SIGKILL')
    const { signal } = await gw.exited
    t.equal(signal, 'SIGKILL', `cycle ${cycle}: the gateway was killed, not stopped`)
    await Promise.all(writers)
    await dispatcher.destroy()
    const { check, rows } = integrity(db)
    t.equal(check, 'ok', `cycle ${cycle}: PRAGMA integrity_check`)
    t.comment(`cycle ${cycle}: killed after ${delay} ms; acknowledged ${ledger.singles.length - before.singles} creates and ${ledger.batches.length - before.batches} bundles, ${ledger.cut - before.cut} requests cut off; ${rows} rows stored`)
  }

  const last = await startChildGateway(env)
  current = last
  await verify(last, `restart ${CYCLES}`)
  t.same(ledger.unexpected, [], 'every answer was a success')
  t.ok(ledger.singles.length > 0 && ledger.batches.length > 0, 'writes were acknowledged')
  t.comment(`total: ${ledger.singles.length} creates and ${ledger.batches.length} bundles acknowledged, ${ledger.cut} requests cut off by ${CYCLES} kills`)
  last.child.kill('SIGTERM')
  t.equal((await last.exited).code, 0)
})
