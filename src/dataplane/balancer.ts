/**
 * How a route picks its endpoint when it is not plain round robin: `load-balance` (round_robin,
 * ewma), `upstream-hash-by` (+ `-subset`, `-subset-size`) and `affinity: cookie`, with
 * ingress-nginx's semantics (rootfs/etc/nginx/lua/balancer/*.lua) and the same precedence as its
 * get_implementation: cookie affinity, then the hash, then load-balance.
 *
 * Two halves, as the policies have them:
 * - pure and once per table: `parseBalancingAnnotations` (on write and when an ingress is read;
 *   malformed values are problems, refused with 422) and `selectBalancer`, which the route compile
 *   calls to fix each route's BalancerSpec (settings.balancer).
 * - per request: `Balancers`, one per proxy, which keeps the balancing state (EWMA scores, hash
 *   rings, persistent cookie keys) with the endpoint set: a backend's key and its addresses. A
 *   table swap that leaves a backend's addresses as they were keeps its state; a changed set gets
 *   new rings, and keeps the EWMA scores of the endpoints that stayed (as ewma.lua's sync does).
 *
 * A route without these annotations has no BalancerSpec and never comes here: the proxy's own
 * round robin serves it, as cheap as before.
 */
import { createHash, randomBytes } from 'node:crypto'
import type { IngressSettings } from '../resources/annotations.js'
import { NGINX_PREFIX } from '../resources/annotation-prefix.js'
import type { Backend, Upstream } from './route-table.js'
import { HashRing, hashString, subsetGroups } from './hash-ring.js'
import { compileTemplate, renderTemplate, type NginxTemplate, type VariableRequest } from './policies/nginx-variables.js'
import { affinitySetCookie, defaultCookiePath, parseAffinity, readCookie, type AffinitySpec } from './policies/affinity.js'
import type { AnnotationProblem, AnnotationReader } from './policies/policy.js'

export type LoadBalanceAlgorithm = 'round_robin' | 'ewma'

/** The values `load-balance` and INGRESSD_LOAD_BALANCE take. */
export const LOAD_BALANCE_ALGORITHMS: readonly LoadBalanceAlgorithm[] = Object.freeze(['round_robin', 'ewma'])

/** upstream-hash-by, compiled: the key's template and, with upstream-hash-by-subset, the size of the groups keys go to. */
export interface UpstreamHashSpec {
  readonly by: NginxTemplate
  readonly subsetSize?: number
}

/** A route's way of picking an endpoint, fixed when the table is compiled. */
export type BalancerSpec =
  | { readonly kind: 'round_robin' }
  | { readonly kind: 'ewma' }
  | { readonly kind: 'hash', readonly by: NginxTemplate, readonly subsetSize?: number }
  | { readonly kind: 'sticky', readonly affinity: AffinitySpec, readonly cookiePath: string }

export const ROUND_ROBIN: BalancerSpec = Object.freeze({ kind: 'round_robin' })
export const EWMA: BalancerSpec = Object.freeze({ kind: 'ewma' })

/** ingress-nginx's default upstream-hash-by-subset-size. */
export const DEFAULT_SUBSET_SIZE = 3

export const HASH_KEYS = ['upstream-hash-by', 'upstream-hash-by-subset', 'upstream-hash-by-subset-size'] as const

/** What the balancing annotations of one ingress give, besides `load-balance` (a plain setting). */
export interface BalancingParse {
  upstreamHash?: UpstreamHashSpec
  affinity?: AffinitySpec
  problems: AnnotationProblem[]
}

/**
 * Reads upstream-hash-by (+ subset keys) and the affinity keys. The hash expression is compiled
 * here, once: a variable ingressd does not know is a problem naming the key, as nginx would
 * refuse to load it. The subset keys are checked even without upstream-hash-by, and then do nothing.
 */
export function parseBalancingAnnotations (read: AnnotationReader): BalancingParse {
  const problems: AnnotationProblem[] = []
  const problem = (name: string, expected: string, value: string): void => {
    problems.push({ key: NGINX_PREFIX + name, message: `${expected}, got ${JSON.stringify(value)}` })
  }
  let by: NginxTemplate | undefined
  const byValue = read('upstream-hash-by')
  if (byValue !== undefined) {
    if (byValue.trim() === '') problem('upstream-hash-by', 'expected an nginx variable expression such as "$request_uri", "$remote_addr", "$http_x_user" or "$host$request_uri"', byValue)
    else {
      const compiled = compileTemplate(byValue.trim())
      if ('error' in compiled) problem('upstream-hash-by', compiled.error, byValue)
      else by = compiled.template
    }
  }
  const subsetValue = read('upstream-hash-by-subset')
  if (subsetValue !== undefined && subsetValue !== 'true' && subsetValue !== 'false') problem('upstream-hash-by-subset', 'expected "true" or "false"', subsetValue)
  const sizeValue = read('upstream-hash-by-subset-size')
  let size = DEFAULT_SUBSET_SIZE
  if (sizeValue !== undefined) {
    // ingress-nginx reads 0 as its default, 3.
    if (/^\d{1,4}$/.test(sizeValue.trim()) && Number(sizeValue.trim()) <= 1000) size = Number(sizeValue.trim()) === 0 ? DEFAULT_SUBSET_SIZE : Number(sizeValue.trim())
    else problem('upstream-hash-by-subset-size', 'expected a whole number of endpoints from 1 to 1000, like "3"', sizeValue)
  }
  const out: BalancingParse = { problems }
  if (by !== undefined) out.upstreamHash = Object.freeze(subsetValue === 'true' ? { by, subsetSize: size } : { by })
  const affinity = parseAffinity(read)
  problems.push(...affinity.problems)
  if (affinity.spec !== undefined) out.affinity = affinity.spec
  return out
}

/** Whether settings ask for anything but the gateway's default balancing. */
export function hasBalancing (s: Pick<IngressSettings, 'loadBalance' | 'upstreamHash' | 'affinity'>): boolean {
  return s.loadBalance !== undefined || s.upstreamHash !== undefined || s.affinity !== undefined
}

/**
 * The balancer of one route, in ingress-nginx's order of precedence: cookie affinity, the hash,
 * then load-balance; undefined for the gateway default (INGRESSD_LOAD_BALANCE). `path` is the
 * route's path as written, for the affinity cookie's default Path.
 */
export function selectBalancer (s: Pick<IngressSettings, 'loadBalance' | 'upstreamHash' | 'affinity'>, path: string, regexMode: boolean): BalancerSpec | undefined {
  if (s.affinity !== undefined) return Object.freeze({ kind: 'sticky', affinity: s.affinity, cookiePath: s.affinity.path ?? defaultCookiePath(path, regexMode) })
  if (s.upstreamHash !== undefined) return Object.freeze(s.upstreamHash.subsetSize === undefined ? { kind: 'hash', by: s.upstreamHash.by } : { kind: 'hash', by: s.upstreamHash.by, subsetSize: s.upstreamHash.subsetSize })
  if (s.loadBalance === 'ewma') return EWMA
  if (s.loadBalance === 'round_robin') return ROUND_ROBIN
  return undefined
}

/** One pick: the endpoint, and for a sticky route the cookie to send and whether the client's cookie chose it. */
export interface Choice {
  readonly upstream: Upstream
  /** A Set-Cookie field value: a new affinity session. */
  readonly cookie?: string
  /** Sticky: the client's cookie named this endpoint. */
  readonly pinned?: boolean
}

/** ewma.lua's DECAY_TIME, 10 s. */
const DECAY_MS = 10_000
/** sticky_balanced.lua's MAX_UPSTREAM_CHECKS_COUNT: random keys tried for a new session before giving up on the failed endpoints. */
const NEW_KEY_TRIES = 20

/** `$pass_access_scheme`: the listener's scheme, or X-Forwarded-Proto from a trusted proxy. Decides Secure on the affinity cookie. */
const ACCESS_SCHEME = (compileTemplate('$pass_access_scheme') as { template: NginxTemplate }).template

/** An endpoint as ingress-nginx names it (`address:port`, IPv6 in brackets): the id rings and persistent keys are made from. */
function endpointId (u: Upstream): string {
  return u.host.includes(':') ? `[${u.host}]:${u.port}` : `${u.host}:${u.port}`
}

function md5 (text: string): string {
  return createHash('md5').update(text).digest('hex')
}

/** The upstream name ingress-nginx gives a backend (`namespace-service-port`), which its cookies hash. */
function upstreamName (backend: Pick<Backend, 'namespace' | 'service' | 'port'>): string {
  return `${backend.namespace}-${backend.service}-${backend.port}`
}

/** The second half of an affinity cookie for an upstream name, as sticky.lua writes it: md5(md5(name) + name). */
function stickyKeyOf (name: string): string {
  return md5(md5(name) + name)
}

/** The second half of an affinity cookie for a backend (the canary's decision reads it too). */
export function stickyBackendKey (backend: Pick<Backend, 'namespace' | 'service' | 'port'>): string {
  return stickyKeyOf(upstreamName(backend))
}

function randomIndex (n: number): number {
  return Math.floor(Math.random() * n)
}

/**
 * The balancing state of one endpoint set. Rings and keys are made when first asked for, so a
 * backend only pays for the algorithms its routes use.
 */
class EndpointSet {
  readonly ids: readonly string[]
  /** ingress-nginx's upstream name (`namespace-service-port`): the salt of persistent keys. */
  readonly #name: string
  #ring: HashRing | undefined
  #subsets: Map<number, { ring: HashRing, groups: number[][] }> | undefined
  #persistent: { keys: string[], byKey: Map<string, number> } | undefined
  #backendKey: string | undefined
  /** EWMA score (ms) and when it was last touched (performance.now()), per endpoint. */
  ewma: { score: Float64Array, touched: Float64Array } | undefined

  constructor (ids: readonly string[], backend: Backend, previous: EndpointSet | undefined) {
    this.ids = ids
    this.#name = upstreamName(backend)
    if (previous?.ewma !== undefined) this.ewma = carryEwma(previous, ids)
  }

  ring (): HashRing {
    this.#ring ??= new HashRing(this.ids)
    return this.#ring
  }

  /** chashsubset: endpoints (sorted by id, so the Endpoints order does not matter) in groups of `size`, and a ring over the groups. */
  subsets (size: number): { ring: HashRing, groups: number[][] } {
    this.#subsets ??= new Map()
    let entry = this.#subsets.get(size)
    if (entry === undefined) {
      const sorted = this.ids.map((_, i) => i).sort((a, b) => (this.ids[a] as string) < (this.ids[b] as string) ? -1 : 1)
      const groups = subsetGroups(sorted.length, size).map(g => g.map(i => sorted[i] as number))
      entry = { ring: new HashRing(groups.map((_, i) => `set${i + 1}`)), groups }
      this.#subsets.set(size, entry)
    }
    return entry
  }

  /**
   * Persistent affinity keys, as ingress-nginx's nodemap.lua makes them: md5(upstream name +
   * endpoint), so a key names its endpoint without showing its address (within reason: the salt
   * is not secret).
   */
  persistent (): { keys: string[], byKey: Map<string, number> } {
    if (this.#persistent === undefined) {
      const keys = this.ids.map(id => md5(this.#name + id))
      this.#persistent = { keys, byKey: new Map(keys.map((k, i) => [k, i])) }
    }
    return this.#persistent
  }

  /** The affinity cookie's second half, md5(md5(name) + name), as sticky.lua writes it: which backend the session belongs to. */
  backendKey (): string {
    this.#backendKey ??= stickyKeyOf(this.#name)
    return this.#backendKey
  }
}

/** ewma.lua's sync: endpoints that stay keep their score; new ones start at the average of the old scores. */
function carryEwma (previous: EndpointSet, ids: readonly string[]): { score: Float64Array, touched: Float64Array } {
  const old = previous.ewma as { score: Float64Array, touched: Float64Array }
  const at = new Map(previous.ids.map((id, i) => [id, i]))
  let sum = 0
  for (const s of old.score) sum += s
  const average = old.score.length === 0 ? 0 : sum / old.score.length
  const now = performance.now()
  const score = new Float64Array(ids.length)
  const touched = new Float64Array(ids.length)
  ids.forEach((id, i) => {
    const j = at.get(id)
    score[i] = j === undefined ? average : old.score[j] as number
    touched[i] = j === undefined ? now : old.touched[j] as number
  })
  return { score, touched }
}

function sameIds (a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** What Balancers needs of passive health. */
export interface EndpointAvailability {
  isAvailable: (u: Upstream) => boolean
}

/**
 * The balancers of one proxy, and their state by endpoint set. Passive health is honoured as
 * the round robin honours it: an endpoint out of rotation is skipped when another can take the
 * request, except by a session pinned to it (ingress-nginx's sticky balancers do not look at health).
 */
export class Balancers {
  readonly #byBackend = new WeakMap<Backend, EndpointSet>()
  readonly #byKey = new Map<string, EndpointSet>()

  /** `roundRobin` is the proxy's own pick, used for an explicit `load-balance: round_robin`. */
  constructor (private readonly health: EndpointAvailability, private readonly roundRobin: (backend: Backend, tried?: ReadonlySet<Upstream>) => Upstream | undefined) {}

  /** The state of a backend's endpoint set: the same object while its key and addresses stay the same, whatever table the backend came from. */
  endpointSet (backend: Backend): EndpointSet {
    let set = this.#byBackend.get(backend)
    if (set !== undefined) return set
    const ids = backend.upstreams.map(endpointId)
    const previous = this.#byKey.get(backend.key)
    set = previous !== undefined && sameIds(previous.ids, ids) ? previous : new EndpointSet(ids, backend, previous)
    this.#byKey.set(backend.key, set)
    this.#byBackend.set(backend, set)
    return set
  }

  /**
   * Picks an endpoint for a request. On a retry, `tried` holds the endpoints already tried and
   * `previous` the first choice. Undefined when every endpoint has been tried.
   * `trustedPeer`: the connection comes from a trusted proxy (its X-Forwarded-* count).
   */
  choose (spec: BalancerSpec, backend: Backend, r: VariableRequest, trustedPeer: boolean, tried?: ReadonlySet<Upstream>, previous?: Choice): Choice | undefined {
    switch (spec.kind) {
      case 'round_robin': {
        const upstream = this.roundRobin(backend, tried)
        return upstream === undefined ? undefined : { upstream }
      }
      case 'ewma': return this.#ewma(backend, tried)
      case 'hash': return this.#hash(spec.subsetSize, backend, renderTemplate(spec.by, r, trustedPeer), tried)
      case 'sticky': return this.#sticky(spec, backend, r, trustedPeer, tried, previous)
    }
  }

  /** A response came from `upstream` after `ms`: EWMA routes learn from it (ewma.lua's after_balance). */
  observe (spec: BalancerSpec, backend: Backend, upstream: Upstream, ms: number): void {
    if (spec.kind !== 'ewma') return
    const state = this.endpointSet(backend).ewma
    const i = backend.upstreams.indexOf(upstream)
    if (state === undefined || i === -1) return
    const now = performance.now()
    const weight = Math.exp(-Math.max(0, now - (state.touched[i] as number)) / DECAY_MS)
    state.score[i] = (state.score[i] as number) * weight + ms * (1 - weight)
    state.touched[i] = now
  }

  #usable (u: Upstream, tried: ReadonlySet<Upstream> | undefined): boolean {
    return (tried === undefined || !tried.has(u)) && this.health.isAvailable(u)
  }

  /** Indexes of the endpoints that can take the request; when passive health has taken out all of them, those not tried yet (better to try one than answer 502 untried). */
  #candidates (list: readonly Upstream[], tried: ReadonlySet<Upstream> | undefined): number[] {
    const indexes = list.map((_, i) => i)
    const usable = indexes.filter(i => this.#usable(list[i] as Upstream, tried))
    return usable.length > 0 ? usable : indexes.filter(i => tried === undefined || !tried.has(list[i] as Upstream))
  }

  /** ewma.lua: two endpoints at random, the one with the lower decayed score wins. */
  #ewma (backend: Backend, tried: ReadonlySet<Upstream> | undefined): Choice | undefined {
    const list = backend.upstreams
    const set = this.endpointSet(backend)
    // Never touched: -Infinity, so the first response counts in full (ewma.lua's epoch-based clock gives the same).
    const state = set.ewma ??= { score: new Float64Array(list.length), touched: new Float64Array(list.length).fill(-Infinity) }
    let a: number
    let b: number
    const n = list.length
    if (tried === undefined && n > 1) {
      a = randomIndex(n)
      b = randomIndex(n - 1)
      if (b >= a) b++
      if (!this.#usable(list[a] as Upstream, undefined) || !this.#usable(list[b] as Upstream, undefined)) [a, b] = this.#two(list, tried)
    } else {
      [a, b] = this.#two(list, tried)
    }
    if (a === -1) return undefined
    if (b === -1) return { upstream: list[a] as Upstream }
    const now = performance.now()
    const score = (i: number): number => (state.score[i] as number) * Math.exp(-Math.max(0, now - (state.touched[i] as number)) / DECAY_MS)
    return { upstream: list[score(b) < score(a) ? b : a] as Upstream }
  }

  /** Two distinct candidates at random (-1 where there are fewer). */
  #two (list: readonly Upstream[], tried: ReadonlySet<Upstream> | undefined): [number, number] {
    const candidates = this.#candidates(list, tried)
    if (candidates.length === 0) return [-1, -1]
    if (candidates.length === 1) return [candidates[0] as number, -1]
    const i = randomIndex(candidates.length)
    let j = randomIndex(candidates.length - 1)
    if (j >= i) j++
    return [candidates[i] as number, candidates[j] as number]
  }

  /**
   * chash.lua and chashsubset.lua: the key's place on the ring names the endpoint (or the group,
   * of which one member is taken at random). An endpoint that cannot take the request (tried
   * already, or out of rotation) hands it to the next one clockwise.
   */
  #hash (subsetSize: number | undefined, backend: Backend, key: string, tried: ReadonlySet<Upstream> | undefined): Choice | undefined {
    const list = backend.upstreams
    if (list.length === 0) return undefined
    const set = this.endpointSet(backend)
    const hash = hashString(key)
    if (subsetSize === undefined) {
      const ring = set.ring()
      let node = ring.find(hash)
      if (!this.#usable(list[node] as Upstream, tried)) {
        node = ring.walk(hash, i => this.#usable(list[i] as Upstream, tried))
        if (node === -1) node = ring.walk(hash, i => tried === undefined || !tried.has(list[i] as Upstream))
      }
      return node === -1 ? undefined : { upstream: list[node] as Upstream }
    }
    const { ring, groups } = set.subsets(subsetSize)
    const inGroup = (g: number): number => {
      const usable = (groups[g] as number[]).filter(i => this.#usable(list[i] as Upstream, tried))
      return usable.length === 0 ? -1 : usable[randomIndex(usable.length)] as number
    }
    let member = inGroup(ring.find(hash))
    if (member === -1) {
      // The next group clockwise with a member that can take the request.
      const group = ring.walk(hash, g => inGroup(g) !== -1)
      if (group !== -1) member = inGroup(group)
    }
    if (member === -1) {
      const rest = this.#candidates(list, tried)
      if (rest.length === 0) return undefined
      member = rest[randomIndex(rest.length)] as number
    }
    return { upstream: list[member] as Upstream }
  }

  /**
   * sticky.lua: the client's cookie names its endpoint (persistent: by the endpoint's key;
   * balanced: a random key on the ring), kept even on a retry unless session-cookie-change-on-
   * failure is set. Without a usable cookie a new session is picked and its cookie issued.
   */
  #sticky (spec: Extract<BalancerSpec, { kind: 'sticky' }>, backend: Backend, r: VariableRequest, trustedPeer: boolean, tried: ReadonlySet<Upstream> | undefined, previous: Choice | undefined): Choice | undefined {
    const affinity = spec.affinity
    const list = backend.upstreams
    if (list.length === 0) return undefined
    if (previous !== undefined) {
      // A retry: ingress-nginx sends it to the pinned endpoint again, unless change-on-failure.
      if (previous.pinned === true && !affinity.changeOnFailure) return previous
      return this.#newSession(spec, backend, r, trustedPeer, tried)
    }
    const raw = readCookie(r.req.headers.cookie, affinity.name)
    if (raw !== undefined) {
      const bar = raw.indexOf('|')
      const key = bar === -1 ? raw : raw.slice(0, bar)
      if (key !== '') {
        const set = this.endpointSet(backend)
        const node = affinity.mode === 'persistent' ? (set.persistent().byKey.get(key) ?? -1) : set.ring().find(hashString(key))
        const upstream = list[node]
        // change-on-failure also leaves an endpoint that passive health took out of rotation.
        if (upstream !== undefined && (!affinity.changeOnFailure || this.health.isAvailable(upstream))) return { upstream, pinned: true }
      }
    }
    return this.#newSession(spec, backend, r, trustedPeer, tried)
  }

  #newSession (spec: Extract<BalancerSpec, { kind: 'sticky' }>, backend: Backend, r: VariableRequest, trustedPeer: boolean, tried: ReadonlySet<Upstream> | undefined): Choice | undefined {
    const list = backend.upstreams
    const set = this.endpointSet(backend)
    let node = -1
    let key = ''
    if (spec.affinity.mode === 'persistent') {
      // sticky_persistent.lua: a random endpoint among those that have not failed.
      const candidates = this.#candidates(list, tried)
      if (candidates.length === 0) return undefined
      node = candidates[randomIndex(candidates.length)] as number
      key = set.persistent().keys[node] as string
    } else {
      // sticky_balanced.lua: random keys until one lands on an endpoint that can take the request.
      const ring = set.ring()
      for (let i = 0; i < NEW_KEY_TRIES && node === -1; i++) {
        const k = randomBytes(12).toString('hex')
        const n = ring.find(hashString(k))
        if (this.#usable(list[n] as Upstream, tried)) {
          node = n
          key = k
        }
      }
      for (let i = 0; i < NEW_KEY_TRIES && node === -1; i++) {
        const k = randomBytes(12).toString('hex')
        const n = ring.find(hashString(k))
        if (tried === undefined || !tried.has(list[n] as Upstream)) {
          node = n
          key = k
        }
      }
      if (node === -1) return undefined
    }
    const secure = renderTemplate(ACCESS_SCHEME, r, trustedPeer) === 'https'
    const userAgent = r.req.headers['user-agent']
    const cookie = affinitySetCookie(spec.affinity, `${key}|${set.backendKey()}`, spec.cookiePath, secure, userAgent)
    return { upstream: list[node] as Upstream, cookie, pinned: false }
  }
}

/**
 * Puts an affinity cookie among a request's response headers (PolicyContext.responseHeaders),
 * replacing the one a failed attempt put there.
 */
export function putAffinityCookie (ctx: { responseHeaders?: Record<string, string | string[]> }, cookie: string, replacing?: string): void {
  const headers = ctx.responseHeaders ??= {}
  const existing = [headers['set-cookie'] ?? []].flat().filter(c => c !== replacing)
  existing.push(cookie)
  headers['set-cookie'] = existing.length === 1 ? existing[0] as string : existing
}
