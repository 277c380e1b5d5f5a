/**
 * The writer that test/store/crash-loop.test.ts bundles with esbuild and kills with SIGKILL, a
 * thousand times: a plain `node` process that writes to the store through the project's own code
 * (openDatabase, prepareObject, ObjectStore.write/put), exactly as the admin API does for a
 * create and for POST /apply, without the cost of starting the whole gateway.
 *
 * Usage: node crash-writer.mjs <db file> <migrations folder>, with CRASH_ORIGIN_PORT set to the
 * port of the origin every route points at. It loops forever: an even seq is a single create
 * (Ingress `w-<seq>`), an odd seq a 3-object apply (Service, Endpoints and Ingress `b-<seq>`, all
 * labelled batch=<seq>) in one store.write. After each commit it prints `ack single|apply <seq> <rv>`.
 */
import { writeSync } from 'node:fs'
import { openDatabase } from '../../src/store/database.js'
import { applyMigrations } from '../../src/store/migrations.js'
import { ObjectStore } from '../../src/store/object-store.js'
import { prepareObject } from '../../src/resources/kinds.js'

const [dbPath, migrationsDir] = process.argv.slice(2)
const originPort = Number(process.env.CRASH_ORIGIN_PORT)
if (dbPath === undefined || migrationsDir === undefined || !Number.isInteger(originPort) || originPort <= 0) {
  process.stderr.write('usage: CRASH_ORIGIN_PORT=<port> node crash-writer.mjs <db> <migrations dir>\n')
  process.exit(2)
}

function ingress (name: string, service: string, labels?: Record<string, string>): Record<string, unknown> {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name, ...(labels === undefined ? {} : { labels }) },
    spec: { rules: [{ host: `${name}.crash.test`, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: service, port: { number: 8080 } } } }] } }] }
  }
}

function serviceAndEndpoints (name: string, labels?: Record<string, string>): Record<string, unknown>[] {
  const metadata = { name, ...(labels === undefined ? {} : { labels }) }
  return [
    { apiVersion: 'v1', kind: 'Service', metadata, spec: { ports: [{ name: 'http', port: 8080, targetPort: 'http' }] } },
    { apiVersion: 'v1', kind: 'Endpoints', metadata, subsets: [{ addresses: [{ ip: '127.0.0.1' }], ports: [{ name: 'http', port: originPort }] }] }
  ]
}

const db = openDatabase(dbPath, { migrate: false })
applyMigrations(db, { dir: migrationsDir })
const store = new ObjectStore(db)

/** POST /apply's path: every object prepared, then put, inside one IMMEDIATE transaction. */
function apply (docs: unknown[]): number {
  return store.write(() => {
    const prepared = docs.map(doc => prepareObject(doc, { namespace: 'default' }, (ns, name) => store.privateKey(ns, name)))
    let rv = 0
    for (const obj of prepared) rv = Math.max(rv, Number(store.put(obj, 'apply').object.meta.resourceVersion))
    return rv
  })
}

/** A create's path (POST .../ingresses): one object, mode create. */
function create (doc: unknown): number {
  return store.write(() => {
    const obj = prepareObject(doc, { namespace: 'default' }, (ns, name) => store.privateKey(ns, name))
    return Number(store.put(obj, 'create').object.meta.resourceVersion)
  })
}

/**
 * Written synchronously, so the line is out before the next write starts. stdout is a
 * non-blocking pipe: when the test is slow to read it (a loaded machine), EAGAIN means try again.
 */
function say (line: string): void {
  let buf = Buffer.from(line)
  while (buf.length > 0) {
    try {
      buf = buf.subarray(writeSync(1, buf))
    } catch (err) {
      if ((err as { code?: string }).code !== 'EAGAIN') throw err
    }
  }
}

function ack (kind: string, seq: number, rv: number): void {
  say(`ack ${kind} ${seq} ${rv}\n`)
}

// The Service every single create routes to; its port follows the origin of this run.
apply(serviceAndEndpoints('origin'))
const highest = db.prepare<[], { seq: number | null }>('SELECT max(CAST(substr(name, 3) AS INTEGER)) AS seq FROM objects WHERE kind = \'Ingress\' AND (name GLOB \'w-*\' OR name GLOB \'b-*\')').get()?.seq ?? -1
say(`start ${highest}\n`)
for (let seq = highest + 1; ; seq++) {
  if (seq % 2 === 0) {
    ack('single', seq, create(ingress(`w-${seq}`, 'origin')))
  } else {
    const name = `b-${seq}`
    const labels = { batch: String(seq) }
    ack('apply', seq, apply([...serviceAndEndpoints(name, labels), ingress(name, name, labels)]))
  }
}
