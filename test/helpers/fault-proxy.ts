/**
 * A TCP proxy between one client (a gateway node) and PostgreSQL whose link can be broken at run
 * time, to give each node its own partition without iptables.
 *
 * Modes:
 * - `pass`: forward both ways.
 * - `cut`: reset every connection now (RST) and reset each new one as soon as it is accepted.
 * - `blackhole`: a partition: connections stay open (new ones are accepted) but nothing moves in
 *   either direction, closes included. Like TCP across a healed partition, what was sent in the
 *   meantime is delivered once the mode goes back to `pass` or `delay`; a client that gave up
 *   has usually closed by then.
 * - `{ delay: ms }`: every chunk, and every close, is forwarded `ms` later, in each direction (a
 *   round trip gains 2 × ms). Chunks already in flight keep the delay they were sent with.
 */
import { createServer, connect, type Socket } from 'node:net'

export type FaultMode = 'pass' | 'cut' | 'blackhole' | { delay: number }

export interface FaultProxy {
  host: string
  port: number
  /** `dbUrl` with its host and port replaced by the proxy's. */
  url: (dbUrl: string) => string
  /** Switches the mode for existing and new connections. */
  mode: (m: FaultMode) => void
  /** Client connections open now (accepted and not yet closed on the client side). */
  connections: () => number
  close: () => Promise<void>
}

interface Teardownable { teardown: (fn: () => unknown) => void }

const HOST = '127.0.0.1'

/** One direction of one connection: a queue of chunks (null: the sender closed) with due times. */
class Flow {
  private readonly queue: Array<{ chunk: Buffer | null, due: number }> = []
  private lastDue = 0
  private timer: NodeJS.Timeout | undefined
  private waitingDrain = false

  constructor (private readonly from: Socket, private readonly to: () => Socket | undefined, private readonly state: ProxyState) {
    from.on('data', (chunk: Buffer) => this.push(chunk))
    from.on('end', () => this.push(null))
  }

  private push (chunk: Buffer | null): void {
    // Never earlier than what is queued: a shorter delay must not reorder the stream.
    this.lastDue = Math.max(Date.now() + this.state.delay(), this.lastDue)
    this.queue.push({ chunk, due: this.lastDue })
    this.pump()
  }

  /** Delivers what is due, if the mode lets anything through; called again on every mode change. */
  pump (): void {
    this.updateReading()
    if (this.timer !== undefined || !this.state.forwarding()) return
    const dest = this.to()
    if (dest === undefined) return
    while (this.queue.length > 0 && !this.waitingDrain) {
      const head = this.queue[0]!
      const wait = head.due - Date.now()
      if (wait > 0) {
        this.timer = setTimeout(() => {
          this.timer = undefined
          this.pump()
        }, wait)
        return
      }
      this.queue.shift()
      if (dest.destroyed || dest.writableEnded) continue
      if (head.chunk === null) {
        dest.end()
      } else if (!dest.write(head.chunk)) {
        // Backpressure as TCP would apply it: stop reading the sender until the receiver drains.
        this.waitingDrain = true
        this.updateReading()
        dest.once('drain', () => {
          this.waitingDrain = false
          this.pump()
        })
      }
    }
  }

  updateReading (): void {
    if (this.from.destroyed) return
    if (this.state.forwarding() && !this.waitingDrain) this.from.resume()
    else this.from.pause()
  }

  stop (): void {
    clearTimeout(this.timer)
    this.timer = undefined
    this.queue.length = 0
  }
}

interface ProxyState { delay: () => number, forwarding: () => boolean }

class Link {
  upstream: Socket | undefined
  private readonly toServer: Flow
  private toClient: Flow | undefined

  constructor (readonly client: Socket, private readonly target: { host: string, port: number }, private readonly state: ProxyState, private readonly onClose: (l: Link) => void, private readonly track: (s: Socket) => void) {
    track(client)
    client.setNoDelay(true)
    client.on('error', () => {})
    client.on('close', hadError => {
      if (hadError) this.reset()
      this.toServer.stop()
      this.onClose(this)
    })
    this.toServer = new Flow(client, () => this.upstream, state)
    if (state.forwarding()) this.open()
  }

  /** Connects upstream; a link accepted in `blackhole` does it only once the partition heals. */
  open (): void {
    if (this.upstream !== undefined || this.client.destroyed) return
    const upstream = connect(this.target.port, this.target.host)
    this.track(upstream)
    upstream.setNoDelay(true)
    this.upstream = upstream
    upstream.on('error', () => {})
    upstream.on('close', hadError => {
      // PostgreSQL gone or refusing: the client sees a reset, as it would without the proxy.
      if (hadError) this.reset()
    })
    this.toClient = new Flow(upstream, () => this.client, this.state)
    this.toServer.pump()
  }

  pump (): void {
    if (this.state.forwarding()) this.open()
    this.toServer.pump()
    this.toClient?.pump()
  }

  reset (): void {
    this.toServer.stop()
    this.toClient?.stop()
    if (!this.client.destroyed) this.client.resetAndDestroy()
    if (this.upstream !== undefined && !this.upstream.destroyed) this.upstream.resetAndDestroy()
  }
}

/**
 * Starts a fault proxy to `target` on a free loopback port, in `pass` mode; closed at teardown.
 * Point the client under test at `proxy.url(dbUrl)`.
 */
export async function startFaultProxy (t: Teardownable, target: { host: string, port: number }): Promise<FaultProxy> {
  let current: FaultMode = 'pass'
  const links = new Set<Link>()
  // Every socket either side, until it closes: a link its client closed during a blackhole still
  // holds its PostgreSQL side, which would keep the test process alive after its teardown.
  const sockets = new Set<Socket>()
  const track = (socket: Socket): void => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  }
  const state: ProxyState = {
    delay: () => typeof current === 'object' ? Math.max(0, current.delay) : 0,
    forwarding: () => current === 'pass' || typeof current === 'object'
  }
  const server = createServer({ pauseOnConnect: true }, client => {
    if (current === 'cut') {
      client.on('error', () => {})
      client.resetAndDestroy()
      return
    }
    links.add(new Link(client, target, state, l => links.delete(l), track))
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, HOST, () => resolve())
  })
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('fault proxy: no port')
  const port = address.port

  let closing: Promise<void> | undefined
  const close = async (): Promise<void> => {
    closing ??= new Promise<void>(resolve => {
      for (const link of links) link.reset()
      links.clear()
      for (const socket of sockets) socket.resetAndDestroy()
      sockets.clear()
      server.close(() => resolve())
    })
    await closing
  }
  t.teardown(close)

  return {
    host: HOST,
    port,
    url (dbUrl: string): string {
      const u = new URL(dbUrl)
      u.hostname = HOST
      u.port = String(port)
      return u.toString()
    },
    mode (m: FaultMode): void {
      current = typeof m === 'object' ? { delay: m.delay } : m
      if (current === 'cut') {
        for (const link of links) link.reset()
        links.clear()
        return
      }
      for (const link of links) link.pump()
    },
    connections: () => links.size,
    close
  }
}
