/**
 * Cluster-mode test helpers: N gateway nodes on loopback, each with its own mirror (temp dir) and
 * its own fault proxy in front of PostgreSQL; polling with deadlines; what each node's data plane
 * answers for a host; digests of the `objects` rows of a mirror and of PostgreSQL, to compare
 * what every node holds with the truth.
 */
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import pg from 'pg'
import { request } from 'undici'
import { startFaultProxy, type FaultProxy } from './fault-proxy.js'
import { startTestGateway, type TestGateway } from './gateway.js'

export const ING = '/apis/networking.k8s.io/v1/namespaces/default/ingresses'

interface Teardownable { teardown: (fn: () => unknown) => void }

/**
 * Polls `fn` every `everyMs` until it returns something other than false/undefined/null, and
 * resolves with that value and how long it took; rejects after `ms` saying what it waited for and
 * what the last attempt returned or threw.
 */
export async function until<T> (fn: () => Promise<T | false | undefined | null> | T | false | undefined | null, ms: number, what = 'condition', everyMs = 20): Promise<{ value: T, ms: number }> {
  const start = performance.now()
  const deadline = start + ms
  let last: unknown
  for (;;) {
    try {
      const value = await fn()
      if (value !== false && value !== undefined && value !== null) return { value: value as T, ms: performance.now() - start }
      last = value
    } catch (err) {
      last = err
    }
    if (performance.now() >= deadline) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last)
      throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${detail})`)
    }
    await new Promise(resolve => setTimeout(resolve, everyMs))
  }
}

/** Runs `fn` and says how long it took, with its value or its error. */
export async function timed<T> (fn: () => Promise<T>): Promise<{ ms: number, value?: T, error?: Error }> {
  const start = performance.now()
  try {
    const value = await fn()
    return { ms: performance.now() - start, value }
  } catch (error) {
    return { ms: performance.now() - start, error: error as Error }
  }
}

/** An Ingress routing `host` (all paths) to `service` port 8080. */
export function ingress (name: string, host: string, service: string, extra: Record<string, unknown> = {}): Record<string, any> {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name, ...extra },
    spec: { rules: [{ host, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: service, port: { number: 8080 } } } }] } }] }
  }
}

/** The status a node's HTTP listener answers for `host` (0 when the request itself failed). */
export async function hostStatus (httpBase: string, host: string, path = '/'): Promise<number> {
  try {
    const res = await request(`${httpBase}${path}`, { headers: { host }, headersTimeout: 5000, bodyTimeout: 5000 })
    await res.body.text()
    return res.statusCode
  } catch {
    return 0
  }
}

/** What a request to `host` on a node answered: the status and, for 200, which origin served it. */
export async function hostAnswer (httpBase: string, host: string): Promise<{ status: number, server?: string }> {
  try {
    const res = await request(`${httpBase}/`, { headers: { host }, headersTimeout: 5000, bodyTimeout: 5000 })
    const text = await res.body.text()
    if (res.statusCode !== 200) return { status: res.statusCode }
    try {
      return { status: 200, server: String((JSON.parse(text) as { server?: string }).server) }
    } catch {
      return { status: 200 }
    }
  } catch {
    return { status: 0 }
  }
}

/** One gateway node of a test cluster, with its own fault proxy in front of PostgreSQL. */
export interface ClusterNode {
  name: string
  gw: TestGateway
  proxy: FaultProxy
  /** The node's folder (its mirror is `ingressd.db` in it); kept across restarts. */
  dir: string
  /** Stops the node (graceful, short) and starts it again on the same mirror and proxy; `gw` is replaced. */
  restart: (env?: Record<string, string>) => Promise<TestGateway>
}

export interface ClusterOptions {
  /** The database every node shares (a URL of the shared or a private cluster). */
  url: string
  count?: number
  /** Extra environment for every node. */
  env?: Record<string, string>
  /** Node names; default node-a, node-b, … */
  names?: string[]
}

/** Starts `count` nodes (default 3) one after the other, each behind its own fault proxy. */
export async function startCluster (t: Teardownable, opts: ClusterOptions): Promise<ClusterNode[]> {
  const target = new URL(opts.url)
  const count = opts.count ?? 3
  const nodes: ClusterNode[] = []
  for (let i = 0; i < count; i++) {
    const name = opts.names?.[i] ?? `node-${String.fromCharCode(97 + i)}`
    nodes.push(await startNode(t, { url: opts.url, name, env: opts.env ?? {}, target: { host: target.hostname, port: Number(target.port) } }))
  }
  return nodes
}

/** Starts one node behind a fault proxy of its own. */
export async function startNode (t: Teardownable, opts: { url: string, name: string, env?: Record<string, string>, target?: { host: string, port: number }, dir?: string }): Promise<ClusterNode> {
  const u = new URL(opts.url)
  const proxy = await startFaultProxy(t, opts.target ?? { host: u.hostname, port: Number(u.port) })
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), `ingressd-${opts.name}-`))
  if (opts.dir === undefined) t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const envFor = (extra: Record<string, string> = {}): Record<string, string> => ({
    INGRESSD_POSTGRES_URL: proxy.url(opts.url),
    INGRESSD_NODE_NAME: opts.name,
    INGRESSD_LOG_LEVEL: 'info',
    ...opts.env,
    ...extra
  })
  const node: ClusterNode = {
    name: opts.name,
    proxy,
    dir,
    gw: await startTestGateway(t, envFor(), { dir }),
    async restart (env) {
      await node.gw.close()
      node.gw = await startTestGateway(t, envFor(env), { dir })
      return node.gw
    }
  }
  return node
}

/** One query on a short-lived client (closed even when the query fails). */
export async function pgQuery<R extends pg.QueryResultRow = any> (url: string, sql: string, params: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000, query_timeout: 5000 })
  client.on('error', () => {})
  await client.connect()
  try {
    return (await client.query<R>(sql, params)).rows
  } finally {
    await client.end().catch(() => {})
  }
}

const OBJECT_COLUMNS = ['kind', 'namespace', 'name', 'uid', 'resource_version', 'generation', 'created_at', 'labels', 'annotations', 'content', 'private_key'] as const

/** A digest of `objects` rows, whatever store they were read from (bigints as numbers, sorted in JS). */
export function digestRows (rows: Array<Record<string, unknown>>): { count: number, digest: string } {
  const lines = rows.map(r => JSON.stringify(OBJECT_COLUMNS.map(c => {
    const v = r[c]
    return c === 'resource_version' || c === 'generation' ? Number(v) : v ?? null
  })))
  lines.sort()
  const hash = createHash('sha256')
  for (const line of lines) hash.update(line).update('\n')
  return { count: rows.length, digest: hash.digest('hex') }
}

/** A node's mirror (its SQLite file), read-only: store_state's version and its objects' digest. */
export function mirrorState (dbFile: string): { resourceVersion: number, epoch: number, count: number, digest: string } {
  const db = new Database(dbFile, { readonly: true, fileMustExist: true })
  try {
    db.pragma('busy_timeout = 5000')
    const head = db.prepare('SELECT resource_version, epoch FROM store_state WHERE id = 1').get() as { resource_version: number, epoch: number }
    const rows = db.prepare(`SELECT ${OBJECT_COLUMNS.join(', ')} FROM objects`).all() as Array<Record<string, unknown>>
    return { resourceVersion: head.resource_version, epoch: head.epoch, ...digestRows(rows) }
  } finally {
    db.close()
  }
}

/** PostgreSQL's truth: store_state's version and the objects' digest, in one snapshot. */
export async function pgState (url: string): Promise<{ resourceVersion: number, storeUid: string, count: number, digest: string }> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000, query_timeout: 10_000 })
  client.on('error', () => {})
  await client.connect()
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
    const head = (await client.query<{ resource_version: string, store_uid: string }>('SELECT resource_version, store_uid FROM store_state WHERE id = 1')).rows[0]
    const rows = (await client.query(`SELECT ${OBJECT_COLUMNS.join(', ')} FROM objects`)).rows as Array<Record<string, unknown>>
    await client.query('COMMIT')
    return { resourceVersion: Number(head?.resource_version), storeUid: String(head?.store_uid), ...digestRows(rows) }
  } finally {
    await client.end().catch(() => {})
  }
}

/** The ingresses a node's admin API lists, as name → resourceVersion, sorted by name. */
export async function ingressVersions (gw: TestGateway): Promise<Record<string, string>> {
  const res = await gw.api('GET', ING)
  if (res.status !== 200) throw new Error(`list on ${gw.admin}: ${res.status} ${res.text.slice(0, 200)}`)
  const out: Record<string, string> = {}
  const items = (res.body.items as Array<{ metadata: { name: string, resourceVersion: string } }>).slice().sort((a, b) => a.metadata.name < b.metadata.name ? -1 : 1)
  for (const item of items) out[item.metadata.name] = item.metadata.resourceVersion
  return out
}

/** Whether every node's mirror holds exactly PostgreSQL's objects at PostgreSQL's version. */
export async function converged (url: string, nodes: Array<{ gw: TestGateway }>): Promise<boolean> {
  const truth = await pgState(url)
  return nodes.every(n => {
    const m = mirrorState(n.gw.db)
    return m.resourceVersion === truth.resourceVersion && m.digest === truth.digest
  })
}

/** Applies manifests through a node's admin API; throws unless 200. */
export async function applyOn (gw: TestGateway, manifests: unknown[]): Promise<void> {
  const res = await gw.api('POST', '/apply', manifests)
  if (res.status !== 200) throw new Error(`apply on ${gw.admin}: ${res.status} ${res.text.slice(0, 300)}`)
}

/** What an admin call answered, and how long it took; `status` 0 with `error` when it failed or took longer than `timeoutMs`. */
export interface TimedCall {
  status: number
  ms: number
  body?: any
  text?: string
  headers?: Record<string, string | string[] | undefined>
  error?: string
}

/** An admin API call bounded by `timeoutMs`: a hang shows up as status 0, never as a stuck test. */
export async function call (gw: { admin: string, token?: string }, method: string, path: string, body?: unknown, timeoutMs = 20_000): Promise<TimedCall> {
  const start = performance.now()
  const headers: Record<string, string> = {}
  if (gw.token !== undefined) headers.authorization = `Bearer ${gw.token}`
  let payload: string | undefined
  if (body !== undefined) {
    payload = typeof body === 'string' ? body : JSON.stringify(body)
    headers['content-type'] = method === 'PATCH' ? 'application/merge-patch+json' : 'application/json'
  }
  try {
    const res = await request(`${gw.admin}${path}`, { method: method as 'GET', headers, body: payload, headersTimeout: timeoutMs, bodyTimeout: timeoutMs, signal: AbortSignal.timeout(timeoutMs) })
    const text = await res.body.text()
    let parsed: unknown
    try { parsed = JSON.parse(text) } catch { parsed = undefined }
    return { status: res.statusCode, ms: performance.now() - start, body: parsed, text, headers: res.headers }
  } catch (err) {
    return { status: 0, ms: performance.now() - start, error: (err as Error).message }
  }
}
