/**
 * External auth (auth-url and its satellites): the annotations' parsing, then the step against
 * real auth services on loopback. A small real HTTP server stands in for the gateway: it builds a
 * policy context from each request it gets, runs the step and answers with what the step decided
 * (or, for the browser flow, as the gateway would: the step's answer, or the "upstream").
 */
/* eslint-disable no-template-curly-in-string -- nginx's ${name} form appears in annotation values */
import t from 'tap'
import { createServer as createHttpsServer } from 'node:https'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { request } from 'undici'
import { bindExternalAuth, cookieAllowedForStatus, DEFAULT_CACHE_DURATION, EXTERNAL_AUTH_KEYS, ExternalAuthClient, parseCacheDurations, parseExternalAuth, responseHeadersForStatus, type ExternalAuthClientOptions, type ExternalAuthSpec } from '../../../src/dataplane/policies/external-auth.js'
import type { AnnotationProblem, PolicyAnswer, PolicyContext, PolicyStep } from '../../../src/dataplane/policies/policy.js'
import { normalizeHost } from '../../../src/dataplane/host.js'
import { generateSelfSigned } from '../../../src/resources/tls-material.js'
import { startOrigin, type Origin } from '../../helpers/origin.js'
import { sendRaw } from '../../helpers/raw.js'

const PREFIX = 'nginx.ingress.kubernetes.io/'

type Teardown = { teardown: (fn: () => Promise<void> | void) => void }

function parse (annotations: Record<string, string>): ReturnType<typeof parseExternalAuth> {
  return parseExternalAuth(name => annotations[name])
}

function specOf (annotations: Record<string, string>): ExternalAuthSpec {
  const parsed = parse(annotations)
  if (parsed.spec === undefined || parsed.problems.length > 0) throw new Error(`not a spec: ${JSON.stringify(parsed.problems)}`)
  return parsed.spec
}

function keysOf (problems: AnnotationProblem[]): string[] {
  return problems.map(p => p.key.slice(PREFIX.length))
}

// ---------------------------------------------------------------------------------------------
// Parsing

t.test('parse: nothing without auth-url; the keys the family owns', async t => {
  t.same(parse({}), { problems: [], denials: [] })
  t.same(parse({ 'auth-signin': 'https://auth.example/start' }), { problems: [], denials: [] }, 'auth-signin alone enables nothing')
  t.ok(EXTERNAL_AUTH_KEYS.includes('auth-url'))
  t.notOk((EXTERNAL_AUTH_KEYS as readonly string[]).includes('auth-snippet'), 'auth-snippet is refused elsewhere, as every snippet')
})

t.test('parse: a minimal auth-url', async t => {
  const spec = specOf({ 'auth-url': 'http://auth.example:8080/oauth2/auth?x=1' })
  t.equal(spec.url.origin, 'http://auth.example:8080', 'fixed scheme and authority: the origin is worked out once')
  t.equal(spec.url.hostHeader, 'auth.example', 'Host is the host name without its port, as ingress-nginx sends it')
  t.equal(spec.url.path?.constant, '/oauth2/auth?x=1')
  t.equal(spec.method, undefined)
  t.same(spec.responseHeaders, [])
  t.equal(spec.alwaysSetCookie, false)
  t.equal(spec.cache, undefined, 'no cache without auth-cache-key')
  t.equal(spec.signin, undefined)
  t.ok(Object.isFrozen(spec))
  t.equal(specOf({ 'auth-url': 'https://auth.example' }).url.path?.constant, '/', 'no path: /')
  t.equal(specOf({ 'auth-url': 'https://auth.example?x=1' }).url.path?.constant, '/?x=1', 'a query without a path: after /')
  t.equal(specOf({ 'auth-url': 'https://[::1]:9000/x' }).url.hostHeader, '[::1]', 'an IPv6 host keeps its brackets')
  t.equal(specOf({ 'auth-url': '  http://auth.example/x\n' }).url.origin, 'http://auth.example', 'surrounding space is trimmed, as ingress-nginx does')
})

t.test('parse: every supported variable is accepted in auth-url, auth-signin, auth-request-redirect and auth-cache-key', async t => {
  const variables = ['$host', '$http_host', '$best_http_host', '$scheme', '$pass_access_scheme', '$request_uri', '$escaped_request_uri', '$uri', '$args', '$query_string', '$arg_token', '$remote_addr', '$http_x_user', '$cookie_session', '$request_method', '$server_port', '$request_id', '${host}', '${http_x_user}']
  for (const v of variables) {
    const parsed = parse({
      'auth-url': `https://auth.example/check?v=${v}`,
      'auth-signin': `https://auth.example/start?v=${v}`,
      'auth-request-redirect': `https://app.example${v}`,
      'auth-cache-key': `${v}|key`
    })
    t.same(parsed.problems, [], v)
    t.ok(parsed.spec?.cache !== undefined, `${v}: cache on`)
  }
  const dynamic = specOf({ 'auth-url': 'https://$host/oauth2/auth' })
  t.equal(dynamic.url.origin, undefined, 'a variable in the authority: the origin is worked out per request')
  t.equal(specOf({ 'auth-url': '$scheme://auth.example/x' }).url.origin, undefined)
  t.equal(specOf({ 'auth-url': 'http://auth.example/$uri' }).url.origin, 'http://auth.example', 'a variable in the path only keeps the origin fixed')
})

t.test('parse: problems (refused on write), each naming its key', async t => {
  const cases: Array<[string, Record<string, string>, string, RegExp]> = [
    ['unknown variable', { 'auth-url': 'https://$hostname/auth' }, 'auth-url', /unknown nginx variable "\$hostname"/],
    ['unknown variable in the path', { 'auth-url': 'https://auth.example/?u=$remote_user' }, 'auth-url', /"\$remote_user"/],
    ['not http(s)', { 'auth-url': 'ftp://auth.example/x' }, 'auth-url', /http:\/\/ or https:\/\//],
    ['no scheme', { 'auth-url': 'auth.example/x' }, 'auth-url', /http:\/\/ or https:\/\//],
    ['no host', { 'auth-url': 'http:///x' }, 'auth-url', /no host/],
    ['a space', { 'auth-url': 'http://auth example/x' }, 'auth-url', /no spaces/],
    ['credentials', { 'auth-url': 'http://user:pw@auth.example/x' }, 'auth-url', /credentials/],
    ['a bad port', { 'auth-url': 'http://auth.example:99999/x' }, 'auth-url', /malformed/],
    ['".." in the host', { 'auth-url': 'http://auth..example/x' }, 'auth-url', /malformed/],
    ['empty', { 'auth-url': '' }, 'auth-url', /http:\/\/ or https:\/\//],
    ['a lone $', { 'auth-url': 'http://auth.example/$' }, 'auth-url', /must start a variable name/],
    ['method in lowercase', { 'auth-url': 'http://a.example/', 'auth-method': 'post' }, 'auth-method', /HTTP method in capitals/],
    ['not a method', { 'auth-url': 'http://a.example/', 'auth-method': 'FETCH' }, 'auth-method', /HTTP method/],
    ['sign-in URL', { 'auth-url': 'http://a.example/', 'auth-signin': 'javascript:alert(1)' }, 'auth-signin', /http:\/\/ or https:\/\//],
    ['sign-in variable', { 'auth-url': 'http://a.example/', 'auth-signin': 'https://a.example/start?rd=$foo' }, 'auth-signin', /"\$foo"/],
    ['redirect param', { 'auth-url': 'http://a.example/', 'auth-signin-redirect-param': 'r d' }, 'auth-signin-redirect-param', /query parameter name/],
    ['response header name', { 'auth-url': 'http://a.example/', 'auth-response-headers': 'X-User, X Email' }, 'auth-response-headers', /header names/],
    ['response header framing', { 'auth-url': 'http://a.example/', 'auth-response-headers': 'X-User, Content-Length' }, 'auth-response-headers', /Content-Length cannot be taken/],
    ['response header host', { 'auth-url': 'http://a.example/', 'auth-response-headers': 'Host' }, 'auth-response-headers', /gateway sets it/],
    ['response headers empty', { 'auth-url': 'http://a.example/', 'auth-response-headers': ' , ' }, 'auth-response-headers', /empty value/],
    ['request redirect variable', { 'auth-url': 'http://a.example/', 'auth-request-redirect': '$nope' }, 'auth-request-redirect', /"\$nope"/],
    ['request redirect control', { 'auth-url': 'http://a.example/', 'auth-request-redirect': 'a\nb' }, 'auth-request-redirect', /control characters/],
    ['cache key variable', { 'auth-url': 'http://a.example/', 'auth-cache-key': '$remote_user' }, 'auth-cache-key', /"\$remote_user"/],
    ['cache key empty', { 'auth-url': 'http://a.example/', 'auth-cache-key': '' }, 'auth-cache-key', /expression of nginx variables/],
    ['cache duration order', { 'auth-url': 'http://a.example/', 'auth-cache-duration': '10m 200' }, 'auth-cache-duration', /status code after the time/],
    ['cache duration time', { 'auth-url': 'http://a.example/', 'auth-cache-duration': '200 202' }, 'auth-cache-duration', /has no time/],
    ['cache duration unit', { 'auth-url': 'http://a.example/', 'auth-cache-duration': '200 5x' }, 'auth-cache-duration', /neither a status code nor a time/],
    ['cache duration status', { 'auth-url': 'http://a.example/', 'auth-cache-duration': '999 5m' }, 'auth-cache-duration', /not an HTTP status/],
    ['always-set-cookie', { 'auth-url': 'http://a.example/', 'auth-always-set-cookie': 'yes' }, 'auth-always-set-cookie', /"true" or "false"/],
    ['keepalive', { 'auth-url': 'http://a.example/', 'auth-keepalive': 'ten' }, 'auth-keepalive', /whole number/],
    ['keepalive requests', { 'auth-url': 'http://a.example/', 'auth-keepalive-requests': '1.5' }, 'auth-keepalive-requests', /whole number/],
    ['keepalive timeout', { 'auth-url': 'http://a.example/', 'auth-keepalive-timeout': '60s' }, 'auth-keepalive-timeout', /whole number/],
    ['keepalive share vars', { 'auth-url': 'http://a.example/', 'auth-keepalive-share-vars': '1' }, 'auth-keepalive-share-vars', /"true" or "false"/],
    ['enable-global-auth', { 'auth-url': 'http://a.example/', 'enable-global-auth': 'maybe' }, 'enable-global-auth', /"true" or "false"/],
    ['a satellite without auth-url is still checked', { 'auth-signin': 'not a url' }, 'auth-signin', /http:\/\/ or https:\/\//]
  ]
  for (const [why, annotations, key, message] of cases) {
    const parsed = parse(annotations)
    t.same(keysOf(parsed.problems), [key], `${why}: the key`)
    t.match(parsed.problems[0]?.message ?? '', message, `${why}: the message`)
    t.ok(parsed.problems.every(p => p.key.startsWith(PREFIX)), `${why}: full keys`)
    t.equal(parsed.spec, undefined, `${why}: no spec`)
    t.same(parsed.denials, [], `${why}: no denial`)
  }
})

t.test('parse: accepted values of the satellites', async t => {
  const spec = specOf({
    'auth-url': 'http://a.example/',
    'auth-method': 'POST',
    'auth-response-headers': 'X-Auth-Request-User, x-auth-request-email,X-Auth-Request-User',
    'auth-always-set-cookie': 'true',
    'auth-keepalive': '10',
    'auth-keepalive-requests': '-1',
    'auth-keepalive-timeout': '60',
    'auth-keepalive-share-vars': 'true',
    'enable-global-auth': 'false',
    'auth-cache-key': '$http_authorization'
  })
  t.equal(spec.method, 'POST')
  t.same(spec.responseHeaders, ['x-auth-request-user', 'x-auth-request-email'], 'lowercased, without repeats')
  t.equal(spec.alwaysSetCookie, true)
  t.same(spec.cache?.validity, [{ codes: [200, 202, 401], ms: 300_000 }], 'the default duration, 200 202 401 5m')
})

t.test('parse: auth-method CONNECT and auth-proxy-set-headers are denials (503)', async t => {
  const connect = parse({ 'auth-url': 'http://a.example/', 'auth-method': 'CONNECT' })
  t.same(keysOf(connect.denials), ['auth-method'])
  t.same(connect.problems, [])
  const withConfigMap = parse({ 'auth-url': 'http://a.example/', 'auth-proxy-set-headers': 'default/auth-headers' })
  t.same(withConfigMap.problems, [])
  t.same(keysOf(withConfigMap.denials), ['auth-proxy-set-headers'])
  t.match(withConfigMap.denials[0]?.message, /cannot be honoured/)
  t.match(withConfigMap.denials[0]?.message, /default\/auth-headers/)
  t.same(parse({ 'auth-proxy-set-headers': 'default/auth-headers' }).denials, [], 'no effect without auth-url')
  t.same(parse({ 'auth-url': 'http://a.example/', 'auth-proxy-set-headers': '' }).denials, [], 'empty: not set')
})

t.test('parseCacheDurations: proxy_cache_valid lists', async t => {
  const cases: Array<[string, unknown]> = [
    [DEFAULT_CACHE_DURATION, [{ codes: [200, 202, 401], ms: 300_000 }]],
    ['200 202 10m, 401 1m', [{ codes: [200, 202], ms: 600_000 }, { codes: [401], ms: 60_000 }]],
    ['5m', [{ codes: [200, 301, 302], ms: 300_000 }]],
    ['any 1h', [{ ms: 3_600_000 }]],
    ['200 1h 30m', [{ codes: [200], ms: 5_400_000 }]],
    ['200 150ms', [{ codes: [200], ms: 150 }]],
    ['200 1d, 401 1w, 403 1M, 404 1y, 500 2s', [{ codes: [200], ms: 86_400_000 }, { codes: [401], ms: 604_800_000 }, { codes: [403], ms: 2_592_000_000 }, { codes: [404], ms: 31_536_000_000 }, { codes: [500], ms: 2000 }]],
    ['200  202\t5m ,', [{ codes: [200, 202], ms: 300_000 }]]
  ]
  for (const [input, expected] of cases) {
    const parsed = parseCacheDurations(input)
    t.same('validity' in parsed ? parsed.validity : parsed, expected, input)
  }
  for (const bad of ['', ',', '200', '5 m', '5min', '200 5m 202', 'forever']) t.ok('error' in parseCacheDurations(bad), `${JSON.stringify(bad)} is refused`)
})

t.test('cookieAllowedForStatus: nginx add_header statuses', async t => {
  for (const s of [200, 201, 204, 206, 301, 302, 303, 304, 307, 308]) t.ok(cookieAllowedForStatus(s, false), String(s))
  for (const s of [202, 400, 401, 403, 404, 500, 502, 503]) t.notOk(cookieAllowedForStatus(s, false), String(s))
  t.ok(cookieAllowedForStatus(500, true), 'always')
})

// ---------------------------------------------------------------------------------------------
// The step against real auth services

interface Decision {
  answer: PolicyAnswer | null
  upstreamHeaders: Record<string, string | string[] | null> | null
  responseHeaders: Record<string, string | string[]> | null
  /** responseHeadersForStatus for an upstream 200 and 404. */
  for200: Record<string, string | string[]> | null
  for404: Record<string, string | string[]> | null
}

let requestIds = 0

function contextOf (req: IncomingMessage): PolicyContext {
  const target = req.url ?? '/'
  const q = target.indexOf('?')
  return {
    req,
    method: req.method ?? 'GET',
    host: normalizeHost(req.headers.host) ?? '',
    path: q === -1 ? target : target.slice(0, q),
    query: q === -1 ? '' : target.slice(q),
    proto: 'http',
    client: (req.socket.remoteAddress ?? '').replace(/^::ffff:/, ''),
    requestId: `req-${++requestIds}`
  }
}

async function listen (t: Teardown, server: Server): Promise<number> {
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => { server.closeAllConnections(); server.close(() => resolve()) }))
  return (server.address() as AddressInfo).port
}

/** Runs steps in order, as the chain does. */
async function run (steps: readonly PolicyStep[], ctx: PolicyContext): Promise<PolicyAnswer | undefined> {
  for (const step of steps) {
    const answer = await step(ctx)
    if (answer !== undefined) return answer
  }
  return undefined
}

/** The stand-in gateway in "decision" mode: answers 200 with what the steps decided, as JSON. */
async function decisionServer (t: Teardown, ...steps: PolicyStep[]): Promise<number> {
  const server = createServer((req, res) => {
    const ctx = contextOf(req)
    run(steps, ctx).then(answer => {
      const decision: Decision = {
        answer: answer ?? null,
        upstreamHeaders: ctx.upstreamHeaders ?? null,
        responseHeaders: ctx.responseHeaders ?? null,
        for200: responseHeadersForStatus(ctx, 200) ?? null,
        for404: responseHeadersForStatus(ctx, 404) ?? null
      }
      const body = JSON.stringify(decision)
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
      res.end(body)
    }, (err: Error) => {
      res.writeHead(599)
      res.end(err.stack)
    })
  })
  return await listen(t, server)
}

async function decide (port: number, path = '/app?a=b&c=d', headers: Record<string, string> = {}): Promise<Decision> {
  const res = await request(`http://127.0.0.1:${port}${path}`, { headers: { host: 'app.example.com:8080', ...headers } })
  t.equal(res.statusCode, 200, 'the stand-in gateway answered')
  return await res.body.json() as Decision
}

function newClient (t: Teardown, opts: ExternalAuthClientOptions = {}): ExternalAuthClient {
  const client = new ExternalAuthClient(opts)
  t.teardown(() => client.close())
  return client
}

/** An auth service answering `status` with `headers`, recording what it is sent. */
async function authService (t: Teardown, status: number, headers: Record<string, string | string[]> = {}, body = ''): Promise<Origin> {
  return await startOrigin(t, 'auth', (_req, res) => {
    res.writeHead(status, { ...headers, 'content-length': Buffer.byteLength(body) })
    res.end(body)
  })
}

t.test('the sub-request: GET, no body, the client\'s headers less hop-by-hop ones, and ingress-nginx\'s', async t => {
  const auth = await authService(t, 200)
  const port = await decisionServer(t, bindExternalAuth(specOf({ 'auth-url': `http://127.0.0.1:${auth.port}/verify?from=$host` }), newClient(t)))
  const answer = await sendRaw(port, [
    'POST /app/x?y=1 HTTP/1.1',
    'Host: app.example.com:8080',
    'Authorization: Bearer secret-token',
    'Cookie: session=s3cr3t',
    'X-Custom: yes',
    'Content-Type: text/plain',
    'X-Forwarded-Proto: https',
    'X-Forwarded-Host: evil.example',
    'X-Forwarded-For: 198.51.100.1',
    'X-Real-IP: 198.51.100.1',
    'X-Original-URL: http://evil.example/',
    'X-Sent-From: someone',
    'X-Request-ID: client-chosen',
    'Connection: close, X-Hop',
    'X-Hop: 1',
    'Keep-Alive: timeout=5',
    'TE: trailers',
    'Content-Length: 5',
    '',
    'hello'
  ].join('\r\n'), { waitMs: 5000 })
  const decision = JSON.parse(answer.body) as Decision
  t.equal(decision.answer, null, '200: allowed')
  t.equal(auth.seen.length, 1)
  const seen = auth.seen[0]
  t.equal(seen?.method, 'GET', 'GET without auth-method, whatever the client used')
  t.equal(seen?.url, '/verify?from=app.example.com', 'the path with its variable rendered')
  t.equal(seen?.body, '', 'no body')
  const h = seen?.headers ?? {}
  t.equal(h['content-length'], undefined, 'no Content-Length for a GET')
  t.equal(h['transfer-encoding'], undefined)
  t.equal(h.host, '127.0.0.1', 'Host: the auth URL\'s host, without the port')
  t.equal(h.authorization, 'Bearer secret-token', 'credentials reach the auth service')
  t.equal(h.cookie, 'session=s3cr3t')
  t.equal(h['x-custom'], 'yes')
  t.equal(h['content-type'], 'text/plain', 'every end-to-end header goes, as proxy_pass_request_headers on')
  t.equal(h['x-forwarded-proto'], undefined, 'X-Forwarded-Proto blanked, as ingress-nginx does')
  t.equal(h['x-forwarded-host'], 'app.example.com:8080', 'X-Forwarded-Host: $best_http_host, the client\'s replaced')
  t.equal(h['x-forwarded-for'], '127.0.0.1', 'X-Forwarded-For: the client address')
  t.equal(h['x-real-ip'], '127.0.0.1')
  t.equal(h['x-original-url'], 'http://app.example.com:8080/app/x?y=1', 'X-Original-URL: $scheme://$http_host$request_uri')
  t.equal(h['x-original-method'], 'POST')
  t.equal(h['x-sent-from'], 'nginx-ingress-controller')
  t.equal(h['x-auth-request-redirect'], '/app/x?y=1', 'X-Auth-Request-Redirect: $request_uri by default')
  t.match(h['x-request-id'], /^req-\d+$/, 'X-Request-ID: the gateway\'s request id')
  t.equal(h['x-hop'], undefined, 'a header the client names in Connection is dropped')
  t.equal(h['keep-alive'], undefined)
  t.equal(h.te, undefined)
  t.equal(h['x-original-uri'], undefined, 'X-Original-URI only with auth-method')
  t.equal(h['x-scheme'], undefined, 'X-Scheme only with auth-method')
})

t.test('the sub-request with auth-method and auth-request-redirect', async t => {
  const auth = await authService(t, 204)
  const spec = specOf({ 'auth-url': `http://127.0.0.1:${auth.port}/verify`, 'auth-method': 'POST', 'auth-request-redirect': 'https://$best_http_host$request_uri' })
  const port = await decisionServer(t, bindExternalAuth(spec, newClient(t)))
  const decision = await decide(port, '/app/x?y=1')
  t.equal(decision.answer, null, '204 is a 2xx: allowed')
  const seen = auth.seen[0]
  t.equal(seen?.method, 'POST')
  t.equal(seen?.body, '')
  t.equal(seen?.headers['content-length'], '0', 'a POST says its body is empty')
  t.equal(seen?.headers['x-original-uri'], '/app/x?y=1')
  t.equal(seen?.headers['x-scheme'], 'http')
  t.equal(seen?.headers['x-auth-request-redirect'], 'https://app.example.com:8080/app/x?y=1')
})

t.test('2xx: auth-response-headers copied to the upstream request, or removed when the auth response lacks them', async t => {
  const auth = await authService(t, 202, { 'x-auth-request-user': 'alice', 'x-auth-request-groups': ['admins', 'devs'], 'x-empty': '', 'set-cookie': ['_oauth2_proxy=refreshed; Path=/; HttpOnly', 'other=2'] })
  const spec = specOf({ 'auth-url': `http://127.0.0.1:${auth.port}/`, 'auth-response-headers': 'X-Auth-Request-User, X-Auth-Request-Email, X-Auth-Request-Groups, X-Empty' })
  const earlier: PolicyStep = (ctx) => {
    ctx.responseHeaders = { 'access-control-allow-origin': '*', 'set-cookie': 'earlier=1' }
    return undefined
  }
  const port = await decisionServer(t, earlier, bindExternalAuth(spec, newClient(t)))
  const decision = await decide(port, '/', { 'x-auth-request-email': 'spoofed@example.com', 'x-auth-request-user': 'mallory' })
  t.equal(decision.answer, null)
  t.same(decision.upstreamHeaders, {
    'x-auth-request-user': 'alice',
    'x-auth-request-email': null,
    'x-auth-request-groups': 'admins, devs',
    'x-empty': null
  }, 'the client\'s values never survive: replaced, or removed')
  t.same(decision.responseHeaders, { 'access-control-allow-origin': '*', 'set-cookie': ['earlier=1', '_oauth2_proxy=refreshed; Path=/; HttpOnly', 'other=2'] }, 'each Set-Cookie appended as its own field')
  t.same(decision.for200, decision.responseHeaders, 'an upstream 200 gets the auth cookies')
  t.same(decision.for404, { 'access-control-allow-origin': '*', 'set-cookie': ['earlier=1'] }, 'an upstream 404 does not (nginx add_header), other steps\' cookies stay')

  const always = specOf({ 'auth-url': `http://127.0.0.1:${auth.port}/`, 'auth-always-set-cookie': 'true' })
  const alwaysPort = await decisionServer(t, bindExternalAuth(always, newClient(t)))
  const withAlways = await decide(alwaysPort)
  t.same(withAlways.for404, { 'set-cookie': ['_oauth2_proxy=refreshed; Path=/; HttpOnly', 'other=2'] }, 'auth-always-set-cookie: on every status')
  t.equal(withAlways.upstreamHeaders, null, 'no auth-response-headers: the upstream request is not touched')
})

t.test('401: the client gets 401 with the service\'s WWW-Authenticate; its cookies only with auth-always-set-cookie', async t => {
  const auth = await authService(t, 401, { 'www-authenticate': 'Basic realm="auth"', 'set-cookie': 'csrf=1' })
  const url = `http://127.0.0.1:${auth.port}/`
  const plain = await decide(await decisionServer(t, bindExternalAuth(specOf({ 'auth-url': url }), newClient(t))))
  t.same(plain.answer, { status: 401, code: 'INGRESSD_ERR_AUTH_REQUIRED', headers: { 'www-authenticate': ['Basic realm="auth"'] } })
  t.equal(plain.responseHeaders, null)
  const always = await decide(await decisionServer(t, bindExternalAuth(specOf({ 'auth-url': url, 'auth-always-set-cookie': 'true' }), newClient(t))))
  t.same(always.answer, { status: 401, code: 'INGRESSD_ERR_AUTH_REQUIRED', headers: { 'www-authenticate': ['Basic realm="auth"'], 'set-cookie': ['csrf=1'] } })
  const bare = await authService(t, 401)
  const none = await decide(await decisionServer(t, bindExternalAuth(specOf({ 'auth-url': `http://127.0.0.1:${bare.port}/` }), newClient(t))))
  t.same(none.answer, { status: 401, code: 'INGRESSD_ERR_AUTH_REQUIRED' })
})

t.test('403: the client gets 403', async t => {
  const auth = await authService(t, 403, { 'set-cookie': 'x=1' })
  const url = `http://127.0.0.1:${auth.port}/`
  t.same((await decide(await decisionServer(t, bindExternalAuth(specOf({ 'auth-url': url, 'auth-signin': 'https://auth.example/start' }), newClient(t))))).answer, { status: 403, code: 'INGRESSD_ERR_AUTH_FORBIDDEN' }, 'no sign-in redirect on 403')
  t.same((await decide(await decisionServer(t, bindExternalAuth(specOf({ 'auth-url': url, 'auth-always-set-cookie': 'true' }), newClient(t))))).answer, { status: 403, code: 'INGRESSD_ERR_AUTH_FORBIDDEN', headers: { 'set-cookie': ['x=1'] } })
})

t.test('any other status is a 500, reported without the client\'s credentials', async t => {
  for (const status of [302, 404, 500, 503]) {
    const auth = await authService(t, status, status === 302 ? { location: '/elsewhere', 'set-cookie': 'x=1' } : {})
    const errors: string[] = []
    const port = await decisionServer(t, bindExternalAuth(specOf({ 'auth-url': `http://127.0.0.1:${auth.port}/check?c=$cookie_session` }), newClient(t), { onError: m => errors.push(m) }))
    const decision = await decide(port, '/', { authorization: 'Bearer secret-token', cookie: 'session=s3cr3t' })
    t.same(decision.answer, { status: 500, code: 'INGRESSD_ERR_AUTH_SERVICE' }, String(status))
    t.equal(decision.responseHeaders, null, `${status}: no cookie`)
    t.equal(errors.length, 1)
    t.match(errors[0], new RegExp(`answered ${status}`))
    t.match(errors[0], /auth-url http:\/\/127\.0\.0\.1:\d+\/check\?c=\$cookie_session/, 'the template is named, not its value')
    t.notMatch(errors[0], /secret-token|s3cr3t/)
  }
})

t.test('a timeout or a refused connection is a 500', async t => {
  const hung: ServerResponse[] = []
  const slow = await startOrigin(t, 'slow', (_req, res) => { hung.push(res) })
  const errors: string[] = []
  const port = await decisionServer(t, bindExternalAuth(specOf({ 'auth-url': `http://127.0.0.1:${slow.port}/` }), newClient(t, { readTimeoutMs: 300 }), { onError: m => errors.push(m) }))
  const started = Date.now()
  const timedOut = await decide(port)
  t.same(timedOut.answer, { status: 500, code: 'INGRESSD_ERR_AUTH_SERVICE' })
  t.ok(Date.now() - started < 3000, 'bounded by the read timeout')
  t.match(errors[0], /did not answer within 300 ms/)
  for (const res of hung) res.destroy()

  const closed = createServer()
  const closedPort = await new Promise<number>(resolve => closed.listen(0, '127.0.0.1', () => resolve((closed.address() as AddressInfo).port)))
  await new Promise<void>(resolve => closed.close(() => resolve()))
  const refusedErrors: string[] = []
  const refusedPort = await decisionServer(t, bindExternalAuth(specOf({ 'auth-url': `http://127.0.0.1:${closedPort}/` }), newClient(t), { onError: m => refusedErrors.push(m) }))
  t.same((await decide(refusedPort)).answer, { status: 500, code: 'INGRESSD_ERR_AUTH_SERVICE' })
  t.match(refusedErrors[0], /refused the connection/)

  const client = newClient(t)
  await client.close()
  const closedErrors: string[] = []
  const afterClose = await decisionServer(t, bindExternalAuth(specOf({ 'auth-url': `http://127.0.0.1:${slow.port}/` }), client, { onError: m => closedErrors.push(m) }))
  t.same((await decide(afterClose)).answer, { status: 500, code: 'INGRESSD_ERR_AUTH_SERVICE' }, 'after close(): 500, never let through')
  t.equal(closedErrors.length, 1)
})

t.test('a connection closed before the answer: tried once more, then a 500', async t => {
  let calls = 0
  const flaky = await startOrigin(t, 'flaky', (req, res) => {
    calls++
    // The first sub-request meets a connection the service drops, as a pooled one it had just closed.
    if (calls === 1) req.socket.destroy()
    else res.end()
  })
  const port = await decisionServer(t, bindExternalAuth(specOf({ 'auth-url': `http://127.0.0.1:${flaky.port}/` }), newClient(t)))
  t.equal((await decide(port)).answer, null, 'the second try answered')
  t.equal(calls, 2)

  const dropping = await startOrigin(t, 'dropping', (req) => { req.socket.destroy() })
  const errors: string[] = []
  const dropPort = await decisionServer(t, bindExternalAuth(specOf({ 'auth-url': `http://127.0.0.1:${dropping.port}/` }), newClient(t), { onError: m => errors.push(m) }))
  t.same((await decide(dropPort)).answer, { status: 500, code: 'INGRESSD_ERR_AUTH_SERVICE' })
  t.equal(dropping.seen.length, 2, 'a GET is tried twice, no more')
  t.match(errors[0], /closed the connection before answering/)

  const posting = await startOrigin(t, 'posting', (req) => { req.socket.destroy() })
  const postPort = await decisionServer(t, bindExternalAuth(specOf({ 'auth-url': `http://127.0.0.1:${posting.port}/`, 'auth-method': 'POST' }), newClient(t)))
  t.same((await decide(postPort)).answer, { status: 500, code: 'INGRESSD_ERR_AUTH_SERVICE' })
  t.equal(posting.seen.length, 1, 'a POST is not sent twice')
})

t.test('a URL a request makes unusable is a 500', async t => {
  const errors: string[] = []
  const port = await decisionServer(t, bindExternalAuth(specOf({ 'auth-url': 'http://$http_x_auth_host/check' }), newClient(t), { onError: m => errors.push(m) }))
  t.same((await decide(port)).answer, { status: 500, code: 'INGRESSD_ERR_AUTH_SERVICE' })
  t.match(errors[0], /unusable: the URL has no host/)
})

t.test('a variable in the authority: the origin and Host come from the request', async t => {
  const auth = await authService(t, 200)
  const port = await decisionServer(t, bindExternalAuth(specOf({ 'auth-url': `http://$host:${auth.port}/check$uri` }), newClient(t)))
  const res = await request(`http://127.0.0.1:${port}/deep/path?q=1`, { headers: { host: 'LOCALHOST:1234' } })
  const decision = await res.body.json() as Decision
  t.equal(decision.answer, null)
  t.equal(auth.seen[0]?.url, '/check/deep/path')
  t.equal(auth.seen[0]?.headers.host, 'localhost')
})

t.test('HTTPS auth URLs: the certificate is not verified, as nginx\'s proxy_pass does not', async t => {
  const pem = await generateSelfSigned({ commonName: 'auth.internal', dnsNames: ['auth.internal'], keyType: 'ec' })
  const seen: Array<string | undefined> = []
  const server = createHttpsServer({ cert: pem.cert, key: pem.key }, (req, res) => {
    seen.push(req.headers.host)
    res.writeHead(200, { 'x-user': 'tls-user' })
    res.end()
  })
  const authPort = await listen(t, server as unknown as Server)
  const port = await decisionServer(t, bindExternalAuth(specOf({ 'auth-url': `https://127.0.0.1:${authPort}/check`, 'auth-response-headers': 'X-User' }), newClient(t)))
  const decision = await decide(port)
  t.equal(decision.answer, null, 'a self-signed certificate is accepted')
  t.same(decision.upstreamHeaders, { 'x-user': 'tls-user' })
  t.same(seen, ['127.0.0.1'])
})

t.test('auth-signin: 401 becomes a 302 with the return URL, as buildAuthSignURL appends it', async t => {
  const auth = await authService(t, 401, { 'set-cookie': 'csrf=abc; Path=/', 'www-authenticate': 'Bearer' })
  const authUrl = `http://127.0.0.1:${auth.port}/`
  const back = 'http://app.example.com:8080%2Fapp%3Fa%3Db%26c%3Dd'
  const cases: Array<[string, Record<string, string>, string]> = [
    ['no query: ?rd=', { 'auth-signin': 'http://auth.example/start' }, `http://auth.example/start?rd=${back}`],
    ['a query: &rd=', { 'auth-signin': 'http://auth.example/start?x=1' }, `http://auth.example/start?x=1&rd=${back}`],
    ['rd already there: as written', { 'auth-signin': 'https://$host/oauth2/start?rd=$escaped_request_uri' }, 'https://app.example.com/oauth2/start?rd=%2Fapp%3Fa%3Db%26c%3Dd'],
    ['rd there but empty: appended (Go\'s Values.Get)', { 'auth-signin': 'https://auth.example/start?rd=' }, `https://auth.example/start?rd=&rd=${back}`],
    ['a custom parameter', { 'auth-signin': 'http://auth.example/start', 'auth-signin-redirect-param': 'orig' }, `http://auth.example/start?orig=${back}`],
    ['a custom parameter already there', { 'auth-signin': 'http://auth.example/start?orig=/x', 'auth-signin-redirect-param': 'orig' }, 'http://auth.example/start?orig=/x'],
    ['rd there but another param asked', { 'auth-signin': 'http://auth.example/start?rd=/x', 'auth-signin-redirect-param': 'orig' }, `http://auth.example/start?rd=/x&orig=${back}`],
    ['a path alone', { 'auth-signin': '/oauth2/start' }, `/oauth2/start?rd=${back}`]
  ]
  for (const [why, annotations, location] of cases) {
    const port = await decisionServer(t, bindExternalAuth(specOf({ 'auth-url': authUrl, ...annotations }), newClient(t)))
    const decision = await decide(port)
    t.equal(decision.answer?.status, 302, why)
    t.equal(decision.answer?.headers?.location, location, why)
    t.same(decision.answer?.headers?.['set-cookie'], ['csrf=abc; Path=/'], `${why}: the service's cookie goes with the redirect`)
    t.equal(decision.answer?.headers?.['www-authenticate'], undefined)
    t.match(decision.answer?.body, /^302 Found\n/)
  }
})

t.test('auth-cache-key: answers are cached per key and URL, as auth-cache-duration says', async t => {
  let n = 0
  const auth = await startOrigin(t, 'auth', (req, res) => {
    n++
    const who = String(req.headers.authorization ?? '')
    if (who === 'Bearer bad') res.writeHead(401, { 'www-authenticate': 'Bearer' })
    else if (who === 'Bearer banned') res.writeHead(403)
    else res.writeHead(200, { 'x-user': `${who.slice(7)}-${n}` })
    res.end()
  })
  const spec = specOf({ 'auth-url': `http://127.0.0.1:${auth.port}/check$uri`, 'auth-cache-key': '$http_authorization', 'auth-response-headers': 'X-User' })
  const port = await decisionServer(t, bindExternalAuth(spec, newClient(t)))
  const a1 = await decide(port, '/one', { authorization: 'Bearer alice' })
  const a2 = await decide(port, '/one', { authorization: 'Bearer alice' })
  t.equal(auth.seen.length, 1, 'two requests, one sub-request')
  t.same(a2.upstreamHeaders, a1.upstreamHeaders, 'the cached answer replays the headers to copy')
  t.same(a2.upstreamHeaders, { 'x-user': 'alice-1' })
  await decide(port, '/one', { authorization: 'Bearer bob' })
  t.equal(auth.seen.length, 2, 'another key: asked')
  await decide(port, '/two', { authorization: 'Bearer alice' })
  t.equal(auth.seen.length, 3, 'another URL: asked')
  const b1 = await decide(port, '/one', { authorization: 'Bearer bad' })
  const b2 = await decide(port, '/one', { authorization: 'Bearer bad' })
  t.equal(auth.seen.length, 4, '401 is cached by default')
  t.same(b2.answer, b1.answer)
  t.same(b2.answer, { status: 401, code: 'INGRESSD_ERR_AUTH_REQUIRED', headers: { 'www-authenticate': ['Bearer'] } })
  await decide(port, '/one', { authorization: 'Bearer banned' })
  await decide(port, '/one', { authorization: 'Bearer banned' })
  t.equal(auth.seen.length, 6, '403 is not in the default durations')

  const uncached = [
    ['a Set-Cookie', { 'set-cookie': 'x=1' }],
    ['Cache-Control: no-store', { 'cache-control': 'no-store' }],
    ['Cache-Control: private', { 'cache-control': 'private, max-age=60' }],
    ['max-age=0', { 'cache-control': 'max-age=0' }],
    ['X-Accel-Expires: 0', { 'x-accel-expires': '0' }],
    ['an Expires in the past', { expires: 'Thu, 01 Jan 1970 00:00:00 GMT' }],
    ['Vary: *', { vary: '*' }]
  ] as const
  for (const [why, headers] of uncached) {
    const service = await authService(t, 200, headers)
    const p = await decisionServer(t, bindExternalAuth(specOf({ 'auth-url': `http://127.0.0.1:${service.port}/`, 'auth-cache-key': '$remote_addr' }), newClient(t)))
    await decide(p)
    await decide(p)
    t.equal(service.seen.length, 2, `not cached: ${why}`)
  }
  const kept = [
    ['X-Accel-Expires: 60', { 'x-accel-expires': '60' }],
    ['an Expires ahead', { expires: new Date(Date.now() + 60_000).toUTCString() }],
    ['s-maxage', { 'cache-control': 'public, s-maxage=60' }]
  ] as const
  for (const [why, headers] of kept) {
    const service = await authService(t, 200, headers)
    const p = await decisionServer(t, bindExternalAuth(specOf({ 'auth-url': `http://127.0.0.1:${service.port}/`, 'auth-cache-key': '$remote_addr', 'auth-cache-duration': '200 1ms' }), newClient(t)))
    await decide(p)
    await new Promise(resolve => setTimeout(resolve, 20))
    await decide(p)
    t.equal(service.seen.length, 1, `cached for as long as it says: ${why}`)
  }
  const longer = await authService(t, 200, { 'cache-control': 'max-age=60' })
  const longerPort = await decisionServer(t, bindExternalAuth(specOf({ 'auth-url': `http://127.0.0.1:${longer.port}/`, 'auth-cache-key': '$remote_addr', 'auth-cache-duration': '200 1ms' }), newClient(t)))
  await decide(longerPort)
  await new Promise(resolve => setTimeout(resolve, 20))
  await decide(longerPort)
  t.equal(longer.seen.length, 1, 'Cache-Control max-age overrides auth-cache-duration, as in nginx')

  const posted = await authService(t, 200)
  const postPort = await decisionServer(t, bindExternalAuth(specOf({ 'auth-url': `http://127.0.0.1:${posted.port}/`, 'auth-cache-key': '$remote_addr', 'auth-method': 'POST' }), newClient(t)))
  await decide(postPort)
  await decide(postPort)
  t.equal(posted.seen.length, 2, 'a POST sub-request is not cached (nginx proxy_cache_methods GET HEAD)')
})

t.test('auth-cache-duration: entries expire', async t => {
  const auth = await authService(t, 200)
  const port = await decisionServer(t, bindExternalAuth(specOf({ 'auth-url': `http://127.0.0.1:${auth.port}/`, 'auth-cache-key': '$remote_addr', 'auth-cache-duration': '200 150ms' }), newClient(t)))
  await decide(port)
  await decide(port)
  t.equal(auth.seen.length, 1)
  await new Promise(resolve => setTimeout(resolve, 250))
  await decide(port)
  t.equal(auth.seen.length, 2, 'asked again once the entry expired')
})

t.test('one pool: sequential sub-requests, from several routes, share one connection', async t => {
  const auth = await authService(t, 200, {}, 'x'.repeat(1000))
  let connections = 0
  auth.server.on('connection', () => { connections++ })
  const client = newClient(t)
  const url = `http://127.0.0.1:${auth.port}/`
  const one = await decisionServer(t, bindExternalAuth(specOf({ 'auth-url': url }), client))
  const two = await decisionServer(t, bindExternalAuth(specOf({ 'auth-url': `${url}other` }), client))
  for (let i = 0; i < 4; i++) {
    t.equal((await decide(one)).answer, null)
    t.equal((await decide(two)).answer, null)
  }
  t.equal(auth.seen.length, 8)
  t.equal(connections, 1, 'eight sub-requests, one connection')
})

t.test('an endless auth body is read no further than the limit; the request still passes', async t => {
  const open: ServerResponse[] = []
  const auth = await startOrigin(t, 'auth', (_req, res) => {
    res.writeHead(200, { 'x-user': 'big' })
    res.write('x'.repeat(64 * 1024))
    open.push(res)
  })
  t.teardown(() => { for (const res of open) res.destroy() })
  const port = await decisionServer(t, bindExternalAuth(specOf({ 'auth-url': `http://127.0.0.1:${auth.port}/`, 'auth-response-headers': 'X-User' }), newClient(t, { bodyLimit: 16 * 1024, readTimeoutMs: 10_000 })))
  const started = Date.now()
  t.same((await decide(port)).upstreamHeaders, { 'x-user': 'big' })
  t.ok(Date.now() - started < 2000, 'not held until the read timeout')
  t.same((await decide(port)).upstreamHeaders, { 'x-user': 'big' }, 'and the next one too, on a new connection')
})

// ---------------------------------------------------------------------------------------------
// The oauth2-proxy flow, driven as a browser drives it

/** An auth service in the manner of oauth2-proxy: /oauth2/auth checks the cookie, /oauth2/start signs in and sends the browser back to rd. */
async function oauth2Proxy (t: Teardown): Promise<Origin> {
  return await startOrigin(t, 'oauth2-proxy', (req, res) => {
    const url = new URL(req.url ?? '/', 'http://oauth2-proxy')
    if (url.pathname === '/oauth2/auth') {
      if (/(^|;\s*)_oauth2_proxy=valid(;|$)/.test(req.headers.cookie ?? '')) res.writeHead(202, { 'x-auth-request-user': 'alice', 'x-auth-request-email': 'alice@example.com' })
      else res.writeHead(401)
      res.end()
      return
    }
    if (url.pathname === '/oauth2/start') {
      res.writeHead(302, { location: url.searchParams.get('rd') ?? '/', 'set-cookie': '_oauth2_proxy=valid; Path=/; HttpOnly' })
      res.end()
      return
    }
    res.writeHead(404)
    res.end()
  })
}

/**
 * The stand-in gateway in "gateway" mode: /oauth2/ goes to the auth service unprotected (the
 * oauth2-proxy ingress); anything else runs the step and answers with its answer, or as the
 * application would (the headers the upstream got, as JSON).
 */
async function gatewayServer (t: Teardown, step: PolicyStep, authOrigin: Origin): Promise<number> {
  const server = createServer((req, res) => {
    if ((req.url ?? '').startsWith('/oauth2/')) {
      request(`http://127.0.0.1:${authOrigin.port}${req.url ?? '/'}`, { headers: { cookie: req.headers.cookie ?? '' } }).then(async up => {
        const headers: Record<string, string | string[]> = {}
        for (const [k, v] of Object.entries(up.headers)) if (v !== undefined && k !== 'connection' && k !== 'keep-alive' && k !== 'transfer-encoding') headers[k] = v
        res.writeHead(up.statusCode, headers)
        res.end(Buffer.from(await up.body.arrayBuffer()))
      }, () => { res.writeHead(502); res.end() })
      return
    }
    const ctx = contextOf(req)
    Promise.resolve(step(ctx)).then(answer => {
      if (answer !== undefined) {
        res.writeHead(answer.status, answer.headers ?? {})
        res.end(answer.body ?? answer.code)
        return
      }
      const seenUpstream: Record<string, unknown> = {}
      for (const [k, v] of Object.entries(req.headers)) seenUpstream[k] = v
      for (const [k, v] of Object.entries(ctx.upstreamHeaders ?? {})) {
        if (v === null) delete seenUpstream[k]
        else seenUpstream[k] = v
      }
      const body = JSON.stringify(seenUpstream)
      res.writeHead(200, { ...responseHeadersForStatus(ctx, 200), 'content-type': 'application/json' })
      res.end(body)
    }, () => { res.writeHead(599); res.end() })
  })
  return await listen(t, server)
}

interface Hop { url: string, status: number }

/** Follows redirects as a browser does, keeping cookies by host (not port, as browsers do). */
async function browse (start: string, jar: Map<string, string>, headers: Record<string, string>): Promise<{ hops: Hop[], status: number, body: string }> {
  let url = start
  const hops: Hop[] = []
  for (let i = 0; i < 8; i++) {
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ')
    const res = await request(url, { headers: cookie === '' ? headers : { ...headers, cookie } })
    for (const line of [res.headers['set-cookie'] ?? []].flat()) {
      const [pair] = line.split(';')
      const eq = (pair as string).indexOf('=')
      jar.set((pair as string).slice(0, eq).trim(), (pair as string).slice(eq + 1).trim())
    }
    hops.push({ url, status: res.statusCode })
    const body = await res.body.text()
    const location = res.headers.location
    if (res.statusCode >= 300 && res.statusCode < 400 && typeof location === 'string') {
      url = new URL(location, url).href
      continue
    }
    return { hops, status: res.statusCode, body }
  }
  throw new Error('too many redirects')
}

t.test('the oauth2-proxy pattern, end to end as a browser drives it', async t => {
  const variants: Array<[string, string]> = [
    ['the ingress-nginx docs recipe (rd=$escaped_request_uri)', 'http://$http_host/oauth2/start?rd=$escaped_request_uri'],
    ['rd appended by the gateway ($pass_access_scheme://$http_host$escaped_request_uri)', 'http://$http_host/oauth2/start']
  ]
  for (const [why, signin] of variants) {
    const auth = await oauth2Proxy(t)
    const spec = specOf({
      'auth-url': `http://127.0.0.1:${auth.port}/oauth2/auth`,
      'auth-signin': signin,
      'auth-response-headers': 'X-Auth-Request-User, X-Auth-Request-Email'
    })
    const port = await gatewayServer(t, bindExternalAuth(spec, newClient(t)), auth)
    const jar = new Map<string, string>()
    const start = `http://127.0.0.1:${port}/dashboard?tab=1&q=a%20b`
    const first = await browse(start, jar, { 'x-auth-request-user': 'mallory' })
    t.same(first.hops.map(h => h.status), [302, 302, 200], `${why}: signed out -> sign-in -> back`)
    t.equal(first.hops[1]?.url.startsWith(`http://127.0.0.1:${port}/oauth2/start?rd=`), true, `${why}: sent to the sign-in page`)
    t.equal(first.hops[2]?.url, start, `${why}: back where the browser started, query intact`)
    t.equal(jar.get('_oauth2_proxy'), 'valid', `${why}: the session cookie is kept`)
    const upstream = JSON.parse(first.body) as Record<string, string>
    t.equal(upstream['x-auth-request-user'], 'alice', `${why}: the upstream sees the auth service's user, not the client's`)
    t.equal(upstream['x-auth-request-email'], 'alice@example.com')
    t.same(auth.seen.map(s => `${s.url.split('?')[0] as string}`), ['/oauth2/auth', '/oauth2/start', '/oauth2/auth'], `${why}: checked, signed in, checked`)
    t.equal(auth.seen[0]?.headers['x-original-url'], start, `${why}: X-Original-URL names the page`)

    const again = await browse(`http://127.0.0.1:${port}/other`, jar, {})
    t.same(again.hops.map(h => h.status), [200], `${why}: signed in: straight through`)
  }
})
