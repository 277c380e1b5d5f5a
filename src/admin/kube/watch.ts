/**
 * Kubernetes watch streams: `GET <collection>?watch=true` answers 200 and then one JSON watch
 * event per line (`{"type":"ADDED","object":{...}}`), each written as soon as it is known, until
 * `timeoutSeconds` passes, the client goes away or the server stops. This is what
 * `kubectl get -w`, `kubectl wait` and every client-go informer read.
 *
 * resourceVersion as the API server takes it: unset or "0" starts with an ADDED event for every
 * current object (`kubectl get ingress NAME -w` watches from "0" and skips that first event); a
 * version starts after it (`kubectl get ingress -w` watches from its list's version), and one
 * older than the store keeps deletions for is answered, as the watch cache answers it, with an
 * ERROR event carrying a 410 Expired Status (the client lists again).
 *
 * Changes are read from the store by version (changedSince, deletedSince) after each commit the
 * store announces, in this process or replicated into it. The store keeps current rows, not
 * history, so the event type is derived from what the watch has sent: an object it has not sent
 * yet is ADDED, one it has is MODIFIED, and one that is deleted or stops matching the label
 * selector is DELETED with the last state it sent (Kubernetes' cacher decides the same way from
 * the previous version of the object). A watch that starts from a version sees each object
 * changed since then once, in its current state: one not known to have existed at that version
 * is ADDED while its generation is 1 (so one only relabelled since reads as ADDED too) and
 * MODIFIED after, which informers treat alike (both are upserts); deletions since are sent for
 * every name they match (client-go drops a deletion of an object it does not hold).
 *
 * Nothing cuts an idle watch: Fastify's requestTimeout and Node's headersTimeout only apply
 * while a request is being received, keepAliveTimeout only between requests, and the socket
 * timeout (Fastify's connectionTimeout, 0 by default) is switched off for the watch's socket.
 * Bookmarks, when asked for, carry the version read so far.
 */
import { Readable } from 'node:stream'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { IngressdError, toStatus } from '../../errors.js'
import type { LabelSelector } from '../../resources/label-selector.js'
import { STORAGE, type KindName } from '../../resources/stored.js'
import { DELETIONS_KEPT, type ObjectStore, type StoredObject } from '../../store/object-store.js'
import { toTable, type IncludeObject, type TableVersion } from './table.js'

/** The event types of a watch stream. */
export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR'

/** One line of a watch stream. */
export interface WatchEvent {
  type: WatchEventType
  object: Record<string, unknown>
}

/** A field selector on name and namespace (admin/kube/field-selector.ts parses them). */
export interface NameSelector {
  matches: (meta: { name: string, namespace: string }) => boolean
}

/** What a watch streams: objects of one kind, as one route presents them. */
export interface WatchSource {
  kind: KindName
  /** The route's presenter: the object as a GET returns it, status included. */
  present: (obj: StoredObject) => Record<string, unknown>
  /** The version `present` answers in (for deletion stubs and bookmarks); the storage version by default. */
  apiVersion?: string
  /** The path's namespace; undefined for every namespace (and for cluster-scoped kinds). */
  namespace?: string
  /** A watch of one object's path (`.../ingresses/NAME?watch=true`). */
  name?: string
  labelSelector?: LabelSelector
  fieldSelector?: NameSelector
  /** Send each object as a one-row Table (kubectl's Accept): the version and includeObject asked for. */
  table?: { tableVersion: TableVersion, includeObject: IncludeObject, apiVersion?: string }
}

/** What serveWatch takes: the source, the store it reads, and (optionally) the hub to register with. */
export interface WatchTarget extends WatchSource {
  store: ObjectStore
  /** The hub that tracks the watch; the store's default hub (watchHub(store)) when unset. */
  hub?: WatchHub
}

/** The watch parameters of the query string, checked. */
export interface WatchParams {
  /** Unset, "0" or a version this API returned. */
  resourceVersion?: string
  /** 0 or unset: the server's default (30 to 60 minutes, as Kubernetes' minRequestTimeout). */
  timeoutSeconds?: number
  allowWatchBookmarks?: boolean
  /** Kubernetes' watch-list: initial ADDED events whatever the version, then a bookmark marking their end. */
  sendInitialEvents?: boolean
}

/** Where a watch logs what goes wrong (a Fastify request's logger fits). */
export interface WatchLogger {
  warn: (obj: object, msg: string) => void
  error: (obj: object, msg: string) => void
}

/** Tunables of a hub; the defaults are Kubernetes'. */
export interface WatchHubOptions {
  /** How often a watch that asked for bookmarks gets one (default 30 s). */
  bookmarkIntervalMs?: number
  /** The length of a watch that sent no timeoutSeconds (default: random between 30 and 60 minutes). */
  defaultTimeoutMs?: () => number
  /**
   * Resolves once the data plane has processed `resourceVersion` (its statuses written), so
   * events carry the status a GET would show: wire it to `feed.waitServed(rv, timeoutMs)`.
   * Status writes do not move the resourceVersion and make no event of their own.
   */
  settled?: (resourceVersion: number) => Promise<unknown>
  /** A client that lets more than this many bytes pile up unread is disconnected (default 8 MiB). */
  maxBufferedBytes?: number
}

/** kube-apiserver's --min-request-timeout: a watch without timeoutSeconds lasts between one and two of it. */
const MIN_REQUEST_TIMEOUT_MS = 1800 * 1000
const DEFAULT_BOOKMARK_INTERVAL_MS = 30 * 1000
const DEFAULT_MAX_BUFFERED_BYTES = 8 * 1024 * 1024
/** The annotation that marks the bookmark ending a watch-list's initial events. */
const INITIAL_EVENTS_END = 'k8s.io/initial-events-end'

const QUIET: WatchLogger = { warn: () => {}, error: () => {} }

function badRequest (message: string, field: string): IngressdError {
  return new IngressdError('INGRESSD_ERR_BAD_REQUEST', message, { causes: [{ reason: 'FieldValueInvalid', field, message }] })
}

function queryValue (query: Record<string, unknown>, name: string): string | undefined {
  const value = query[name]
  if (Array.isArray(value)) return value.length === 0 ? undefined : String(value[0])
  return typeof value === 'string' ? value : undefined
}

/** A boolean query parameter as Go's strconv.ParseBool reads it. */
function queryBool (query: Record<string, unknown>, name: string): boolean | undefined {
  const raw = queryValue(query, name)
  if (raw === undefined || raw === '') return undefined
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(raw)) return true
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(raw)) return false
  throw badRequest(`${name}: Invalid value: ${JSON.stringify(raw)}: must be true or false`, name)
}

/** Whether a list request is a watch (`?watch=true`, `1`...). */
export function isWatchRequest (query: unknown): boolean {
  return queryBool((query ?? {}) as Record<string, unknown>, 'watch') === true
}

/** Reads and checks the watch parameters; throws INGRESSD_ERR_BAD_REQUEST before anything is streamed. */
export function parseWatchParams (query: unknown): WatchParams {
  const q = (query ?? {}) as Record<string, unknown>
  const params: WatchParams = {}
  const resourceVersion = queryValue(q, 'resourceVersion')
  if (resourceVersion !== undefined && resourceVersion !== '') {
    if (!/^\d{1,15}$/.test(resourceVersion)) throw badRequest(`resourceVersion: Invalid value: ${JSON.stringify(resourceVersion)}: not a resourceVersion this API returned (a number)`, 'resourceVersion')
    params.resourceVersion = resourceVersion
  }
  const timeout = queryValue(q, 'timeoutSeconds')
  if (timeout !== undefined && timeout !== '') {
    if (!/^\d{1,9}$/.test(timeout)) throw badRequest(`timeoutSeconds: Invalid value: ${JSON.stringify(timeout)}: must be a number of seconds`, 'timeoutSeconds')
    params.timeoutSeconds = Number(timeout)
  }
  const bookmarks = queryBool(q, 'allowWatchBookmarks')
  if (bookmarks !== undefined) params.allowWatchBookmarks = bookmarks
  const initial = queryBool(q, 'sendInitialEvents')
  if (initial !== undefined) params.sendInitialEvents = initial
  return params
}

/** The Status of a 410 Expired, as the watch cache sends it in an ERROR event. */
function expiredStatus (message: string): Record<string, unknown> {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason: 'Expired', code: 410 }
}

function keyOf (namespace: string, name: string): string {
  return `${namespace}/${name}`
}

/** The object with the resourceVersion of the event that carries it (a deletion's, for DELETED). */
function atVersion (obj: Record<string, unknown>, resourceVersion: number): Record<string, unknown> {
  return { ...obj, metadata: { ...(obj.metadata as Record<string, unknown> | undefined), resourceVersion: String(resourceVersion) } }
}

/** What a watch remembers of an object it has seen match: the last state it sent, or the stored row it was seeded with. */
interface Seen {
  presented?: Record<string, unknown>
  stored?: StoredObject
}

/** One change read from the store, in version order. */
type Change =
  | { resourceVersion: number, object: StoredObject }
  | { resourceVersion: number, deleted: { namespace: string, name: string } }

interface WatchLimits {
  bookmarkIntervalMs: number
  timeoutMs: number
  maxBufferedBytes: number
}

/** One open watch: its filter, what it has sent, its stream. */
class Watch {
  readonly stream: Readable
  private readonly apiVersion: string
  private readonly seen = new Map<string, Seen>()
  private lastVersion = 0
  private epoch = 0
  /** True until a watch started from a version has read the changes since it. */
  private catchingUp = false
  private columnsSent = false
  private released = false
  private timeout: NodeJS.Timeout | undefined
  private bookmarks: NodeJS.Timeout | undefined

  constructor (
    private readonly store: ObjectStore,
    private readonly source: WatchSource,
    private readonly params: WatchParams,
    private readonly limits: WatchLimits,
    private readonly log: WatchLogger,
    private readonly onRelease: (watch: Watch) => void,
    onFlowing: (() => void) | undefined
  ) {
    this.apiVersion = source.apiVersion ?? source.table?.apiVersion ?? STORAGE[source.kind].apiVersion
    let flowing = false
    this.stream = new Readable({
      read: () => {
        if (flowing) return
        flowing = true
        onFlowing?.()
      }
    })
    this.stream.once('close', () => this.release())
  }

  /** Sends the initial state, or the changes since the version asked for; arms the timers. */
  start (): void {
    this.timeout = setTimeout(() => this.end(), this.limits.timeoutMs)
    this.timeout.unref()
    if (this.params.allowWatchBookmarks === true) {
      this.bookmarks = setInterval(() => this.bookmark(), this.limits.bookmarkIntervalMs)
      this.bookmarks.unref()
    }
    const rv = this.params.resourceVersion
    const from = rv === undefined || rv === '0' ? undefined : Number(rv)
    const initial = this.params.sendInitialEvents ?? from === undefined
    try {
      this.store.db.transaction(() => {
        this.epoch = this.store.epoch()
        const current = this.store.resourceVersion()
        if (from !== undefined && !initial) {
          if (this.store.deletedSince(from) === undefined) return this.expired(from, current)
          // What existed at `from` and has not changed since is known exactly; the rest is read as changes.
          for (const obj of this.store.iterate(this.source.kind, this.source.namespace)) {
            if (Number(obj.meta.resourceVersion) <= from && this.matches(obj)) this.seen.set(keyOf(obj.meta.namespace, obj.meta.name), { stored: obj })
          }
          this.lastVersion = from
          this.catchingUp = true
          return
        }
        for (const obj of this.store.iterate(this.source.kind, this.source.namespace)) {
          if (!this.matches(obj)) continue
          if (initial) {
            const presented = this.source.present(obj)
            this.seen.set(keyOf(obj.meta.namespace, obj.meta.name), { presented })
            this.send('ADDED', presented)
          } else {
            this.seen.set(keyOf(obj.meta.namespace, obj.meta.name), { stored: obj })
          }
        }
        this.lastVersion = current
        if (this.params.sendInitialEvents === true && this.params.allowWatchBookmarks === true) this.bookmark({ [INITIAL_EVENTS_END]: 'true' })
      })()
      if (this.catchingUp) this.pump()
    } catch (err) {
      this.fail(err)
    }
  }

  /** Reads what changed since the last version read and sends it. Never throws: a failure ends this watch with an ERROR event. */
  pump (): void {
    if (this.released) return
    try {
      const read = this.store.db.transaction(() => ({
        epoch: this.store.epoch(),
        version: this.store.resourceVersion(),
        deleted: this.store.deletedSince(this.lastVersion),
        changed: this.store.changedSince(this.lastVersion)
      }))()
      if (read.epoch !== this.epoch) {
        this.write({ type: 'ERROR', object: expiredStatus(`the store was replaced (restored, or copied again from PostgreSQL) since resourceVersion ${this.lastVersion}; list again`) })
        return this.end()
      }
      if (read.deleted === undefined) return this.expired(this.lastVersion, read.version)
      const changes: Change[] = []
      for (const object of read.changed) if (object.kind === this.source.kind) changes.push({ resourceVersion: Number(object.meta.resourceVersion), object })
      for (const d of read.deleted) if (d.kind === this.source.kind) changes.push({ resourceVersion: d.resourceVersion, deleted: d })
      changes.sort((a, b) => a.resourceVersion - b.resourceVersion)
      for (const change of changes) {
        if (this.released) return
        if ('object' in change) this.changed(change.object, change.resourceVersion)
        else this.deleted(change.deleted, change.resourceVersion)
      }
      this.lastVersion = Math.max(this.lastVersion, read.version)
      this.catchingUp = false
    } catch (err) {
      this.fail(err)
    }
  }

  /** Ends the stream cleanly (timeoutSeconds, server stop). */
  end (): void {
    if (this.released) return
    this.release()
    this.stream.push(null)
  }

  private keyMatches (namespace: string, name: string): boolean {
    if (this.source.namespace !== undefined && namespace !== this.source.namespace) return false
    if (this.source.name !== undefined && name !== this.source.name) return false
    return this.source.fieldSelector?.matches({ name, namespace }) ?? true
  }

  private matches (obj: StoredObject): boolean {
    return this.keyMatches(obj.meta.namespace, obj.meta.name) && (this.source.labelSelector?.matches(obj.meta.labels) ?? true)
  }

  private changed (obj: StoredObject, resourceVersion: number): void {
    const key = keyOf(obj.meta.namespace, obj.meta.name)
    const before = this.seen.get(key)
    if (this.matches(obj)) {
      const presented = this.source.present(obj)
      // Caught up from a version, an object not seen may have existed then: generation 1 says it has not changed since its creation.
      const type = before !== undefined || (this.catchingUp && obj.meta.generation > 1) ? 'MODIFIED' : 'ADDED'
      this.seen.set(key, { presented })
      this.send(type, presented)
    } else if (before !== undefined) {
      // It stopped matching the label selector: gone from this watch's view, as Kubernetes' cacher says it.
      this.seen.delete(key)
      this.send('DELETED', atVersion(this.lastState(before), resourceVersion))
    } else if (this.catchingUp && this.source.labelSelector !== undefined && this.keyMatches(obj.meta.namespace, obj.meta.name)) {
      // Relabelled since the version the client holds: it may have matched then, so the client may hold it.
      this.send('DELETED', atVersion(this.source.present(obj), resourceVersion))
    }
  }

  private deleted (gone: { namespace: string, name: string }, resourceVersion: number): void {
    if (!this.keyMatches(gone.namespace, gone.name)) return
    const key = keyOf(gone.namespace, gone.name)
    const before = this.seen.get(key)
    if (before !== undefined) {
      this.seen.delete(key)
      this.send('DELETED', atVersion(this.lastState(before), resourceVersion))
    } else if (this.catchingUp) {
      // Deleted between the client's version and this watch: all that is left of it is its name.
      const metadata: Record<string, unknown> = { name: gone.name }
      if (STORAGE[this.source.kind].namespaced) metadata.namespace = gone.namespace
      metadata.resourceVersion = String(resourceVersion)
      this.send('DELETED', { apiVersion: this.apiVersion, kind: this.source.kind, metadata })
    }
  }

  private lastState (seen: Seen): Record<string, unknown> {
    if (seen.presented !== undefined) return seen.presented
    return this.source.present(seen.stored as StoredObject)
  }

  /** Sends an object event, as a one-row Table when the client asked for Tables. */
  private send (type: 'ADDED' | 'MODIFIED' | 'DELETED', object: Record<string, unknown>): void {
    const table = this.source.table
    if (table === undefined) return this.write({ type, object })
    const resourceVersion = (object.metadata as { resourceVersion?: string } | undefined)?.resourceVersion ?? ''
    // Kubernetes sends the column definitions with the first event only (TableOptions.NoHeaders after it).
    const rows = toTable(this.source.kind, this.apiVersion, [object], { includeObject: table.includeObject, tableVersion: table.tableVersion, listMeta: { resourceVersion }, noHeaders: this.columnsSent })
    this.columnsSent = true
    this.write({ type, object: rows })
  }

  private bookmark (annotations?: Record<string, string>): void {
    const metadata: Record<string, unknown> = { resourceVersion: String(this.lastVersion) }
    if (annotations !== undefined) metadata.annotations = annotations
    this.write({ type: 'BOOKMARK', object: { kind: this.source.kind, apiVersion: this.apiVersion, metadata } })
  }

  private write (event: WatchEvent): void {
    if (this.released) return
    this.stream.push(`${JSON.stringify(event)}\n`)
    if (this.stream.readableLength > this.limits.maxBufferedBytes) {
      // The API server drops a watcher whose buffer fills up too; the client reconnects and lists again.
      this.log.warn({ kind: this.source.kind, bufferedBytes: this.stream.readableLength }, 'watch client stopped reading; closing its stream')
      this.release()
      this.stream.destroy()
    }
  }

  private expired (from: number, current: number): void {
    this.write({ type: 'ERROR', object: expiredStatus(`too old resource version: ${from} (${Math.max(0, current - DELETIONS_KEPT)})`) })
    this.end()
  }

  private fail (err: unknown): void {
    this.log.error({ err, kind: this.source.kind }, 'watch failed; ending its stream with an ERROR event')
    const status = err instanceof IngressdError && err.code !== 'INGRESSD_ERR_INTERNAL'
      ? toStatus(err)
      : toStatus(new IngressdError('INGRESSD_ERR_INTERNAL', 'internal error while watching; the log has the details'))
    this.write({ type: 'ERROR', object: status as unknown as Record<string, unknown> })
    this.end()
  }

  private release (): void {
    if (this.released) return
    this.released = true
    clearTimeout(this.timeout)
    clearInterval(this.bookmarks)
    this.onRelease(this)
  }
}

/**
 * The open watches of one store: it listens to the store's commits while any watch is open (and
 * only then), reads the changes after each one and hands them to every watch.
 */
export class WatchHub {
  readonly store: ObjectStore
  private readonly watches = new Set<Watch>()
  private readonly opts: Required<Omit<WatchHubOptions, 'settled'>> & Pick<WatchHubOptions, 'settled'>
  private unsubscribe: (() => void) | undefined
  private latest = 0
  private running = false
  private again = false

  constructor (store: ObjectStore, opts: WatchHubOptions = {}) {
    this.store = store
    this.opts = {
      bookmarkIntervalMs: opts.bookmarkIntervalMs ?? DEFAULT_BOOKMARK_INTERVAL_MS,
      defaultTimeoutMs: opts.defaultTimeoutMs ?? (() => MIN_REQUEST_TIMEOUT_MS * (1 + Math.random())),
      maxBufferedBytes: opts.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES,
      ...(opts.settled === undefined ? {} : { settled: opts.settled })
    }
  }

  /** How many watches are open. */
  get size (): number {
    return this.watches.size
  }

  /**
   * Opens a watch and returns its stream of newline-delimited JSON events (the initial ones are
   * already in it). Ends by itself after the timeout; destroy it to stop watching.
   */
  open (source: WatchSource, params: WatchParams, io: { log?: WatchLogger, onFlowing?: () => void } = {}): Readable {
    const timeoutMs = params.timeoutSeconds !== undefined && params.timeoutSeconds > 0 ? params.timeoutSeconds * 1000 : this.opts.defaultTimeoutMs()
    const watch = new Watch(this.store, source, params, { timeoutMs, bookmarkIntervalMs: this.opts.bookmarkIntervalMs, maxBufferedBytes: this.opts.maxBufferedBytes }, io.log ?? QUIET, w => this.remove(w), io.onFlowing)
    this.watches.add(watch)
    if (this.unsubscribe === undefined) this.unsubscribe = this.store.onCommit(rv => this.committed(rv))
    watch.start()
    return watch.stream
  }

  /**
   * Answers a watch request from a Fastify route: checks the query (400 before anything is
   * streamed), then sends the stream as the reply, headers flushed at once, so hooks (onSend,
   * logging) run as for any reply. Return its result from the handler.
   */
  serve (req: FastifyRequest, reply: FastifyReply, source: WatchSource): FastifyReply {
    const params = parseWatchParams(req.query)
    // A watch may sit idle for minutes: no socket timeout may cut it (Fastify's connectionTimeout, if set).
    const socket = req.raw.socket as { setTimeout?: (ms: number) => unknown } | null
    if (typeof socket?.setTimeout === 'function') socket.setTimeout(0)
    const res = reply.raw
    const stream = this.open(source, params, {
      log: req.log,
      // Kubernetes writes the headers before any event: a watch with nothing to say yet still answers.
      onFlowing: () => { if (!res.headersSent && !res.destroyed && typeof res.flushHeaders === 'function') res.flushHeaders() }
    })
    // A client gone before the stream was piped (an onSend hook still running) must not leave the watch open.
    res.once('close', () => { if (!stream.destroyed) stream.destroy() })
    return reply.code(200).header('content-type', 'application/json').send(stream)
  }

  /** Ends every open watch cleanly (the server is stopping): call it from a preClose hook. */
  close (): void {
    for (const watch of [...this.watches]) watch.end()
  }

  private remove (watch: Watch): void {
    this.watches.delete(watch)
    if (this.watches.size === 0 && this.unsubscribe !== undefined) {
      this.unsubscribe()
      this.unsubscribe = undefined
    }
  }

  /**
   * A commit listener: never throws into the writer. Reading and sending happen after the
   * writer's transaction, once the data plane has settled the version when `settled` is set;
   * commits that arrive meanwhile are read together.
   */
  private committed (resourceVersion: number): void {
    this.latest = Math.max(this.latest, resourceVersion)
    if (this.running) {
      this.again = true
      return
    }
    this.running = true
    setImmediate(() => { this.drain().catch(() => {}) })
  }

  private async drain (): Promise<void> {
    try {
      do {
        this.again = false
        if (this.opts.settled !== undefined) {
          try {
            await this.opts.settled(this.latest)
          } catch {}
        }
        for (const watch of [...this.watches]) watch.pump()
      } while (this.again)
    } finally {
      this.running = false
    }
  }
}

const HUBS = new WeakMap<ObjectStore, WatchHub>()

/** The default hub of a store: created with `opts` on the first call, the same one after. */
export function watchHub (store: ObjectStore, opts?: WatchHubOptions): WatchHub {
  let hub = HUBS.get(store)
  if (hub === undefined) {
    hub = new WatchHub(store, opts)
    HUBS.set(store, hub)
  }
  return hub
}

/**
 * Serves `GET <collection>?watch=true` from a Fastify route handler (return what it returns).
 * The label and field selectors come parsed, so a bad one was already answered 400.
 */
export function serveWatch (req: FastifyRequest, reply: FastifyReply, target: WatchTarget): FastifyReply {
  const { store, hub, ...source } = target
  return (hub ?? watchHub(store)).serve(req, reply, source)
}
