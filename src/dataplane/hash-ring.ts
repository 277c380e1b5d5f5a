/**
 * A consistent-hash ring, ketama-like: every node is placed on a 32-bit circle at many points
 * (virtual nodes), and a key belongs to the node of the first point at or after the key's hash.
 * Adding or removing one of N nodes only moves the keys of the points it gains or loses, about
 * 1/N of them; every other key stays where it was. Pure: the same node ids always give the same
 * ring, in every process, so a key (or an affinity cookie) maps to the same endpoint on each
 * worker and each node of a cluster.
 *
 * Used by upstream-hash-by (a request's key), upstream-hash-by-subset (a ring of endpoint groups)
 * and balanced cookie affinity (the cookie's random key), as ingress-nginx uses resty.chash.
 */

/** Points per node: resty.chash (ingress-nginx) uses 160 per unit of weight, as ketama does. */
export const POINTS_PER_NODE = 160

/**
 * MurmurHash3 (32-bit) of a string's UTF-16 code units, two to a block: fast, well mixed, and
 * the same in every process. Not a cryptographic hash: nothing secret is derived from it.
 */
export function hashString (s: string, seed = 0): number {
  let h = seed | 0
  const n = s.length
  let i = 0
  for (; i + 1 < n; i += 2) {
    let k = s.charCodeAt(i) | (s.charCodeAt(i + 1) << 16)
    k = Math.imul(k, 0xcc9e2d51)
    k = (k << 15) | (k >>> 17)
    k = Math.imul(k, 0x1b873593)
    h ^= k
    h = (h << 13) | (h >>> 19)
    h = (Math.imul(h, 5) + 0xe6546b64) | 0
  }
  if (i < n) {
    let k = s.charCodeAt(i)
    k = Math.imul(k, 0xcc9e2d51)
    k = (k << 15) | (k >>> 17)
    k = Math.imul(k, 0x1b873593)
    h ^= k
  }
  h ^= n * 2
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** The ring over a list of node ids; nodes are named by their position in that list. */
export class HashRing {
  /** How many nodes the ring was built over. */
  readonly size: number
  /** The points, ascending, and the node each belongs to. */
  readonly #points: Uint32Array
  readonly #owners: Uint32Array

  /** `ids` must be distinct; their order only decides which index names which node. */
  constructor (ids: readonly string[], pointsPerNode = POINTS_PER_NODE) {
    this.size = ids.length
    const total = ids.length * pointsPerNode
    const raw = new Uint32Array(total)
    const rawOwners = new Uint32Array(total)
    for (let node = 0, p = 0; node < ids.length; node++) {
      const id = ids[node] as string
      for (let v = 0; v < pointsPerNode; v++, p++) {
        raw[p] = hashString(`${id}#${v}`)
        rawOwners[p] = node
      }
    }
    // Two nodes landing on one point (rare) are ordered by id, so the ring never depends on the order of `ids`.
    const order = Array.from({ length: total }, (_, i) => i)
    order.sort((a, b) => (raw[a] as number) - (raw[b] as number) || compare(ids[rawOwners[a] as number] as string, ids[rawOwners[b] as number] as string))
    this.#points = new Uint32Array(total)
    this.#owners = new Uint32Array(total)
    for (let i = 0; i < total; i++) {
      this.#points[i] = raw[order[i] as number] as number
      this.#owners[i] = rawOwners[order[i] as number] as number
    }
  }

  /** The position of the first point at or after `hash`, wrapping around to the start. */
  #position (hash: number): number {
    const points = this.#points
    let lo = 0
    let hi = points.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((points[mid] as number) < hash) lo = mid + 1
      else hi = mid
    }
    return lo === points.length ? 0 : lo
  }

  /** The node a hash belongs to; -1 on an empty ring. */
  find (hash: number): number {
    if (this.size === 0) return -1
    return this.#owners[this.#position(hash)] as number
  }

  /**
   * The first node, going clockwise from `hash`, that `accept` takes; -1 when it takes none. The
   * owner comes first, then the next distinct nodes in ring order, so when a node is skipped its
   * keys spread over the others rather than all landing on one neighbour.
   */
  walk (hash: number, accept: (node: number) => boolean): number {
    if (this.size === 0) return -1
    const owners = this.#owners
    const seen = new Uint8Array(this.size)
    let left = this.size
    const start = this.#position(hash)
    for (let i = 0; i < owners.length && left > 0; i++) {
      const node = owners[(start + i) % owners.length] as number
      if (seen[node] === 1) continue
      seen[node] = 1
      left--
      if (accept(node)) return node
    }
    return -1
  }
}

function compare (a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/**
 * ingress-nginx's chashsubset grouping: the endpoints (in the given order) cut into groups of
 * `size`, the last group filled up with endpoints from the start so that every group has `size`
 * members. Returns each group's member indexes.
 */
export function subsetGroups (count: number, size: number): number[][] {
  if (count === 0 || size < 1) return []
  const groups = Math.ceil(count / size)
  const out: number[][] = []
  for (let g = 0, k = 0; g < groups; g++) {
    const members: number[] = []
    for (let m = 0; m < size; m++, k++) members.push(k < count ? k : (k - count) % count)
    out.push(members)
  }
  return out
}
