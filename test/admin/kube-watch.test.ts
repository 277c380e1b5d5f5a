/**
 * Watch streams as kubectl and client-go read them, over real HTTP from a Fastify route on a
 * real store (a SQLite file): the initial state then changes, resuming from a version, 410 for
 * one too old, selectors, deletions, Table events, bookmarks, timeouts, idle connections, and a
 * watch that fails or whose client leaves without taking anything else down.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { type FastifyInstance, type FastifyServerFactory } from 'fastify'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { parseFieldSelector } from '../../src/admin/kube/field-selector.js'
import { parseIncludeObject, wantsTable } from '../../src/admin/kube/table.js'
import { isWatchRequest, serveWatch, WatchHub, type WatchHubOptions } from '../../src/admin/kube/watch.js'
import { objectStatus } from '../../src/admin/object-status.js'
import { IngressdError, toStatus } from '../../src/errors.js'
import { kindDefinition, prepareObject, presentObject } from '../../src/resources/kinds.js'
import { parseLabelSelector } from '../../src/resources/label-selector.js'
import { openDatabase } from '../../src/store/database.js'
import { DELETIONS_KEPT, ObjectStore, type StoredObject } from '../../src/store/object-store.js'

const KUBECTL_ACCEPT = 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json'
const INGRESS = kindDefinition('Ingress')

interface Env {
  app: FastifyInstance
  store: ObjectStore
  hub: WatchHub
  base: string
  server: Server
  /** Open store commit listeners (ObjectStore.onCommit subscriptions not yet undone). */
  listeners: () => number
  put: (name: string, opts?: { namespace?: string, labels?: Record<string, string>, host?: string }) => number
  remove: (name: string, namespace?: string) => number
}

interface Event {
  type: string
  object: any
}

interface Stream {
  status: number
  headers: Record<string, string | string[] | undefined>
  next: (timeoutMs?: number) => Promise<Event>
  /** Resolves when the server ends the stream. */
  ended: (timeoutMs?: number) => Promise<void>
  /** Asserts that nothing arrives for `ms`. */
  quiet: (ms: number) => Promise<boolean>
  close: () => void
}

async function setup (t: Test, opts: { hub?: WatchHubOptions, serverFactory?: FastifyServerFactory } = {}): Promise<Env> {
  const dir = mkdtempSync(join(tmpdir(), 'ingressd-watch-'))
  const db = openDatabase(join(dir, 'store.db'))
  const store = new ObjectStore(db)
  let open = 0
  const onCommit = store.onCommit.bind(store)
  store.onCommit = (listener) => {
    open++
    const off = onCommit(listener)
    let done = false
    return () => {
      if (!done) open--
      done = true
      off()
    }
  }
  const hub = new WatchHub(store, opts.hub)
  const app: FastifyInstance = Fastify({ logger: false, ...(opts.serverFactory === undefined ? {} : { serverFactory: opts.serverFactory }) }) as unknown as FastifyInstance
  app.setErrorHandler((error, _req, reply) => {
    const err = error instanceof IngressdError ? error : new IngressdError('INGRESSD_ERR_INTERNAL', 'internal error')
    reply.code(err.status).type('application/json').send(toStatus(err))
  })
  const present = (obj: StoredObject): Record<string, unknown> => presentObject(INGRESS, 'networking.k8s.io/v1', obj.meta, obj.content, objectStatus(store, obj))
  const exploding = (obj: StoredObject): Record<string, unknown> => {
    if (obj.meta.name === 'boom') throw new Error('presenter exploded')
    return present(obj)
  }
  const route = (namespaced: boolean, presenter: typeof present) => async (req: any, reply: any) => {
    const q = req.query as Record<string, string | undefined>
    if (!isWatchRequest(q)) return { kind: 'IngressList' }
    const labelSelector = q.labelSelector === undefined || q.labelSelector === '' ? undefined : parseLabelSelector(q.labelSelector)
    const fieldSelector = q.fieldSelector === undefined || q.fieldSelector === '' ? undefined : parseFieldSelector(q.fieldSelector)
    const tableVersion = wantsTable(req.headers.accept)
    return serveWatch(req, reply, {
      store,
      hub,
      kind: 'Ingress',
      apiVersion: 'networking.k8s.io/v1',
      present: presenter,
      ...(namespaced ? { namespace: req.params.namespace } : {}),
      labelSelector,
      fieldSelector,
      ...(tableVersion === undefined ? {} : { table: { tableVersion, includeObject: parseIncludeObject(q.includeObject) } })
    })
  }
  app.get('/apis/networking.k8s.io/v1/namespaces/:namespace/ingresses', route(true, present))
  app.get('/apis/networking.k8s.io/v1/ingresses', route(false, present))
  app.get('/exploding/:namespace', route(true, exploding))
  app.get('/slow', async () => {
    await sleep(1500)
    return { ok: true }
  })
  // What the admin app does: a stop ends the open watches, or server.close() would wait on them.
  app.addHook('preClose', async () => { hub.close() })
  let closed = false
  app.addHook('onClose', async () => { closed = true })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  t.teardown(async () => {
    hub.close()
    if (!closed) {
      app.server.closeAllConnections()
      await app.close()
    }
    db.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const put: Env['put'] = (name, o = {}) => {
    const doc = {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Ingress',
      metadata: { name, namespace: o.namespace ?? 'default', ...(o.labels === undefined ? {} : { labels: o.labels }) },
      spec: { rules: [{ host: o.host ?? `${name}.example.com`, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'web', port: { number: 80 } } } }] } }] }
    }
    const { object } = store.write(() => store.put(prepareObject(doc, {}, () => undefined), 'apply'))
    return Number(object.meta.resourceVersion)
  }
  const remove: Env['remove'] = (name, namespace = 'default') => {
    store.write(() => store.delete('Ingress', namespace, name, { group: 'networking.k8s.io' }))
    return store.resourceVersion()
  }
  return { app, store, hub, base: `http://127.0.0.1:${port}`, server: app.server, listeners: () => open, put, remove }
}

async function watch (url: string, headers: Record<string, string> = {}): Promise<Stream> {
  const res = await request(url, { headers })
  const queue: Event[] = []
  let buffer = ''
  let done = false
  let wake: (() => void) | undefined
  res.body.setEncoding('utf8')
  res.body.on('data', (chunk: string) => {
    buffer += chunk
    let nl: number
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl)
      buffer = buffer.slice(nl + 1)
      if (line.trim() !== '') queue.push(JSON.parse(line))
    }
    wake?.()
  })
  const finish = (): void => {
    done = true
    wake?.()
  }
  res.body.on('end', finish)
  res.body.on('error', finish)
  res.body.on('close', finish)
  const waitFor = async (ready: () => boolean, timeoutMs: number): Promise<boolean> => {
    const deadline = Date.now() + timeoutMs
    while (!ready()) {
      const left = deadline - Date.now()
      if (left <= 0) return false
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, left)
        wake = () => {
          clearTimeout(timer)
          resolve()
        }
      })
    }
    return true
  }
  return {
    status: res.statusCode,
    headers: res.headers,
    next: async (timeoutMs = 3000) => {
      if (!await waitFor(() => queue.length > 0 || done, timeoutMs) || queue.length === 0) throw new Error(done ? 'the stream ended' : `no event within ${timeoutMs} ms`)
      return queue.shift() as Event
    },
    ended: async (timeoutMs = 3000) => {
      if (!await waitFor(() => done, timeoutMs)) throw new Error(`the stream did not end within ${timeoutMs} ms`)
    },
    quiet: async (ms) => !await waitFor(() => queue.length > 0, ms),
    close: () => { res.body.destroy() }
  }
}

async function until (check: () => boolean, timeoutMs = 3000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) return false
    await sleep(10)
  }
  return true
}

const NS = '/apis/networking.k8s.io/v1/namespaces/default/ingresses'
const summary = (e: Event): string => `${e.type} ${e.object?.metadata?.name ?? ''}`

t.test('without a resourceVersion: every current object ADDED, then the changes in order', async t => {
  const env = await setup(t)
  env.put('b')
  env.put('a')
  env.put('elsewhere', { namespace: 'other' })
  const w = await watch(`${env.base}${NS}?watch=true`)
  t.equal(w.status, 200)
  t.equal(w.headers['content-type'], 'application/json')
  t.equal(w.headers['transfer-encoding'], 'chunked')
  t.same([summary(await w.next()), summary(await w.next())], ['ADDED a', 'ADDED b'], 'the initial state, in key order, only in the namespace asked')
  const rvC = env.put('c')
  const added = await w.next()
  t.equal(summary(added), 'ADDED c')
  t.equal(added.object.metadata.resourceVersion, String(rvC))
  t.match(added.object, { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', status: { conditions: Array } }, 'the object as a GET presents it')
  env.put('a', { host: 'moved.example.com' })
  const modified = await w.next()
  t.equal(summary(modified), 'MODIFIED a')
  t.equal(modified.object.spec.rules[0].host, 'moved.example.com')
  t.equal(modified.object.metadata.generation, 2)
  env.put('other-ns', { namespace: 'other' })
  const rvDelete = env.remove('b')
  const deleted = await w.next()
  t.equal(summary(deleted), 'DELETED b', 'nothing from the other namespace came before')
  t.equal(deleted.object.metadata.resourceVersion, String(rvDelete), 'at the deletion\'s version')
  t.equal(deleted.object.spec.rules[0].host, 'b.example.com', 'with its last state')
  w.close()

  const zero = await watch(`${env.base}${NS}?watch=1&resourceVersion=0`)
  t.same([summary(await zero.next()), summary(await zero.next())], ['ADDED a', 'ADDED c'], 'resourceVersion=0 starts the same way (what kubectl get -w asks)')
  zero.close()

  const all = await watch(`${env.base}/apis/networking.k8s.io/v1/ingresses?watch=true`)
  const keys: string[] = []
  for (let i = 0; i < 4; i++) {
    const e = await all.next()
    keys.push(`${e.type} ${e.object.metadata.namespace}/${e.object.metadata.name}`)
  }
  t.same(keys, ['ADDED default/a', 'ADDED default/c', 'ADDED other/elsewhere', 'ADDED other/other-ns'], 'every namespace, in key order')
  all.close()
})

t.test('from a resourceVersion: only what changed after it, then live changes', async t => {
  const env = await setup(t)
  env.put('a')
  env.put('c')
  const mark = env.put('unchanged')
  env.put('a', { host: 'a2.example.com' })
  env.put('d')
  env.remove('c')
  const rvC = env.store.resourceVersion()
  env.put('f')
  const rvF = env.remove('f')
  const w = await watch(`${env.base}${NS}?watch=true&resourceVersion=${mark}`)
  const events = [await w.next(), await w.next(), await w.next(), await w.next()]
  t.same(events.map(summary), ['MODIFIED a', 'ADDED d', 'DELETED c', 'DELETED f'], 'version order; nothing about the unchanged one')
  t.equal(events[0]?.object.spec.rules[0].host, 'a2.example.com', 'the current state')
  // Deleted before the watch opened: the store keeps the name and version of a deletion, not the object.
  t.same(events[2]?.object, { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'c', namespace: 'default', resourceVersion: String(rvC) } }, 'a deletion since the version, as a stub')
  t.same(events[3]?.object, { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'f', namespace: 'default', resourceVersion: String(rvF) } }, 'one created and deleted since: a deletion the client drops')
  t.ok(await w.quiet(100), 'nothing else')
  env.put('e')
  t.equal(summary(await w.next()), 'ADDED e')
  env.remove('unchanged')
  const gone = await w.next()
  t.equal(summary(gone), 'DELETED unchanged')
  t.equal(gone.object.spec.rules[0].host, 'unchanged.example.com', 'seeded from the store at the start: its last state')
  env.remove('d')
  t.equal(summary(await w.next()), 'DELETED d')
  w.close()

  const current = env.store.resourceVersion()
  const future = await watch(`${env.base}${NS}?watch=true&resourceVersion=${current}`)
  t.ok(await future.quiet(100), 'from the current version: nothing until something changes (and the headers came at once)')
  env.put('g')
  t.equal(summary(await future.next()), 'ADDED g')
  future.close()
})

t.test('a resourceVersion older than the store keeps: an ERROR event with 410 Expired, as the watch cache sends it', async t => {
  const env = await setup(t)
  env.put('a')
  // The store keeps DELETIONS_KEPT versions of deletions; jump ahead instead of writing 100,000 times.
  env.store.write(() => env.store.db.prepare('UPDATE store_state SET resource_version = resource_version + ?').run(DELETIONS_KEPT + 10))
  const current = env.store.resourceVersion()
  const w = await watch(`${env.base}${NS}?watch=true&resourceVersion=1`)
  t.equal(w.status, 200, 'the stream starts: the error is its one event')
  const event = await w.next()
  t.same(event, { type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `too old resource version: 1 (${current - DELETIONS_KEPT})`, reason: 'Expired', code: 410 } })
  await w.ended()
  t.ok(await until(() => env.hub.size === 0), 'nothing left open')

  const table = await watch(`${env.base}${NS}?watch=true&resourceVersion=2`, { accept: KUBECTL_ACCEPT })
  t.match(await table.next(), { type: 'ERROR', object: { kind: 'Status', code: 410 } }, 'a Status stays a Status in a Table watch')
  await table.ended()
})

t.test('label and field selectors: objects entering and leaving the selection', async t => {
  const env = await setup(t)
  const w = await watch(`${env.base}${NS}?watch=true&labelSelector=${encodeURIComponent('app=web')}`)
  env.put('x', { labels: { app: 'web' } })
  t.equal(summary(await w.next()), 'ADDED x')
  env.put('y', { labels: { app: 'db' } })
  env.put('x', { labels: { app: 'db' } })
  const left = await w.next()
  t.equal(summary(left), 'DELETED x', 'y never matched; x stopped matching')
  t.same(left.object.metadata.labels, { app: 'web' }, 'the last state the watch sent')
  env.put('y', { labels: { app: 'web' } })
  t.equal(summary(await w.next()), 'ADDED y', 'relabelled into the selection')
  env.put('y', { labels: { app: 'web' }, host: 'y2.example.com' })
  t.equal(summary(await w.next()), 'MODIFIED y')
  env.remove('x')
  env.remove('y')
  t.equal(summary(await w.next()), 'DELETED y', 'x was no longer in view')
  w.close()

  env.put('p')
  env.put('q')
  const named = await watch(`${env.base}${NS}?watch=true&fieldSelector=${encodeURIComponent('metadata.name=q')}`)
  t.equal(summary(await named.next()), 'ADDED q')
  env.put('p', { host: 'p2.example.com' })
  env.put('q', { host: 'q2.example.com' })
  t.equal(summary(await named.next()), 'MODIFIED q', 'kubectl get ingress q -w')
  named.close()

  const bad = await request(`${env.base}${NS}?watch=true&fieldSelector=${encodeURIComponent('spec.rules=x')}`)
  t.equal(bad.statusCode, 400)
  t.match(await bad.body.json(), { kind: 'Status', code: 400, message: /"spec\.rules" is not a known field selector/ })
  const badLabels = await request(`${env.base}${NS}?watch=true&labelSelector=${encodeURIComponent('a in b')}`)
  t.equal(badLabels.statusCode, 400)
  await badLabels.body.dump()
  for (const query of ['resourceVersion=abc', 'timeoutSeconds=-1', 'allowWatchBookmarks=maybe']) {
    const res = await request(`${env.base}${NS}?watch=true&${query}`)
    t.equal(res.statusCode, 400, query)
    t.match(await res.body.json(), { kind: 'Status', reason: 'BadRequest' })
  }
  t.equal(env.hub.size, 0, 'refused before any watch opened')
})

t.test('Table watches: a one-row Table per event, column definitions on the first only', async t => {
  const env = await setup(t)
  env.put('a', { labels: { app: 'shop' } })
  const w = await watch(`${env.base}${NS}?watch=true`, { accept: KUBECTL_ACCEPT })
  const first = await w.next()
  t.equal(first.type, 'ADDED')
  t.match(first.object, { kind: 'Table', apiVersion: 'meta.k8s.io/v1', metadata: { resourceVersion: /^\d+$/ } })
  t.same(first.object.columnDefinitions.map((c: { name: string }) => c.name), ['Name', 'Class', 'Hosts', 'Address', 'Ports', 'Age'])
  t.same(first.object.rows[0].cells, ['a', '<none>', 'a.example.com', '', '80', '0s'])
  t.match(first.object.rows[0].object, { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: { name: 'a', namespace: 'default', labels: { app: 'shop' } } })
  env.put('b')
  const second = await w.next()
  t.equal(second.object.columnDefinitions, null, 'kubectl keeps the columns it has')
  t.equal(second.object.rows[0].cells[0], 'b')
  t.equal(second.object.metadata.resourceVersion, second.object.rows[0].object.metadata.resourceVersion, 'the Table at its object\'s version')
  env.remove('a')
  const deleted = await w.next()
  t.equal(deleted.type, 'DELETED')
  t.equal(deleted.object.rows[0].cells[0], 'a')
  w.close()

  const full = await watch(`${env.base}${NS}?watch=true&includeObject=Object`, { accept: 'application/json;as=Table;v=v1beta1;g=meta.k8s.io' })
  const event = await full.next()
  t.equal(event.object.apiVersion, 'meta.k8s.io/v1beta1')
  t.match(event.object.rows[0].object, { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'b' }, spec: Object })
  full.close()

  const plain = await watch(`${env.base}${NS}?watch=true`, { accept: 'application/json, application/json;as=Table;v=v1;g=meta.k8s.io' })
  t.equal((await plain.next()).object.kind, 'Ingress', 'JSON first: plain objects')
  plain.close()
})

t.test('bookmarks when asked, at the version read so far; sendInitialEvents ends the initial events with one', async t => {
  const env = await setup(t, { hub: { bookmarkIntervalMs: 100 } })
  env.put('a')
  const current = env.store.resourceVersion()
  const w = await watch(`${env.base}${NS}?watch=true&resourceVersion=${current}&allowWatchBookmarks=true`)
  t.same(await w.next(), { type: 'BOOKMARK', object: { kind: 'Ingress', apiVersion: 'networking.k8s.io/v1', metadata: { resourceVersion: String(current) } } })
  const rv = env.put('b')
  let event = await w.next()
  while (event.type === 'BOOKMARK') event = await w.next()
  t.equal(summary(event), 'ADDED b')
  const later = await w.next()
  t.same(later.object.metadata, { resourceVersion: String(rv) }, 'the next bookmark carries the new version')
  w.close()

  const quiet = await watch(`${env.base}${NS}?watch=true&resourceVersion=${rv}`)
  t.ok(await quiet.quiet(350), 'no bookmarks unless asked (kubectl does not ask)')
  quiet.close()

  const list = await watch(`${env.base}${NS}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true`)
  t.same([summary(await list.next()), summary(await list.next())], ['ADDED a', 'ADDED b'])
  t.same(await list.next(), { type: 'BOOKMARK', object: { kind: 'Ingress', apiVersion: 'networking.k8s.io/v1', metadata: { resourceVersion: String(rv), annotations: { 'k8s.io/initial-events-end': 'true' } } } }, 'client-go\'s watch-list waits for this one')
  list.close()
})

t.test('timeoutSeconds ends the stream cleanly; the hub then forgets it', async t => {
  const env = await setup(t)
  const started = Date.now()
  const w = await watch(`${env.base}${NS}?watch=true&timeoutSeconds=1`)
  t.equal(env.hub.size, 1)
  await w.ended(3000)
  t.ok(Date.now() - started >= 900, 'after about a second')
  t.ok(await until(() => env.hub.size === 0 && env.listeners() === 0), 'no watch and no store listener left')
})

t.test('a client that goes away unsubscribes: no watch, no commit listener left', async t => {
  const env = await setup(t)
  t.equal(env.listeners(), 0, 'no listener before any watch')
  const a = await watch(`${env.base}${NS}?watch=true`)
  const b = await watch(`${env.base}${NS}?watch=true&resourceVersion=0`)
  t.equal(env.hub.size, 2)
  t.equal(env.listeners(), 1, 'one store listener serves every watch')
  a.close()
  t.ok(await until(() => env.hub.size === 1), 'the first is gone')
  env.put('x')
  t.equal(summary(await b.next()), 'ADDED x', 'the other one still streams')
  b.close()
  t.ok(await until(() => env.hub.size === 0 && env.listeners() === 0), 'nothing left')
  env.put('y')
  t.equal(env.listeners(), 0, 'writes go on without a listener')
})

t.test('a presenter that throws ends that one stream with an ERROR event; the process and other watches go on', async t => {
  const env = await setup(t)
  const failing = await watch(`${env.base}/exploding/default?watch=true`)
  const healthy = await watch(`${env.base}${NS}?watch=true`)
  env.put('boom')
  const error = await failing.next()
  t.match(error, { type: 'ERROR', object: { kind: 'Status', status: 'Failure', reason: 'InternalError', code: 500 } })
  t.notMatch(JSON.stringify(error), /presenter exploded/, 'internal details stay in the log')
  await failing.ended()
  t.equal(summary(await healthy.next()), 'ADDED boom')
  env.put('after')
  t.equal(summary(await healthy.next()), 'ADDED after')
  healthy.close()

  const atStart = await watch(`${env.base}/exploding/default?watch=true`)
  t.equal(summary(await atStart.next()), 'ADDED after', 'the initial state up to the object that fails')
  t.match(await atStart.next(), { type: 'ERROR', object: { code: 500 } }, 'also while sending the initial state')
  await atStart.ended()
  t.ok(await until(() => env.hub.size === 0))
})

t.test('an idle watch outlives every server timeout; the same timeouts cut a stalled ordinary request', async t => {
  // Fastify 5's defaults, which the admin app keeps: no socket timeout, no request timeout; keep-alive
  // applies between requests only. So a default server never cuts an idle watch.
  const defaults = Fastify()
  t.equal(defaults.server.timeout, 0, 'connectionTimeout: 0')
  t.equal(defaults.server.requestTimeout, 0, 'requestTimeout: 0')
  t.equal(defaults.server.keepAliveTimeout, 72_000, 'keepAliveTimeout: 72 s, between requests')
  await defaults.close()
  // Short timeouts stand in for the minute kubectl get -w may sit idle: the socket timeout (Fastify's
  // connectionTimeout), keep-alive, headers and request timeouts, checked every 50 ms.
  const serverFactory: FastifyServerFactory = (handler) => {
    const server = createServer({ connectionsCheckingInterval: 50, headersTimeout: 200, requestTimeout: 300 }, handler)
    server.keepAliveTimeout = 200
    server.setTimeout(250)
    return server
  }
  const env = await setup(t, { serverFactory })
  const w = await watch(`${env.base}${NS}?watch=true`)
  t.ok(await w.quiet(1500), 'idle for six socket timeouts')
  env.put('late')
  t.equal(summary(await w.next()), 'ADDED late', 'still open and streaming')
  w.close()
  await t.rejects(request(`${env.base}/slow`).then(async res => await res.body.text()), 'a request silent for as long is cut by the socket timeout')
})

t.test('settled: events wait for the data plane, so they carry the status a GET shows', async t => {
  const settledAt: number[] = []
  const box: { store?: ObjectStore } = {}
  const settled = async (rv: number): Promise<void> => {
    settledAt.push(rv)
    await sleep(50)
    box.store?.setStatuses([{ kind: 'Ingress', namespace: 'default', name: 'shop', status: { loadBalancer: { ingress: [{ ip: '192.0.2.7' }] }, conditions: [] } }], rv)
  }
  const env = await setup(t, { hub: { settled } })
  box.store = env.store
  const w = await watch(`${env.base}${NS}?watch=true`, { accept: KUBECTL_ACCEPT })
  const rv = env.put('shop')
  const event = await w.next()
  t.same(settledAt, [rv])
  t.equal(event.object.rows[0].cells[3], '192.0.2.7', 'ADDRESS is there in the ADDED event')
  w.close()
})

t.test('close() ends every open watch cleanly (server stop)', async t => {
  const env = await setup(t)
  const a = await watch(`${env.base}${NS}?watch=true`)
  const b = await watch(`${env.base}/apis/networking.k8s.io/v1/ingresses?watch=true`)
  env.hub.close()
  await a.ended()
  await b.ended()
  t.equal(env.hub.size, 0)
  t.equal(env.listeners(), 0)
})

t.test('stopping the server ends open watches at once (preClose), so the stop does not wait on them', async t => {
  const env = await setup(t)
  const w = await watch(`${env.base}${NS}?watch=true`)
  const started = Date.now()
  await env.app.close()
  await w.ended()
  t.ok(Date.now() - started < 1000, `closed in ${Date.now() - started} ms`)
  t.equal(env.hub.size, 0)
})
