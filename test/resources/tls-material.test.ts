import t from 'tap'
import { createPrivateKey, createPublicKey, generateKeyPairSync, webcrypto, X509Certificate, type KeyObject } from 'node:crypto'
import { BasicConstraintsExtension, type Extension, KeyUsageFlags, KeyUsagesExtension, SubjectAlternativeNameExtension, X509CertificateGenerator } from '@peculiar/x509'
import {
  certificateCovers,
  generateSelfSigned,
  inspectTlsMaterial,
  type CertificateInfo,
  type TlsInspection
} from '../../src/resources/tls-material.js'

/** The assertions the helpers below use; any (sub)test has them. */
type Test = Pick<typeof t, 'fail' | 'same' | 'ok' | 'notOk'>

/** The info of an accepted inspection; fails the test (and throws) otherwise. */
function accepted (t: Test, result: TlsInspection): CertificateInfo {
  if (!result.ok) {
    t.fail(`expected ok, got ${JSON.stringify(result.problems)}`)
    throw new Error('not ok')
  }
  return result.info
}

/**
 * Asserts exactly these [field, reason] problems, in order, and that no message leaks the key:
 * neither the PEM text nor any line of it.
 */
function rejected (t: Test, result: TlsInspection, expected: Array<[string, string]>, keyPem: string): string[] {
  if (result.ok) {
    t.fail(`expected problems ${JSON.stringify(expected)}, got ok`)
    return []
  }
  t.same(result.problems.map(p => [p.field, p.reason]), expected, 'problems')
  const keyLines = keyPem.split(/\r?\n/).filter(line => line.length >= 16 && !line.startsWith('-----'))
  for (const p of result.problems) {
    t.ok(p.message.includes(p.field), `message names its field: ${p.message}`)
    t.notOk(keyPem.trim() !== '' && p.message.includes(keyPem.trim()), 'message does not contain the key PEM')
    t.notOk(keyLines.some(line => p.message.includes(line)), 'message does not contain any line of the key')
  }
  return result.problems.map(p => p.message)
}

/** Self-signs an arbitrary key with @peculiar/x509 directly, for key types generateSelfSigned does not make. */
async function certifyKey (privateKey: KeyObject, publicKey: KeyObject, importAlg: Parameters<typeof webcrypto.subtle.importKey>[2], signAlg: { name: string, hash?: string }, commonName: string, extensions: Extension[] = []): Promise<{ cert: string, key: string }> {
  const subtle = webcrypto.subtle
  const keys = {
    privateKey: await subtle.importKey('pkcs8', privateKey.export({ type: 'pkcs8', format: 'der' }), importAlg, false, ['sign']),
    publicKey: await subtle.importKey('spki', publicKey.export({ type: 'spki', format: 'der' }), importAlg, true, ['verify'])
  }
  const cert = await X509CertificateGenerator.createSelfSigned({ name: [{ CN: [commonName] }], keys, signingAlgorithm: signAlg, extensions }, webcrypto)
  return { cert: cert.toString('pem'), key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string }
}

const NOT_BEFORE = new Date('2030-01-02T03:04:05.000Z')
const DAY = 86_400_000

t.test('a valid RSA pair is described', async t => {
  const { cert, key } = await generateSelfSigned({ commonName: 'my-ssl', dnsNames: ['My-SSL.Example.com', '*.example.org'], notBefore: NOT_BEFORE, days: 30 })
  t.match(key, /^-----BEGIN PRIVATE KEY-----\n/, 'key is PKCS#8 PEM')
  t.match(cert, /^-----BEGIN CERTIFICATE-----\n[\s\S]+-----END CERTIFICATE-----\n$/, 'cert is PEM')
  const info = accepted(t, inspectTlsMaterial(cert, key, new Date(NOT_BEFORE.getTime() + DAY)))
  const x509 = new X509Certificate(cert)
  t.same(info, {
    subject: 'CN=my-ssl',
    issuer: 'CN=my-ssl',
    dnsNames: ['my-ssl.example.com', '*.example.org'],
    notBefore: '2030-01-02T03:04:05.000Z',
    notAfter: '2030-02-01T03:04:05.000Z',
    serialNumber: x509.serialNumber,
    fingerprintSha256: x509.fingerprint256,
    keyType: 'rsa',
    keyBits: 2048,
    chainLength: 1,
    selfSigned: true,
    expired: false,
    keyBytes: Buffer.byteLength(key),
    certBytes: Buffer.byteLength(cert)
  })
  t.match(info.fingerprintSha256, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/)
  t.ok(info.keyBytes > 1600 && info.keyBytes < 1800, `RSA 2048 PKCS#8 PEM is about 1704 bytes (${info.keyBytes})`)
  t.equal(x509.ca, false, 'a server certificate is not a CA')
})

t.test('a valid EC pair is described', async t => {
  const { cert, key } = await generateSelfSigned({ commonName: 'ec.example.com', dnsNames: ['ec.example.com'], keyType: 'ec', notBefore: NOT_BEFORE, notAfter: new Date('2031-01-01T00:00:00Z') })
  t.match(key, /^-----BEGIN PRIVATE KEY-----\n/, 'key is PKCS#8 PEM')
  const info = accepted(t, inspectTlsMaterial(cert, key, NOT_BEFORE))
  t.equal(info.subject, 'CN=ec.example.com')
  t.same(info.dnsNames, ['ec.example.com'])
  t.equal(info.notBefore, '2030-01-02T03:04:05.000Z')
  t.equal(info.notAfter, '2031-01-01T00:00:00.000Z')
  t.equal(info.keyType, 'ec')
  t.equal(info.keyBits, 256)
  t.equal(info.chainLength, 1)
  t.equal(info.selfSigned, true)
  t.equal(info.keyBytes, Buffer.byteLength(key))
})

t.test('PKCS#1, SEC1 (also after EC PARAMETERS) and CRLF keys are accepted', async t => {
  const rsa = await generateSelfSigned({ commonName: 'rsa.example.com' })
  const pkcs1 = createPrivateKey(rsa.key).export({ type: 'pkcs1', format: 'pem' }) as string
  t.match(pkcs1, /^-----BEGIN RSA PRIVATE KEY-----/)
  t.equal(accepted(t, inspectTlsMaterial(rsa.cert, pkcs1)).keyBytes, Buffer.byteLength(pkcs1))

  const ec = await generateSelfSigned({ commonName: 'ec.example.com', keyType: 'ec' })
  const sec1 = createPrivateKey(ec.key).export({ type: 'sec1', format: 'pem' }) as string
  t.match(sec1, /^-----BEGIN EC PRIVATE KEY-----/)
  t.equal(accepted(t, inspectTlsMaterial(ec.cert, sec1)).keyType, 'ec')
  // What `openssl ecparam -name prime256v1 -genkey` writes.
  const withParams = '-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n' + sec1
  t.equal(accepted(t, inspectTlsMaterial(ec.cert, withParams)).keyType, 'ec')

  const crlf = (s: string): string => s.replace(/\n/g, '\r\n')
  t.equal(accepted(t, inspectTlsMaterial(crlf(rsa.cert), crlf(rsa.key))).chainLength, 1)
})

t.test('EC P-384 and Ed25519 keys are accepted', async t => {
  const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' })
  const ec = await certifyKey(p384.privateKey, p384.publicKey, { name: 'ECDSA', namedCurve: 'P-384' }, { name: 'ECDSA', hash: 'SHA-384' }, 'p384.example.com')
  const ecInfo = accepted(t, inspectTlsMaterial(ec.cert, ec.key))
  t.equal(ecInfo.keyType, 'ec')
  t.equal(ecInfo.keyBits, 384)
  t.same(ecInfo.dnsNames, ['p384.example.com'], 'CN fallback')

  const ed = generateKeyPairSync('ed25519')
  const edPair = await certifyKey(ed.privateKey, ed.publicKey, { name: 'Ed25519' }, { name: 'Ed25519' }, 'ed.example.com')
  const edInfo = accepted(t, inspectTlsMaterial(edPair.cert, edPair.key))
  t.equal(edInfo.keyType, 'ed25519')
  t.notOk('keyBits' in edInfo, 'no keyBits for Ed25519')
})

t.test('chains', async t => {
  const root = await generateSelfSigned({ commonName: 'Test Root CA', isCA: true })
  const intermediate = await generateSelfSigned({ commonName: 'Test Intermediate CA', isCA: true, keyType: 'ec', issuer: root })
  const leaf = await generateSelfSigned({ commonName: 'leaf.example.com', dnsNames: ['leaf.example.com'], issuer: root })
  const deepLeaf = await generateSelfSigned({ commonName: 'deep.example.com', dnsNames: ['deep.example.com'], keyType: 'ec', issuer: intermediate })
  const unrelated = await generateSelfSigned({ commonName: 'Other CA', isCA: true, keyType: 'ec' })

  t.test('leaf + CA is ok', async t => {
    const info = accepted(t, inspectTlsMaterial(leaf.cert + root.cert, leaf.key))
    t.equal(info.chainLength, 2)
    t.equal(info.selfSigned, false)
    t.equal(info.subject, 'CN=leaf.example.com')
    t.equal(info.issuer, 'CN=Test Root CA')
    t.same(info.dnsNames, ['leaf.example.com'])
    t.equal(info.keyType, 'rsa')
    t.equal(info.certBytes, Buffer.byteLength(leaf.cert + root.cert))
  })

  t.test('the leaf alone is ok', async t => {
    const info = accepted(t, inspectTlsMaterial(leaf.cert, leaf.key))
    t.equal(info.chainLength, 1)
    t.equal(info.selfSigned, false)
  })

  t.test('leaf + intermediate + root, with an EC CA signing, is ok', async t => {
    const info = accepted(t, inspectTlsMaterial(deepLeaf.cert + intermediate.cert + root.cert, deepLeaf.key))
    t.equal(info.chainLength, 3)
    t.equal(info.issuer, 'CN=Test Intermediate CA')
    t.equal(info.keyBits, 256)
  })

  t.test('a CA first is a key mismatch and a broken chain', async t => {
    rejected(t, inspectTlsMaterial(root.cert + leaf.cert, leaf.key), [['tls.key', 'KeyMismatch'], ['tls.crt', 'BrokenChain']], leaf.key)
  })

  t.test('intermediates out of order', async t => {
    const messages = rejected(t, inspectTlsMaterial(deepLeaf.cert + root.cert + intermediate.cert, deepLeaf.key), [['tls.crt', 'BrokenChain'], ['tls.crt', 'BrokenChain']], deepLeaf.key)
    t.match(messages[0], /^certificate 1 in tls\.crt did not issue certificate 0/)
    t.match(messages[1], /^certificate 2 in tls\.crt did not issue certificate 1/)
  })

  t.test('an unrelated second certificate', async t => {
    const messages = rejected(t, inspectTlsMaterial(leaf.cert + unrelated.cert, leaf.key), [['tls.crt', 'BrokenChain']], leaf.key)
    t.match(messages[0], /^certificate 1 in tls\.crt did not issue certificate 0/)
  })

  t.test('a certificate whose issuer name matches but signature does not', async t => {
    // Same subject as the root, different key: the names line up, the signature does not verify.
    const impostor = await generateSelfSigned({ commonName: 'Test Root CA', isCA: true })
    rejected(t, inspectTlsMaterial(leaf.cert + impostor.cert, leaf.key), [['tls.crt', 'BrokenChain']], leaf.key)
  })

  t.test('an Ed25519 CA can issue', async t => {
    const ed = generateKeyPairSync('ed25519')
    const caExtensions = [new BasicConstraintsExtension(true, undefined, true), new KeyUsagesExtension(KeyUsageFlags.keyCertSign, true)]
    const edCa = await certifyKey(ed.privateKey, ed.publicKey, { name: 'Ed25519' }, { name: 'Ed25519' }, 'Ed25519 CA', caExtensions)
    const edLeaf = await generateSelfSigned({ commonName: 'ed-leaf.example.com', keyType: 'ec', issuer: edCa })
    t.equal(accepted(t, inspectTlsMaterial(edLeaf.cert + edCa.cert, edLeaf.key)).chainLength, 2)
  })

  t.test('generateSelfSigned refuses a non-CA issuer and a key that is not the issuer\'s', async t => {
    await t.rejects(generateSelfSigned({ commonName: 'x', issuer: leaf }), /not a CA/)
    await t.rejects(generateSelfSigned({ commonName: 'x', issuer: { cert: root.cert, key: unrelated.key } }), /does not match/)
  })
})

t.test('a key of another certificate is a KeyMismatch', async t => {
  const a = await generateSelfSigned({ commonName: 'a.example.com' })
  const b = await generateSelfSigned({ commonName: 'b.example.com' })
  const c = await generateSelfSigned({ commonName: 'c.example.com', keyType: 'ec' })
  for (const key of [b.key, c.key]) {
    const messages = rejected(t, inspectTlsMaterial(a.cert, key), [['tls.key', 'KeyMismatch']], key)
    t.match(messages[0], /tls\.key does not match the certificate in tls\.crt/)
  }
})

t.test('unparseable tls.crt', async t => {
  const { cert, key } = await generateSelfSigned({ commonName: 'x.example.com', keyType: 'ec' })
  const lines = cert.split('\n')
  const cases: Record<string, string> = {
    empty: '',
    blank: ' \n\t\n',
    garbage: 'this is not a certificate',
    'base64 without PEM armour': lines.slice(1, -2).join('\n'),
    'truncated (no END line)': cert.slice(0, Math.floor(cert.length / 2)),
    'truncated body': [lines[0], lines[1], lines[2], lines.at(-2)].join('\n') + '\n',
    'corrupted body': cert.replace(/^(-----BEGIN CERTIFICATE-----\n)(.{10})/, '$1AAAAAAAAAA'),
    'a private key': key,
    'a public key': createPublicKey(key).export({ type: 'spki', format: 'pem' }) as string
  }
  for (const [name, crt] of Object.entries(cases)) {
    t.test(name, async t => {
      rejected(t, inspectTlsMaterial(crt, key), [['tls.crt', 'CertificateUnparseable']], key)
    })
  }
  t.test('a valid certificate followed by a broken one', async t => {
    const messages = rejected(t, inspectTlsMaterial(cert + cases['truncated body'], key), [['tls.crt', 'CertificateUnparseable']], key)
    t.match(messages[0], /certificate 1/)
  })
})

t.test('unparseable tls.key', async t => {
  const { cert, key } = await generateSelfSigned({ commonName: 'x.example.com' })
  const rsa = createPrivateKey(key)
  const lines = key.split('\n')
  const cases: Record<string, string> = {
    empty: '',
    garbage: 'this is not a key',
    'base64 without PEM armour': lines.slice(1, -2).join('\n'),
    'truncated (no END line)': key.slice(0, Math.floor(key.length / 2)),
    'truncated body': [lines[0], lines[1], lines[2], lines.at(-2)].join('\n') + '\n',
    'a certificate': cert,
    'a public key': createPublicKey(rsa).export({ type: 'spki', format: 'pem' }) as string,
    'encrypted PKCS#8': rsa.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'secret' }) as string,
    'encrypted PKCS#1': rsa.export({ type: 'pkcs1', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'secret' }) as string
  }
  for (const [name, bad] of Object.entries(cases)) {
    t.test(name, async t => {
      const messages = rejected(t, inspectTlsMaterial(cert, bad), [['tls.key', 'KeyUnparseable']], bad)
      if (name.startsWith('encrypted')) t.match(messages[0], /passphrase/)
    })
  }
  t.test('both fields broken', async t => {
    rejected(t, inspectTlsMaterial('nope', 'nope'), [['tls.crt', 'CertificateUnparseable'], ['tls.key', 'KeyUnparseable']], 'nope')
  })
})

t.test('unsupported key types', async t => {
  t.test('RSA 1024, self-signed so that the key matches', async t => {
    const pair = generateKeyPairSync('rsa', { modulusLength: 1024 })
    const { cert, key } = await certifyKey(pair.privateKey, pair.publicKey, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, 'weak.example.com')
    t.equal(new X509Certificate(cert).checkPrivateKey(createPrivateKey(key)), true, 'the pair matches')
    const messages = rejected(t, inspectTlsMaterial(cert, key), [['tls.key', 'UnsupportedKeyType']], key)
    t.match(messages[0], /RSA key of 1024 bits/)
  })

  // WebCrypto cannot sign with these, so they go with an unrelated certificate: the key type is
  // checked first and a key of an unsupported type is not also reported as a mismatch.
  const { cert } = await generateSelfSigned({ commonName: 'x.example.com', keyType: 'ec' })
  const keys: Record<string, KeyObject> = {
    'EC secp256k1': generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey,
    'EC P-521': generateKeyPairSync('ec', { namedCurve: 'secp521r1' }).privateKey,
    DSA: generateKeyPairSync('dsa', { modulusLength: 1024, divisorLength: 160 }).privateKey,
    Ed448: generateKeyPairSync('ed448').privateKey
  }
  for (const [name, keyObject] of Object.entries(keys)) {
    t.test(name, async t => {
      const key = keyObject.export({ type: 'pkcs8', format: 'pem' }) as string
      const messages = rejected(t, inspectTlsMaterial(cert, key), [['tls.key', 'UnsupportedKeyType']], key)
      t.match(messages[0], /^tls\.key is an? (EC key on secp256k1|EC key on secp521r1|DSA key|Ed448 key); use an RSA key of at least 2048 bits/)
    })
  }
})

t.test('an expired certificate is accepted and flagged', async t => {
  const { cert, key } = await generateSelfSigned({ commonName: 'old.example.com', notBefore: new Date('2020-01-01T00:00:00Z'), notAfter: new Date('2020-02-01T00:00:00Z') })
  const info = accepted(t, inspectTlsMaterial(cert, key))
  t.equal(info.expired, true)
  t.equal(info.notAfter, '2020-02-01T00:00:00.000Z')
  t.equal(accepted(t, inspectTlsMaterial(cert, key, new Date('2020-01-15T00:00:00Z'))).expired, false, 'relative to now')
})

t.test('generateSelfSigned validity', async t => {
  const { cert } = await generateSelfSigned({ commonName: 'x.example.com', keyType: 'ec', notBefore: new Date('2030-01-02T03:04:05.678Z') })
  const x509 = new X509Certificate(cert)
  t.equal(new Date(x509.validFrom).toISOString(), '2030-01-02T03:04:05.000Z', 'whole seconds')
  t.equal(new Date(x509.validTo).getTime() - new Date(x509.validFrom).getTime(), 365 * DAY, 'default 365 days')
  const before = Date.now() - 1000
  const now = await generateSelfSigned({ commonName: 'now.example.com', keyType: 'ec', days: 1 })
  const validFrom = new Date(new X509Certificate(now.cert).validFrom).getTime()
  t.ok(validFrom >= before - 1000 && validFrom <= Date.now(), 'notBefore defaults to now')
  await t.rejects(generateSelfSigned({ commonName: 'x', notBefore: NOT_BEFORE, notAfter: NOT_BEFORE }), RangeError)
})

t.test('dnsNames: SANs win, else a host-like CN', async t => {
  const san = await generateSelfSigned({ commonName: 'cn.example.com', dnsNames: ['san.example.com'], keyType: 'ec' })
  t.same(accepted(t, inspectTlsMaterial(san.cert, san.key)).dnsNames, ['san.example.com'])
  const cn = await generateSelfSigned({ commonName: 'Legacy.Example.com', keyType: 'ec' })
  t.equal(new X509Certificate(cn.cert).subjectAltName, undefined, 'no SAN extension')
  const info = accepted(t, inspectTlsMaterial(cn.cert, cn.key))
  t.same(info.dnsNames, ['legacy.example.com'])
  t.equal(certificateCovers(info, 'LEGACY.example.com'), true)
  const wildcard = await generateSelfSigned({ commonName: '*.Wild.example.com', keyType: 'ec' })
  const wildInfo = accepted(t, inspectTlsMaterial(wildcard.cert, wildcard.key))
  t.same(wildInfo.dnsNames, ['*.wild.example.com'], 'a wildcard CN')
  t.equal(certificateCovers(wildInfo, 'a.wild.example.com'), true)
  const fake = await generateSelfSigned({ commonName: 'Kubernetes Ingress Controller Fake Certificate', keyType: 'ec' })
  t.same(accepted(t, inspectTlsMaterial(fake.cert, fake.key)).dnsNames, [], 'a CN that is not a host name is not one')
})

t.test('dnsNames from SANs of other types and with special characters', async t => {
  const pair = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
  const alg = { name: 'ECDSA', namedCurve: 'P-256' }
  const sign = { name: 'ECDSA', hash: 'SHA-256' }
  const mixed = await certifyKey(pair.privateKey, pair.publicKey, alg, sign, 'cn.example.com', [new SubjectAlternativeNameExtension([
    { type: 'ip', value: '10.0.0.1' },
    { type: 'email', value: 'ops@example.com' },
    { type: 'dns', value: 'One.Example.com' },
    { type: 'url', value: 'https://example.com/a, b' },
    { type: 'dns', value: 'odd,name.example.com' },
    { type: 'dns', value: 'one.example.com.' }
  ])])
  t.match(new X509Certificate(mixed.cert).subjectAltName, /DNS:"odd\\u002cname\.example\.com"/, 'Node quotes (and escapes) a value with a comma')
  t.same(accepted(t, inspectTlsMaterial(mixed.cert, mixed.key)).dnsNames, ['one.example.com', 'odd,name.example.com'], 'DNS entries only, normalised, deduplicated')

  const ipOnly = await certifyKey(pair.privateKey, pair.publicKey, alg, sign, 'cn.example.com', [new SubjectAlternativeNameExtension([{ type: 'ip', value: '10.0.0.1' }])])
  t.same(accepted(t, inspectTlsMaterial(ipOnly.cert, ipOnly.key)).dnsNames, ['cn.example.com'], 'no DNS SAN: CN fallback')
})

t.test('certificateCovers', async t => {
  const info = { dnsNames: ['example.com', 'www.example.com', '*.apps.example.com'] }
  const table: Array<[string, boolean, string]> = [
    ['example.com', true, 'exact'],
    ['www.example.com', true, 'exact, second name'],
    ['WWW.Example.COM', true, 'case-insensitive'],
    ['www.example.com.', true, 'trailing dot'],
    ['foo.example.com', false, 'not listed'],
    ['a.apps.example.com', true, 'wildcard, one label'],
    ['A.Apps.Example.com', true, 'wildcard, case-insensitive'],
    ['a.b.apps.example.com', false, 'wildcard, two labels'],
    ['apps.example.com', false, 'wildcard does not cover the apex'],
    ['.apps.example.com', false, 'empty label'],
    ['xapps.example.com', false, 'suffix without a dot'],
    ['', false, 'empty host']
  ]
  for (const [host, expected, why] of table) {
    t.equal(certificateCovers(info, host), expected, `${JSON.stringify(host)}: ${why}`)
  }
  t.equal(certificateCovers({ dnsNames: ['Mixed.Example.com.'] }, 'mixed.example.com'), true, 'names are normalised too')
  t.equal(certificateCovers({ dnsNames: [] }, 'example.com'), false, 'no names')
})
