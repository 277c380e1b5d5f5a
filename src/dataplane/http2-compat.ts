/**
 * What differs between an HTTP/1.1 request and an HTTP/2 request seen through Node's
 * compatibility API, where the proxy has to look: the host is in the `:authority` pseudo-header
 * (HTTP/2 clients need not send Host), and a body has no Transfer-Encoding to announce it.
 */
import type { IncomingHttpHeaders } from 'node:http'

/**
 * The host the client asked for: `:authority` under HTTP/2, else Host. An HTTP/1.1 request cannot
 * carry a header named `:authority` (a colon is not allowed in a header name).
 */
export function requestHost (headers: IncomingHttpHeaders): string | undefined {
  const authority = headers[':authority']
  return typeof authority === 'string' && authority !== '' ? authority : headers.host
}

/** The parts of a request (HTTP/1.1 IncomingMessage or HTTP/2 compat request) that tell whether it has a body. */
export interface BodyFacts {
  headers: IncomingHttpHeaders
  /** Present on HTTP/2 compat requests: whether the client ended the stream with its headers. */
  stream?: { endAfterHeaders?: boolean }
}

/**
 * True when the request carries a body: Transfer-Encoding, a non-zero Content-Length, or (HTTP/2,
 * where Content-Length is optional) a stream the client did not end with its headers.
 */
export function requestHasBody (req: BodyFacts): boolean {
  const headers = req.headers
  if (headers['transfer-encoding'] !== undefined) return true
  const length = headers['content-length']
  if (length !== undefined) return length !== '0'
  return req.stream !== undefined && req.stream.endAfterHeaders === false
}
