/**
 * The request path as the gateway routes it and sends it upstream, normalized as nginx does
 * before it matches locations: percent-encoded unreserved characters decoded, dot segments
 * resolved, repeated slashes merged. Routing and the upstream see the same path, so no `..` can
 * carry a request out of the rule that matched it, and no `%61dmin` can reach `/admin` under
 * another rule.
 *
 * Encoded slashes and backslashes (`%2F`, `%5C`) and raw backslashes stay as sent, but a backend
 * that decodes them, or reads `\` as `/`, resolves the path differently: `slashDecodedVariants`
 * gives those readings, for the proxy to refuse a request whose readings pick different routes.
 */

/** The hex digit's value, or -1. */
function hexValue (code: number): number {
  if (code >= 48 && code <= 57) return code - 48
  const lower = code | 0x20
  if (lower >= 97 && lower <= 102) return lower - 87
  return -1
}

/** RFC 3986 2.3: ALPHA / DIGIT / "-" / "." / "_" / "~". */
function isUnreserved (code: number): boolean {
  return (code >= 97 && code <= 122) || (code >= 65 && code <= 90) || (code >= 48 && code <= 57) ||
    code === 45 || code === 46 || code === 95 || code === 126
}

/**
 * The path with its percent-encoded unreserved characters decoded (`%61dmin` is `admin`,
 * `%2e` is `.`, `%7E` is `~`): RFC 3986 6.2.2.2 makes them equivalent to the characters
 * themselves, and every backend decodes them. Other escapes, reserved or not ASCII, stay as sent.
 */
export function decodeUnreserved (path: string): string {
  let i = path.indexOf('%')
  if (i === -1) return path
  let out = ''
  let from = 0
  for (; i !== -1 && i + 2 < path.length; i = path.indexOf('%', i + 1)) {
    const hi = hexValue(path.charCodeAt(i + 1))
    const lo = hexValue(path.charCodeAt(i + 2))
    if (hi === -1 || lo === -1) continue
    const code = hi * 16 + lo
    if (!isUnreserved(code)) continue
    out += path.slice(from, i) + String.fromCharCode(code)
    from = i + 3
    i += 2
  }
  return from === 0 ? path : out + path.slice(from)
}

/**
 * The normalized path, or undefined when it cannot be one (relative, or `..` above the root):
 * answer 400. Encoded unreserved characters are decoded first, so `%2e%2e` is a dot segment.
 */
export function normalizeRequestPath (raw: string): string | undefined {
  if (!raw.startsWith('/')) return undefined
  const decoded = decodeUnreserved(raw)
  // Fast path: nothing to normalize in the common case.
  if (!decoded.includes('//') && !decoded.includes('/.')) return decoded
  const segments = decoded.split('/')
  const out: string[] = []
  let trailingSlash = false
  for (let i = 1; i < segments.length; i++) {
    const seg = segments[i] as string
    const last = i === segments.length - 1
    if (seg === '' || seg === '.') {
      trailingSlash = last
      continue
    }
    if (seg === '..') {
      if (out.length === 0) return undefined
      out.pop()
      trailingSlash = last
      continue
    }
    out.push(seg)
    trailingSlash = false
  }
  const path = '/' + out.join('/')
  return trailingSlash && path !== '/' ? `${path}/` : path
}

const NO_VARIANTS: ReadonlyArray<string | undefined> = Object.freeze([])

/**
 * The other ways a backend may read a normalized path that holds `%2F`, `%5C` (any case) or a
 * raw `\`: a backend that decodes some of them (many frameworks decode `%2F`; backends on Windows
 * and some Java servers also take `\` for `/`) splits the path there before it resolves dot
 * segments. One reading per combination of the kinds present (at most seven), each normalized
 * again; undefined for a reading that climbs above the root. Empty, and no allocation, for a path
 * without them: one indexOf for `%` and one for `\` in the common case.
 *
 * Every combination, not only all of them decoded at once: `/admin%2F..%5C` is `/` with all three
 * decoded, as the gateway routes it, but `/admin/..%5C`, under `/admin`, to a backend that
 * decodes `%2F` alone.
 */
export function slashDecodedVariants (path: string): ReadonlyArray<string | undefined> {
  const backslash = path.indexOf('\\') !== -1
  const percent = path.indexOf('%') !== -1
  if (!backslash && !percent) return NO_VARIANTS
  const kinds: RegExp[] = []
  if (percent && /%2f/i.test(path)) kinds.push(/%2f/gi)
  if (percent && /%5c/i.test(path)) kinds.push(/%5c/gi)
  if (backslash) kinds.push(/\\/g)
  if (kinds.length === 0) return NO_VARIANTS
  const readings = new Set<string | undefined>()
  for (let mask = 1; mask < 1 << kinds.length; mask++) {
    let reading = path
    for (let k = 0; k < kinds.length; k++) if ((mask & (1 << k)) !== 0) reading = reading.replace(kinds[k] as RegExp, '/')
    readings.add(normalizeRequestPath(reading))
  }
  return [...readings]
}
