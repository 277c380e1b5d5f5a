/**
 * An answer sent while the client is still uploading its body (413, or any error before the
 * body was read) must reach a client that writes its whole body before it reads: the gateway
 * half-closes and keeps reading and discarding (lingering close, as nginx) instead of closing a
 * socket with unread bytes, which makes the kernel send RST and lose the answer. Bounded: a
 * client that stops sending is cut after the idle timeout.
 */
import { createServer } from 'node:http'
import { connect, type AddressInfo, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import t, { type Test } from 'tap'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { startOrigin, type Origin } from '../helpers/origin.js'
import { apply, serviceManifests } from '../helpers/backends.js'
import { lingerOnClose } from '../../src/dataplane/lingering-close.js'

const MIB = 1024 * 1024

function ingress (name: string, host: string, annotations: Record<string, string> = {}): unknown {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name, annotations },
    spec: { rules: [{ host, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'echo', port: { number: 8080 } } } }] } }] }
  }
}

async function setup (t: Test): Promise<{ gw: TestGateway, origin: Origin }> {
  const gw = await startTestGateway(t)
  const origin = await startOrigin(t, 'echo')
  await apply(gw, [
    ...serviceManifests('echo', [origin]),
    ingress('small', 'small.example', { 'nginx.ingress.kubernetes.io/proxy-body-size': '1k' })
  ])
  return { gw, origin }
}

interface Upload {
  status: number
  head: string
  body: string
  /** The client's socket error, if any (ECONNRESET, EPIPE: the answer was lost). */
  error: string | undefined
  /** When the gateway's FIN (or reset) arrived, in ms after the client stopped writing. */
  endedAfterMs: number
}

/**
 * A client as many HTTP libraries are: it writes the head and the whole body as fast as it can,
 * in large chunks, without reading; only once every byte is handed to the kernel does it read
 * the answer. `bodyBytes` of 'x' follow the head (framed by the caller's headers); with
 * `chunked`, each piece is sent as one chunk and the body ends with the last chunk. `stall`: the
 * client stops after that many bytes without closing, to see how long the gateway waits.
 */
async function uploadThenRead (open: () => Socket, head: string, opts: { bodyBytes: number, chunked?: boolean, pieceBytes?: number, stall?: boolean, waitMs?: number, after?: string }): Promise<Upload> {
  const sock = open()
  let error: string | undefined
  sock.on('error', (err: NodeJS.ErrnoException) => { error ??= err.code ?? err.message })
  const closed = new Promise<void>(resolve => sock.once('close', () => resolve()))
  await new Promise<void>(resolve => {
    sock.once('connect', resolve)
    sock.once('secureConnect', resolve)
    sock.once('close', resolve)
  })
  const piece = Buffer.alloc(opts.pieceBytes ?? MIB, 'x')
  const writes: Array<Promise<void>> = []
  const write = (data: string | Buffer): void => {
    if (sock.destroyed || sock.writableEnded) return
    writes.push(new Promise(resolve => sock.write(data, () => resolve())))
  }
  write(head)
  for (let sent = 0; sent < opts.bodyBytes; sent += piece.length) {
    const part = piece.subarray(0, Math.min(piece.length, opts.bodyBytes - sent))
    write(opts.chunked === true ? Buffer.concat([Buffer.from(`${part.length.toString(16)}\r\n`), part, Buffer.from('\r\n')]) : part)
  }
  if (opts.chunked === true && opts.stall !== true) write('0\r\n\r\n')
  if (opts.after !== undefined) write(opts.after)
  await Promise.all(writes)
  const stoppedAt = performance.now()
  // Only now does the client read: what the gateway sent before is in the socket's buffers.
  const chunks: Buffer[] = []
  let endedAt: number | undefined
  const ended = (): void => { endedAt ??= performance.now() }
  sock.on('data', (c: Buffer) => chunks.push(c))
  sock.once('end', ended)
  sock.once('close', ended)
  const timer = setTimeout(() => sock.destroy(), opts.waitMs ?? 10_000)
  await closed
  clearTimeout(timer)
  const text = Buffer.concat(chunks).toString('latin1')
  const split = text.indexOf('\r\n\r\n')
  return {
    status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? 0),
    head: split === -1 ? text : text.slice(0, split),
    body: split === -1 ? '' : text.slice(split + 4),
    error,
    endedAfterMs: (endedAt ?? performance.now()) - stoppedAt
  }
}

const post = (host: string, framing: string, path = '/upload'): string => `POST ${path} HTTP/1.1\r\nHost: ${host}\r\n${framing}\r\n\r\n`
const ROUNDS = 5

t.test('a 413 for a Content-Length over the limit reaches a client that uploads 8 MiB before reading', async t => {
  const { gw, origin } = await setup(t)
  const plain = (): Socket => connect(gw.httpPort, '127.0.0.1')
  const statuses: string[] = []
  for (let i = 0; i < ROUNDS; i++) {
    const got = await uploadThenRead(plain, post('small.example', `Content-Length: ${8 * MIB}`), { bodyBytes: 8 * MIB })
    statuses.push(got.error === undefined ? String(got.status) : `${got.status}/${got.error}`)
    t.equal(got.status, 413, `round ${i + 1}: the status line arrived`)
    t.equal(got.error, undefined, `round ${i + 1}: no reset`)
    t.match(got.head, /\r\nconnection: close/i, `round ${i + 1}: the connection is announced closed`)
    t.match(got.body, /code: INGRESSD_ERR_PROXY_BODY_TOO_LARGE\n[^]*limit: 1024 bytes\n/, `round ${i + 1}: the whole body arrived`)
  }
  t.comment(`Content-Length rounds: ${statuses.join(', ')}`)
  t.same(origin.seen, [], 'the upstream was never contacted')
})

t.test('a 413 for a chunked body crossing the limit, and a 404 for a chunked upload, reach a client that uploads before reading', async t => {
  const { gw, origin } = await setup(t)
  const plain = (): Socket => connect(gw.httpPort, '127.0.0.1')
  const statuses: string[] = []
  for (let i = 0; i < ROUNDS; i++) {
    const got = await uploadThenRead(plain, post('small.example', 'Transfer-Encoding: chunked'), { bodyBytes: 8 * MIB, chunked: true })
    statuses.push(got.error === undefined ? String(got.status) : `${got.status}/${got.error}`)
    t.equal(got.status, 413, `chunked round ${i + 1}: the status line arrived`)
    t.equal(got.error, undefined, `chunked round ${i + 1}: no reset`)
    t.match(got.body, /limit: 1024 bytes\n/, `chunked round ${i + 1}: the whole body arrived`)
  }
  t.comment(`chunked rounds: ${statuses.join(', ')}`)
  t.notOk(origin.seen.some(s => s.body.length > 1024), 'no body past the limit reached the upstream')

  // No route: Node alone would keep the connection and read the unread body to its end, without
  // bound; the gateway closes it after the answer, lingering.
  const noRoute = await uploadThenRead(plain, post('nowhere.example', 'Transfer-Encoding: chunked'), { bodyBytes: 4 * MIB, chunked: true })
  t.equal(noRoute.status, 404, 'a 404 before the body was read arrives')
  t.equal(noRoute.error, undefined, 'without a reset')
  t.match(noRoute.head, /\r\nconnection: close/i, 'and announces the close')
  t.ok(noRoute.endedAfterMs < 2000, `the gateway ends the connection once the client has sent all (${Math.round(noRoute.endedAfterMs)} ms)`)
})

t.test('HTTP/1.1 over TLS: the 413 reaches a client that uploads 8 MiB before reading', async t => {
  const { gw } = await setup(t)
  const secure = (): Socket => tlsConnect({ port: gw.httpsPort, host: '127.0.0.1', servername: 'small.example', rejectUnauthorized: false })
  for (let i = 0; i < 3; i++) {
    const got = await uploadThenRead(secure, post('small.example', `Content-Length: ${8 * MIB}`), { bodyBytes: 8 * MIB })
    t.equal(got.status, 413, `TLS round ${i + 1}: the status line arrived`)
    t.equal(got.error, undefined, `TLS round ${i + 1}: no reset`)
    t.match(got.body, /limit: 1024 bytes\n/, `TLS round ${i + 1}: the whole body arrived`)
  }
})

t.test('what arrives after the answer is read and dropped, never parsed as a request', async t => {
  const { gw, origin } = await setup(t)
  const sock = connect(gw.httpPort, '127.0.0.1')
  sock.on('error', () => {})
  let text = ''
  sock.on('data', (c: Buffer) => { text += c.toString('latin1') })
  const closed = new Promise(resolve => sock.once('close', resolve))
  await new Promise(resolve => sock.once('connect', resolve))
  sock.write(post('small.example', 'Content-Length: 4096') + 'x'.repeat(1024))
  // The answer is sent and the gateway lingers; then the rest of the body and a second request.
  await new Promise(resolve => setTimeout(resolve, 200))
  sock.write('x'.repeat(3072) + 'GET /pipelined HTTP/1.1\r\nHost: small.example\r\n\r\n')
  await closed
  t.match(text, /^HTTP\/1\.1 413 /)
  t.equal(text.match(/HTTP\/1\.1 /g)?.length, 1, 'one answer only')
  await new Promise(resolve => setTimeout(resolve, 100))
  t.same(origin.seen.map(s => s.url), [], 'the second request never reached the upstream')
})

/** ingressd_active_connections for the HTTP listener, from the admin API's /metrics. */
async function openHttpConnections (gw: TestGateway): Promise<number> {
  const res = await gw.api('GET', '/metrics')
  return Number(/ingressd_active_connections\{listener="http"\} (\d+)/.exec(res.text)?.[1] ?? -1)
}

t.test('bounded: a client that stops sending is cut about 5 s after its last byte', async t => {
  const { gw } = await setup(t)
  // allowHalfOpen: the client does not answer the gateway's FIN with its own, and never closes.
  const sock = connect({ port: gw.httpPort, host: '127.0.0.1', allowHalfOpen: true })
  sock.on('error', () => {})
  let text = ''
  sock.on('data', (c: Buffer) => { text += c.toString('latin1') })
  await new Promise(resolve => sock.once('connect', resolve))
  sock.write(post('small.example', `Content-Length: ${8 * MIB}`))
  await new Promise<void>(resolve => sock.write(Buffer.alloc(256 * 1024, 'x'), () => resolve()))
  const stoppedAt = performance.now()
  await new Promise(resolve => setTimeout(resolve, 2000))
  t.match(text, /^HTTP\/1\.1 413 /, 'the answer arrived')
  t.equal(await openHttpConnections(gw), 1, 'two seconds later the gateway still reads (lingers)')
  let closedAfter = Infinity
  while (performance.now() - stoppedAt < 10_000) {
    if (await openHttpConnections(gw) === 0) {
      closedAfter = performance.now() - stoppedAt
      break
    }
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  t.ok(closedAfter >= 4500 && closedAfter < 6500, `closed by the gateway ${Math.round(closedAfter)} ms after the client's last byte (lingering_timeout 5 s)`)
  sock.destroy()
})

t.test('lingerOnClose: idle and total limits, a client FIN, and a connection Node keeps open', async t => {
  let served = 0
  // Each connection's close on the server side, for the client helper to wait on.
  let serverClosed: Promise<void> = Promise.resolve()
  const server = createServer((req, res) => {
    served++
    if (req.url === '/keep') {
      // No Connection: close: Node keeps the connection, so nothing lingers.
      lingerOnClose(req.socket, { idleMs: 100, totalMs: 200 })
      req.resume()
      req.on('end', () => res.end('kept'))
      return
    }
    serverClosed = new Promise(resolve => req.socket.once('close', () => resolve()))
    lingerOnClose(req.socket, { idleMs: 600, totalMs: 1500 })
    res.writeHead(413, { connection: 'close', 'content-length': 3 }).end('no\n')
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const port = (server.address() as AddressInfo).port
  /** One upload that the server answers at once; resolves when the server has closed the connection. */
  const client = async (opts: { trickle?: boolean, finAfterMs?: number }): Promise<{ text: string, closedAfterMs: number }> => {
    const sock = connect({ port, host: '127.0.0.1', allowHalfOpen: true })
    sock.on('error', () => {})
    let text = ''
    sock.on('data', (c: Buffer) => { text += c.toString('latin1') })
    await new Promise(resolve => sock.once('connect', resolve))
    const start = performance.now()
    sock.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\nxxxx')
    const timer = opts.trickle === true ? setInterval(() => sock.write('x'.repeat(100)), 50) : undefined
    if (opts.finAfterMs !== undefined) setTimeout(() => sock.end(), opts.finAfterMs)
    await new Promise(resolve => setTimeout(resolve, 50))
    await serverClosed
    const closedAfterMs = performance.now() - start
    clearInterval(timer)
    sock.destroy()
    return { text, closedAfterMs }
  }
  const idle = await client({})
  t.match(idle.text, /^HTTP\/1\.1 413 /, 'the answer arrives')
  t.ok(idle.closedAfterMs >= 550 && idle.closedAfterMs < 1200, `idle: closed after ${Math.round(idle.closedAfterMs)} ms (idleMs 600)`)
  const busy = await client({ trickle: true })
  t.ok(busy.closedAfterMs >= 1400 && busy.closedAfterMs < 2300, `still sending: closed after ${Math.round(busy.closedAfterMs)} ms (totalMs 1500)`)
  const fin = await client({ finAfterMs: 100 })
  t.ok(fin.closedAfterMs < 500, `the client's FIN: closed after ${Math.round(fin.closedAfterMs)} ms, before the idle limit`)
  served = 0
  const kept = connect(port, '127.0.0.1')
  kept.on('error', () => {})
  kept.write('POST /keep HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok')
  await new Promise(resolve => kept.once('data', resolve))
  await new Promise(resolve => setTimeout(resolve, 400))
  kept.write('POST /keep HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok')
  await new Promise(resolve => kept.once('data', resolve))
  t.equal(served, 2, 'a kept-alive connection is not touched: its next request is served after the limits')
  kept.destroy()
})
