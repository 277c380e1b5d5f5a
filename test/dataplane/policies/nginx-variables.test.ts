/**
 * nginx variable templates: parsing (and what is refused), `$escaped_request_uri` as ingress-nginx
 * makes it, and every variable's value read from a real request on a real server.
 */
/* eslint-disable no-template-curly-in-string -- nginx's own ${name} form is under test, not JavaScript's */
import t from 'tap'
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { compileTemplate, escapeRequestUri, renderTemplate, requestUri, sampleTemplate, SUPPORTED_VARIABLES, type NginxTemplate, type VariableRequest } from '../../../src/dataplane/policies/nginx-variables.js'
import { normalizeHost } from '../../../src/dataplane/host.js'
import { sendRaw } from '../../helpers/raw.js'

function compiled (source: string): NginxTemplate {
  const result = compileTemplate(source)
  if ('error' in result) throw new Error(result.error)
  return result.template
}

t.test('compileTemplate: what parses and what is refused', async t => {
  const good: Array<[string, string[]]> = [
    ['plain text', []],
    ['https://$host/oauth2/auth', ['host']],
    ['${host}name', ['host']],
    ['$HOST/$Request_URI', ['host', 'request_uri']],
    ['$http_x_auth_token', ['http_x_auth_token']],
    ['$arg_token$cookie_session', ['arg_token', 'cookie_session']],
    ['$http_host-suffix', ['http_host']],
    ['${scheme}://${best_http_host}${escaped_request_uri}', ['scheme', 'best_http_host', 'escaped_request_uri']]
  ]
  for (const [source, names] of good) {
    const template = compiled(source)
    t.same(template.parts.filter(p => typeof p !== 'string').map(p => typeof p === 'string' ? p : p.name), names, source)
    t.equal(template.source, source)
  }
  t.equal(compiled('no variables').constant, 'no variables', 'a template without variables is a constant')
  t.equal(compiled('$host').constant, undefined)

  const bad: Array<[string, RegExp]> = [
    ['https://$hostname/x', /unknown nginx variable "\$hostname"/],
    ['$foo', /unknown nginx variable "\$foo".*\$host/],
    ['$1', /unknown nginx variable "\$1"/],
    ['${remote_user}', /unknown nginx variable "\$remote_user"/],
    ['$http_', /unknown nginx variable "\$http_"/],
    ['price: 5$', /a "\$" must start a variable name/],
    ['$ host', /a "\$" must start a variable name/],
    ['${host', /no closing "}"/],
    ['${}', /is not a variable name/],
    ['${ho-st}', /is not a variable name/]
  ]
  for (const [source, message] of bad) {
    const result = compileTemplate(source)
    t.ok('error' in result, `${source} is refused`)
    if ('error' in result) t.match(result.error, message, source)
  }
  t.ok(SUPPORTED_VARIABLES.includes('$escaped_request_uri'))
  t.ok(SUPPORTED_VARIABLES.includes('$http_NAME'))
})

t.test('escapeRequestUri: set_escape_uri as ingress-nginx uses it', async t => {
  // ingress-nginx e2e (auth.go): url.QueryEscape("/?a=b&c=d") is what rd= carries.
  t.equal(escapeRequestUri('/?a=b&c=d'), '%2F%3Fa%3Db%26c%3Dd')
  t.equal(escapeRequestUri('/plain-path_1.2~x'), '%2Fplain-path_1.2~x')
  t.equal(escapeRequestUri(''), '')
  t.equal(escapeRequestUri('abc'), 'abc')
  // Already-escaped input is escaped again, as nginx does: the % itself is encoded.
  t.equal(escapeRequestUri('/a%20b'), '%2Fa%2520b')
  let printable = ''
  for (let c = 0x21; c < 0x7f; c++) printable += String.fromCharCode(c)
  const kept = [...printable].filter(ch => escapeRequestUri(ch) === ch).join('')
  t.equal(kept, "!$'()*,-.0123456789@ABCDEFGHIJKLMNOPQRSTUVWXYZ_`abcdefghijklmnopqrstuvwxyz|~", 'the characters left as they are')
  t.equal(escapeRequestUri(' '), '%20')
  t.equal(escapeRequestUri('\t\x7f'), '%09%7F')
  t.equal(escapeRequestUri('é'), '%C3%A9', 'above ASCII: the UTF-8 bytes')
  t.equal(escapeRequestUri('/😀'), '%2F%F0%9F%98%80', 'a surrogate pair is one character')
})

interface Rendered { values: Record<string, string>, trusted: Record<string, string>, requestUri: string }

/** A server that renders `templates` against each request it gets, with the peer untrusted and then trusted. */
async function renderServer (t: { teardown: (fn: () => Promise<void> | void) => void }, templates: readonly string[]): Promise<number> {
  const compiledTemplates = templates.map(s => [s, compiled(s)] as const)
  const server = createServer((req: IncomingMessage, res) => {
    const url = req.url ?? '/'
    const target = requestUri(req)
    const q = target.indexOf('?')
    const r: VariableRequest = {
      req,
      method: req.method ?? 'GET',
      host: normalizeHost(req.headers.host) ?? '',
      path: q === -1 ? target : target.slice(0, q),
      query: q === -1 ? '' : target.slice(q),
      proto: 'http',
      client: '203.0.113.9',
      requestId: 'rid-1'
    }
    const values: Record<string, string> = {}
    const trusted: Record<string, string> = {}
    for (const [source, template] of compiledTemplates) {
      values[source] = renderTemplate(template, r)
      trusted[source] = renderTemplate(template, r, true)
    }
    const body = JSON.stringify({ values, trusted, requestUri: target, url } satisfies Rendered & { url: string })
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), connection: 'close' })
    res.end(body)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => { server.closeAllConnections(); server.close(() => resolve()) }))
  return (server.address() as AddressInfo).port
}

async function rawRequest (port: number, head: string): Promise<Rendered> {
  const answer = await sendRaw(port, head, { waitMs: 5000 })
  return JSON.parse(answer.body) as Rendered
}

t.test('every variable, read from a real request', async t => {
  const templates = [
    '$host', '$http_host', '$best_http_host', '$scheme', '$pass_access_scheme', '$request_uri', '$escaped_request_uri',
    '$uri', '$args', '$query_string', '$arg_token', '$arg_TOKEN', '$arg_missing', '$arg_empty', '$arg_flag', '$remote_addr', '$http_x_auth_token',
    '$http_accept_language', '$http_x_missing', '$cookie_session', '$cookie_SESSION', '$cookie_absent', '$request_method', '$server_port', '$request_id',
    '${scheme}://${http_host}${request_uri}'
  ]
  const port = await renderServer(t, templates)
  const got = await rawRequest(port, [
    'POST /app/a%20b?x=1&Token=abc%2F&empty=&flag&token=second HTTP/1.1',
    'Host: App.Example.com:8080',
    'X-Auth-Token: t0k',
    'Accept-Language: en',
    'Cookie: other=1; Session=s%3Dv; session=later',
    'X-Forwarded-Host: proxy.example.net, inner.example',
    'X-Forwarded-Proto: HTTPS',
    'Content-Length: 0',
    'Connection: close',
    '', ''
  ].join('\r\n'))
  const v = got.values
  t.equal(v.$host, 'app.example.com', '$host: normalized, no port')
  t.equal(v.$http_host, 'App.Example.com:8080', '$http_host: as sent')
  t.equal(v.$best_http_host, 'App.Example.com:8080', '$best_http_host: X-Forwarded-Host ignored from an untrusted peer')
  t.equal(got.trusted.$best_http_host, 'proxy.example.net', '$best_http_host: the first X-Forwarded-Host from a trusted proxy')
  t.equal(v.$scheme, 'http')
  t.equal(v.$pass_access_scheme, 'http')
  t.equal(got.trusted.$pass_access_scheme, 'https', '$pass_access_scheme: X-Forwarded-Proto from a trusted proxy, lowercased')
  t.equal(v.$request_uri, '/app/a%20b?x=1&Token=abc%2F&empty=&flag&token=second')
  t.equal(v.$escaped_request_uri, '%2Fapp%2Fa%2520b%3Fx%3D1%26Token%3Dabc%252F%26empty%3D%26flag%26token%3Dsecond')
  t.equal(v.$uri, '/app/a%20b', '$uri: the path as routed, escapes kept')
  t.equal(v.$args, 'x=1&Token=abc%2F&empty=&flag&token=second')
  t.equal(v.$query_string, v.$args)
  t.equal(v.$arg_token, 'abc%2F', '$arg_: the first match, name without case, value as sent')
  t.equal(v.$arg_TOKEN, 'abc%2F')
  t.equal(v.$arg_missing, '')
  t.equal(v.$arg_empty, '')
  t.equal(v.$arg_flag, '', 'an argument without "=" has no value, as in nginx')
  t.equal(v.$remote_addr, '203.0.113.9', '$remote_addr: the client address of the context')
  t.equal(v.$http_x_auth_token, 't0k')
  t.equal(v.$http_accept_language, 'en', '"_" stands for "-"')
  t.equal(v.$http_x_missing, '')
  t.equal(v.$cookie_session, 's%3Dv', '$cookie_: the first of that name (without case), as sent')
  t.equal(v.$cookie_SESSION, 's%3Dv')
  t.equal(v.$cookie_absent, '')
  t.equal(v.$request_method, 'POST')
  t.equal(v.$server_port, String(port))
  t.equal(v.$request_id, 'rid-1')
  t.equal(v['${scheme}://${http_host}${request_uri}'], 'http://App.Example.com:8080/app/a%20b?x=1&Token=abc%2F&empty=&flag&token=second')
})

t.test('an absolute-form target gives its path to $request_uri', async t => {
  const port = await renderServer(t, ['$request_uri', '$escaped_request_uri'])
  const got = await rawRequest(port, 'GET http://app.example.com/p/q?x=1 HTTP/1.1\r\nHost: app.example.com\r\nConnection: close\r\n\r\n')
  t.equal(got.values.$request_uri, '/p/q?x=1')
  t.equal(got.values.$escaped_request_uri, '%2Fp%2Fq%3Fx%3D1')
  const bare = await rawRequest(port, 'GET http://app.example.com HTTP/1.1\r\nHost: app.example.com\r\nConnection: close\r\n\r\n')
  t.equal(bare.values.$request_uri, '/')
})

t.test('HTTP/1.0 without Host: $http_host and $best_http_host are empty', async t => {
  const port = await renderServer(t, ['$http_host', '$best_http_host'])
  const got = await rawRequest(port, 'GET / HTTP/1.0\r\n\r\n')
  t.equal(got.values.$http_host, '')
  t.equal(got.values.$best_http_host, '', 'with no Host at all, $host is empty too')
})

t.test('sampleTemplate fills each variable with a plausible value', async t => {
  const sample = sampleTemplate(compiled('https://$host/oauth2/start?rd=$escaped_request_uri&u=$http_x_user'))
  t.doesNotThrow(() => new URL(sample))
  t.equal(sample, 'https://app.example.com/oauth2/start?rd=%2Fsample%2Fpath%3Fa%3D1&u=sample')
})
