/**
 * The access log: one JSON line per request, written to the data-plane logger's own destination.
 *
 * The line is what `logger.child({ reqId }).info(fields, 'access')` writes (same keys, order and
 * bindings; fields left undefined are left out, as pino leaves them), built as one string. pino
 * walks and checks an object per call, and that was a few percent of the proxy's CPU per request.
 * Authorization, cookies and every other request header except the Host are never written.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import { pino, type Logger } from 'pino'
import { requestHost } from './http2-compat.js'
import type { RequestInfo } from './proxy.js'
import { routeNames } from './route-table.js'

const INFO = 30

/** pino's internals the line needs: its destination and its bindings, already serialized. */
interface PinoInternals {
  [pino.symbols.streamSym]: { write: (line: string) => unknown }
  [pino.symbols.chindingsSym]: string
}

const str = (value: string): string => JSON.stringify(value)

/** Builds the access-log writer of a data-plane app. */
export function createAccessLog (logger: Logger): (req: FastifyRequest, reply: FastifyReply, info: RequestInfo | null) => void {
  const internals = logger as unknown as PinoInternals
  return (req, reply, info) => {
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
    internals[pino.symbols.streamSym].write(line)
  }
}
