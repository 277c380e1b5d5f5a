/**
 * Graceful shutdown of a data-plane listener: stop accepting, close idle keep-alive connections
 * at once and busy ones as soon as their request ends, send HTTP/2 sessions a GOAWAY, and only
 * when the grace period runs out cut what is left. The same for HTTP/1.1, HTTP/1.1 over TLS and
 * HTTP/2, so no listener loses a request that was already being served.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Http2Session } from 'node:http2'
import type { Server } from 'node:net'
import type { Socket } from 'node:net'

/** Tracks a server's connections and how many requests each is serving. */
export class ConnectionTracker {
  private readonly busy = new Map<Socket, number>()
  private readonly sessions = new Set<Http2Session>()
  private draining = false

  /** `tls`: the server is a TLS server, whose requests run on the TLS socket, not the TCP one. */
  constructor (server: Server, tls: boolean) {
    server.on(tls ? 'secureConnection' : 'connection', (socket: Socket) => {
      this.busy.set(socket, 0)
      socket.once('close', () => this.busy.delete(socket))
    })
    server.on('session', (session: Http2Session) => {
      this.sessions.add(session)
      session.once('close', () => this.sessions.delete(session))
      if (this.draining) session.close()
    })
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      const socket = req.socket as Socket
      // HTTP/2 streams share their session's socket: the session is drained as a whole.
      if (req.httpVersionMajor === 2) return
      this.busy.set(socket, (this.busy.get(socket) ?? 0) + 1)
      res.once('close', () => {
        const left = (this.busy.get(socket) ?? 1) - 1
        this.busy.set(socket, left)
        if (this.draining && left === 0) socket.end()
      })
    })
  }

  /** Ends idle connections now, busy ones when their request is done; GOAWAY to HTTP/2 sessions. */
  drain (): void {
    this.draining = true
    for (const session of this.sessions) session.close()
    for (const [socket, count] of this.busy) {
      if (count === 0 && !this.isHttp2(socket)) socket.end()
    }
  }

  /** Whatever is still open when the grace period ends. */
  destroyAll (): void {
    for (const session of this.sessions) session.destroy()
    for (const socket of this.busy.keys()) socket.destroy()
  }

  get open (): number {
    return this.busy.size + this.sessions.size
  }

  private isHttp2 (socket: Socket): boolean {
    for (const session of this.sessions) if (session.socket === socket) return true
    return false
  }
}
