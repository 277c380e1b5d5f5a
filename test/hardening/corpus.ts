/**
 * Hostile HTTP/1.x requests, as raw bytes, each with the answer the gateway must give: in the
 * style of nginx-tests and HAProxy's VTest. requests.test.ts sends each one to a real gateway in
 * front of real origins (docs/security.md lists the groups and their counts).
 *
 * The gateway under test serves: `a.example` Prefix `/` → origin a, `a.example` Prefix `/private`
 * → origin b, and a host-less rule → origin c.
 */
import type { SeenRequest } from '../helpers/origin.js'

export type Group = 'framing' | 'host' | 'path' | 'forwarded' | 'limits'

export interface Case {
  group: Group
  name: string
  /** The bytes sent, as a latin1 string. */
  raw: string
  /** The status expected; 0: the connection is closed without an answer. */
  status: number
  /** The gateway's error code expected in the body. */
  code?: string
  /** For requests that are routed: which origin gets it, and the exact target it must see. */
  origin?: 'a' | 'b' | 'c'
  url?: string
  /** Extra checks on what the origin received: a message when something is wrong. */
  check?: (seen: SeenRequest) => string | undefined
}

const inGroup = (group: Group, cases: Array<Omit<Case, 'group'>>): Case[] => cases.map(c => ({ ...c, group }))

const CRLF = '\r\n'
/** A request from lines, ending its head with an empty line; `body` follows as is. */
export function req (lines: string[], body = ''): string {
  return lines.join(CRLF) + CRLF + CRLF + body
}
const get = (target: string, host = 'a.example'): string => req([`GET ${target} HTTP/1.1`, `Host: ${host}`, 'Connection: close'])
const post = (headers: string[], body: string, version = '1.1'): string => req([`POST /upload HTTP/${version}`, 'Host: a.example', ...headers], body)

const framing: Case[] = inGroup('framing', [
  { name: 'Content-Length with Transfer-Encoding', raw: post(['Content-Length: 4', 'Transfer-Encoding: chunked'], '0\r\n\r\n'), status: 400 },
  { name: 'Transfer-Encoding before Content-Length', raw: post(['Transfer-Encoding: chunked', 'Content-Length: 4'], '0\r\n\r\n'), status: 400 },
  { name: 'two equal Content-Length fields', raw: post(['Content-Length: 4', 'Content-Length: 4'], 'abcd'), status: 400 },
  { name: 'two different Content-Length fields', raw: post(['Content-Length: 4', 'Content-Length: 5'], 'abcde'), status: 400 },
  { name: 'Content-Length list', raw: post(['Content-Length: 4, 4'], 'abcd'), status: 400 },
  { name: 'signed Content-Length +4', raw: post(['Content-Length: +4'], 'abcd'), status: 400 },
  { name: 'negative Content-Length', raw: post(['Content-Length: -1'], 'abcd'), status: 400 },
  { name: 'hex Content-Length', raw: post(['Content-Length: 0x4'], 'abcd'), status: 400 },
  { name: 'Transfer-Encoding: xchunked', raw: post(['Transfer-Encoding: xchunked'], '0\r\n\r\n'), status: 400 },
  { name: 'Transfer-Encoding: chunked, gzip', raw: post(['Transfer-Encoding: chunked, gzip'], '0\r\n\r\n'), status: 400 },
  { name: 'unknown Transfer-Encoding: gzip', raw: post(['Transfer-Encoding: gzip'], 'abcd'), status: 400 },
  { name: 'unknown Transfer-Encoding: foo', raw: post(['Transfer-Encoding: foo'], 'abcd'), status: 400 },
  { name: 'space before the colon: Transfer-Encoding : chunked', raw: post(['Transfer-Encoding : chunked'], '0\r\n\r\n'), status: 400 },
  { name: 'tab-prefixed value: Transfer-Encoding:\\tchunked, with Content-Length', raw: post(['Transfer-Encoding:\tchunked', 'Content-Length: 4'], '0\r\n\r\n'), status: 400 },
  { name: 'Transfer-Encoding: chunked on HTTP/1.0', raw: post(['Transfer-Encoding: chunked'], '4\r\nabcd\r\n0\r\n\r\n', '1.0'), status: 400, code: 'INGRESSD_ERR_BAD_FRAMING' },
  { name: 'Transfer-Encoding: chunked and Content-Length on HTTP/1.0', raw: post(['Transfer-Encoding: chunked', 'Content-Length: 4'], 'abcd', '1.0'), status: 400 },
  { name: 'chunk size not hex', raw: post(['Transfer-Encoding: chunked'], 'zz\r\nabcd\r\n0\r\n\r\n'), status: 400 },
  { name: 'chunk size overflowing 64 bits', raw: post(['Transfer-Encoding: chunked'], 'ffffffffffffffffff1\r\nabcd\r\n0\r\n\r\n'), status: 400 },
  { name: 'negative chunk size', raw: post(['Transfer-Encoding: chunked'], '-4\r\nabcd\r\n0\r\n\r\n'), status: 400 },
  { name: 'chunk longer than its size', raw: post(['Transfer-Encoding: chunked'], '2\r\nabcd\r\n0\r\n\r\n'), status: 400 },
  { name: 'bare LF line endings', raw: 'GET / HTTP/1.1\nHost: a.example\n\n', status: 400 },
  { name: 'bare LF inside the head', raw: 'GET / HTTP/1.1\r\nHost: a.example\nX-A: 1\r\n\r\n', status: 400 },
  { name: 'obs-fold continuation line', raw: req(['GET / HTTP/1.1', 'Host: a.example', 'X-A: 1', ' 2']), status: 400 },
  { name: 'NUL in a header value', raw: req(['GET / HTTP/1.1', 'Host: a.example', 'X-A: a\0b']), status: 400 },
  { name: 'CR in a header value', raw: req(['GET / HTTP/1.1', 'Host: a.example', 'X-A: a\rb']), status: 400 },
  { name: 'control character (0x01) in a header value', raw: req(['GET / HTTP/1.1', 'Host: a.example', 'X-A: a\x01b']), status: 400 },
  { name: 'space inside a header name', raw: req(['GET / HTTP/1.1', 'Host: a.example', 'X A: 1']), status: 400 },
  { name: 'unknown HTTP version', raw: req(['GET / HTTP/1.7', 'Host: a.example']), status: 400 },
  { name: 'HTTP/0.9 request line', raw: 'GET /\r\n\r\n', status: 400 },
  // Accepted by Node (and nginx): not ambiguous, routed as a normal request.
  { name: 'request line with two spaces is read as one', raw: req(['GET  / HTTP/1.1', 'Host: a.example', 'Connection: close']), status: 200, origin: 'a', url: '/' },
  // Legitimate framing, for contrast: leading whitespace in a value is optional whitespace.
  { name: 'Transfer-Encoding:  chunked (optional whitespace) is a valid chunked body', raw: post(['Transfer-Encoding:  chunked', 'Connection: close'], '4\r\nabcd\r\n0\r\n\r\n'), status: 200, origin: 'a', url: '/upload', check: s => s.body === 'abcd' ? undefined : `body ${JSON.stringify(s.body)}` }
])

const host: Case[] = inGroup('host', [
  { name: 'two equal Host headers', raw: req(['GET / HTTP/1.1', 'Host: a.example', 'Host: a.example']), status: 400, code: 'INGRESSD_ERR_BAD_HOST' },
  { name: 'two different Host headers', raw: req(['GET / HTTP/1.1', 'Host: c.example', 'Host: a.example']), status: 400, code: 'INGRESSD_ERR_BAD_HOST' },
  { name: 'two Host headers, different case', raw: req(['GET / HTTP/1.1', 'host: a.example', 'HOST: b.example']), status: 400, code: 'INGRESSD_ERR_BAD_HOST' },
  { name: 'no Host on HTTP/1.1', raw: req(['GET / HTTP/1.1', 'Connection: close']), status: 400, code: 'INGRESSD_ERR_BAD_HOST' },
  { name: 'no Host on HTTP/1.0', raw: req(['GET / HTTP/1.0']), status: 400, code: 'INGRESSD_ERR_BAD_HOST' },
  { name: 'empty Host', raw: req(['GET / HTTP/1.1', 'Host: ']), status: 400, code: 'INGRESSD_ERR_BAD_HOST' },
  { name: 'absolute-form target naming another host', raw: req(['GET http://c.example/x HTTP/1.1', 'Host: a.example']), status: 400, code: 'INGRESSD_ERR_BAD_HOST' },
  { name: 'absolute-form target with userinfo', raw: req(['GET http://user@a.example/x HTTP/1.1', 'Host: a.example']), status: 400, code: 'INGRESSD_ERR_BAD_HOST' },
  { name: 'absolute-form target with an unknown scheme', raw: req(['GET ftp://a.example/x HTTP/1.1', 'Host: a.example']), status: 400, code: 'INGRESSD_ERR_BAD_PATH' },
  { name: 'absolute-form target naming the same host routes by its path', raw: req(['GET http://A.example:80/x?q=1 HTTP/1.1', 'Host: a.example', 'Connection: close']), status: 200, origin: 'a', url: '/x?q=1' },
  { name: 'Host with userinfo', raw: req(['GET / HTTP/1.1', 'Host: user@a.example']), status: 400, code: 'INGRESSD_ERR_BAD_HOST' },
  { name: 'Host with a slash', raw: req(['GET / HTTP/1.1', 'Host: a.example/x']), status: 400, code: 'INGRESSD_ERR_BAD_HOST' },
  { name: 'Host with a non-numeric port', raw: req(['GET / HTTP/1.1', 'Host: a.example:8o']), status: 400, code: 'INGRESSD_ERR_BAD_HOST' },
  { name: 'Host with an out-of-range port', raw: req(['GET / HTTP/1.1', 'Host: a.example:70000']), status: 400, code: 'INGRESSD_ERR_BAD_HOST' },
  { name: 'Host with port 0', raw: req(['GET / HTTP/1.1', 'Host: a.example:0']), status: 400, code: 'INGRESSD_ERR_BAD_HOST' },
  { name: 'Host with a space', raw: req(['GET / HTTP/1.1', 'Host: a .example']), status: 400, code: 'INGRESSD_ERR_BAD_HOST' },
  { name: 'Host with a wildcard', raw: req(['GET / HTTP/1.1', 'Host: *.example']), status: 400, code: 'INGRESSD_ERR_BAD_HOST' },
  { name: 'Host in upper case still routes', raw: get('/', 'A.EXAMPLE'), status: 200, origin: 'a', url: '/' },
  { name: 'Host with a trailing dot still routes', raw: get('/', 'a.example.'), status: 200, origin: 'a', url: '/' },
  { name: 'Host with a port still routes', raw: get('/', 'a.example:8080'), status: 200, origin: 'a', url: '/' },
  { name: 'an unnamed host goes to the host-less rule', raw: get('/', 'c.example'), status: 200, origin: 'c', url: '/' }
])

const path: Case[] = inGroup('path', [
  { name: 'dot segments are resolved', raw: get('/a/./b/../c'), status: 200, origin: 'a', url: '/a/c' },
  { name: 'dot segments cannot hide a route', raw: get('/x/../private/y'), status: 200, origin: 'b', url: '/private/y' },
  { name: 'encoded dot segments cannot hide a route', raw: get('/x/%2e%2E/private/y'), status: 200, origin: 'b', url: '/private/y' },
  { name: 'dot segments above the root', raw: get('/../etc/passwd'), status: 400, code: 'INGRESSD_ERR_BAD_PATH' },
  { name: 'encoded dot segments above the root', raw: get('/%2e%2e/etc/passwd'), status: 400, code: 'INGRESSD_ERR_BAD_PATH' },
  { name: 'repeated slashes are merged', raw: get('//private//y'), status: 200, origin: 'b', url: '/private/y' },
  { name: 'an encoded slash a decoding backend would route under another rule', raw: get('/private%2Fy'), status: 400, code: 'INGRESSD_ERR_AMBIGUOUS_PATH' },
  { name: 'an encoded slash after a dot segment', raw: get('/x/..%2Fprivate'), status: 400, code: 'INGRESSD_ERR_AMBIGUOUS_PATH' },
  { name: 'encoded backslashes around a dot segment', raw: get('/a%5C..%5Cprivate'), status: 400, code: 'INGRESSD_ERR_AMBIGUOUS_PATH' },
  { name: 'an encoded slash every reading keeps under its rule is passed as sent', raw: get('/private/a%2Fb'), status: 200, origin: 'b', url: '/private/a%2Fb' },
  { name: 'an encoded unreserved character is decoded, routed and sent decoded', raw: get('/%70rivate/y'), status: 200, origin: 'b', url: '/private/y' },
  { name: 'a trailing dot segment keeps the slash', raw: get('/a/.'), status: 200, origin: 'a', url: '/a/' },
  { name: 'the query string is not normalized', raw: get('/a?next=/../x&p=%2e%2e'), status: 200, origin: 'a', url: '/a?next=/../x&p=%2e%2e' },
  { name: 'an encoded NUL', raw: get('/a%00b'), status: 400, code: 'INGRESSD_ERR_BAD_PATH' },
  { name: 'an encoded NUL before the query', raw: get('/a%00?x'), status: 400, code: 'INGRESSD_ERR_BAD_PATH' },
  { name: 'a bad % escape', raw: get('/%zz'), status: 400, code: 'INGRESSD_ERR_BAD_PATH' },
  { name: 'a truncated % escape', raw: get('/a%2'), status: 400, code: 'INGRESSD_ERR_BAD_PATH' },
  { name: 'a lone %', raw: get('/a%'), status: 400, code: 'INGRESSD_ERR_BAD_PATH' },
  { name: 'an invalid UTF-8 escape', raw: get('/a%C0%AF'), status: 400, code: 'INGRESSD_ERR_BAD_PATH' },
  { name: 'a relative target', raw: get('a/b'), status: 400 },
  { name: 'an asterisk target', raw: req(['OPTIONS * HTTP/1.1', 'Host: a.example']), status: 400, code: 'INGRESSD_ERR_BAD_PATH' },
  { name: 'a raw space in the target', raw: req(['GET /a b HTTP/1.1', 'Host: a.example']), status: 400 },
  { name: 'a raw NUL in the target', raw: req(['GET /a\0b HTTP/1.1', 'Host: a.example']), status: 400 },
  { name: 'a raw control character in the target', raw: req(['GET /a\x7fb HTTP/1.1', 'Host: a.example']), status: 400 }
])

const header = (s: SeenRequest, name: string): string => String(s.headers[name])
const expectHeaders = (want: Record<string, string>) => (s: SeenRequest): string | undefined => {
  for (const [name, value] of Object.entries(want)) if (header(s, name) !== value) return `${name}: ${header(s, name)}, expected ${value}`
  return undefined
}

/** Filled in with the gateway's port by forwardedCases(). */
export function forwardedCases (port: number): Case[] {
  return inGroup('forwarded', [
    {
      name: 'X-Forwarded-* and X-Real-IP from an untrusted client are replaced',
      raw: req(['GET / HTTP/1.1', 'Host: a.example', 'Connection: close', 'X-Forwarded-For: 6.6.6.6', 'X-Real-IP: 6.6.6.6', 'X-Forwarded-Proto: https', 'X-Forwarded-Host: evil.example', 'X-Forwarded-Port: 443']),
      status: 200,
      origin: 'a',
      url: '/',
      check: expectHeaders({ 'x-forwarded-for': '127.0.0.1', 'x-real-ip': '127.0.0.1', 'x-forwarded-proto': 'http', 'x-forwarded-host': 'a.example', 'x-forwarded-port': String(port) })
    },
    {
      name: 'Connection: x-forwarded-for, x-real-ip cannot remove the gateway\'s headers',
      raw: req(['GET / HTTP/1.1', 'Host: a.example', 'Connection: close, x-forwarded-for, x-real-ip, x-forwarded-proto, x-forwarded-host, x-request-id', 'X-Forwarded-For: 6.6.6.6']),
      status: 200,
      origin: 'a',
      url: '/',
      check: s => expectHeaders({ 'x-forwarded-for': '127.0.0.1', 'x-real-ip': '127.0.0.1', 'x-forwarded-proto': 'http', 'x-forwarded-host': 'a.example' })(s) ?? (/^[0-9a-f]{32}$/.test(header(s, 'x-request-id')) ? undefined : 'no x-request-id')
    },
    {
      name: 'repeated X-Forwarded-For fields from an untrusted client are replaced',
      raw: req(['GET / HTTP/1.1', 'Host: a.example', 'Connection: close', 'X-Forwarded-For: 6.6.6.6', 'X-Forwarded-For: 7.7.7.7']),
      status: 200,
      origin: 'a',
      url: '/',
      check: expectHeaders({ 'x-forwarded-for': '127.0.0.1' })
    }
  ])
}

/** Cases against the default limits (16 KiB of headers, 8 KiB of target, 100 header fields). */
const limits: Case[] = inGroup('limits', [
  { name: 'a 10 KB request target', raw: get('/' + 'a'.repeat(10 * 1024)), status: 414, code: 'INGRESSD_ERR_URI_TOO_LONG' },
  { name: 'a target of exactly 8 KiB is accepted', raw: get('/' + 'a'.repeat(8 * 1024 - 1)), status: 200, origin: 'a', url: '/' + 'a'.repeat(8 * 1024 - 1) },
  { name: '101 header fields', raw: req(['GET / HTTP/1.1', 'Host: a.example', ...Array.from({ length: 100 }, (_, i) => `X-H${i}: ${i}`)]), status: 431, code: 'INGRESSD_ERR_HEADERS_TOO_LARGE' },
  { name: '3000 header fields (Node alone would drop those past 2000)', raw: req(['GET / HTTP/1.1', 'Host: a.example', ...Array.from({ length: 3000 }, (_, i) => `X: ${i}`)]), status: 431 },
  { name: '17 KiB of headers', raw: req(['GET / HTTP/1.1', 'Host: a.example', `X-Big: ${'b'.repeat(17 * 1024)}`]), status: 431 },
  { name: 'a 2 MiB Content-Length over the 1m default', raw: post(['Content-Length: 2097152'], 'abcd'), status: 413, code: 'INGRESSD_ERR_PROXY_BODY_TOO_LARGE' }
])

export const CORPUS: readonly Case[] = [...framing, ...host, ...path, ...limits]
