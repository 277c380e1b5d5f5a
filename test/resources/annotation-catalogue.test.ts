/**
 * The annotation catalogue, docs/annotations.md's "Every annotation" table and the parser agree:
 * every key ingress-nginx knows has one state, the docs say the same, and the parser treats each
 * key as its state says (an access-control key is never silently ignored).
 */
import { readFileSync } from 'node:fs'
import t from 'tap'
import { ANNOTATION_CATALOGUE, annotationState } from '../../src/resources/annotation-catalogue.js'
import { parseIngressAnnotations } from '../../src/resources/annotations.js'

const P = 'nginx.ingress.kubernetes.io/'
const doc = readFileSync(new URL('../../docs/annotations.md', import.meta.url), 'utf8')

function documentedStates (): Map<string, string> {
  const section = doc.slice(doc.indexOf('## Every annotation'))
  const rows = new Map<string, string>()
  for (const line of section.split('\n')) {
    const m = /^\| `([a-z0-9-]+)` \| ([a-z-]+) \|/.exec(line)
    if (m !== null) rows.set(m[1] as string, m[2] as string)
  }
  return rows
}

t.test('docs/annotations.md lists every key of the catalogue with its state, and nothing else', async t => {
  const documented = documentedStates()
  t.ok(documented.size > 100, 'the table is there')
  for (const [key, state] of ANNOTATION_CATALOGUE) t.equal(documented.get(key), state, `${key}: ${state}`)
  for (const key of documented.keys()) t.ok(ANNOTATION_CATALOGUE.has(key), `${key} in the docs is in the catalogue`)
})

/** A value that makes each denying key deny (with what it needs beside it). */
const DENYING_SAMPLES: Record<string, Record<string, string>> = {
  'enable-modsecurity': { 'enable-modsecurity': 'true' },
  'enable-owasp-core-rules': { 'enable-owasp-core-rules': 'true' },
  'modsecurity-transaction-id': { 'modsecurity-transaction-id': '$request_id' },
  'auth-proxy-set-headers': { 'auth-url': 'http://auth.example.com/check', 'auth-proxy-set-headers': 'default/auth-headers' },
  'global-rate-limit': { 'global-rate-limit': '100' },
  'global-rate-limit-window': { 'global-rate-limit-window': '1m' },
  'global-rate-limit-key': { 'global-rate-limit-key': '$remote_addr' },
  'global-rate-limit-ignored-cidrs': { 'global-rate-limit-ignored-cidrs': '10.0.0.0/8' }
}

function parse (values: Record<string, string>): ReturnType<typeof parseIngressAnnotations> {
  return parseIngressAnnotations(Object.fromEntries(Object.entries(values).map(([k, v]) => [P + k, v])), { namespace: 'default', name: 'x' })
}

t.test('the parser treats every key as its state says', async t => {
  for (const [key, state] of ANNOTATION_CATALOGUE) {
    switch (state) {
      case 'refused': {
        const out = parse({ [key]: 'anything' })
        t.ok(out.problems.some(p => p.key === P + key), `${key}: refused on write`)
        break
      }
      case 'ignored': {
        const out = parse({ [key]: 'anything' })
        t.same(out.ignored, [P + key], `${key}: reported as ignored`)
        t.same(out.problems, [], `${key}: not refused`)
        t.equal(out.settings.access, undefined, `${key}: no access spec`)
        break
      }
      case 'no-effect': {
        const out = parse({ [key]: key === 'load-balance' ? 'ewma' : key.startsWith('auth-keepalive') && key !== 'auth-keepalive-share-vars' ? '10' : 'true' })
        t.same(out.noEffect, [P + key], `${key}: reported as accepted with no effect`)
        t.same(out.ignored, [], `${key}: not ignored`)
        break
      }
      case 'denying': {
        const sample = DENYING_SAMPLES[key]
        t.ok(sample, `${key}: has a sample`)
        const out = parse(sample ?? {})
        t.same(out.problems, [], `${key}: accepted on write`)
        t.ok(out.denials.some(d => d.key === P + key), `${key}: denies`)
        t.ok(out.settings.access?.denials.some(d => d.key === P + key), `${key}: the route's spec carries the denial`)
        break
      }
      case 'implemented': {
        const out = parse({ [key]: 'anything' })
        t.notOk(out.ignored.includes(P + key), `${key}: never reported as ignored`)
        t.notOk(out.noEffect.includes(P + key), `${key}: never reported as without effect`)
        break
      }
    }
  }
})

t.test('a key ingress-nginx does not know is ignored; any *-snippet is refused', async t => {
  t.equal(annotationState('made-up-key'), 'ignored')
  t.equal(annotationState('lua-snippet'), 'refused')
  t.same(parse({ 'made-up-key': 'x' }).ignored, [`${P}made-up-key`])
})
