/**
 * What the gateway says to gRPC clients in gRPC's own terms. A gRPC client reads `grpc-status`
 * (in trailers, or in a trailers-only response) and nothing else: an HTML or plain-text 404 or
 * 502 reaches its user as "UNKNOWN: Received HTTP status 404" at best. So the gateway's own
 * failures, for a request whose content-type is `application/grpc*`, are answered as HTTP 200
 * with the gRPC status that means the same thing (no route: UNIMPLEMENTED, no endpoint or an
 * upstream down: UNAVAILABLE, a timeout: DEADLINE_EXCEEDED), as the gRPC HTTP/2 protocol
 * (PROTOCOL-HTTP2.md) and its HTTP-to-gRPC status mapping (http-grpc-status-mapping.md) say.
 */
import type { IncomingHttpHeaders, ServerResponse } from 'node:http'
import type { Http2ServerResponse, OutgoingHttpHeaders } from 'node:http2'
import { ERROR_CODES, type ErrorCode } from '../errors.js'

/** The gRPC status codes the gateway answers with (grpc/doc/statuscodes.md). */
export const GRPC_STATUS = Object.freeze({
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  DEADLINE_EXCEEDED: 4,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16
})

/** True for a gRPC (or gRPC-Web) request: its content-type is `application/grpc`, `application/grpc+proto`, `application/grpc-web`... */
export function isGrpcRequest (headers: IncomingHttpHeaders): boolean {
  const type = headers['content-type']
  return typeof type === 'string' && type.length >= 16 && type.slice(0, 16).toLowerCase() === 'application/grpc'
}

/** The gRPC status for one of the gateway's error codes: by meaning where it has one, else by HTTP status as gRPC's mapping does. */
export function grpcStatusFor (code: ErrorCode): number {
  switch (code) {
    case 'INGRESSD_ERR_NO_ROUTE':
      return GRPC_STATUS.UNIMPLEMENTED
    case 'INGRESSD_ERR_NO_ENDPOINTS':
    case 'INGRESSD_ERR_UPSTREAM_UNREACHABLE':
    case 'INGRESSD_ERR_UPSTREAM_RESET':
    case 'INGRESSD_ERR_BACKEND_PROTOCOL_UNSUPPORTED':
      return GRPC_STATUS.UNAVAILABLE
    case 'INGRESSD_ERR_UPSTREAM_TIMEOUT':
      return GRPC_STATUS.DEADLINE_EXCEEDED
    case 'INGRESSD_ERR_UPSTREAM_BAD_RESPONSE':
      return GRPC_STATUS.INTERNAL
  }
  switch (ERROR_CODES[code].status as number) {
    case 400: return GRPC_STATUS.INTERNAL
    case 401: return GRPC_STATUS.UNAUTHENTICATED
    case 403: return GRPC_STATUS.PERMISSION_DENIED
    case 404: return GRPC_STATUS.UNIMPLEMENTED
    case 413:
    case 429: return GRPC_STATUS.RESOURCE_EXHAUSTED
    case 502:
    case 503: return GRPC_STATUS.UNAVAILABLE
    case 504: return GRPC_STATUS.DEADLINE_EXCEEDED
  }
  return GRPC_STATUS.UNKNOWN
}

/** `grpc-message` is percent-encoded: every byte outside printable ASCII, and `%` itself (PROTOCOL-HTTP2.md). */
export function encodeGrpcMessage (text: string): string {
  let out = ''
  for (const byte of Buffer.from(text, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`
  }
  return out
}

/** The `grpc-message` of a gateway error: what went wrong, the code to search for, and the request id; never an upstream address. */
export function grpcMessageFor (code: ErrorCode, requestId: string): string {
  return `ingressd: ${ERROR_CODES[code].summary.replace(/^Data plane: /, '')} (${code}, request id ${requestId})`
}

const TIMEOUT_UNITS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 }

/**
 * A `grpc-timeout` header (1 to 8 digits and a unit: H, M, S, m, u, n) in milliseconds, rounded
 * up so that a deadline of a few microseconds is not no deadline; undefined when absent or malformed.
 */
export function parseGrpcTimeout (value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string') return undefined
  const match = /^(\d{1,8})([HMSmun])$/.exec(value)
  if (match === null) return undefined
  return Math.ceil(Number(match[1]) * (TIMEOUT_UNITS[match[2] as string] as number))
}

/**
 * Ends a gRPC response that has not begun with a status and no message: a trailers-only response
 * (one HEADERS frame with END_STREAM) on HTTP/2; on HTTP/1.1 (gRPC-Web) the status in the headers.
 * `headers` are added (x-request-id, server, HSTS).
 */
export function answerGrpcStatus (res: ServerResponse | Http2ServerResponse, status: number, message: string, headers: OutgoingHttpHeaders, contentType = 'application/grpc'): void {
  const out: OutgoingHttpHeaders = { ...headers, 'content-type': contentType, 'grpc-status': String(status), 'grpc-message': encodeGrpcMessage(message) }
  const stream = (res as Http2ServerResponse).stream as Http2ServerResponse['stream'] | undefined
  if (stream !== undefined) {
    if (stream.destroyed || stream.headersSent) return
    res.statusCode = 200
    stream.respond({ ...out, ':status': 200 }, { endStream: true })
    return
  }
  res.writeHead(200, out as Record<string, string>)
  res.end()
}

/**
 * Ends a gRPC response that has begun (headers sent, maybe messages too) with a status in its
 * trailers: how a stream cut by the upstream or a deadline still tells the client why.
 */
export function endGrpcWithStatus (res: ServerResponse | Http2ServerResponse, status: number, message: string): void {
  if (res.writableEnded || res.destroyed) return
  res.addTrailers({ 'grpc-status': String(status), 'grpc-message': encodeGrpcMessage(message) })
  res.end()
}
