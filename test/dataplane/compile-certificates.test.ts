/**
 * The SNI table without sockets: the lookup order, and the compile from a snapshot (which
 * ingress wins a host, what is reported, that Secrets are checked once per version, and that
 * contexts are built only when a handshake asks for a name, then kept in a bounded cache).
 */
import type { SecureContext } from 'node:tls'
import t from 'tap'
import { generateSelfSigned } from '../../src/resources/tls-material.js'
import type { Ingress } from '../../src/resources/ingress.js'
import type { Secret } from '../../src/resources/secret.js'
import type { IngressReport } from '../../src/dataplane/compile.js'
import { CertificateCompiler, GENERATED_SOURCE, type TlsSnapshot } from '../../src/dataplane/compile-certificates.js'
import { sha1SignedLeaf } from '../helpers/weak-certificate.js'
import { createSniTable, secureContextFor, selectCertificate, TlsContextCache, type ServedCertificate } from '../../src/dataplane/sni-table.js'

function served (source: string): ServedCertificate {
  return { source, version: `${source}@1`, subject: `CN=${source}`, dnsNames: [], notBefore: '', notAfter: '', fingerprintSha256: source, keyType: 'ec', pem: () => ({ cert: '', key: '' }) }
}

t.test('selectCertificate: exact, then a one-label wildcard, then the default', async t => {
  const [exact, wildcard, deeper, fallback] = [served('exact'), served('wildcard'), served('deeper'), served('fallback')]
  const table = createSniTable({
    generation: 1,
    exact: new Map([['foo.com', exact], ['a.foo.com', exact]]),
    wildcards: new Map([['foo.com', wildcard], ['b.foo.com', deeper]]),
    fallback,
    fallbackContext: {} as SecureContext,
    fallbackPem: { cert: '', key: '' },
    certificateEpoch: 1,
    contexts: new TlsContextCache()
  })
  const cases: [string | undefined, ServedCertificate, string][] = [
    ['foo.com', exact, 'exact'],
    ['a.foo.com', exact, 'an exact name beats a wildcard'],
    ['x.foo.com', wildcard, 'wildcard'],
    ['X.FOO.COM', wildcard, 'case-insensitive'],
    ['x.foo.com.', wildcard, 'a trailing dot is ignored'],
    ['x.b.foo.com', deeper, 'the wildcard of the immediate parent'],
    ['x.y.foo.com', fallback, 'a wildcard covers one label only'],
    ['bar.com', fallback, 'unknown name'],
    ['com', fallback, 'a bare label'],
    ['', fallback, 'empty SNI'],
    [undefined, fallback, 'no SNI']
  ]
  for (const [name, expected, why] of cases) t.equal(selectCertificate(table, name), expected, why)
  t.ok(Object.isFrozen(table))
})

const NOW = Date.parse('2030-01-01T00:00:00Z')

function ingress (name: string, tls: { hosts?: string[], secretName?: string }[], created = '2029-01-01T00:00:00Z', namespace = 'default'): Ingress {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name, namespace, uid: name, resourceVersion: '1', generation: 1, creationTimestamp: created },
    spec: { tls, rules: [] }
  } as unknown as Ingress
}

function secret (name: string, cert: string, resourceVersion = '1', namespace = 'default'): Secret {
  return { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace, uid: name, resourceVersion, generation: 1, creationTimestamp: '2029-01-01T00:00:00Z' }, type: 'kubernetes.io/tls', data: { 'tls.crt': Buffer.from(cert).toString('base64') } } as unknown as Secret
}

function reports (ingresses: Ingress[], notServed: string[] = []): IngressReport[] {
  return ingresses.map(i => ({
    namespace: i.metadata.namespace ?? 'default',
    name: i.metadata.name,
    served: !notServed.includes(i.metadata.name),
    ...(notServed.includes(i.metadata.name) ? { reason: 'IngressClassNotServed' } : {}),
    conflicts: [],
    annotationProblems: [],
    ignoredAnnotations: [],
    noEffectAnnotations: [],
    accessDenials: [],
    backendProblems: [],
    pathProblems: []
  }))
}

t.test('compile: which ingress wins a host, and what each is told', async t => {
  const generated = await generateSelfSigned({ commonName: 'generated', keyType: 'ec', notBefore: new Date(NOW - 86_400_000) })
  const a = await generateSelfSigned({ commonName: 'a', dnsNames: ['shared.example.com', 'a.example.com'], keyType: 'ec', notBefore: new Date(NOW - 86_400_000), days: 30 })
  const b = await generateSelfSigned({ commonName: 'b', dnsNames: ['shared.example.com'], keyType: 'ec', notBefore: new Date(NOW - 86_400_000), days: 30 })
  const warnings: unknown[] = []
  const logger = { warn: (...args: unknown[]) => warnings.push(args) } as any
  const compiler = new CertificateCompiler({ generated, defaultSecret: 'default/missing', logger, now: () => new Date(NOW) })
  const ingresses = [
    ingress('younger', [{ hosts: ['shared.example.com'], secretName: 'b' }], '2029-06-01T00:00:00Z'),
    ingress('older', [{ hosts: ['SHARED.example.com.', 'a.example.com'], secretName: 'a' }], '2029-01-01T00:00:00Z'),
    ingress('other-class', [{ hosts: ['other.example.com'], secretName: 'a' }]),
    ingress('no-secret-name', [{ hosts: ['plain.example.com'] }]),
    ingress('missing', [{ hosts: ['missing.example.com'], secretName: 'nope' }]),
    ingress('broken', [{ hosts: ['broken.example.com'], secretName: 'garbage' }, { hosts: ['nokey.example.com'], secretName: 'nokey' }]),
    ingress('elsewhere', [{ hosts: ['ns.example.com'], secretName: 'a' }], '2029-01-01T00:00:00Z', 'team')
  ]
  const snapshot: TlsSnapshot = {
    ingresses,
    secrets: [secret('a', a.cert), secret('b', b.cert), secret('garbage', '-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n'), secret('nokey', a.cert)],
    privateKeys: new Map([['default/a', a.key], ['default/b', b.key], ['default/garbage', a.key]])
  }
  const result = compiler.compile(snapshot, reports(ingresses, ['other-class']), 7)
  const { table } = result
  t.equal(table.generation, 7)
  t.equal(table.fallback.source, GENERATED_SOURCE, 'a missing INGRESSD_DEFAULT_CERT Secret leaves the generated default')
  t.equal(warnings.length, 1, 'with one warning')
  compiler.compile(snapshot, reports(ingresses, ['other-class']), 8)
  t.equal(warnings.length, 1, 'not repeated on every compile')

  t.equal(selectCertificate(table, 'shared.example.com').source, 'default/a', 'the oldest ingress keeps a host')
  t.equal(selectCertificate(table, 'a.example.com').source, 'default/a')
  t.equal(selectCertificate(table, 'other.example.com').source, GENERATED_SOURCE, 'an ingress of another class takes no part')
  t.equal(selectCertificate(table, 'plain.example.com').source, GENERATED_SOURCE, 'a TLS entry without secretName is served with the default')
  t.equal(selectCertificate(table, 'missing.example.com').source, GENERATED_SOURCE)
  t.equal(selectCertificate(table, 'broken.example.com').source, GENERATED_SOURCE, 'an unusable Secret falls back to the default')
  t.equal(selectCertificate(table, 'ns.example.com').source, GENERATED_SOURCE, 'secretName is looked up in the ingress\'s own namespace')

  const problems = Object.fromEntries([...result.ingressProblems].map(([k, v]) => [k, v.map(p => p.reason)]))
  t.same(problems, {
    'default/younger': ['HostClaimedByOlderIngress'],
    'default/missing': ['SecretNotFound'],
    'default/broken': ['SecretUnusable', 'SecretUnusable'],
    'team/elsewhere': ['SecretNotFound']
  })
  t.match(result.ingressProblems.get('default/younger')?.[0]?.message, /shared\.example\.com: ingress default\/older already serves default\/a \(CN=a\)/)
  t.match(result.ingressProblems.get('default/broken')?.[1]?.message, /no tls\.key/)

  const statuses = Object.fromEntries(result.secretStatuses.map(s => [s.name, s.status]))
  t.match(statuses.a, { conditions: [{ type: 'HostsCovered', status: 'True', message: /shared\.example\.com, a\.example\.com/ }] })
  t.same(statuses.b, { conditions: [] }, 'a Secret that serves nothing says nothing')
  t.same(Object.keys(statuses).sort(), ['a', 'b', 'garbage', 'nokey'], 'every Secret gets a status, so stale ones are cleared')

  // Expiry is judged by the clock.
  const later = new CertificateCompiler({ generated, now: () => new Date(NOW + 60 * 86_400_000) })
  const expired = later.compile(snapshot, reports(ingresses, ['other-class']), 9)
  t.same(expired.ingressProblems.get('default/older')?.map(p => p.reason), ['CertificateExpired'])
})

t.test('compile: each Secret version checked once, no context built until a handshake asks (1,000 certificates)', async t => {
  const generated = await generateSelfSigned({ commonName: 'generated', keyType: 'ec' })
  const pem = await generateSelfSigned({ commonName: 'many', dnsNames: ['*.many.example.com'], keyType: 'ec' })
  const other = await generateSelfSigned({ commonName: 'other', dnsNames: ['*.many.example.com'], keyType: 'ec' })
  const count = 1000
  const secrets: Secret[] = []
  const ingresses: Ingress[] = []
  const keys = new Map<string, string>()
  for (let i = 0; i < count; i++) {
    secrets.push(secret(`s${i}`, pem.cert))
    keys.set(`default/s${i}`, pem.key)
    ingresses.push(ingress(`i${i}`, [{ hosts: [`h${i}.many.example.com`], secretName: `s${i}` }]))
  }
  const compiler = new CertificateCompiler({ generated })
  const built = compiler.contextsBuilt
  t.equal(built, 1, 'only the default certificate\'s context is built up front')
  const first = compiler.compile({ ingresses, secrets, privateKeys: keys }, reports(ingresses), 1)
  t.equal(compiler.contextsBuilt, built, 'the compile builds no context')
  t.equal(first.table.exact.size, count)
  t.equal(first.table.contexts, compiler.contexts, 'the table reaches the compiler\'s context cache')
  t.equal(compiler.contexts.size, 0)

  // Handshakes (what the SNICallback does): the first for a name builds its context, later ones reuse it.
  const h5 = secureContextFor(first.table, 'h5.many.example.com')
  t.equal(compiler.contextsBuilt, built + 1, 'the first handshake for h5 builds one context')
  t.ok(compiler.contexts.has(selectCertificate(first.table, 'h5.many.example.com')))
  t.notOk(compiler.contexts.has(selectCertificate(first.table, 'h6.many.example.com')), 'no other name\'s')
  t.equal(secureContextFor(first.table, 'H5.many.example.com.'), h5, 'a second handshake reuses it')
  t.equal(secureContextFor(first.table, 'unknown.example.com'), first.table.fallbackContext, 'an unknown name gets the default context')
  t.equal(compiler.contextsBuilt, built + 1)

  // An ingress change: nothing is checked or built again.
  const changedIngresses = [...ingresses, ingress('extra', [{ hosts: ['extra.many.example.com'], secretName: 's0' }])]
  const started = performance.now()
  const second = compiler.compile({ ingresses: changedIngresses, secrets, privateKeys: keys }, reports(changedIngresses), 2)
  const ms = performance.now() - started
  t.equal(selectCertificate(second.table, 'h5.many.example.com'), selectCertificate(first.table, 'h5.many.example.com'), 'the same certificate object')
  t.equal(secureContextFor(second.table, 'h5.many.example.com'), h5, 'the context survives the recompile')
  t.equal(compiler.contextsBuilt, built + 1)
  t.ok(ms < 500, `recompiling 1,000 TLS hosts without new certificates took ${Math.round(ms)} ms`)
  t.equal(second.table.certificateEpoch, first.table.certificateEpoch + 1, 'a new host is a certificate change')
  const third = compiler.compile({ ingresses: changedIngresses, secrets, privateKeys: keys }, reports(changedIngresses), 3)
  t.equal(third.table.certificateEpoch, second.table.certificateEpoch, 'nothing changed: the epoch stays, so session tickets stay valid')

  // Secret s5 replaced: its context is dropped and the next handshake builds the new one.
  const replaced = secrets.map((s, i) => i === 5 ? secret('s5', other.cert, '2') : s)
  const replacedKeys = new Map(keys).set('default/s5', other.key)
  const fourth = compiler.compile({ ingresses: changedIngresses, secrets: replaced, privateKeys: replacedKeys }, reports(changedIngresses), 4)
  t.equal(compiler.contexts.size, 0, 'the old version\'s context is dropped by the compile')
  t.equal(selectCertificate(fourth.table, 'h5.many.example.com').subject, 'CN=other')
  t.equal(selectCertificate(fourth.table, 'h5.many.example.com').version, 'default/s5@2')
  t.equal(fourth.table.certificateEpoch, third.table.certificateEpoch + 1)
  t.not(secureContextFor(fourth.table, 'h5.many.example.com'), h5, 'a new context for the new version')
  t.equal(compiler.contextsBuilt, built + 2)

  // Secret s5 deleted: its context goes with it.
  const withoutS5 = replaced.filter((_s, i) => i !== 5)
  compiler.compile({ ingresses: changedIngresses, secrets: withoutS5, privateKeys: replacedKeys }, reports(changedIngresses), 5)
  t.notOk(compiler.contexts.has('default/s5@2'), 'a deleted Secret\'s context is dropped')
})

t.test('the context cache is bounded: the least recently used context is evicted and rebuilt on demand', async t => {
  const generated = await generateSelfSigned({ commonName: 'generated', keyType: 'ec' })
  const pem = await generateSelfSigned({ commonName: 'many', dnsNames: ['*.lru.example.com'], keyType: 'ec' })
  const secrets: Secret[] = []
  const ingresses: Ingress[] = []
  const keys = new Map<string, string>()
  for (let i = 0; i < 10; i++) {
    secrets.push(secret(`s${i}`, pem.cert))
    keys.set(`default/s${i}`, pem.key)
    ingresses.push(ingress(`i${i}`, [{ hosts: [`h${i}.lru.example.com`], secretName: `s${i}` }]))
  }
  const compiler = new CertificateCompiler({ generated, contextCacheSize: 3 })
  const { table } = compiler.compile({ ingresses, secrets, privateKeys: keys }, reports(ingresses), 1)
  const cache = compiler.contexts
  t.equal(cache.capacity, 3)
  const h0 = secureContextFor(table, 'h0.lru.example.com')
  secureContextFor(table, 'h1.lru.example.com')
  secureContextFor(table, 'h2.lru.example.com')
  t.equal(secureContextFor(table, 'h0.lru.example.com'), h0, 'h0 is used again: now the most recent')
  secureContextFor(table, 'h3.lru.example.com')
  t.equal(cache.size, 3, 'never more than the cap')
  t.equal(cache.evicted, 1)
  t.ok(cache.has('default/s0@1'), 'the recently used h0 stays')
  t.notOk(cache.has('default/s1@1'), 'the least recently used (h1) went')
  t.ok(cache.has('default/s2@1') && cache.has('default/s3@1'))
  for (let i = 4; i < 10; i++) secureContextFor(table, `h${i}.lru.example.com`)
  t.equal(cache.size, 3)
  t.equal(cache.built, 10)
  t.equal(cache.evicted, 7)
  const again = secureContextFor(table, 'h1.lru.example.com')
  t.ok(again !== undefined && again !== table.fallbackContext, 'an evicted certificate is served again, with a rebuilt context')
  t.equal(cache.built, 11)
  t.throws(() => new TlsContextCache({ capacity: 0 }), RangeError)
})

t.test('a Secret OpenSSL will not load: the handshake gets the default context, one warning without key material, then SecretUnusable', async t => {
  const generated = await generateSelfSigned({ commonName: 'generated', keyType: 'ec' })
  const good = await generateSelfSigned({ commonName: 'good', dnsNames: ['good.example.com'], keyType: 'ec' })
  const weak = await sha1SignedLeaf('weak.example.com')
  const warnings: unknown[][] = []
  const logger = { warn: (...args: unknown[]) => warnings.push(args) } as any
  const compiler = new CertificateCompiler({ generated, logger })
  const ingresses = [ingress('weak', [{ hosts: ['weak.example.com'], secretName: 'weak' }]), ingress('good', [{ hosts: ['good.example.com'], secretName: 'good' }])]
  const snapshot: TlsSnapshot = { ingresses, secrets: [secret('weak', weak.cert), secret('good', good.cert)], privateKeys: new Map([['default/weak', weak.key], ['default/good', good.key]]) }
  const first = compiler.compile(snapshot, reports(ingresses), 1)
  t.equal(first.ingressProblems.size, 0, 'the material checks out, so the compile reports nothing yet')
  t.equal(selectCertificate(first.table, 'weak.example.com').source, 'default/weak')

  t.equal(secureContextFor(first.table, 'weak.example.com'), first.table.fallbackContext, 'the handshake is answered with the default certificate')
  t.equal(secureContextFor(first.table, 'weak.example.com'), first.table.fallbackContext, 'and so is the next, without another attempt')
  t.equal(compiler.contexts.failed, 1)
  t.equal(warnings.length, 1, 'one warning')
  t.match(JSON.stringify(warnings[0]), /default\/weak.*too weak/)
  t.notMatch(JSON.stringify(warnings), /PRIVATE KEY/, 'the warning carries no key material')
  const goodContext = secureContextFor(first.table, 'good.example.com')
  t.not(goodContext, first.table.fallbackContext, 'another name still gets its own certificate')

  const second = compiler.compile(snapshot, reports(ingresses), 2)
  t.same(second.ingressProblems.get('default/weak')?.map(p => p.reason), ['SecretUnusable'], 'the next compile reports it')
  t.match(second.ingressProblems.get('default/weak')?.[0]?.message, /OpenSSL refused the certificate or key/)
  t.equal(selectCertificate(second.table, 'weak.example.com'), second.table.fallback, 'and maps its host to the default certificate')
  t.equal(secureContextFor(second.table, 'good.example.com'), goodContext)
  const third = compiler.compile(snapshot, reports(ingresses), 3)
  t.same(third.ingressProblems.get('default/weak')?.map(p => p.reason), ['SecretUnusable'], 'for as long as the Secret version stands')
})
