/**
 * Raw HTTP/1.x over a socket, for requests no client library would send (test/hardening).
 */
import { connect } from 'node:net'

export interface RawAnswer {
  status: number
  head: string
  body: string
  /** True when the gateway closed the connection before `waitMs`. */
  closed: boolean
}

/** Sends raw bytes and reads until the gateway closes the connection (or `waitMs` passes). */
export async function sendRaw (port: number, raw: string | string[], opts: { waitMs?: number, gapMs?: number } = {}): Promise<RawAnswer> {
  const sock = connect(port, '127.0.0.1')
  sock.on('error', () => {})
  const chunks: Buffer[] = []
  sock.on('data', (c: Buffer) => chunks.push(c))
  const closed = new Promise<boolean>(resolve => {
    const timer = setTimeout(() => { sock.destroy(); resolve(false) }, opts.waitMs ?? 2000)
    sock.once('close', () => { clearTimeout(timer); resolve(true) })
  })
  const parts = Array.isArray(raw) ? raw : [raw]
  for (const part of parts) {
    if (sock.destroyed) break
    sock.write(Buffer.from(part, 'latin1'))
    if (opts.gapMs !== undefined) await new Promise(resolve => setTimeout(resolve, opts.gapMs))
  }
  const wasClosed = await closed
  const text = Buffer.concat(chunks).toString('latin1')
  const split = text.indexOf('\r\n\r\n')
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? 0)
  return { status, head: split === -1 ? text : text.slice(0, split), body: split === -1 ? '' : text.slice(split + 4), closed: wasClosed }
}
