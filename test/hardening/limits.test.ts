/**
 * Limits with nginx-like defaults, each set small here: body size (Content-Length up front and
 * streamed bodies as they pass), header size and count, request-target length, the header read
 * timeout against a slow drip, the idle keep-alive timeout, and the connection cap.
 */
import { connect as h2connect } from 'node:http2'
import { connect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import t from 'tap'
import { request } from 'undici'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { startOrigin, type Origin } from '../helpers/origin.js'
import { apply, serviceManifests } from '../helpers/backends.js'
import { req } from './corpus.js'
import { sendRaw } from '../helpers/raw.js'

function ingress (name: string, host: string, annotations: Record<string, string> = {}): unknown {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name, annotations },
    spec: { rules: [{ host, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'echo', port: { number: 8080 } } } }] } }] }
  }
}

async function setup (t: Parameters<typeof startTestGateway>[0], env: Record<string, string>): Promise<{ gw: TestGateway, origin: Origin }> {
  const gw = await startTestGateway(t, env)
  const origin = await startOrigin(t, 'echo')
  await apply(gw, [
    ...serviceManifests('echo', [origin]),
    ingress('plain', 'a.example'),
    ingress('bigger', 'big.example', { 'nginx.ingress.kubernetes.io/proxy-body-size': '4k' }),
    ingress('unlimited', 'free.example', { 'nginx.ingress.kubernetes.io/proxy-body-size': '0' })
  ])
  return { gw, origin }
}

const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))

t.test('request body size: 1m by default, INGRESSD_PROXY_BODY_SIZE, and the proxy-body-size annotation', async t => {
  t.equal((await startTestGateway(t)).config.proxyBodySize, 1024 * 1024, 'the default is 1m, as nginx\'s client_max_body_size')
  const { gw, origin } = await setup(t, { INGRESSD_PROXY_BODY_SIZE: '1k' })

  const upFront = await sendRaw(gw.httpPort, req(['POST /up HTTP/1.1', 'Host: a.example', 'Content-Length: 1025'], 'x'.repeat(100)))
  t.equal(upFront.status, 413, 'a Content-Length over the limit gets 413')
  t.ok(upFront.closed, 'and the connection is closed, its body unread')
  t.match(upFront.body, 'code: INGRESSD_ERR_PROXY_BODY_TOO_LARGE')
  t.match(upFront.body, 'limit: 1024 bytes')
  t.match(upFront.body, 'nginx.ingress.kubernetes.io/proxy-body-size')
  t.match(upFront.body, 'INGRESSD_PROXY_BODY_SIZE')
  t.match(upFront.head, /x-request-id: [0-9a-f]{32}/)
  t.same(origin.seen, [], 'before the upstream is contacted')

  const exact = await request(`${gw.http}/up`, { method: 'POST', headers: { host: 'a.example' }, body: 'x'.repeat(1024) })
  t.equal(exact.statusCode, 200, 'a body of exactly the limit passes')
  t.equal(JSON.parse(await exact.body.text()).body.length, 1024)
  origin.seen.length = 0

  // Chunked, no Content-Length: counted as it passes; the upstream request is aborted.
  const chunk = (n: number): string => `${n.toString(16)}\r\n${'y'.repeat(n)}\r\n`
  const streamed = await sendRaw(gw.httpPort, [req(['POST /stream HTTP/1.1', 'Host: a.example', 'Transfer-Encoding: chunked'], chunk(600)), chunk(600), chunk(600) + '0\r\n\r\n'], { gapMs: 100 })
  await sleep(100)
  t.equal(streamed.status, 413, 'a chunked body crossing the limit gets 413')
  t.match(streamed.body, 'limit: 1024 bytes')
  t.ok(streamed.closed, 'and the connection is closed')
  t.same(origin.seen, [], 'the upstream never received a complete request')

  const small = await sendRaw(gw.httpPort, req(['POST /stream HTTP/1.1', 'Host: a.example', 'Transfer-Encoding: chunked', 'Connection: close'], chunk(500) + chunk(500) + '0\r\n\r\n'))
  t.equal(small.status, 200, 'a chunked body under the limit passes')
  t.equal(origin.seen[0]?.body.length, 1000)

  const annotated = await request(`${gw.http}/`, { method: 'POST', headers: { host: 'big.example' }, body: 'z'.repeat(4000) })
  t.equal(annotated.statusCode, 200, 'the annotation raises the limit for its ingress')
  await annotated.body.text()
  const overAnnotated = await request(`${gw.http}/`, { method: 'POST', headers: { host: 'big.example' }, body: 'z'.repeat(5000) })
  t.equal(overAnnotated.statusCode, 413)
  t.match(await overAnnotated.body.text(), 'limit: 4096 bytes')
  const free = await request(`${gw.http}/`, { method: 'POST', headers: { host: 'free.example' }, body: 'z'.repeat(300_000) })
  t.equal(free.statusCode, 200, 'annotation "0": no limit')
  await free.body.text()

  const off = await setup(t, { INGRESSD_PROXY_BODY_SIZE: '0' })
  const big = await request(`${off.gw.http}/`, { method: 'POST', headers: { host: 'a.example' }, body: 'z'.repeat(2 * 1024 * 1024) })
  t.equal(big.statusCode, 200, 'INGRESSD_PROXY_BODY_SIZE=0: no limit')
  await big.body.text()
})

t.test('header size, header count and request-target length', async t => {
  const { gw, origin } = await setup(t, { INGRESSD_MAX_HEADER_SIZE: '1k', INGRESSD_MAX_HEADERS: '5', INGRESSD_MAX_URI_LENGTH: '100' })
  const head = (target: string, extra: string[]): string => req([`GET ${target} HTTP/1.1`, 'Host: a.example', 'Connection: close', ...extra])
  const big = await sendRaw(gw.httpPort, head('/', [`X-Big: ${'b'.repeat(1100)}`]))
  t.equal(big.status, 431, 'over INGRESSD_MAX_HEADER_SIZE: 431')
  t.match(big.body, 'code: INGRESSD_ERR_HEADERS_TOO_LARGE', 'in the gateway\'s format, though Node\'s parser refused it')
  t.equal((await sendRaw(gw.httpPort, head('/', [`X-Big: ${'b'.repeat(800)}`]))).status, 200, 'under it: routed')
  const tooMany = await sendRaw(gw.httpPort, head('/', ['A: 1', 'B: 2', 'C: 3', 'D: 4']))
  t.equal(tooMany.status, 431, 'six fields over INGRESSD_MAX_HEADERS=5: 431')
  t.match(tooMany.body, 'code: INGRESSD_ERR_HEADERS_TOO_LARGE')
  t.equal((await sendRaw(gw.httpPort, head('/', ['A: 1', 'B: 2', 'C: 3']))).status, 200, 'five fields: routed')
  const long = await sendRaw(gw.httpPort, head('/' + 'u'.repeat(100), []))
  t.equal(long.status, 414, 'a target over INGRESSD_MAX_URI_LENGTH: 414')
  t.match(long.body, 'code: INGRESSD_ERR_URI_TOO_LONG')
  t.ok(long.closed)
  t.equal((await sendRaw(gw.httpPort, head('/' + 'u'.repeat(99), []))).status, 200, 'a target of exactly the limit: routed')
  t.equal(origin.seen.length, 3, 'only the requests within the limits reached the origin')
})

t.test('the header read timeout is not reset by a slow drip', async t => {
  const { gw, origin } = await setup(t, { INGRESSD_CLIENT_HEADER_TIMEOUT: '1s' })
  const text = req(['GET / HTTP/1.1', 'Host: a.example', `X-Slow: ${'s'.repeat(60)}`])
  const started = Date.now()
  const answer = await sendRaw(gw.httpPort, text.split(''), { gapMs: 100, waitMs: 6000 })
  const took = Date.now() - started
  t.equal(answer.status, 408, 'one byte every 100 ms against a 1 s timeout: 408')
  t.match(answer.body, 'code: INGRESSD_ERR_REQUEST_TIMEOUT')
  t.ok(answer.closed, 'and the connection is closed')
  t.ok(took >= 900 && took < 3000, `within about a second of the first byte (${took} ms), not reset by each byte`)
  t.same(origin.seen, [])
})

t.test('idle keep-alive connections are closed after INGRESSD_KEEPALIVE_TIMEOUT', async t => {
  const { gw } = await setup(t, { INGRESSD_KEEPALIVE_TIMEOUT: '500ms' })
  const sock = connect(gw.httpPort, '127.0.0.1')
  let data = ''
  sock.on('data', (c: Buffer) => { data += c.toString('latin1') })
  const started = Date.now()
  sock.write(req(['GET / HTTP/1.1', 'Host: a.example']))
  await new Promise(resolve => sock.once('close', resolve))
  const took = Date.now() - started
  t.match(data, /^HTTP\/1\.1 200/, 'the request is answered and the connection kept')
  t.ok(took >= 400 && took < 3000, `then closed when idle for the timeout (${took} ms)`)
})

t.test('INGRESSD_MAX_CONNECTIONS caps concurrent connections', async t => {
  const { gw } = await setup(t, { INGRESSD_MAX_CONNECTIONS: '2' })
  const open = async (): Promise<Socket> => {
    const s = connect(gw.httpPort, '127.0.0.1')
    s.on('error', () => {})
    await new Promise(resolve => s.once('connect', resolve))
    return s
  }
  const first = await open()
  const second = await open()
  await sleep(50)
  const third = await sendRaw(gw.httpPort, req(['GET / HTTP/1.1', 'Host: a.example', 'Connection: close']))
  t.equal(third.status, 0, 'a third connection is closed without an answer')
  t.ok(third.closed)
  first.destroy()
  await sleep(100)
  const again = await sendRaw(gw.httpPort, req(['GET / HTTP/1.1', 'Host: a.example', 'Connection: close']))
  t.equal(again.status, 200, 'once one closes, a new connection is served')
  second.destroy()
})

/** One raw HTTP/1.1 request over TLS (no ALPN: the listener's HTTP/1.1 fallback); resolves with the status. */
async function tlsRawStatus (port: number, raw: string): Promise<number> {
  return await new Promise((resolve, reject) => {
    const sock = tlsConnect({ port, host: '127.0.0.1', servername: 'a.example', rejectUnauthorized: false }, () => { sock.write(raw) })
    let text = ''
    sock.setEncoding('latin1')
    sock.on('data', (c: string) => { text += c })
    sock.on('error', reject)
    sock.on('close', () => resolve(Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? 0)))
  })
}

/** One HTTP/2 request; resolves with the status, or the stream's error code when the stream was reset. */
async function h2Status (origin: string, headers: Record<string, string>): Promise<number | string> {
  const client = h2connect(origin, { servername: 'a.example', rejectUnauthorized: false })
  client.on('error', () => {})
  try {
    return await new Promise(resolve => {
      const stream = client.request({ ':path': '/', ':authority': 'a.example', ...headers })
      stream.on('response', h => { resolve(Number(h[':status'])) })
      stream.on('error', (err: NodeJS.ErrnoException) => { resolve(err.code ?? 'error') })
      stream.on('close', () => { resolve(`closed ${stream.rstCode ?? ''}`) })
      stream.resume()
    })
  } finally {
    client.close()
  }
}

t.test('INGRESSD_MAX_HEADER_SIZE holds on the HTTPS listener too, for HTTP/1.1 and HTTP/2', async t => {
  const { gw } = await setup(t, { INGRESSD_MAX_HEADER_SIZE: '1k' })
  const head = (extra: string): string => req(['GET / HTTP/1.1', 'Host: a.example', 'Connection: close', `X-Big: ${extra}`])
  t.equal(await tlsRawStatus(gw.httpsPort, head('b'.repeat(1100))), 431, 'HTTP/1.1 over TLS, over the limit: 431')
  t.equal(await tlsRawStatus(gw.httpsPort, head('b'.repeat(800))), 200, 'under it: routed')
  const h2 = `https://127.0.0.1:${gw.httpsPort}`
  t.equal(await h2Status(h2, { 'x-big': 'b'.repeat(800) }), 200, 'HTTP/2 under the limit: routed')
  t.equal(await h2Status(h2, { 'x-big': 'b'.repeat(1100) }), 431, 'HTTP/2 over it: 431, measured as the same request in HTTP/1.1')
})
