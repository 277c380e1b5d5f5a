/**
 * limit-rps, limit-rpm, limit-burst-multiplier, limit-connections and limit-whitelist (alias
 * limit-allowlist): per-client request rates and requests in flight, as ingress-nginx renders them
 * (`limit_req zone=… burst=<rate × multiplier> nodelay` and `limit_conn`), keyed by the client
 * address, one zone per Ingress object shared by all its hosts and paths.
 *
 * The counting lives in a RateLimiter. In the single process the step asks one in-process and gets
 * a synchronous answer; in a cluster worker it asks the primary's over IPC (limiter-cluster.ts), so
 * that the limits hold per node whatever INGRESSD_WORKERS is.
 */
import { performance } from 'node:perf_hooks'
import type { AnnotationProblem, AnnotationReader, FamilyParse, PolicyAnswer, PolicyContext, PolicyStep } from './policy.js'
import { inRanges, parseRanges, rangeProblem, splitList } from './addresses.js'
import { NGINX_PREFIX } from '../../resources/annotation-prefix.js'

/** The annotations this family reads, without the prefix. */
export const RATE_LIMIT_KEYS = ['limit-rps', 'limit-rpm', 'limit-burst-multiplier', 'limit-connections', 'limit-whitelist', 'limit-allowlist'] as const

/** One Ingress's rate limits. Rates and counts are positive whole numbers; an absent one is off. */
export interface RateLimitSpec {
  /** Requests per second per client. */
  rps?: number
  /** Requests per minute per client. */
  rpm?: number
  /** Burst = rate × this, for each of rps and rpm (ingress-nginx's default 5). */
  burstMultiplier: number
  /** Requests in flight at once per client. */
  connections?: number
  /** Addresses and CIDRs never limited, as written. */
  allow: readonly string[]
}

/** What a zone enforces: the spec without its allowlist, which the step applies before asking. */
export type ZoneLimits = Pick<RateLimitSpec, 'rps' | 'rpm' | 'burstMultiplier' | 'connections'>

/** ingress-nginx's defBurst. */
const DEFAULT_BURST_MULTIPLIER = 5
/** Far beyond any real limit, and small enough that rate × multiplier stays an exact integer. */
const MAX_VALUE = 1_000_000_000

function parseCount (read: AnnotationReader, name: string, problems: AnnotationProblem[]): number | undefined {
  const value = read(name)
  if (value === undefined) return undefined
  const trimmed = value.trim()
  if (!/^\d{1,10}$/.test(trimmed) || Number(trimmed) > MAX_VALUE) {
    problems.push({ key: NGINX_PREFIX + name, message: `expected a whole number from 0 (off) to ${MAX_VALUE}, got ${JSON.stringify(value)}` })
    return undefined
  }
  return Number(trimmed)
}

function parseAllow (read: AnnotationReader, name: string, problems: AnnotationProblem[]): string[] {
  const value = read(name)
  if (value === undefined) return []
  const entries = splitList(value)
  const key = NGINX_PREFIX + name
  if (entries.length === 0) problems.push({ key, message: 'expected a comma-separated list of IP addresses or CIDR ranges, got an empty value' })
  for (const entry of entries) {
    const problem = rangeProblem(entry)
    if (problem !== undefined) problems.push({ key, message: `expected a comma-separated list of IP addresses or CIDR ranges: ${problem}` })
  }
  return entries
}

/**
 * Reads the rate-limit annotations. A malformed number or CIDR is a problem (refused on write).
 * 0 turns a limit off, and with no limit left the family is unused, as in ingress-nginx; so is a
 * burst multiplier of 0, which falls back to 5. limit-whitelist and limit-allowlist are merged.
 */
export function parseRateLimit (read: AnnotationReader): FamilyParse<RateLimitSpec> {
  const problems: AnnotationProblem[] = []
  const rps = parseCount(read, 'limit-rps', problems)
  const rpm = parseCount(read, 'limit-rpm', problems)
  const connections = parseCount(read, 'limit-connections', problems)
  const multiplier = parseCount(read, 'limit-burst-multiplier', problems)
  const allow = [...parseAllow(read, 'limit-whitelist', problems), ...parseAllow(read, 'limit-allowlist', problems)]
  if (problems.length > 0) return { problems, denials: [] }
  if ((rps ?? 0) === 0 && (rpm ?? 0) === 0 && (connections ?? 0) === 0) return { problems, denials: [] }
  const spec: RateLimitSpec = { burstMultiplier: multiplier === undefined || multiplier === 0 ? DEFAULT_BURST_MULTIPLIER : multiplier, allow: Object.freeze(allow) }
  if (rps !== undefined && rps > 0) spec.rps = rps
  if (rpm !== undefined && rpm > 0) spec.rpm = rpm
  if (connections !== undefined && connections > 0) spec.connections = connections
  return { spec: Object.freeze(spec), problems, denials: [] }
}

/** Gives back a limit-connections slot; calling it again does nothing. */
export type Release = () => void

const NOTHING_HELD: Release = () => {}

/** One client in one zone, and its place in the recency list. Both buckets share `last`: they are only ever updated together. */
interface Entry {
  readonly id: string
  /** Requests over the rps bucket's drained level (nginx's `excess`, in requests rather than 1/1000ths). */
  rpsExcess: number
  rpmExcess: number
  /** When the excesses were last computed, in ms. */
  last: number
  /** When both buckets will have drained, in ms: from then on the entry says nothing an absent one would not. */
  drainedAt: number
  /** Requests in flight holding a limit-connections slot. */
  conns: number
  /** Less recently used neighbour (toward the oldest); the list's sentinel at either end. */
  older: Entry
  newer: Entry
}

/** Options of a RateLimiter (and of the backends built on one). */
export interface LimiterOptions {
  /** Most client entries kept across all zones; the least recently used go first. Default 100,000. */
  maxKeys?: number
  /** The clock, in ms; default performance.now() (monotonic). Tests pass their own. */
  now?: () => number
}

/** The default cap: some 30 MB of entries (measured), so that a flood of distinct addresses is survived rather than served fairly. */
export const DEFAULT_MAX_KEYS = 100_000

/** How many entries past a held-connection one eviction looks at before evicting regardless. */
const EVICTION_SKIPS = 8

/**
 * The counting, one per node (the single process, or the cluster primary). Zones are namespaces
 * of keys in one Map, and the cap applies across zones: the least recently used entry goes first.
 * Recency is a linked list through the entries rather than the Map's insertion order (delete +
 * set on each touch): V8 leaves deleted Map slots in place until it rehashes, so finding the
 * oldest entry by iterating from the front skips every slot evicted since, and a flood of
 * distinct addresses took 100 µs per request (20 s for 200,000) instead of under 1 µs.
 *
 * The leaky bucket is nginx's (ngx_http_limit_req_module) with one deliberate change. nginx
 * creates a client's node with excess 0 on its first request and admits while the new excess is
 * ≤ burst, which lets burst + 1 requests through at once. Here a request's new excess is
 * `max(0, excess - rate × elapsed) + 1`, an absent entry counting as excess 0, and it is admitted
 * while that is ≤ burst: exactly `burst` requests (rate × multiplier) pass at once, and after that
 * one more every 1/rate, so over T a client gets at most burst + rate × T. A refused request
 * changes nothing (nginx does not account a request refused by any of its limit_req zones).
 *
 * A zone's limits are the ones each request brings, not stored: when an Ingress's values change,
 * its clients' excess carries over and drains at the new rate. Nothing is reset, because while a
 * change rolls out some workers ask with the old values and some with the new, and a reset on
 * every switch would hand out a fresh burst each time.
 */
export class RateLimiter {
  readonly #entries = new Map<string, Entry>()
  /** Sentinel of the recency list: `newer` is the oldest entry, `older` the newest. */
  readonly #list: Entry
  readonly #maxKeys: number
  readonly #now: () => number

  constructor (opts: LimiterOptions = {}) {
    this.#maxKeys = Math.max(1, opts.maxKeys ?? DEFAULT_MAX_KEYS)
    this.#now = opts.now ?? (() => performance.now())
    const sentinel = { id: '', rpsExcess: 0, rpmExcess: 0, last: 0, drainedAt: 0, conns: 0 } as Entry
    sentinel.older = sentinel
    sentinel.newer = sentinel
    this.#list = sentinel
  }

  /** Entries held, across zones (for tests and metrics). */
  get size (): number {
    return this.#entries.size
  }

  /**
   * One request of `key` in `zone`, all its limits at once: a connection slot (when the zone
   * limits connections), then the rps bucket, then the rpm one. Either everything is taken or, the
   * request being refused, nothing is, so no slot needs releasing after a refusal. Returns null
   * when refused, else the Release of the slot taken (a no-op without limit-connections).
   */
  take (zone: string, limits: ZoneLimits, key: string): Release | null {
    const now = this.#now()
    this.#sweep(now)
    const id = zone + ' ' + key
    let entry = this.#entries.get(id)
    if (entry === undefined) {
      const list = this.#list
      entry = { id, rpsExcess: 0, rpmExcess: 0, last: now, drainedAt: now, conns: 0, older: list, newer: list }
      this.#entries.set(id, entry)
    } else {
      this.#unlink(entry)
    }
    this.#append(entry)
    if (limits.connections !== undefined && entry.conns >= limits.connections) return null
    const elapsed = Math.max(0, now - entry.last)
    const mult = limits.burstMultiplier
    let rpsExcess = 0
    let rpmExcess = 0
    let drainMs = 0
    if (limits.rps !== undefined) {
      const perMs = limits.rps / 1000
      rpsExcess = Math.max(0, entry.rpsExcess - perMs * elapsed) + 1
      if (rpsExcess > limits.rps * mult) return null
      drainMs = rpsExcess / perMs
    }
    if (limits.rpm !== undefined) {
      const perMs = limits.rpm / 60_000
      rpmExcess = Math.max(0, entry.rpmExcess - perMs * elapsed) + 1
      if (rpmExcess > limits.rpm * mult) return null
      drainMs = Math.max(drainMs, rpmExcess / perMs)
    }
    entry.rpsExcess = rpsExcess
    entry.rpmExcess = rpmExcess
    entry.last = now
    entry.drainedAt = now + drainMs
    if (this.#entries.size > this.#maxKeys) this.#evict()
    if (limits.connections === undefined) return NOTHING_HELD
    entry.conns++
    // The entry itself, not its key: if it was evicted meanwhile, the release touches nothing live.
    const held = entry
    let released = false
    return () => {
      if (released) return
      released = true
      held.conns--
    }
  }

  #unlink (entry: Entry): void {
    entry.older.newer = entry.newer
    entry.newer.older = entry.older
  }

  #append (entry: Entry): void {
    const list = this.#list
    entry.older = list.older
    entry.newer = list
    list.older.newer = entry
    list.older = entry
  }

  #drop (entry: Entry): void {
    this.#unlink(entry)
    this.#entries.delete(entry.id)
  }

  /** Drops the oldest entries while they have drained: the cheap, common way memory is given back. */
  #sweep (now: number): void {
    const list = this.#list
    for (let i = 0; i < 2; i++) {
      const oldest = list.newer
      if (oldest === list || oldest.conns > 0 || oldest.drainedAt > now) return
      this.#drop(oldest)
    }
  }

  /** Over the cap: the least recently used entry goes, sparing a few holding connection slots, whose loss would let that client exceed limit-connections. */
  #evict (): void {
    const list = this.#list
    for (let i = 0; i <= EVICTION_SKIPS && this.#entries.size > this.#maxKeys; i++) {
      const oldest = list.newer
      if (oldest === list) return
      if (oldest.conns > 0 && i < EVICTION_SKIPS) {
        this.#unlink(oldest)
        this.#append(oldest)
      } else {
        this.#drop(oldest)
      }
    }
  }
}

/** A request's answer from a backend: whether it may go on, and how to give back its slot. */
export interface Admission {
  /** Synchronous in-process; a promise when the limiter is in another process. */
  allowed: boolean | Promise<boolean>
  /**
   * Gives back the limit-connections slot, once the request is over. Safe to call whatever
   * `allowed` says or will say (nothing is released for a refused request), and more than once.
   */
  release: Release
}

/** Where a step's counting happens: this process's RateLimiter, or the cluster primary's. */
export interface LimiterBackend {
  /** One request of `key` in `zone` (see RateLimiter.take). */
  admit: (zone: string, limits: ZoneLimits, key: string) => Admission
}

const REFUSED: Admission = Object.freeze({ allowed: false, release: NOTHING_HELD })
const ADMITTED: Admission = Object.freeze({ allowed: true, release: NOTHING_HELD })

/** Answers from `limiter` as they come (synchronous). */
export function localBackend (limiter: RateLimiter): LimiterBackend {
  return {
    admit (zone, limits, key) {
      const release = limiter.take(zone, limits, key)
      if (release === null) return REFUSED
      return release === NOTHING_HELD ? ADMITTED : { allowed: true, release }
    }
  }
}

/** The in-process backend: the single process's, where the answer is synchronous. */
export function createLocalLimiter (opts: LimiterOptions = {}): LimiterBackend {
  return localBackend(new RateLimiter(opts))
}

/**
 * The step for one Ingress's `zone` (its `namespace/name`, shared by all its paths and hosts). A
 * client in the allowlist passes untouched; otherwise the backend takes a connection slot, an rps
 * and an rpm token at once (or nothing), and a refusal is answered `statusCode` (503 unless
 * INGRESSD_LIMIT_REQ_STATUS_CODE says otherwise). The slot goes back through ctx.onDone, which
 * the proxy runs when the request ends, however it ends.
 */
export function bindRateLimit (zone: string, spec: RateLimitSpec, backend: LimiterBackend, statusCode: number): PolicyStep {
  const limits: ZoneLimits = Object.freeze({ rps: spec.rps, rpm: spec.rpm, burstMultiplier: spec.burstMultiplier, connections: spec.connections })
  const allow = spec.allow.length > 0 ? parseRanges(spec.allow) : undefined
  const limited: PolicyAnswer = Object.freeze({ status: statusCode, code: 'INGRESSD_ERR_RATE_LIMITED' })
  const holdsSlots = spec.connections !== undefined
  const verdict = (ok: boolean): PolicyAnswer | undefined => ok ? undefined : limited
  return (ctx: PolicyContext) => {
    if (allow !== undefined && inRanges(allow, ctx.client)) return undefined
    const admission = backend.admit(zone, limits, ctx.client)
    // Registered before any answer arrives: a client gone while the primary is asked still frees its slot.
    if (holdsSlots) (ctx.onDone ??= []).push(admission.release)
    const allowed = admission.allowed
    if (allowed === true) return undefined
    if (allowed === false) return limited
    return allowed.then(verdict)
  }
}
