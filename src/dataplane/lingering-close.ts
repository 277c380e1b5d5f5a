/**
 * Lingering close, as nginx does it (lingering_close, lingering_timeout, lingering_time): when the
 * gateway answers before it has read the request body (413, an error, a policy's 401 or 403) and
 * closes the connection, it half-closes (FIN after the answer) and keeps reading and discarding
 * what the client still sends, then closes.
 *
 * Without it, Node's HTTP server ends the socket and destroys it as soon as the answer is
 * written, while the client's body still sits unread in the kernel's receive buffer. Closing a
 * socket with unread data makes the kernel send RST instead of FIN, and a client that writes its
 * whole body before reading (most HTTP libraries) gets ECONNRESET or EPIPE and never sees the
 * answer it was sent.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { Socket } from 'node:net'
import { requestHasBody } from './http2-compat.js'

/** How long a closing connection is read from before it is cut. */
export interface LingerLimits {
  /** Without a byte from the client for this long: closed (nginx's lingering_timeout). */
  idleMs: number
  /** In all, from the answer on (nginx's lingering_time). */
  totalMs: number
}

/** nginx's defaults: lingering_timeout 5s, lingering_time 30s. */
export const LINGER_LIMITS: Readonly<LingerLimits> = Object.freeze({ idleMs: 5000, totalMs: 30_000 })

const armed = new WeakSet<Socket>()

/**
 * Arranges for an HTTP/1.x connection that the server will close after its current response to
 * close by lingering instead (see the module comment). Safe on TLS sockets (TLSSocket is a
 * net.Socket: end() sends close_notify then FIN, and decrypted data is read and dropped). Does
 * nothing more once armed, and nothing on a socket already destroyed.
 */
export function lingerOnClose (socket: Socket, limits: Readonly<LingerLimits> = LINGER_LIMITS): void {
  if (socket.destroyed || armed.has(socket)) return
  armed.add(socket)
  // Node's HTTP server closes a connection after a response with `Connection: close` by calling
  // socket.destroySoon() once the response is finished (resOnFinish in lib/_http_server.js, Node
  // 20), and destroySoon() destroys the socket as soon as its FIN is written. That call is the
  // one moment the server lets go of the connection, and on a server socket nothing else in Node
  // makes it: overriding it on this one socket instance changes nothing else.
  socket.destroySoon = () => { linger(socket, limits) }
}

/**
 * What an answer sent before the request body was read needs: on HTTP/1.x, when the request has
 * a body not yet received in full, `Connection: close` (the unread rest would otherwise be parsed
 * as the next request, or read without bound) and a lingering close, so the answer survives the
 * close. Call it before the answer is sent. Returns true when it applied.
 */
export function answerBeforeBody (req: IncomingMessage, res: ServerResponse): boolean {
  if (req.httpVersionMajor !== 1 || req.complete || !requestHasBody(req)) return false
  // Merged by writeHead with the headers Fastify passes it, so it holds for reply.send() too.
  if (!res.headersSent) res.setHeader('connection', 'close')
  lingerOnClose(req.socket, LINGER_LIMITS)
  return true
}

function linger (socket: Socket, limits: Readonly<LingerLimits>): void {
  if (socket.destroyed) return
  if (socket.readableEnded || !socket.readable) {
    // The client has sent its FIN already: nothing can arrive to reset the close.
    Socket.prototype.destroySoon.call(socket)
    return
  }
  // Take the connection away from the HTTP server, as Node does itself for an Upgrade: its
  // parser would otherwise go on feeding the rest of the body to the answered request, and parse
  // whatever follows as a new request, to be served on a connection announced closed. The only
  // 'data' listener of an HTTP/1 server socket is the server's. Adding a 'data' listener below
  // makes Node's server stop feeding its parser from the socket's handle directly.
  for (const listener of socket.listeners('data')) socket.removeListener('data', listener as (chunk: Buffer) => void)
  const destroy = (): void => { socket.destroy() }
  const idle = setTimeout(destroy, limits.idleMs).unref()
  const total = setTimeout(destroy, limits.totalMs).unref()
  socket.on('data', () => { idle.refresh() })
  // The client has sent everything: close once the answer has left (a client that never reads
  // it is cut by the timers). Node's server, which still listens for the end of the request it
  // was parsing, also destroys the socket then, through its parse error on the cut-short body;
  // the answer, a few hundred bytes, is in the kernel's send buffer long before.
  socket.once('end', () => {
    if (socket.writableFinished) destroy()
    else socket.once('finish', destroy)
  })
  socket.on('error', destroy)
  socket.once('close', () => {
    clearTimeout(idle)
    clearTimeout(total)
  })
  socket.end()
  socket.resume()
  // While the server's parser read the socket's handle directly, the socket's own stream state
  // kept a read pending that never completed, so resume() alone does not start reading again;
  // and the server may have stopped the handle when the answered request stopped taking its
  // body. Restart it as Node's HTTP server does when it resumes a socket (onSocketResume).
  const handle = (socket as unknown as { _handle?: { reading?: boolean, readStart?: () => number } | null })._handle
  if (handle?.readStart !== undefined && handle.reading !== true) {
    handle.reading = true
    handle.readStart()
  }
}
