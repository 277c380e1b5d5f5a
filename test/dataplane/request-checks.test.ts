import t from 'tap'
import { checkRequest, hasBadEscape, type RequestFacts } from '../../src/dataplane/request-checks.js'

const limits = { maxUriLength: 8192, maxHeaders: 100 }
function facts (url: string, rawHeaders: string[], version = '1.1'): RequestFacts {
  const headers: Record<string, string> = {}
  for (let i = 0; i < rawHeaders.length; i += 2) headers[(rawHeaders[i] as string).toLowerCase()] ??= rawHeaders[i + 1] as string
  const [major, minor] = version.split('.').map(Number) as [number, number]
  return { httpVersionMajor: major, httpVersionMinor: minor, url, headers, rawHeaders }
}

t.test('origin-form targets pass through unchanged', async t => {
  t.same(checkRequest(facts('/a/b?c=%zz', ['Host', 'a.example']), limits), { target: '/a/b?c=%zz' }, 'the query is not checked')
  t.same(checkRequest(facts('/a%2Fb%2e', ['Host', 'a.example']), limits), { target: '/a%2Fb%2e' })
})

t.test('Host: repeated, missing on HTTP/1.1, or differing from an absolute-form authority', async t => {
  t.same(checkRequest(facts('/', ['Host', 'a', 'host', 'a']), limits), { code: 'INGRESSD_ERR_BAD_HOST' })
  t.same(checkRequest(facts('/', []), limits), { code: 'INGRESSD_ERR_BAD_HOST' })
  t.same(checkRequest(facts('/', [], '1.0'), limits), { target: '/' }, 'HTTP/1.0 without Host is left to the router (400 there too)')
  t.same(checkRequest(facts('http://b.example/x', ['Host', 'a.example']), limits), { code: 'INGRESSD_ERR_BAD_HOST' })
  t.same(checkRequest(facts('http://u@a.example/x', ['Host', 'a.example']), limits), { code: 'INGRESSD_ERR_BAD_HOST' })
  t.same(checkRequest(facts('HTTP://A.example:8080', ['Host', 'a.example.']), limits), { target: '/' })
  t.same(checkRequest(facts('https://a.example?q', ['Host', 'a.example']), limits), { target: '/?q' })
  t.same(checkRequest(facts('ftp://a.example/', ['Host', 'a.example']), limits), { code: 'INGRESSD_ERR_BAD_PATH' })
  t.same(checkRequest(facts('/', [':authority', 'a.example'], '2.0'), limits), { target: '/' }, 'HTTP/2 carries :authority instead')
})

t.test('Transfer-Encoding on HTTP/1.0', async t => {
  t.same(checkRequest(facts('/', ['Host', 'a', 'Transfer-Encoding', 'chunked'], '1.0'), limits), { code: 'INGRESSD_ERR_BAD_FRAMING' })
  t.same(checkRequest(facts('/', ['Host', 'a', 'Transfer-Encoding', 'chunked']), limits), { target: '/' })
})

t.test('escapes in the path', async t => {
  for (const bad of ['/%00', '/a%zz', '/a%2', '/%', '/%0g']) t.ok(hasBadEscape(bad), bad)
  for (const good of ['/', '/%2F', '/%e2%82%ac', '/a%20b']) t.notOk(hasBadEscape(good), good)
  t.same(checkRequest(facts('/a%00?x', ['Host', 'a']), limits), { code: 'INGRESSD_ERR_BAD_PATH' })
})

t.test('header size: an HTTP/2 request is measured as its HTTP/1.1 head; HTTP/1 is left to Node', async t => {
  const sized = { ...limits, maxHeaderSize: 100 }
  // "GET " + "/" + " HTTP/1.1\r\n" and "name: value\r\n" per field; pseudo-headers other than :authority are the request line.
  const h2 = (value: string): RequestFacts => facts('/', [':method', 'GET', ':path', '/', ':scheme', 'https', ':authority', 'a.example', 'x-big', value], '2.0')
  t.same(checkRequest(h2('v'.repeat(40)), sized), { target: '/' }, 'under the limit')
  t.same(checkRequest(h2('v'.repeat(80)), sized), { code: 'INGRESSD_ERR_HEADERS_TOO_LARGE' }, 'over it')
  t.same(checkRequest(h2('v'.repeat(80)), { ...sized, maxHeaderSize: 0 }), { target: '/' }, '0: not checked')
  t.same(checkRequest(facts('/', ['Host', 'a', 'x-big', 'v'.repeat(200)]), sized), { target: '/' }, 'HTTP/1.1: Node\'s parser enforces it, not this check')
})

t.test('target length and header count', async t => {
  t.same(checkRequest(facts('/' + 'a'.repeat(8191), ['Host', 'a']), limits), { target: '/' + 'a'.repeat(8191) })
  t.same(checkRequest(facts('/' + 'a'.repeat(8192), ['Host', 'a']), limits), { code: 'INGRESSD_ERR_URI_TOO_LONG' })
  t.same(checkRequest(facts('/' + 'a'.repeat(9000), ['Host', 'a']), { maxUriLength: 0, maxHeaders: 0 }), { target: '/' + 'a'.repeat(9000) }, '0: no limit')
  const many = Array.from({ length: 101 }, (_, i) => [`x-${i}`, 'v']).flat()
  t.same(checkRequest(facts('/', ['Host', 'a', ...many.slice(4)]), limits), { target: '/' }, '100 fields pass')
  t.same(checkRequest(facts('/', ['Host', 'a', ...many]), limits), { code: 'INGRESSD_ERR_HEADERS_TOO_LARGE' })
})
