import t from 'tap'
import { decodeUnreserved, normalizeRequestPath, slashDecodedVariants } from '../../src/dataplane/request-path.js'

t.test('dot segments, encoded dots and repeated slashes are resolved; escaping the root is refused', async t => {
  const cases: [string, string | undefined][] = [
    ['/', '/'],
    ['/foo/bar', '/foo/bar'],
    ['/foo/', '/foo/'],
    ['/api/../secret', '/secret'],
    ['/api/./v1', '/api/v1'],
    ['/api/%2e%2e/secret', '/secret'],
    ['/api/%2E/v1/', '/api/v1/'],
    ['//foo///bar', '/foo/bar'],
    ['/foo/..', '/'],
    ['/foo/bar/..', '/foo/'],
    ['/foo/.', '/foo/'],
    ['/..', undefined],
    ['/../etc/passwd', undefined],
    ['/a/../../b', undefined],
    ['foo', undefined],
    ['http://other/x', undefined],
    ['/caf%C3%A9/%2F', '/caf%C3%A9/%2F'],
    ['/...', '/...']
  ]
  for (const [raw, expected] of cases) t.equal(normalizeRequestPath(raw), expected, `${raw} -> ${String(expected)}`)
})

t.test('encoded unreserved characters are decoded before the path is normalized and routed', async t => {
  const cases: [string, string | undefined][] = [
    ['/%61dmin', '/admin'],
    ['/%41DMIN', '/ADMIN'],
    ['/p%75blic/x', '/public/x'],
    ['/%7Euser/%7e', '/~user/~'],
    ['/a%2Db%5Fc%30', '/a-b_c0'],
    ['/a%2eb', '/a.b'],
    // %2e%2E is a dot segment once decoded, and %2E alone a `.` one.
    ['/x/%2e%2E/admin', '/admin'],
    ['/x/%2e/y', '/x/y'],
    ['/%2e%2e/admin', undefined],
    // Reserved and non-ASCII escapes stay as sent: decoding them would change what the path says.
    ['/a%2Fb', '/a%2Fb'],
    ['/a%5cb', '/a%5cb'],
    ['/a%20b%3F%23%25', '/a%20b%3F%23%25'],
    ['/caf%c3%a9', '/caf%c3%a9'],
    // %25 decodes to `%`, which is not unreserved: no second decoding can follow from it.
    ['/%2561dmin', '/%2561dmin'],
    ['/%252e%252e/admin', '/%252e%252e/admin']
  ]
  for (const [raw, expected] of cases) t.equal(normalizeRequestPath(raw), expected, `${raw} -> ${String(expected)}`)
})

t.test('decodeUnreserved leaves everything else untouched, including what is not an escape', async t => {
  const cases: [string, string][] = [
    ['/plain', '/plain'],
    ['/%', '/%'],
    ['/a%4', '/a%4'],
    ['/a%zz%61', '/a%zza'],
    ['/%%61', '/%a'],
    ['/%61%62%63', '/abc'],
    ['/%5A%5a%7a%7A%30%39', '/ZZzz09']
  ]
  for (const [raw, expected] of cases) t.equal(decodeUnreserved(raw), expected, `${raw} -> ${expected}`)
  const same = '/nothing/to/decode'
  t.equal(decodeUnreserved(same), same, 'a path without % is returned as is')
})

t.test('slashDecodedVariants: the readings of a backend that decodes %2F or %5C, or takes \\ for /', async t => {
  const cases: Array<[string, Array<string | undefined>]> = [
    // Nothing to read differently: no allocation, no reading.
    ['/public/a', []],
    ['/public/caf%C3%A9', []],
    ['/public/a%20b', []],
    // One kind present: one reading.
    ['/public/..%2Fadmin', ['/admin']],
    ['/public/..%2fadmin', ['/admin']],
    ['/public/..%5Cadmin', ['/admin']],
    ['/public/..%5cadmin', ['/admin']],
    ['/public/..\\admin', ['/admin']],
    ['/public%2F..%2Fadmin', ['/admin']],
    ['/public/a%2Fb', ['/public/a/b']],
    ['/a%2F%2Fb', ['/a/b']],
    ['/a%2F', ['/a/']],
    // Climbing above the root in that reading.
    ['/public/..%2F..%2Fetc', [undefined]],
    ['/..%5C', [undefined]],
    // Two kinds: each alone, and both.
    ['/admin%2F..%5C', ['/admin/..%5C', '/admin%2F../', '/']],
    // Three kinds: seven combinations, here with repeats merged.
    ['/a%2Fb%5Cc\\d', ['/a/b%5Cc\\d', '/a%2Fb/c\\d', '/a/b/c\\d', '/a%2Fb%5Cc/d', '/a/b%5Cc/d', '/a%2Fb/c/d', '/a/b/c/d']],
    ['/x\\..', ['/']]
  ]
  for (const [path, expected] of cases) t.same(slashDecodedVariants(path), expected, `${path} -> ${JSON.stringify(expected)}`)
  t.equal(slashDecodedVariants('/a'), slashDecodedVariants('/b'), 'the common case shares one empty list')
})

t.test('every way of reading the separators is covered, whatever a backend decodes', async t => {
  // A backend decodes some of %2F, %5C, `\` into `/` (any subset), then resolves dot segments,
  // refusing or clamping at the root. Over every path of up to five pieces, none such reading
  // may land under another route than the gateway's unless slashDecodedVariants shows one that does.
  const routes = ['/public', '/admin']
  const routeOf = (p: string): string => routes.find(r => p === r || p.startsWith(`${r}/`)) ?? 'none'
  const clamp = (p: string): string => {
    const out: string[] = []
    for (const seg of p.split('/').slice(1)) {
      if (seg === '..') out.pop()
      else if (seg !== '' && seg !== '.') out.push(seg)
    }
    return `/${out.join('/')}`
  }
  const pieces = ['public', 'admin', '..', 'x', '%2F', '%5C', '\\', '/']
  const kinds = ['%2F', '%5C', '\\']
  let checked = 0
  let missed = 0
  const walk = (path: string, depth: number): void => {
    const normalized = normalizeRequestPath(path)
    if (normalized !== undefined) {
      checked++
      const routed = routeOf(normalized)
      const refused = slashDecodedVariants(normalized).some(r => r === undefined || routeOf(r) !== routed)
      if (!refused) {
        for (let mask = 1; mask < 8; mask++) {
          let reading = normalized
          for (let k = 0; k < 3; k++) if ((mask & (1 << k)) !== 0) reading = reading.split(kinds[k] as string).join('/')
          const resolved = normalizeRequestPath(reading)
          if (resolved === undefined || routeOf(resolved) !== routed || routeOf(clamp(reading)) !== routed) {
            if (missed++ < 5) t.fail(`${path}: a backend reads ${reading}, not under ${routed}`)
          }
        }
      }
    }
    if (depth === 0) return
    for (const piece of pieces) walk(path + piece, depth - 1)
  }
  walk('/', 5)
  t.equal(missed, 0, `no reading escapes its route, over ${checked} paths`)
})
