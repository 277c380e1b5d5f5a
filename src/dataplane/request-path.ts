/**
 * The request path as the gateway routes it and sends it upstream, normalized as nginx does
 * before it matches locations: dot segments (also percent-encoded ones) resolved, repeated
 * slashes merged. Routing and the upstream see the same path, so no `..` can carry a request
 * out of the rule that matched it.
 */

/** The normalized path, or undefined when it cannot be one (relative, or `..` above the root): answer 400. */
export function normalizeRequestPath (raw: string): string | undefined {
  if (!raw.startsWith('/')) return undefined
  // Fast path: nothing to normalize in the common case.
  if (!raw.includes('//') && !raw.includes('/.') && !/%2e/i.test(raw)) return raw
  const decodedDots = raw.replace(/%2e/gi, '.')
  const segments = decodedDots.split('/')
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
