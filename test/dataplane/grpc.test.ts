/**
 * gRPC through the gateway, end to end: real @grpc/grpc-js servers (h2c and TLS) behind
 * `backend-protocol: GRPC` and `GRPCS`, real grpc-js clients over HTTPS with ALPN h2 in front.
 * Every call kind, statuses and messages, metadata and trailers, deadlines, and the gateway's own
 * failures answered as gRPC statuses (ingress-nginx's e2e grpc.go as a checklist).
 */
import { connect as h2connect, createServer as createH2cServer, type IncomingHttpHeaders } from 'node:http2'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import { request } from 'undici'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { apply, serviceManifests, annotatedIngress, loopbackEndpoint } from '../helpers/backends.js'
import { issueCertificate } from '../helpers/tls.js'
import { issueServerCertificate } from '../helpers/server-certificate.js'
import { encodeGrpcMessage, grpcStatusFor, isGrpcRequest, parseGrpcTimeout } from '../../src/dataplane/grpc.js'

const P = 'nginx.ingress.kubernetes.io/'
const ING = '/apis/networking.k8s.io/v1/namespaces/default/ingresses'
const PROTO = fileURLToPath(new URL('../fixtures/echo.proto', import.meta.url))
const definition = grpc.loadPackageDefinition(protoLoader.loadSync(PROTO, { defaults: true }))
const EchoClient = (definition.ingressd as any).test.Echo as grpc.ServiceClientConstructor
const EchoService = EchoClient.service

interface EchoRequest { text: string, count: number, delayMs: number, failCode: number, failMessage: string }
interface EchoReply { text: string, authority: string, peer: string, forwardedFor: string }

type Closable = { teardown: (fn: () => Promise<void> | void) => void }

function replyFor (call: grpc.ServerUnaryCall<EchoRequest, EchoReply> | grpc.ServerDuplexStream<EchoRequest, EchoReply> | grpc.ServerReadableStream<EchoRequest, EchoReply> | grpc.ServerWritableStream<EchoRequest, EchoReply>, text: string): EchoReply {
  return { text, authority: '', peer: call.getPeer(), forwardedFor: String(call.metadata.get('x-forwarded-for')[0] ?? '') }
}

/** A grpc-js Echo server on 127.0.0.1, port 0: h2c, or TLS with `tls`. Each reply says what the server saw. */
async function startEchoServer (t: Closable, tls?: { cert: string, key: string }): Promise<{ port: number, server: grpc.Server, seen: grpc.Metadata[] }> {
  const server = new grpc.Server()
  const seen: grpc.Metadata[] = []
  server.addService(EchoService, {
    Unary: (call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, callback: grpc.sendUnaryData<EchoReply>) => {
      seen.push(call.metadata)
      const { text, delayMs, failCode, failMessage } = call.request
      const answer = (): void => {
        if (failCode !== 0) {
          const trailer = new grpc.Metadata()
          trailer.set('x-why', 'asked-to-fail')
          callback({ code: failCode, details: failMessage, metadata: trailer })
          return
        }
        const initial = new grpc.Metadata()
        initial.set('x-initial', 'hello')
        call.sendMetadata(initial)
        const trailer = new grpc.Metadata()
        trailer.set('x-trailer', 'bye')
        trailer.set('x-trailer-bin', Buffer.from([0, 1, 2, 255]))
        callback(null, replyFor(call, `${text}|${String(call.metadata.get('x-custom')[0] ?? '')}`), trailer)
      }
      if (delayMs > 0) setTimeout(answer, delayMs)
      else answer()
    },
    ServerStream: (call: grpc.ServerWritableStream<EchoRequest, EchoReply>) => {
      seen.push(call.metadata)
      let i = 0
      const next = (): void => {
        if (call.cancelled) return
        if (i === call.request.count) {
          const trailer = new grpc.Metadata()
          trailer.set('x-count', String(i))
          call.end(trailer)
          return
        }
        call.write(replyFor(call, `${call.request.text}-${i++}`))
        setTimeout(next, call.request.delayMs)
      }
      next()
    },
    ClientStream: (call: grpc.ServerReadableStream<EchoRequest, EchoReply>, callback: grpc.sendUnaryData<EchoReply>) => {
      seen.push(call.metadata)
      const texts: string[] = []
      call.on('data', (m: EchoRequest) => texts.push(m.text))
      call.on('end', () => callback(null, replyFor(call, texts.join(','))))
    },
    Bidi: (call: grpc.ServerDuplexStream<EchoRequest, EchoReply>) => {
      seen.push(call.metadata)
      call.on('data', (m: EchoRequest) => call.write(replyFor(call, m.text.toUpperCase())))
      call.on('end', () => call.end())
    }
  })
  const credentials = tls === undefined
    ? grpc.ServerCredentials.createInsecure()
    : grpc.ServerCredentials.createSsl(null, [{ cert_chain: Buffer.from(tls.cert), private_key: Buffer.from(tls.key) }], false)
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', credentials, (err, p) => err === null ? resolve(p) : reject(err)))
  t.teardown(() => { server.forceShutdown() })
  return { port, server, seen }
}

/** A grpc-js client to the gateway's HTTPS listener (ALPN h2), for `host` (SNI and :authority). */
function clientFor (t: Closable, gw: TestGateway, host: string): grpc.Client & Record<string, any> {
  const client = new EchoClient(`127.0.0.1:${gw.httpsPort}`, grpc.credentials.createSsl(null, null, null, { rejectUnauthorized: false }), {
    'grpc.default_authority': host,
    'grpc.ssl_target_name_override': host
  })
  t.teardown(() => client.close())
  return client as grpc.Client & Record<string, any>
}

interface UnaryOutcome { reply?: EchoReply, error?: grpc.ServiceError, metadata?: grpc.Metadata, status: grpc.StatusObject }

async function unary (client: Record<string, any>, req: Partial<EchoRequest>, md = new grpc.Metadata(), options: grpc.CallOptions = {}): Promise<UnaryOutcome> {
  return await new Promise(resolve => {
    let metadata: grpc.Metadata | undefined
    let outcome: { reply?: EchoReply, error?: grpc.ServiceError } | undefined
    const call = client.Unary(req, md, options, (error: grpc.ServiceError | null, reply: EchoReply) => {
      outcome = error === null ? { reply } : { error }
    })
    call.on('metadata', (m: grpc.Metadata) => { metadata = m })
    call.on('status', (status: grpc.StatusObject) => {
      setImmediate(() => resolve({ ...outcome, ...(metadata === undefined ? {} : { metadata }), status }))
    })
  })
}

const ingress = annotatedIngress
const at = loopbackEndpoint

/** A raw HTTP/2 gRPC call to the gateway: the response's headers and trailers, for what grpc-js would hide. */
async function rawGrpc (gw: TestGateway, host: string, headers: Record<string, string> = {}): Promise<{ headers: IncomingHttpHeaders, trailers: IncomingHttpHeaders | undefined, ms: number }> {
  const session = h2connect(`https://127.0.0.1:${gw.httpsPort}`, { servername: host, rejectUnauthorized: false })
  const started = performance.now()
  try {
    return await new Promise((resolve, reject) => {
      session.on('error', reject)
      const stream = session.request({ ':method': 'POST', ':path': '/ingressd.test.Echo/Unary', ':authority': host, 'content-type': 'application/grpc', te: 'trailers', ...headers })
      let response: IncomingHttpHeaders = {}
      let trailers: IncomingHttpHeaders | undefined
      stream.on('response', h => { response = h })
      stream.on('trailers', h => { trailers = h })
      stream.on('data', () => {})
      stream.on('close', () => resolve({ headers: response, trailers, ms: performance.now() - started }))
      stream.on('error', reject)
      stream.end(Buffer.from([0, 0, 0, 0, 0]))
    })
  } finally {
    session.close()
  }
}

/** The grpc-status a raw call ended with: from a trailers-only response, or from the trailers. */
function statusOf (answer: { headers: IncomingHttpHeaders, trailers: IncomingHttpHeaders | undefined }): { code: number, message: string } {
  const source = answer.trailers?.['grpc-status'] !== undefined ? answer.trailers : answer.headers
  return { code: Number(source['grpc-status']), message: decodeURIComponent(String(source['grpc-message'] ?? '')) }
}

t.test('GRPC (h2c upstream): unary, server, client and bidi streaming through the HTTPS listener, metadata and trailers', async t => {
  const gw = await startTestGateway(t)
  const echo = await startEchoServer(t)
  await apply(gw, [...serviceManifests('echo', [at(echo.port)]), ingress('grpc', 'grpc.example.com', 'echo', { [P + 'backend-protocol']: 'GRPC' })])
  const client = clientFor(t, gw, 'grpc.example.com')

  const md = new grpc.Metadata()
  md.set('x-custom', 'from-client')
  const one = await unary(client, { text: 'hi' }, md)
  t.equal(one.status.code, grpc.status.OK)
  t.equal(one.reply?.text, 'hi|from-client', 'the message and the request metadata reach the server')
  t.equal(one.reply?.forwardedFor, '127.0.0.1', 'forwarded headers are added, as for any route')
  t.same(one.metadata?.get('x-initial'), ['hello'], 'initial metadata comes back')
  t.same(one.status.metadata.get('x-trailer'), ['bye'], 'trailing metadata comes back in the trailers')
  t.same(one.status.metadata.get('x-trailer-bin'), [Buffer.from([0, 1, 2, 255])], 'binary trailing metadata too')

  const two = await unary(client, { text: 'again' })
  t.equal(two.reply?.peer, one.reply?.peer, 'the second call went over the same upstream connection (one session per endpoint)')

  const streamed = await new Promise<{ texts: string[], status: grpc.StatusObject }>((resolve, reject) => {
    const texts: string[] = []
    const call = client.ServerStream({ text: 'tick', count: 5, delayMs: 20 })
    call.on('data', (m: EchoReply) => texts.push(m.text))
    call.on('error', () => {})
    call.on('status', (status: grpc.StatusObject) => resolve({ texts, status }))
    call.on('end', () => {})
    setTimeout(() => reject(new Error('server streaming timed out')), 10_000).unref()
  })
  t.same(streamed.texts, ['tick-0', 'tick-1', 'tick-2', 'tick-3', 'tick-4'], 'server streaming: every message, in order')
  t.equal(streamed.status.code, grpc.status.OK)
  t.same(streamed.status.metadata.get('x-count'), ['5'], 'and its trailers')

  const gathered = await new Promise<EchoReply>((resolve, reject) => {
    const call = client.ClientStream((error: grpc.ServiceError | null, reply: EchoReply) => error === null ? resolve(reply) : reject(error))
    for (const text of ['a', 'b', 'c']) call.write({ text })
    call.end()
  })
  t.equal(gathered.text, 'a,b,c', 'client streaming: every message reached the server')

  const bidi = await new Promise<string[]>((resolve, reject) => {
    const got: string[] = []
    const call = client.Bidi()
    const words = ['one', 'two', 'three']
    // Ping-pong: each message is sent once the previous answer came back, so both directions are open at once.
    call.on('data', (m: EchoReply) => {
      got.push(m.text)
      const next = words[got.length]
      if (next === undefined) call.end()
      else call.write({ text: next })
    })
    call.on('error', reject)
    call.on('end', () => resolve(got))
    call.write({ text: words[0] })
  })
  t.same(bidi, ['ONE', 'TWO', 'THREE'], 'bidi streaming: ping-pong over one stream')
})

t.test('GRPC: the server\'s status codes and messages pass through, with their trailers', async t => {
  const gw = await startTestGateway(t)
  const echo = await startEchoServer(t)
  await apply(gw, [...serviceManifests('echo', [at(echo.port)]), ingress('grpc', 'grpc.example.com', 'echo', { [P + 'backend-protocol']: 'grpc' })])
  const client = clientFor(t, gw, 'grpc.example.com')
  for (const [code, message] of [[grpc.status.NOT_FOUND, 'no such thing: é 100%'], [grpc.status.INVALID_ARGUMENT, 'bad'], [grpc.status.UNAVAILABLE, 'the server says so'], [grpc.status.PERMISSION_DENIED, '']] as const) {
    const out = await unary(client, { failCode: code, failMessage: message })
    t.equal(out.status.code, code, `status ${code} passes through`)
    t.equal(out.status.details, message, `with its message ${JSON.stringify(message)}`)
    t.same(out.status.metadata.get('x-why'), ['asked-to-fail'], 'and its trailing metadata')
  }
})

t.test('deadlines: the client\'s grpc-timeout reaches the server and bounds the call; the gateway answers DEADLINE_EXCEEDED itself when the upstream says nothing', async t => {
  const gw = await startTestGateway(t)
  const echo = await startEchoServer(t)
  // An h2c upstream that takes requests and never answers them.
  const seen: IncomingHttpHeaders[] = []
  const silent = createH2cServer()
  const silentSessions = new Set<import('node:http2').ServerHttp2Session>()
  silent.on('session', session => silentSessions.add(session))
  silent.on('stream', (_stream, headers) => { seen.push(headers) })
  await new Promise<void>(resolve => silent.listen(0, '127.0.0.1', resolve))
  // The gateway's idle session would hold close() for a minute.
  t.teardown(() => new Promise<void>(resolve => { for (const session of silentSessions) session.destroy(); silent.close(() => resolve()) }))
  const silentPort = (silent.address() as AddressInfo).port
  await apply(gw, [
    ...serviceManifests('echo', [at(echo.port)]),
    ...serviceManifests('silent', [at(silentPort)]),
    ingress('grpc', 'grpc.example.com', 'echo', { [P + 'backend-protocol']: 'GRPC' }),
    ingress('silent', 'silent.example.com', 'silent', { [P + 'backend-protocol']: 'GRPC' }),
    ingress('idle', 'idle.example.com', 'silent', { [P + 'backend-protocol']: 'GRPC', [P + 'proxy-read-timeout']: '1' })
  ])
  const client = clientFor(t, gw, 'grpc.example.com')
  const slow = await unary(client, { text: 'slow', delayMs: 2000 }, new grpc.Metadata(), { deadline: Date.now() + 300 })
  t.equal(slow.status.code, grpc.status.DEADLINE_EXCEEDED, 'a call past its deadline fails with DEADLINE_EXCEEDED')
  const fast = await unary(client, { text: 'fast' }, new grpc.Metadata(), { deadline: Date.now() + 5000 })
  t.equal(fast.status.code, grpc.status.OK, 'a call within its deadline succeeds')

  const own = await rawGrpc(gw, 'silent.example.com', { 'grpc-timeout': '300m' })
  t.equal(own.headers[':status'], 200, 'the gateway\'s own failure is HTTP 200 for a gRPC client')
  t.equal(own.headers['content-type'], 'application/grpc')
  t.equal(statusOf(own).code, 4, 'DEADLINE_EXCEEDED when the client\'s grpc-timeout passes')
  t.match(statusOf(own).message, /INGRESSD_ERR_UPSTREAM_TIMEOUT/, 'the message names the code')
  t.ok(own.ms >= 250 && own.ms < 3000, `after the deadline (${Math.round(own.ms)} ms)`)
  t.equal(seen.at(-1)?.['grpc-timeout'], '300m', 'the upstream got grpc-timeout')
  t.equal(seen.at(-1)?.te, 'trailers', 'and te: trailers')

  const idle = await rawGrpc(gw, 'idle.example.com')
  t.equal(statusOf(idle).code, 4, 'proxy-read-timeout: DEADLINE_EXCEEDED when the upstream stays silent')
  t.ok(idle.ms >= 900 && idle.ms < 5000, `after about a second (${Math.round(idle.ms)} ms)`)
})

t.test('the gateway\'s own failures as gRPC statuses: UNIMPLEMENTED, UNAVAILABLE; plain requests still get the error page', async t => {
  const gw = await startTestGateway(t)
  const echo = await startEchoServer(t)
  const down = await startEchoServer(t)
  down.server.forceShutdown()
  await apply(gw, [
    ...serviceManifests('echo', [at(echo.port)]),
    ...serviceManifests('down', [at(down.port)]),
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'empty', namespace: 'default' }, spec: { ports: [{ name: 'http', port: 8080, targetPort: 'http' }] } },
    ingress('grpc', 'grpc.example.com', 'echo', { [P + 'backend-protocol']: 'GRPC' }),
    ingress('down', 'down.example.com', 'down', { [P + 'backend-protocol']: 'GRPC' }),
    ingress('empty', 'empty.example.com', 'empty', { [P + 'backend-protocol']: 'GRPC' }),
    // A route with no backend-protocol: its no-route and no-endpoint answers are still gRPC for gRPC requests.
    ingress('plain', 'plain.example.com', 'empty', {})
  ])
  const cases: Array<[string, number, RegExp]> = [
    ['nowhere.example.com', grpc.status.UNIMPLEMENTED, /INGRESSD_ERR_NO_ROUTE/],
    ['empty.example.com', grpc.status.UNAVAILABLE, /INGRESSD_ERR_NO_ENDPOINTS/],
    ['plain.example.com', grpc.status.UNAVAILABLE, /INGRESSD_ERR_NO_ENDPOINTS/],
    ['down.example.com', grpc.status.UNAVAILABLE, /INGRESSD_ERR_UPSTREAM_(UNREACHABLE|RESET)/]
  ]
  for (const [host, code, message] of cases) {
    const out = await unary(clientFor(t, gw, host), { text: 'x' })
    t.equal(out.status.code, code, `${host}: status ${code}`)
    t.match(out.status.details, message, `${host}: the message names the code`)
    t.match(out.status.details, /request id [0-9a-f]{32}/, `${host}: and the request id`)
    t.notMatch(out.status.details, /127\.0\.0\.1/, `${host}: never the upstream's address`)
    const raw = await rawGrpc(gw, host)
    t.equal(raw.headers[':status'], 200, `${host}: HTTP 200`)
    t.equal(raw.trailers, undefined, `${host}: a trailers-only response`)
    t.equal(raw.headers['grpc-status'], String(code))
    t.match(raw.headers['x-request-id'], /^[0-9a-f]{32}$/)
  }
  const page = await request(`${gw.http}/`, { headers: { host: 'nowhere.example.com' } })
  t.equal(page.statusCode, 404, 'a request that is not gRPC still gets the 404 page')
  t.match(await page.body.text(), /INGRESSD_ERR_NO_ROUTE/)
})

t.test('GRPCS (h2 over TLS upstream): calls and streams; the certificate is not verified by default, as in ingress-nginx', async t => {
  const gw = await startTestGateway(t)
  const pem = await issueCertificate({ subject: 'CN=echo.internal' })
  const echo = await startEchoServer(t, pem)
  await apply(gw, [...serviceManifests('echo', [at(echo.port)]), ingress('grpcs', 'grpcs.example.com', 'echo', { [P + 'backend-protocol']: 'GRPCS' })])
  const client = clientFor(t, gw, 'grpcs.example.com')
  const one = await unary(client, { text: 'secure' })
  t.equal(one.status.code, grpc.status.OK)
  t.equal(one.reply?.text, 'secure|')
  t.same(one.status.metadata.get('x-trailer'), ['bye'])
  const texts = await new Promise<string[]>((resolve, reject) => {
    const got: string[] = []
    const call = client.ServerStream({ text: 's', count: 3 })
    call.on('data', (m: EchoReply) => got.push(m.text))
    call.on('error', reject)
    call.on('end', () => resolve(got))
  })
  t.same(texts, ['s-0', 's-1', 's-2'])
  // A GRPC route to a TLS server is the wrong protocol: the gateway says UNAVAILABLE, not a hang or HTML.
  await apply(gw, [ingress('wrong', 'wrong.example.com', 'echo', { [P + 'backend-protocol']: 'GRPC' })])
  const wrong = await unary(clientFor(t, gw, 'wrong.example.com'), { text: 'x' }, new grpc.Metadata(), { deadline: Date.now() + 5000 })
  t.ok(wrong.status.code === grpc.status.UNAVAILABLE || wrong.status.code === grpc.status.INTERNAL, `h2c to a TLS server: UNAVAILABLE or INTERNAL (${wrong.status.code}: ${wrong.status.details})`)
})

/** An h2c server that answers every gRPC call OK with one empty message, and counts its open sessions. */
async function startCountingServer (t: Closable): Promise<{ port: number, open: () => number, calls: number[] }> {
  const server = createH2cServer()
  let open = 0
  const calls: number[] = []
  const sessions = new Set<import('node:http2').ServerHttp2Session>()
  server.on('session', session => {
    open++
    sessions.add(session)
    session.once('close', () => { open--; sessions.delete(session) })
  })
  server.on('stream', (stream) => {
    calls.push(Date.now())
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true })
    stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }))
    stream.resume()
    stream.end(Buffer.from([0, 0, 0, 0, 0]))
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => { for (const session of sessions) session.destroy(); server.close(() => resolve()) }))
  return { port: (server.address() as AddressInfo).port, open: () => open, calls }
}

async function until (what: () => boolean, ms = 3000): Promise<boolean> {
  const end = Date.now() + ms
  while (!what()) {
    if (Date.now() > end) return false
    await new Promise(resolve => setTimeout(resolve, 25))
  }
  return true
}

t.test('GRPCS with proxy-ssl-secret and proxy-ssl-verify: the upstream is verified against the Secret\'s ca.crt', async t => {
  const gw = await startTestGateway(t)
  const ca = await issueServerCertificate({ subject: 'CN=Upstream CA', ca: true })
  const other = await issueServerCertificate({ subject: 'CN=Other CA', ca: true })
  const echo = await startEchoServer(t, await issueServerCertificate({ subject: 'CN=echo.internal', issuer: ca, names: ['echo.internal'] }))
  const verify = { [P + 'backend-protocol']: 'GRPCS', [P + 'proxy-ssl-verify']: 'on', [P + 'proxy-ssl-name']: 'echo.internal' }
  await apply(gw, [
    ...serviceManifests('echo', [at(echo.port)]),
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'ca', namespace: 'default' }, type: 'Opaque', stringData: { 'ca.crt': ca.cert } },
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'other', namespace: 'default' }, type: 'Opaque', stringData: { 'ca.crt': other.cert } },
    ingress('trusted', 'trusted.example.com', 'echo', { ...verify, [P + 'proxy-ssl-secret']: 'ca' }),
    ingress('untrusted', 'untrusted.example.com', 'echo', { ...verify, [P + 'proxy-ssl-secret']: 'other' }),
    ingress('nosecret', 'nosecret.example.com', 'echo', { ...verify, [P + 'proxy-ssl-secret']: 'missing' })
  ])
  const trusted = await unary(clientFor(t, gw, 'trusted.example.com'), { text: 'verified' })
  t.equal(trusted.status.code, grpc.status.OK, 'verified against ca.crt: the call goes through')
  t.equal(trusted.reply?.text, 'verified|')
  const untrusted = await unary(clientFor(t, gw, 'untrusted.example.com'), { text: 'x' })
  t.equal(untrusted.status.code, grpc.status.UNAVAILABLE, 'a certificate from another CA: UNAVAILABLE, never proxied')
  t.equal(echo.seen.length, 1, 'only the verified call reached the server')
  const missing = await unary(clientFor(t, gw, 'nosecret.example.com'), { text: 'x' })
  t.equal(missing.status.code, grpc.status.UNAVAILABLE, 'a missing Secret: UNAVAILABLE')
  t.match(missing.status.details, /INGRESSD_ERR_UPSTREAM_TLS_SECRET/)
})

t.test('the pure parts: content types, grpc-timeout, grpc-message encoding, status mapping', async t => {
  t.ok(isGrpcRequest({ 'content-type': 'application/grpc' }))
  t.ok(isGrpcRequest({ 'content-type': 'application/grpc+proto' }))
  t.ok(isGrpcRequest({ 'content-type': 'Application/gRPC-web+json' }))
  t.notOk(isGrpcRequest({ 'content-type': 'application/json' }))
  t.notOk(isGrpcRequest({}))
  t.equal(parseGrpcTimeout('1H'), 3_600_000)
  t.equal(parseGrpcTimeout('2M'), 120_000)
  t.equal(parseGrpcTimeout('3S'), 3000)
  t.equal(parseGrpcTimeout('250m'), 250)
  t.equal(parseGrpcTimeout('1500u'), 2, 'rounded up')
  t.equal(parseGrpcTimeout('1n'), 1, 'a few nanoseconds is still a deadline')
  t.equal(parseGrpcTimeout('123456789S'), undefined, 'nine digits is malformed')
  t.equal(parseGrpcTimeout('10'), undefined)
  t.equal(parseGrpcTimeout('10s'), undefined, 'units are case-sensitive')
  t.equal(parseGrpcTimeout(undefined), undefined)
  t.equal(encodeGrpcMessage('plain text'), 'plain text')
  t.equal(encodeGrpcMessage('100% é\n'), '100%25 %C3%A9%0A')
  t.equal(grpcStatusFor('INGRESSD_ERR_NO_ROUTE'), 12)
  t.equal(grpcStatusFor('INGRESSD_ERR_NO_ENDPOINTS'), 14)
  t.equal(grpcStatusFor('INGRESSD_ERR_UPSTREAM_TIMEOUT'), 4)
  t.equal(grpcStatusFor('INGRESSD_ERR_AUTH_REQUIRED'), 16)
  t.equal(grpcStatusFor('INGRESSD_ERR_SOURCE_FORBIDDEN'), 7)
  t.equal(grpcStatusFor('INGRESSD_ERR_RATE_LIMITED'), 14, 'a 503 is UNAVAILABLE')
})

t.test('one session per endpoint, reused across calls and table swaps, closed when the endpoint leaves', async t => {
  const gw = await startTestGateway(t)
  const a = await startCountingServer(t)
  const b = await startCountingServer(t)
  await apply(gw, [...serviceManifests('echo', [at(a.port)]), ingress('grpc', 'grpc.example.com', 'echo', { [P + 'backend-protocol']: 'GRPC' })])
  for (let i = 0; i < 3; i++) t.equal(statusOf(await rawGrpc(gw, 'grpc.example.com')).code, 0, `call ${i}: OK`)
  // An unrelated change swaps the table.
  await apply(gw, [ingress('other', 'other.example.com', 'echo', {})])
  t.equal(statusOf(await rawGrpc(gw, 'grpc.example.com')).code, 0, 'OK after a table swap')
  t.equal(a.calls.length, 4)
  t.equal(a.open(), 1, 'four calls, two tables: one upstream session')
  // The endpoint is replaced: the next call goes to b, and the session to a is closed.
  await apply(gw, serviceManifests('echo', [at(b.port)]))
  t.equal(statusOf(await rawGrpc(gw, 'grpc.example.com')).code, 0)
  t.equal(b.calls.length, 1, 'the new endpoint took the call')
  t.ok(await until(() => a.open() === 0), 'the session to the endpoint that left is closed')
  t.equal(b.open(), 1)
})

t.test('backend-protocol values: case-insensitive; an unknown one is refused with 422 naming the key; FCGI is accepted, reported and never proxied', async t => {
  const gw = await startTestGateway(t)
  const echo = await startEchoServer(t)
  for (const value of ['gRPC', 'SOAP', '']) {
    const res = await gw.api('POST', ING, ingress(`v-${value.toLowerCase() || 'empty'}`, 'v.example.com', 'echo', { [P + 'backend-protocol']: value }))
    if (value === 'gRPC') t.equal(res.status, 201, 'gRPC is GRPC')
    else {
      t.equal(res.status, 422, `${JSON.stringify(value)} is refused`)
      t.equal(res.body.details?.causes?.[0]?.field, `metadata.annotations[${P}backend-protocol]`, 'naming the key')
    }
  }
  await apply(gw, [...serviceManifests('echo', [at(echo.port)]), ingress('php', 'php.example.com', 'echo', { [P + 'backend-protocol']: 'FCGI' })])
  const page = await request(`${gw.http}/index.php`, { headers: { host: 'php.example.com' } })
  t.equal(page.statusCode, 502, 'FCGI: 502')
  t.match(await page.body.text(), /INGRESSD_ERR_BACKEND_PROTOCOL_UNSUPPORTED/, 'with a code that says why')
  t.equal(echo.seen.length, 0, 'nothing went to the upstream')
  const status = (await gw.api('GET', `${ING}/php`)).body.status
  const ignored = status.conditions.find((c: any) => c.type === 'AnnotationsIgnored')
  t.match(ignored?.message, /backend-protocol \(FCGI: not served/, 'the status says FCGI is not served')
  const raw = await rawGrpc(gw, 'php.example.com')
  t.equal(raw.headers['grpc-status'], '14', 'a gRPC request to it: UNAVAILABLE')
})
