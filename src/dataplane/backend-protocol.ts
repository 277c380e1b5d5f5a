/**
 * `backend-protocol`: how the gateway talks to a route's upstream. As ingress-nginx reads it
 * (annotations/backendprotocol): trimmed and upper-cased, HTTP by default. HTTP is the plain
 * proxy path and is kept as no setting at all, so a route that says HTTP pays nothing.
 *
 * - GRPC: HTTP/2 without TLS (h2c, prior knowledge); GRPCS: HTTP/2 over TLS (http2-upstream.ts).
 * - H2C: h2c for any traffic, not only gRPC.
 * - HTTPS: HTTP/1.1 over TLS; AUTO_HTTP: HTTPS when the client came over HTTPS, else HTTP.
 * - FCGI (and AJP): ingress-nginx speaks them, ingressd does not. Accepted on write (a manifest
 *   that works with ingress-nginx is not refused), listed on the ingress's status, and answered
 *   502 INGRESSD_ERR_BACKEND_PROTOCOL_UNSUPPORTED: never HTTP sent to a FastCGI server.
 */

export type BackendProtocol = 'HTTPS' | 'AUTO_HTTP' | 'GRPC' | 'GRPCS' | 'H2C' | 'FCGI' | 'AJP'

const KNOWN = new Set(['HTTP', 'HTTPS', 'AUTO_HTTP', 'GRPC', 'GRPCS', 'H2C', 'FCGI', 'AJP'])

/** The protocols ingressd cannot speak: the route answers 502 with a code saying so. */
export const UNSUPPORTED_PROTOCOLS: ReadonlySet<string> = new Set(['FCGI', 'AJP'])

export const BACKEND_PROTOCOL_MESSAGE = 'expected one of "HTTP", "HTTPS", "AUTO_HTTP", "GRPC", "GRPCS", "H2C" (or "FCGI", which ingressd accepts but does not serve)'

/** The protocol a value names (undefined for HTTP, the default), or a problem. */
export function parseBackendProtocol (value: string): { protocol: BackendProtocol | undefined } | { problem: string } {
  const name = value.trim().toUpperCase()
  if (!KNOWN.has(name)) return { problem: BACKEND_PROTOCOL_MESSAGE }
  return { protocol: name === 'HTTP' ? undefined : name as BackendProtocol }
}

/** True for the protocols that go upstream over node:http2 (a session pool) rather than undici. */
export function usesHttp2 (protocol: string | undefined): boolean {
  return protocol === 'GRPC' || protocol === 'GRPCS' || protocol === 'H2C'
}
