/**
 * The contents of a `kubernetes.io/tls` Secret: checking that `tls.crt` (a PEM certificate chain,
 * leaf first) and `tls.key` (its PEM private key) can be served, describing them the way
 * `kubectl describe` and ingress-nginx do, and generating self-signed certificates for the
 * gateway's default ("fake") certificate and for tests.
 *
 * Pure apart from crypto: nothing here reads files or talks to the network.
 */
import {
  X509Certificate,
  createPrivateKey,
  KeyObject,
  webcrypto
} from 'node:crypto'
// Only types at load time: @peculiar/x509 (and the global Reflect polyfill it installs) is loaded
// by generateSelfSigned on first use, so validating Secrets does not pay for it.
import type { Extension, X509Certificate as PeculiarCertificate } from '@peculiar/x509'

/** The keys of a `kubernetes.io/tls` Secret's data. */
export const CERT_KEY = 'tls.crt'
export const PRIVATE_KEY_KEY = 'tls.key'

/** What a valid `tls.crt` + `tls.key` pair holds, as shown by the API and used to pick a certificate per host. */
export interface CertificateInfo {
  /** Subject of the leaf certificate, e.g. `CN=my-ssl` (RDNs joined with ', '). */
  subject: string
  /** Issuer of the leaf certificate, in the same format as `subject`. */
  issuer: string
  /**
   * Lowercase host names the leaf certificate is for: its SAN DNS names, or, when it has none, its
   * subject CN (when that looks like a host name). Browsers ignore the CN these days, but
   * ingress-nginx and Kong still match it, and so does ingressd.
   */
  dnsNames: string[]
  /** Start of validity, ISO 8601. */
  notBefore: string
  /** End of validity, ISO 8601. */
  notAfter: string
  /** Serial number in hex, as Node gives it. */
  serialNumber: string
  /** SHA-256 fingerprint of the leaf certificate, colon-separated hex as Node gives it. */
  fingerprintSha256: string
  /** Type of tls.key (and so of the leaf certificate's key). */
  keyType: 'rsa' | 'ec' | 'ed25519'
  /** RSA modulus length or EC curve size in bits; absent for Ed25519. */
  keyBits?: number
  /** Number of certificates in `tls.crt`. */
  chainLength: number
  /** True when the leaf certificate is issued and signed by itself. */
  selfSigned: boolean
  /** True when the leaf certificate's `notAfter` is before `now`. Expired certificates are still served, as ingress-nginx does. */
  expired: boolean
  /** Byte length of the `tls.key` text as given: what `kubectl describe secret` shows as "tls.key: 1704 bytes". */
  keyBytes: number
  /** Byte length of the `tls.crt` text as given. */
  certBytes: number
}

/** One reason a TLS Secret cannot be served. `reason` is stable and machine-readable; `message` is one sentence for a user. */
export interface TlsMaterialProblem {
  /** The Secret data key at fault. */
  field: 'tls.crt' | 'tls.key'
  /** `CertificateUnparseable`, `KeyUnparseable`, `UnsupportedKeyType`, `KeyMismatch` or `BrokenChain`. */
  reason: string
  message: string
}

/** Result of {@link inspectTlsMaterial}: either a description of the material, or every problem found. */
export type TlsInspection = { ok: true, info: CertificateInfo } | { ok: false, problems: TlsMaterialProblem[] }

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g
const SUPPORTED_KEYS = 'use an RSA key of at least 2048 bits, an EC key on P-256 or P-384, or an Ed25519 key'
const EC_CURVE_BITS: Record<string, number> = { prime256v1: 256, secp384r1: 384 }
const OTHER_KEY_TYPES: Record<string, string> = { dsa: 'a DSA key', dh: 'a DH key', ed448: 'an Ed448 key', x25519: 'an X25519 key', x448: 'an X448 key' }
/** A host name or a leftmost-label wildcard, as far as a CN can be taken for one. */
const HOST_LIKE = /^(\*\.)?[a-z0-9_]([-a-z0-9_]*[a-z0-9_])?(\.[a-z0-9_]([-a-z0-9_]*[a-z0-9_])?)*$/

/** What serving a certificate needs to know of it: a subset of {@link CertificateInfo}. */
export type ServingInfo = Pick<CertificateInfo, 'subject' | 'dnsNames' | 'notBefore' | 'notAfter' | 'fingerprintSha256' | 'keyType'>

/** Result of {@link checkTlsMaterial}. */
export type TlsCheck = { ok: true, info: ServingInfo } | { ok: false, problems: TlsMaterialProblem[] }

/** The parsed material and every problem found in it (shared by inspectTlsMaterial and checkTlsMaterial). */
interface Examined {
  problems: TlsMaterialProblem[]
  certs: X509Certificate[] | undefined
  keyType: CertificateInfo['keyType'] | undefined
  keyBits: number | undefined
}

function examine (certPem: string, keyPem: string): Examined {
  const problems: TlsMaterialProblem[] = []
  const certs = parseCertificates(certPem, problems)
  const key = parsePrivateKey(keyPem, problems)

  let keyType: CertificateInfo['keyType'] | undefined
  let keyBits: number | undefined
  if (key !== undefined) {
    const described = describeKey(key)
    if (typeof described === 'string') {
      problems.push({ field: 'tls.key', reason: 'UnsupportedKeyType', message: `tls.key is ${described}; ${SUPPORTED_KEYS}.` })
    } else {
      keyType = described.keyType
      keyBits = described.keyBits
    }
  }

  const leaf = certs?.[0]
  if (leaf !== undefined && key !== undefined && keyType !== undefined && !keyMatches(leaf, key)) {
    problems.push({ field: 'tls.key', reason: 'KeyMismatch', message: 'tls.key does not match the certificate in tls.crt (the first certificate must be the one the key belongs to).' })
  }

  if (certs !== undefined) {
    for (let i = 0; i + 1 < certs.length; i++) {
      if (!issuedBy(certs[i] as X509Certificate, certs[i + 1] as X509Certificate)) {
        problems.push({
          field: 'tls.crt',
          reason: 'BrokenChain',
          message: `certificate ${i + 1} in tls.crt did not issue certificate ${i}; list the server certificate first, then each issuer in order.`
        })
      }
    }
  }
  return { problems, certs, keyType, keyBits }
}

/** The part of the description serving needs, from a leaf certificate that passed {@link examine}. */
function servingInfo (leaf: X509Certificate, keyType: CertificateInfo['keyType']): ServingInfo {
  return {
    subject: joinName(leaf.subject),
    dnsNames: certificateHostNames(leaf),
    notBefore: parseValidity(leaf.validFrom).toISOString(),
    notAfter: parseValidity(leaf.validTo).toISOString(),
    fingerprintSha256: leaf.fingerprint256,
    keyType
  }
}

/**
 * Validates `tls.crt` + `tls.key` of a `kubernetes.io/tls` Secret and describes the leaf certificate.
 *
 * Problems (all are reported, not just the first): `CertificateUnparseable` (tls.crt),
 * `KeyUnparseable` (tls.key, also for passphrase-protected keys), `UnsupportedKeyType` (tls.key),
 * `KeyMismatch` (tls.key does not belong to the first certificate) and `BrokenChain` (tls.crt: a
 * certificate is not issued by the one after it). An expired certificate is not a problem; it is
 * reported as `expired: true` relative to `now`. No message ever contains key material.
 */
export function inspectTlsMaterial (certPem: string, keyPem: string, now: Date = new Date()): TlsInspection {
  const { problems, certs, keyType, keyBits } = examine(certPem, keyPem)
  const leaf = certs?.[0]
  if (problems.length > 0 || leaf === undefined || certs === undefined || keyType === undefined) {
    return { ok: false, problems }
  }
  const serving = servingInfo(leaf, keyType)
  const info: CertificateInfo = {
    subject: serving.subject,
    issuer: joinName(leaf.issuer),
    dnsNames: serving.dnsNames,
    notBefore: serving.notBefore,
    notAfter: serving.notAfter,
    serialNumber: leaf.serialNumber,
    fingerprintSha256: serving.fingerprintSha256,
    keyType,
    ...(keyBits !== undefined ? { keyBits } : {}),
    chainLength: certs.length,
    selfSigned: isSelfSigned(leaf),
    expired: Date.parse(serving.notAfter) < now.getTime(),
    keyBytes: Buffer.byteLength(keyPem, 'utf8'),
    certBytes: Buffer.byteLength(certPem, 'utf8')
  }
  return { ok: true, info }
}

/**
 * The same checks as {@link inspectTlsMaterial}, with the same problems, but only the description
 * serving needs (names, validity, fingerprint, key type): what the SNI compile keeps per Secret
 * version. It skips what only a read-out shows, such as the self-signature check.
 */
export function checkTlsMaterial (certPem: string, keyPem: string): TlsCheck {
  const { problems, certs, keyType } = examine(certPem, keyPem)
  const leaf = certs?.[0]
  if (problems.length > 0 || leaf === undefined || keyType === undefined) return { ok: false, problems }
  return { ok: true, info: servingInfo(leaf, keyType) }
}

/**
 * True when `host` is covered by one of `info.dnsNames`: an exact (case-insensitive) match, or a
 * `*.x.y` wildcard covering exactly one extra, non-empty leftmost label (`a.x.y`, not `a.b.x.y`
 * nor `x.y`). A trailing dot on either side is ignored.
 */
export function certificateCovers (info: { readonly dnsNames: readonly string[] }, host: string): boolean {
  const h = normalizeHost(host)
  if (h === '') return false
  for (const raw of info.dnsNames) {
    const name = normalizeHost(raw)
    if (name === '') continue
    if (name === h) return true
    if (name.startsWith('*.') && name.length > 2) {
      const suffix = name.slice(1)
      if (h.endsWith(suffix)) {
        const label = h.slice(0, h.length - suffix.length)
        if (label.length > 0 && !label.includes('.')) return true
      }
    }
  }
  return false
}

/** A certificate the gateway generated for itself is replaced at start-up once it is this close to its end. */
export const RENEW_BEFORE_MS = 30 * 86_400_000

/**
 * True when `pem` holds a servable certificate and key, valid for at least RENEW_BEFORE_MS after
 * `now`: whether a certificate the gateway generated and kept in the store (gateway_state) is kept.
 */
export function stillServable (pem: { cert: string, key: string } | undefined, now: Date): pem is { cert: string, key: string } {
  if (pem === undefined || typeof pem.cert !== 'string' || typeof pem.key !== 'string') return false
  const inspection = inspectTlsMaterial(pem.cert, pem.key, now)
  return inspection.ok && Date.parse(inspection.info.notAfter) - now.getTime() > RENEW_BEFORE_MS
}

/** Options for {@link generateSelfSigned}. */
export interface GenerateCertificateOptions {
  /** Subject CN. */
  commonName: string
  /** SAN DNS names. When absent or empty (and so is `ipAddresses`) the certificate has no SAN extension (so only its CN names it). */
  dnsNames?: string[]
  /** SAN IP addresses, IPv4 or IPv6 (`127.0.0.1`, `::1`): what a client connecting by address checks. */
  ipAddresses?: string[]
  /** Validity in days from `notBefore`, when `notAfter` is not given. Default 365. */
  days?: number
  /** Key of the new certificate: RSA 2048 (default, like ingress-nginx's fake certificate) or EC P-256. */
  keyType?: 'rsa' | 'ec'
  /** Default: now. Stored with one-second precision. */
  notBefore?: Date
  /** Default: `notBefore` + `days`. Stored with one-second precision. */
  notAfter?: Date
  /**
   * A CA (PEM certificate and private key) to sign with instead of self-signing. Its certificate
   * must have been generated with `isCA: true` (or otherwise be a CA).
   */
  issuer?: { cert: string, key: string }
  /**
   * Make a CA certificate (basicConstraints CA:TRUE, keyCertSign) that can be passed as `issuer`.
   * Default false: a server certificate (CA:FALSE, serverAuth and clientAuth), because some clients
   * (Firefox) refuse a CA certificate presented as a server certificate.
   */
  isCA?: boolean
}

/**
 * Generates a certificate and its PKCS#8 private key, both PEM: self-signed, or signed by
 * `opts.issuer` (so tests can build a CA -> leaf chain). Used at run time for the gateway's default
 * certificate ("Kubernetes Ingress Controller Fake Certificate" in ingress-nginx) and by tests.
 *
 * Async because Node has no X.509 writer: certificates are built with @peculiar/x509, which signs
 * with WebCrypto, and WebCrypto is promise-based.
 */
export async function generateSelfSigned (opts: GenerateCertificateOptions): Promise<{ cert: string, key: string }> {
  const {
    AuthorityKeyIdentifierExtension,
    BasicConstraintsExtension,
    ExtendedKeyUsage,
    ExtendedKeyUsageExtension,
    KeyUsageFlags,
    KeyUsagesExtension,
    SubjectAlternativeNameExtension,
    SubjectKeyIdentifierExtension,
    X509Certificate: PeculiarX509Certificate,
    X509CertificateGenerator
  } = await import('@peculiar/x509')
  const subtle = webcrypto.subtle
  const notBefore = wholeSeconds(opts.notBefore ?? new Date())
  const days = opts.days ?? 365
  const notAfter = wholeSeconds(opts.notAfter ?? new Date(notBefore.getTime() + days * 86_400_000))
  if (!(notAfter.getTime() > notBefore.getTime())) {
    throw new RangeError('generateSelfSigned: notAfter must be later than notBefore')
  }

  const keyType = opts.keyType ?? 'rsa'
  const keys = keyType === 'ec'
    ? await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])
    : await subtle.generateKey({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, true, ['sign', 'verify'])

  let signingKey = keys.privateKey
  let signingAlgorithm: { name: string, hash?: string } = keyType === 'ec'
    ? { name: 'ECDSA', hash: 'SHA-256' }
    : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }
  let issuerCert: PeculiarCertificate | undefined
  if (opts.issuer !== undefined) {
    const nodeIssuer = new X509Certificate(opts.issuer.cert)
    if (!nodeIssuer.ca) {
      throw new TypeError('generateSelfSigned: the issuer certificate is not a CA; generate it with isCA: true')
    }
    const issuerKey = createPrivateKey(opts.issuer.key)
    if (!nodeIssuer.checkPrivateKey(issuerKey)) {
      throw new TypeError('generateSelfSigned: the issuer key does not match the issuer certificate')
    }
    const imported = await importSigningKey(issuerKey)
    signingKey = imported.key
    signingAlgorithm = imported.algorithm
    issuerCert = new PeculiarX509Certificate(opts.issuer.cert)
  }

  const extensions: Extension[] = []
  if (opts.isCA === true) {
    extensions.push(
      new BasicConstraintsExtension(true, undefined, true),
      new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign | KeyUsageFlags.digitalSignature, true)
    )
  } else {
    const usage = keyType === 'rsa' ? KeyUsageFlags.digitalSignature | KeyUsageFlags.keyEncipherment : KeyUsageFlags.digitalSignature
    extensions.push(
      new BasicConstraintsExtension(false, undefined, true),
      new KeyUsagesExtension(usage, true),
      new ExtendedKeyUsageExtension([ExtendedKeyUsage.serverAuth, ExtendedKeyUsage.clientAuth])
    )
  }
  const altNames = [
    ...(opts.dnsNames ?? []).map(value => ({ type: 'dns' as const, value })),
    ...(opts.ipAddresses ?? []).map(value => ({ type: 'ip' as const, value }))
  ]
  if (altNames.length > 0) extensions.push(new SubjectAlternativeNameExtension(altNames))
  extensions.push(await SubjectKeyIdentifierExtension.create(keys.publicKey, false, webcrypto))
  if (issuerCert !== undefined) {
    const ski = issuerCert.getExtension(SubjectKeyIdentifierExtension)
    extensions.push(ski !== null
      ? new AuthorityKeyIdentifierExtension(ski.keyId)
      : await AuthorityKeyIdentifierExtension.create(issuerCert.publicKey, false, webcrypto))
  }

  const subject = [{ CN: [opts.commonName] }]
  const cert = await X509CertificateGenerator.create({
    subject,
    issuer: issuerCert !== undefined ? issuerCert.subjectName : subject,
    notBefore,
    notAfter,
    publicKey: keys.publicKey,
    signingKey,
    signingAlgorithm,
    extensions
  }, webcrypto)

  const key = KeyObject.from(keys.privateKey).export({ type: 'pkcs8', format: 'pem' }) as string
  return { cert: cert.toString('pem') + '\n', key }
}

/** Parses every CERTIFICATE block of tls.crt; undefined (with a problem recorded) when there is none or one is broken. */
function parseCertificates (certPem: string, problems: TlsMaterialProblem[]): X509Certificate[] | undefined {
  if (certPem.trim() === '') {
    problems.push({ field: 'tls.crt', reason: 'CertificateUnparseable', message: 'tls.crt is empty; it must hold a PEM certificate (-----BEGIN CERTIFICATE-----).' })
    return undefined
  }
  const certs: X509Certificate[] = []
  for (const match of certPem.matchAll(PEM_CERTIFICATE)) {
    try {
      certs.push(new X509Certificate(match[0]))
    } catch {
      problems.push({
        field: 'tls.crt',
        reason: 'CertificateUnparseable',
        message: `tls.crt: certificate ${certs.length} is not a valid PEM-encoded X.509 certificate.`
      })
      return undefined
    }
  }
  if (certs.length === 0) {
    problems.push({ field: 'tls.crt', reason: 'CertificateUnparseable', message: 'tls.crt does not contain a complete PEM certificate (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----).' })
    return undefined
  }
  return certs
}

/** Parses tls.key; undefined (with a problem recorded) when it is empty, encrypted or not a private key. */
function parsePrivateKey (keyPem: string, problems: TlsMaterialProblem[]): KeyObject | undefined {
  const fail = (message: string): undefined => {
    problems.push({ field: 'tls.key', reason: 'KeyUnparseable', message })
    return undefined
  }
  if (keyPem.trim() === '') return fail('tls.key is empty; it must hold a PEM private key.')
  // Checked before parsing: OpenSSL would otherwise ask for a passphrase.
  if (keyPem.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----') || /^Proc-Type:\s*4,\s*ENCRYPTED/m.test(keyPem)) {
    return fail('tls.key is encrypted with a passphrase; ingressd needs the private key unencrypted.')
  }
  if (!keyPem.includes('-----BEGIN ')) {
    return fail('tls.key is not PEM; it must be a private key in PKCS#8, PKCS#1 (RSA) or SEC1 (EC) PEM format.')
  }
  try {
    return createPrivateKey({ key: keyPem, format: 'pem' })
  } catch {
    // The OpenSSL error is deliberately not echoed: it says nothing useful and must never risk quoting key material.
    return fail('tls.key is not a valid PEM private key (PKCS#8, PKCS#1 or SEC1), or it is truncated.')
  }
}

/** The supported type and size of a key, or a description of why it is not supported. */
function describeKey (key: KeyObject): { keyType: CertificateInfo['keyType'], keyBits?: number } | string {
  const details = key.asymmetricKeyDetails ?? {}
  switch (key.asymmetricKeyType) {
    case 'rsa': {
      const bits = details.modulusLength ?? 0
      return bits >= 2048 ? { keyType: 'rsa', keyBits: bits } : `an RSA key of ${bits} bits`
    }
    case 'ec': {
      const curve = details.namedCurve ?? 'an unknown curve'
      const bits = EC_CURVE_BITS[curve]
      return bits !== undefined ? { keyType: 'ec', keyBits: bits } : `an EC key on ${curve}`
    }
    case 'ed25519':
      return { keyType: 'ed25519' }
    case 'rsa-pss':
      return 'an RSA-PSS key'
    default:
      return OTHER_KEY_TYPES[key.asymmetricKeyType ?? ''] ?? `a key of type ${String(key.asymmetricKeyType)}`
  }
}

function keyMatches (cert: X509Certificate, key: KeyObject): boolean {
  try {
    return cert.checkPrivateKey(key)
  } catch {
    return false
  }
}

/** True when `issuer` issued `cert`: names (and key identifiers) line up and `issuer`'s key verifies the signature. */
/** `issuer` issued `cert`: names, key usage and signature checked, never throwing. */
export function issuedBy (cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey)
  } catch {
    return false
  }
}

/**
 * Subject equals issuer and the certificate's own key verifies its signature. Not checkIssued():
 * that also demands keyCertSign in the key usage, which self-signed server certificates rarely have.
 */
export function isSelfSigned (cert: X509Certificate): boolean {
  try {
    return cert.subject === cert.issuer && cert.verify(cert.publicKey)
  } catch {
    return false
  }
}

/** Node gives names one RDN per line ("C=US\nCN=foo"); the API shows them on one line. */
function joinName (name: string): string {
  return name.split('\n').filter(part => part !== '').join(', ')
}

/** SAN DNS names, or the subject CN when there are none. */
function certificateHostNames (cert: X509Certificate): string[] {
  const names = parseSubjectAltName(cert.subjectAltName ?? '')
    .filter(entry => entry.type === 'DNS')
    .map(entry => normalizeHost(entry.value))
    .filter(name => name !== '')
  if (names.length > 0) return [...new Set(names)]
  // Several CNs are legal; like OpenSSL's host check, the last (most specific) one counts.
  const cn = cert.subject.split('\n').filter(line => line.startsWith('CN=')).map(line => normalizeHost(line.slice(3))).pop()
  return cn !== undefined && HOST_LIKE.test(cn) ? [cn] : []
}

/**
 * Parses Node's `subjectAltName` text: `type:value` entries joined by ', ', where a value that
 * contains a comma, quote or other special character is JSON-quoted (Node >= 17.3.1, CVE-2021-44532).
 */
function parseSubjectAltName (text: string): Array<{ type: string, value: string }> {
  const entries: Array<{ type: string, value: string }> = []
  const entry = /([A-Za-z][A-Za-z ]*):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/y
  while (entry.lastIndex < text.length) {
    const start = entry.lastIndex
    const m = entry.exec(text)
    if (m === null || entry.lastIndex === start) break
    const type = m[1] ?? ''
    let value = m[2] ?? ''
    if (value.startsWith('"')) {
      try {
        value = String(JSON.parse(value))
      } catch {
        continue
      }
    }
    entries.push({ type, value })
  }
  return entries
}

function normalizeHost (host: string): string {
  const lower = host.trim().toLowerCase()
  return lower.endsWith('.') ? lower.slice(0, -1) : lower
}

/** Node 20 gives validity as OpenSSL text ("Jan  2 03:04:05 2030 GMT"), which Date parses. */
function parseValidity (text: string): Date {
  const date = new Date(text)
  if (Number.isNaN(date.getTime())) throw new Error(`unexpected certificate date ${JSON.stringify(text)}`)
  return date
}

function wholeSeconds (date: Date): Date {
  return new Date(Math.floor(date.getTime() / 1000) * 1000)
}

/** Imports a Node private key into WebCrypto for signing, with the signature algorithm that goes with it. */
async function importSigningKey (key: KeyObject): Promise<{ key: webcrypto.CryptoKey, algorithm: { name: string, hash?: string } }> {
  const der = key.export({ type: 'pkcs8', format: 'der' })
  const subtle = webcrypto.subtle
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return {
        key: await subtle.importKey('pkcs8', der, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, false, ['sign']),
        algorithm: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }
      }
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve
      const named = curve === 'prime256v1' ? 'P-256' : curve === 'secp384r1' ? 'P-384' : undefined
      if (named === undefined) throw new TypeError(`generateSelfSigned: unsupported issuer EC curve ${String(curve)}`)
      return {
        key: await subtle.importKey('pkcs8', der, { name: 'ECDSA', namedCurve: named }, false, ['sign']),
        algorithm: { name: 'ECDSA', hash: named === 'P-384' ? 'SHA-384' : 'SHA-256' }
      }
    }
    case 'ed25519':
      return { key: await subtle.importKey('pkcs8', der, { name: 'Ed25519' }, false, ['sign']), algorithm: { name: 'Ed25519' } }
    default:
      throw new TypeError(`generateSelfSigned: unsupported issuer key type ${String(key.asymmetricKeyType)}`)
  }
}
