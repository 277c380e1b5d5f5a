/**
 * The request's Host header as the route table keys it: lowercase, no port, no trailing dot.
 */
import { isIPv6 } from 'node:net'

const LABEL = /^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?$/

function validPort (port: string): boolean {
  // RFC 3986 allows an empty port ("host:"); otherwise 1 to 65535 in decimal digits.
  if (port === '') return true
  if (port.length > 5 || !/^\d+$/.test(port)) return false
  const n = Number(port)
  return n >= 1 && n <= 65535
}

/**
 * Lowercases, strips the port (including IPv6 `[::1]:8080` forms) and one trailing dot; returns
 * undefined for a syntactically invalid Host (empty, userinfo '@', '/', spaces, bad or
 * out-of-range port, non-DNS characters). An IPv6 literal comes back in brackets, `[::1]`.
 * Underscores are accepted in labels (common in internal names); wildcards are not.
 */
export function normalizeHost (hostHeader: string | undefined): string | undefined {
  if (typeof hostHeader !== 'string' || hostHeader === '' || hostHeader.length > 260) return undefined
  const value = hostHeader.toLowerCase()
  if (value.startsWith('[')) {
    const close = value.indexOf(']')
    if (close < 0) return undefined
    const address = value.slice(1, close)
    const rest = value.slice(close + 1)
    if (rest !== '' && (!rest.startsWith(':') || !validPort(rest.slice(1)))) return undefined
    return isIPv6(address) ? `[${address}]` : undefined
  }
  let name = value
  const colon = value.indexOf(':')
  if (colon >= 0) {
    if (!validPort(value.slice(colon + 1))) return undefined
    name = value.slice(0, colon)
  }
  if (name.endsWith('.')) name = name.slice(0, -1)
  if (name === '' || name.length > 253) return undefined
  for (const label of name.split('.')) {
    if (label.length > 63 || !LABEL.test(label)) return undefined
  }
  return name
}
