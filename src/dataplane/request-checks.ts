/**
 * Checks on a request that Node's HTTP parser lets through but a gateway must refuse (see
 * docs/security.md): a repeated Host, an absolute-form target naming another authority,
 * Transfer-Encoding on HTTP/1.0, a %00 or malformed % escape in the path, an over-long target,
 * too many header fields. Pure: it reads what IncomingMessage exposes and decides.
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { ErrorCode } from '../errors.js'
import { normalizeHost } from './host.js'

/** What the checks read from an IncomingMessage (HTTP/1.x or the HTTP/2 compatibility layer). */
export interface RequestFacts {
  httpVersionMajor: number
  httpVersionMinor: number
  url?: string | undefined
  headers: IncomingHttpHeaders
  rawHeaders: readonly string[]
}

export interface RequestLimits {
  /** Longest request target, in characters; 0: no limit. */
  maxUriLength: number
  /** Most header fields; 0: no limit. */
  maxHeaders: number
  /**
   * Largest request line plus headers, in bytes, as HTTP/1 writes them. Node's HTTP/1 parser
   * enforces it for HTTP/1 (the data plane's clientErrorHandler answers 431); an HTTP/2 request is
   * measured here, as the same request would be in HTTP/1. 0 or absent: not checked here.
   */
  maxHeaderSize?: number
}

/** The size an HTTP/2 request would have as an HTTP/1.1 request line and header block. */
function http1HeadSize (req: RequestFacts): number {
  let size = (req.url ?? '/').length + 16
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i] as string
    // Pseudo-headers are the request line's method, target and the Host field.
    if (name.startsWith(':') && name !== ':authority') continue
    size += name.length + (req.rawHeaders[i + 1] as string).length + 4
  }
  return size
}

/** Either the error to answer with, or the target in origin form (path and query) to route by. */
export type CheckResult = { code: ErrorCode } | { target: string }

const ABSOLUTE_FORM = /^https?:\/\/([^/?#]*)([^#]*)$/i

/** True when a path holds a `%` not followed by two hex digits, or an encoded NUL. */
export function hasBadEscape (path: string): boolean {
  for (let i = path.indexOf('%'); i !== -1; i = path.indexOf('%', i + 1)) {
    const hex = path.slice(i + 1, i + 3)
    if (!/^[0-9a-fA-F]{2}$/.test(hex) || hex === '00') return true
  }
  return false
}

/** How many times a header name appears in rawHeaders (names at even indexes). */
function countHeader (rawHeaders: readonly string[], lowerName: string): number {
  let n = 0
  for (let i = 0; i < rawHeaders.length; i += 2) if ((rawHeaders[i] as string).toLowerCase() === lowerName) n++
  return n
}

/** Decides whether a request may be routed at all. */
export function checkRequest (req: RequestFacts, limits: RequestLimits): CheckResult {
  const url = req.url ?? '/'
  if (limits.maxUriLength > 0 && url.length > limits.maxUriLength) return { code: 'INGRESSD_ERR_URI_TOO_LONG' }
  if (limits.maxHeaders > 0 && req.rawHeaders.length / 2 > limits.maxHeaders) return { code: 'INGRESSD_ERR_HEADERS_TOO_LARGE' }
  const http1 = req.httpVersionMajor === 1
  const maxHeaderSize = limits.maxHeaderSize ?? 0
  if (!http1 && maxHeaderSize > 0 && http1HeadSize(req) > maxHeaderSize) return { code: 'INGRESSD_ERR_HEADERS_TOO_LARGE' }
  if (http1) {
    // RFC 9112 3.2: a request with more than one Host field, or without one on HTTP/1.1, gets 400.
    const hosts = countHeader(req.rawHeaders, 'host')
    if (hosts > 1 || (hosts === 0 && req.httpVersionMinor >= 1)) return { code: 'INGRESSD_ERR_BAD_HOST' }
    // RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 request means the framing is faulty.
    if (req.httpVersionMinor === 0 && req.headers['transfer-encoding'] !== undefined) return { code: 'INGRESSD_ERR_BAD_FRAMING' }
  }
  let target = url
  if (!url.startsWith('/')) {
    // Absolute form (RFC 9112 3.2.2): the authority must name the same host as Host, which routes.
    const m = ABSOLUTE_FORM.exec(url)
    if (m === null) return { code: 'INGRESSD_ERR_BAD_PATH' }
    const authority = normalizeHost(m[1])
    const hostHeader = req.headers.host ?? req.headers[':authority']
    if (authority === undefined || authority !== normalizeHost(Array.isArray(hostHeader) ? undefined : hostHeader)) return { code: 'INGRESSD_ERR_BAD_HOST' }
    const rest = m[2] as string
    target = rest.startsWith('/') ? rest : `/${rest}`
  }
  const q = target.indexOf('?')
  if (hasBadEscape(q === -1 ? target : target.slice(0, q))) return { code: 'INGRESSD_ERR_BAD_PATH' }
  return { target }
}
