/**
 * The SNI table without sockets: the lookup order, and the compile from a snapshot (which
 * ingress wins a host, what is reported, and that contexts are built once per Secret version).
 */
import type { SecureContext } from 'node:tls'
import t from 'tap'
import { generateSelfSigned } from '../../src/resources/tls-material.js'
import type { Ingress } from '../../src/resources/ingress.js'
import type { Secret } from '../../src/resources/secret.js'
import type { IngressReport } from '../../src/dataplane/compile.js'
import { CertificateCompiler, GENERATED_SOURCE, type TlsSnapshot } from '../../src/dataplane/compile-certificates.js'
import { createSniTable, selectCertificate, type ServedCertificate } from '../../src/dataplane/sni-table.js'

function served (source: string): ServedCertificate {
  return { source, context: {} as SecureContext, subject: `CN=${source}`, dnsNames: [], notBefore: '', notAfter: '', fingerprintSha256: source, keyType: 'ec' }
}

t.test('selectCertificate: exact, then a one-label wildcard, then the default', async t => {
  const [exact, wildcard, deeper, fallback] = [served('exact'), served('wildcard'), served('deeper'), served('fallback')]
  const table = createSniTable({
    generation: 1,
    exact: new Map([['foo.com', exact], ['a.foo.com', exact]]),
    wildcards: new Map([['foo.com', wildcard], ['b.foo.com', deeper]]),
    fallback,
    fallbackPem: { cert: '', key: '' },
    certificateEpoch: 1
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

t.test('compile: one context per Secret version, reused by later compiles (1,000 certificates)', async t => {
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
  const first = compiler.compile({ ingresses, secrets, privateKeys: keys }, reports(ingresses), 1)
  t.equal(compiler.contextsBuilt - built, count, 'the first compile builds one context per certificate')
  t.equal(first.table.exact.size, count)

  // An ingress change: no certificate is built again.
  const changedIngresses = [...ingresses, ingress('extra', [{ hosts: ['extra.many.example.com'], secretName: 's0' }])]
  const started = performance.now()
  const second = compiler.compile({ ingresses: changedIngresses, secrets, privateKeys: keys }, reports(changedIngresses), 2)
  const ms = performance.now() - started
  t.equal(compiler.contextsBuilt - built, count, 'a later compile reuses every context')
  t.equal(selectCertificate(second.table, 'h5.many.example.com'), selectCertificate(first.table, 'h5.many.example.com'), 'the same certificate object')
  t.ok(ms < 500, `recompiling 1,000 TLS hosts without new certificates took ${Math.round(ms)} ms`)
  t.equal(second.table.certificateEpoch, first.table.certificateEpoch + 1, 'a new host is a certificate change')
  const third = compiler.compile({ ingresses: changedIngresses, secrets, privateKeys: keys }, reports(changedIngresses), 3)
  t.equal(third.table.certificateEpoch, second.table.certificateEpoch, 'nothing changed: the epoch stays, so session tickets stay valid')

  // One Secret replaced: one context built.
  const replaced = secrets.map((s, i) => i === 3 ? secret('s3', other.cert, '2') : s)
  const replacedKeys = new Map(keys).set('default/s3', other.key)
  const fourth = compiler.compile({ ingresses: changedIngresses, secrets: replaced, privateKeys: replacedKeys }, reports(changedIngresses), 4)
  t.equal(compiler.contextsBuilt - built, count + 1, 'only the replaced Secret gets a new context')
  t.equal(selectCertificate(fourth.table, 'h3.many.example.com').subject, 'CN=other')
  t.equal(fourth.table.certificateEpoch, third.table.certificateEpoch + 1)
})
