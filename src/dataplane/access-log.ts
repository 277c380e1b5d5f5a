/**
 * The access log: one JSON line per request, written to the data-plane logger's own destination.
 *
 * The line is what `logger.child({ reqId }).info(fields, 'access')` writes (same keys, order and
 * bindings; fields left undefined are left out, as pino leaves them), built as one string. pino
 * walks and checks an object per call, and that was a few percent of the proxy's CPU per request.
 * Authorization, cookies and every other request header except the Host are never written.
 *
 * Lines are handed to the destination in batches of 16 KiB, or every 100 ms, whichever comes
 * first. Given one line at a time, pino's destination (sonic-boom) appended each to the text
 * waiting behind the write in flight and measured that text's UTF-8 length again, which copied
 * the whole growing batch per request: some 12 % of the proxy's throughput, and most of the
 * garbage that reached the old generation (whose collections are the proxy's p99).
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import { pino, type Logger } from 'pino'
import { requestHost } from './http2-compat.js'
import type { RequestInfo } from './proxy.js'
import { routeNames } from './route-table.js'

const INFO = 30

/** pino's internals the line needs: its destination and its bindings, already serialized. */
interface PinoInternals {
  [pino.symbols.streamSym]: { write: (line: string) => unknown, flush?: () => void }
  [pino.symbols.chindingsSym]: string
}

const str = (value: string): string => JSON.stringify(value)

/** Characters of access lines gathered before they are handed to the destination. */
const BATCH_CHARS = 16 * 1024
/** The longest a line waits for its batch, ms. */
const BATCH_MS = 100

export interface AccessLog {
  /** Logs one request: its line joins the current batch. */
  write: (req: FastifyRequest, reply: FastifyReply, info: RequestInfo | null) => void
  /** Flushes and stops the batch timer (the app is closing). */
  close: () => void
}

/** Builds the access log of a data-plane app. */
export function createAccessLog (logger: Logger): AccessLog {
  const internals = logger as unknown as PinoInternals
  let batch: string[] = []
  let batchChars = 0
  const flush = (): void => {
    if (batch.length === 0) return
    const text = batch.join('')
    batch = []
    batchChars = 0
    internals[pino.symbols.streamSym].write(text)
  }
  // A batch the timer hands over may be shorter than what the destination gathers before it
  // writes (logger.ts): it is told to write now, so no line is more than 100 ms late.
  const flushNow = (): void => {
    if (batch.length === 0) return
    flush()
    internals[pino.symbols.streamSym].flush?.()
  }
  const timer = setInterval(flushNow, BATCH_MS).unref()
  const close = (): void => {
    clearInterval(timer)
    flushNow()
  }
  const write = (req: FastifyRequest, reply: FastifyReply, info: RequestInfo | null): void => {
    if (!logger.isLevelEnabled('info')) return
    let line = `{"level":${INFO},"time":${Date.now()}${internals[pino.symbols.chindingsSym]},"reqId":${str(req.id)}`
    const client = req.socket.remoteAddress
    if (client !== undefined) line += `,"client":${str(client)}`
    const host = requestHost(req.headers)
    if (host !== undefined) line += `,"host":${str(host)}`
    line += `,"method":${str(req.method)},"path":${str(req.url)},"status":${reply.statusCode}`
    // A proxied body as relayed; else what the gateway answered itself.
    const bytes = info?.bytes ?? (Number(reply.getHeader('content-length') ?? 0) || undefined)
    if (bytes !== undefined) line += `,"bytes":${bytes}`
    if (info?.upstream !== undefined) line += `,"upstream":${str(`${info.upstream.host}:${info.upstream.port}`)}`
    if (info?.route !== undefined) line += `,"ingress":${str(routeNames(info.route).ingress)}`
    if (info?.upstreamMs !== undefined) line += `,"upstreamMs":${Math.round(info.upstreamMs * 100) / 100}`
    line += `,"ms":${Math.round(reply.elapsedTime * 100) / 100},"msg":"access"}\n`
    batch.push(line)
    batchChars += line.length
    if (batchChars >= BATCH_CHARS) flush()
  }
  return { write, close }
}
