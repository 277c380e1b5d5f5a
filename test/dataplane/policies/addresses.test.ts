/**
 * The client address the policies key on, and address ranges: pure functions, table-driven.
 */
import t from 'tap'
import { clientAddress, inRanges, parseRanges, rangeProblem, unmapAddress } from '../../../src/dataplane/policies/addresses.js'

t.test('rangeProblem accepts addresses and CIDRs of both families, and nothing else', async t => {
  for (const ok of ['10.0.0.0/8', '192.168.1.1', '0.0.0.0/0', '::1', '2001:db8::/32', '::/0', '::ffff:10.0.0.0/104']) t.equal(rangeProblem(ok), undefined, ok)
  for (const bad of ['10.0.0.0/33', '10.0.0.x', '2001:db8::/129', '10.0.0.0/', '10.0.0.0/8/8', 'localhost', '', '10.0.0.0/-1', '10.0.0.0/08a']) t.ok(rangeProblem(bad), bad)
})

t.test('inRanges and IPv4-mapped addresses', async t => {
  const r = parseRanges(['10.0.0.0/8', '2001:db8::/32', '192.168.1.1'])
  const cases: Array<[string, boolean]> = [['10.1.2.3', true], ['11.0.0.1', false], ['192.168.1.1', true], ['192.168.1.2', false], ['2001:db8::1', true], ['2001:db9::1', false], ['not-an-ip', false], ['', false]]
  for (const [address, expected] of cases) t.equal(inRanges(r, address), expected, address)
  t.equal(unmapAddress('::ffff:10.1.2.3'), '10.1.2.3')
  t.equal(unmapAddress('::FFFF:10.1.2.3'), '10.1.2.3')
  t.equal(unmapAddress('::ffff:abcd'), '::ffff:abcd', 'not a mapped IPv4 address')
  t.equal(inRanges(r, unmapAddress('::ffff:10.9.9.9')), true)
})

t.test('clientAddress: forwarded headers count only from a trusted peer', async t => {
  const trusted = parseRanges(['127.0.0.0/8', '10.0.0.0/8'])
  const cases: Array<[string, Record<string, string>, boolean, string]> = [
    ['untrusted peer, forged XFF', { 'x-forwarded-for': '1.2.3.4' }, false, '203.0.113.9'],
    ['untrusted peer, forged X-Real-IP', { 'x-real-ip': '1.2.3.4' }, false, '203.0.113.9'],
    ['trusted peer, one hop', { 'x-forwarded-for': '1.2.3.4' }, true, '1.2.3.4'],
    ['trusted peer, trusted hops skipped', { 'x-forwarded-for': '1.2.3.4, 10.0.0.5, 127.0.0.1' }, true, '1.2.3.4'],
    ['trusted peer, a spoofed left-most entry', { 'x-forwarded-for': '6.6.6.6, 1.2.3.4' }, true, '1.2.3.4'],
    ['trusted peer, garbage stops the walk', { 'x-forwarded-for': '1.2.3.4, junk' }, true, '127.0.0.1'],
    ['trusted peer, X-Real-IP', { 'x-real-ip': '1.2.3.4' }, true, '1.2.3.4'],
    ['trusted peer, X-Real-IP not an address', { 'x-real-ip': 'junk' }, true, '127.0.0.1'],
    ['trusted peer, mapped hop', { 'x-forwarded-for': '::ffff:1.2.3.4' }, true, '1.2.3.4'],
    ['trusted peer, all hops trusted', { 'x-forwarded-for': '10.0.0.1' }, true, '10.0.0.1']
  ]
  for (const [name, headers, peerTrusted, expected] of cases) {
    const peer = peerTrusted ? '::ffff:127.0.0.1' : '203.0.113.9'
    t.equal(clientAddress(peer, headers, peerTrusted, trusted), expected, name)
  }
})
