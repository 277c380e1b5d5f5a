/**
 * IP addresses and ranges for the policies that key on a client: parsed once into node's
 * BlockList (a constant-cost check), and the client address itself, taken from the peer or,
 * only when the peer is a trusted proxy, from X-Forwarded-For / X-Real-IP.
 */
import { BlockList, isIP } from 'node:net'
import type { IncomingHttpHeaders } from 'node:http'

/** A parsed list of addresses and CIDRs, and the entries as written (for messages and tests). */
export interface AddressRanges {
  readonly list: BlockList
  readonly entries: readonly string[]
}

/** Why one entry is not an address or CIDR, or undefined when it is one. */
export function rangeProblem (entry: string): string | undefined {
  const slash = entry.indexOf('/')
  const ip = slash === -1 ? entry : entry.slice(0, slash)
  const family = isIP(ip)
  if (family === 0) return `"${entry}" is not an IPv4 or IPv6 address or CIDR range`
  if (slash === -1) return undefined
  const bits = entry.slice(slash + 1)
  const max = family === 6 ? 128 : 32
  if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) return `"${entry}" has a prefix length outside 0-${max}`
  return undefined
}

/** Splits an nginx comma list ("10.0.0.0/8, 192.168.1.1"), trimming spaces and dropping empty items. */
export function splitList (value: string): string[] {
  return value.split(',').map(s => s.trim()).filter(s => s !== '')
}

/** Parses entries already checked with rangeProblem into a BlockList. An IPv4 entry also covers its IPv4-mapped IPv6 form (through unmapAddress on the checked side). */
export function parseRanges (entries: readonly string[]): AddressRanges {
  const list = new BlockList()
  for (const entry of entries) {
    const slash = entry.indexOf('/')
    const ip = slash === -1 ? entry : entry.slice(0, slash)
    const family = isIP(ip) === 6 ? 'ipv6' : 'ipv4'
    if (slash === -1) list.addAddress(ip, family)
    else list.addSubnet(ip, Number(entry.slice(slash + 1)), family)
  }
  return Object.freeze({ list, entries: Object.freeze([...entries]) })
}

/** An IPv4-mapped IPv6 address (`::ffff:10.1.2.3`) as the IPv4 address it carries; anything else unchanged. */
export function unmapAddress (address: string): string {
  return address.length > 7 && address.charCodeAt(0) === 58 && address.toLowerCase().startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address
}

/** True when `address` (already unmapped) is in `ranges`; an address that is not an IP is in no range. */
export function inRanges (ranges: AddressRanges, address: string): boolean {
  const family = isIP(address)
  if (family === 0) return false
  return ranges.list.check(address, family === 4 ? 'ipv4' : 'ipv6')
}

function single (value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(',') : value
}

/**
 * The client's address for access control, rate limits and logs. The peer's, unless the peer is a
 * trusted proxy: then the right-most X-Forwarded-For entry that is not itself a trusted proxy (as
 * nginx's realip module with real_ip_recursive on), or X-Real-IP when X-Forwarded-For is absent.
 * A header entry that is not an IP address stops the walk at the last good one, so a forged token
 * can never become the client. IPv4-mapped IPv6 addresses are unwrapped.
 */
export function clientAddress (peer: string, headers: IncomingHttpHeaders, peerTrusted: boolean, trusted: AddressRanges | undefined): string {
  const direct = unmapAddress(peer)
  if (!peerTrusted || trusted === undefined) return direct
  const xff = single(headers['x-forwarded-for'])
  if (xff !== undefined) {
    const hops = xff.split(',')
    let client = direct
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = unmapAddress((hops[i] as string).trim())
      if (isIP(hop) === 0) break
      client = hop
      if (!inRanges(trusted, hop)) break
    }
    return client
  }
  const realIp = single(headers['x-real-ip'])?.trim()
  if (realIp !== undefined && isIP(unmapAddress(realIp)) !== 0) return unmapAddress(realIp)
  return direct
}
