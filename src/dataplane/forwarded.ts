/**
 * The headers a request carries upstream: hop-by-hop headers removed (including any a client
 * names in Connection, so it cannot strip ours), the original Host kept, and X-Forwarded-*,
 * X-Real-IP and X-Request-ID set as ingress-nginx sets them. Values a client sends are replaced
 * by what the gateway saw, unless the peer is a trusted proxy.
 */
import { BlockList, isIP } from 'node:net'
import type { IncomingHttpHeaders } from 'node:http'

/** Headers that describe one connection, never forwarded (RFC 9110 7.6.1, plus legacy ones). */
export const HOP_BY_HOP: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect', 'http2-settings'])

/**
 * Headers only the gateway may set: what it verified of a client certificate (auth-tls-*). A
 * client's own are dropped on every route, so a backend can trust them.
 */
const GATEWAY_ONLY = new Set(['ssl-client-verify', 'ssl-client-subject-dn', 'ssl-client-issuer-dn', 'ssl-client-cert'])

/** What the gateway knows about the connection a request came in on. */
export interface ConnectionFacts {
  peer: string
  proto: 'http' | 'https'
  port: number
  host: string
  requestId: string
}

/** Parses trusted proxy CIDRs once into a BlockList for constant-cost checks. */
export function trustedProxyList (cidrs: readonly string[]): BlockList {
  const list = new BlockList()
  for (const cidr of cidrs) {
    const [ip, bits] = cidr.split('/') as [string, string | undefined]
    const family = isIP(ip) === 6 ? 'ipv6' : 'ipv4'
    if (bits === undefined) list.addAddress(ip, family)
    else list.addSubnet(ip, Number(bits), family)
  }
  return list
}

/** True when `address` (as the socket reports it, maybe IPv4-mapped IPv6) is in `trusted`. */
export function isTrusted (trusted: BlockList, address: string): boolean {
  if (address === '') return false
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address
  return isIP(v4) === 4 ? trusted.check(v4, 'ipv4') : trusted.check(address, 'ipv6')
}

/** The names a Connection header lists, lowercased. */
function connectionListed (value: string | string[] | undefined): string[] {
  if (value === undefined) return []
  return (Array.isArray(value) ? value.join(',') : value).split(',').map(s => s.trim().toLowerCase()).filter(s => s !== '')
}

function single (value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value
}

/** The request headers to send upstream. */
export function upstreamRequestHeaders (incoming: IncomingHttpHeaders, facts: ConnectionFacts, trusted: boolean): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  const listed = connectionListed(incoming.connection)
  for (const [name, value] of Object.entries(incoming)) {
    // HTTP/2 pseudo-headers (:authority, :path...) describe the client's stream, not the request upstream.
    if (value === undefined || HOP_BY_HOP.has(name) || listed.includes(name) || name.startsWith(':') || GATEWAY_ONLY.has(name)) continue
    out[name] = value
  }
  out.host = facts.host
  const clientXff = single(incoming['x-forwarded-for'])
  out['x-forwarded-for'] = trusted && clientXff !== undefined ? `${clientXff}, ${facts.peer}` : facts.peer
  out['x-real-ip'] = trusted ? (single(incoming['x-real-ip']) ?? facts.peer) : facts.peer
  out['x-forwarded-proto'] = trusted ? (single(incoming['x-forwarded-proto']) ?? facts.proto) : facts.proto
  out['x-forwarded-host'] = trusted ? (single(incoming['x-forwarded-host']) ?? facts.host) : facts.host
  out['x-forwarded-port'] = trusted ? (single(incoming['x-forwarded-port']) ?? String(facts.port)) : String(facts.port)
  out['x-request-id'] = facts.requestId
  return out
}

/** The response headers to send the client: hop-by-hop removed, the gateway's Server set. */
export function clientResponseHeaders (upstream: Record<string, string | string[] | undefined>, requestId: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  const listed = connectionListed(upstream.connection)
  for (const [name, value] of Object.entries(upstream)) {
    if (value === undefined || HOP_BY_HOP.has(name) || listed.includes(name) || name === 'server') continue
    out[name] = value
  }
  out.server = 'ingressd'
  out['x-request-id'] = requestId
  return out
}

/** A client-sent request id is kept when it is a short token, as ingress-nginx keeps $request_id. */
export function acceptableRequestId (value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' && /^[\x21-\x7e]{1,200}$/.test(value) ? value : undefined
}
