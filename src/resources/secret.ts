/**
 * Secret (v1): `kubernetes.io/tls` (a certificate chain, its private key, optionally a CA bundle),
 * and every other type (`Opaque`, `kubernetes.io/basic-auth`, or any type string, as Kubernetes
 * takes them): an htpasswd file, an auth map, a client-certificate CA bundle.
 *
 * What a reader must never see is split off on write and kept in the write-only column
 * (`objects.private_key`), which no read path returns: the private key of a TLS Secret, and
 * every value of a Secret of any other type. Reads carry the public part (tls.crt and ca.crt of
 * a TLS Secret, in `data`) and the sizes of the rest, as `kubectl describe secret` shows them.
 */
import { X509Certificate } from 'node:crypto'
import Type from 'typebox'
import { ObjectMeta, ObjectMetaInput, Condition } from './meta.js'
import { CERT_KEY, PRIVATE_KEY_KEY, inspectTlsMaterial, type CertificateInfo } from './tls-material.js'
import type { CauseList } from './validation.js'

export const TLS_SECRET_TYPE = 'kubernetes.io/tls'
export const OPAQUE_SECRET_TYPE = 'Opaque'
export const BASIC_AUTH_SECRET_TYPE = 'kubernetes.io/basic-auth'
/** The CA bundle a TLS Secret may carry (cert-manager writes it; ingress-nginx's auth-tls reads it). */
export const CA_CERT_KEY = 'ca.crt'
/** Kubernetes' limit on the decoded size of a Secret's values, all keys together (MaxSecretSize). */
export const MAX_SECRET_BYTES = 1024 * 1024

/** Kubernetes' rule for Secret and ConfigMap keys (IsConfigMapKey). */
const SECRET_KEY = /^[-._a-zA-Z0-9]+$/
const MAX_KEY_LENGTH = 253
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g
const PEM_PRIVATE_KEY = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/
const TLS_KEYS = [CERT_KEY, PRIVATE_KEY_KEY, CA_CERT_KEY]
/** The values of a TLS Secret that reads return; tls.key is write-only. */
const PUBLIC_TLS_KEYS = [CERT_KEY, CA_CERT_KEY]

export const SecretInput = Type.Object({
  apiVersion: Type.Literal('v1'),
  kind: Type.Literal('Secret'),
  metadata: ObjectMetaInput,
  type: Type.Optional(Type.String({
    examples: [TLS_SECRET_TYPE, OPAQUE_SECRET_TYPE, BASIC_AUTH_SECRET_TYPE],
    description: 'Free-form, as in Kubernetes; immutable. Omitted: kubernetes.io/tls when the data holds tls.crt or tls.key, else Opaque'
  })),
  data: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'base64 values. kubernetes.io/tls: tls.crt, tls.key and optionally ca.crt (PEM); other types: any keys, all write-only' })),
  stringData: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'The same as data, as text; wins over data for a key in both' })),
  immutable: Type.Optional(Type.Boolean()),
  status: Type.Optional(Type.Unknown({ description: 'Ignored: reads carry it (sizes, certificate), and a read sent back (kubectl apply of `get -o yaml`) must not be refused for it' }))
}, {
  additionalProperties: false,
  $id: 'SecretInput',
  examples: [
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'my-https' }, type: 'kubernetes.io/tls', stringData: { 'tls.crt': '-----BEGIN CERTIFICATE-----\n...', 'tls.key': '-----BEGIN PRIVATE KEY-----\n...' } },
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'basic-auth' }, type: 'Opaque', stringData: { auth: 'foo:$apr1$...' } }
  ]
})

export const CertificateStatus = Type.Object({
  subject: Type.String({ examples: ['CN=my-ssl'] }),
  issuer: Type.String(),
  dnsNames: Type.Array(Type.String()),
  notBefore: Type.String({ format: 'date-time' }),
  notAfter: Type.String({ format: 'date-time' }),
  serialNumber: Type.String(),
  fingerprintSha256: Type.String(),
  keyType: Type.String({ examples: ['rsa'] }),
  keyBits: Type.Optional(Type.Integer()),
  chainLength: Type.Integer(),
  selfSigned: Type.Boolean(),
  expired: Type.Boolean()
})

/** A Secret as served: public values in data (never tls.key, never a value of a non-TLS Secret); sizes and what the certificate says in status. */
export const Secret = Type.Object({
  apiVersion: Type.Literal('v1'),
  kind: Type.Literal('Secret'),
  metadata: ObjectMeta,
  type: Type.String(),
  data: Type.Record(Type.String(), Type.String(), { description: 'tls.crt and ca.crt of a kubernetes.io/tls Secret as stored; every write-only value (tls.key, and every value of other types) as a placeholder: base64 of as many `*` bytes as the value has, so sizes show as kubectl describe prints them. Sending a placeholder back keeps the stored value.' }),
  immutable: Type.Optional(Type.Boolean()),
  status: Type.Optional(Type.Object({
    certificate: Type.Optional(CertificateStatus),
    keyBytes: Type.Optional(Type.Integer({ description: 'Size of the stored tls.key; the key itself is never returned' })),
    data: Type.Optional(Type.Record(Type.String(), Type.Object({ bytes: Type.Integer() }), {
      description: 'Every write-only value of a Secret of a type other than kubernetes.io/tls, by key, with its size in bytes; the values themselves are never returned',
      examples: [{ auth: { bytes: 45 } }]
    })),
    conditions: Type.Optional(Type.Array(Condition))
  }))
}, { $id: 'Secret' })
export type Secret = Type.Static<typeof Secret>
type SecretInput = Type.Static<typeof SecretInput>

/**
 * What a Secret write stores: the public part (served back) and the write-only part (never
 * served). For a TLS Secret the write-only part is the PEM private key; for every other type it
 * is the JSON text of {@link encodeSecretValues}. Both live in `objects.private_key`.
 */
export interface PreparedSecret {
  body: { type: string, data: Record<string, string>, immutable?: boolean }
  privateKey: string
  certificate?: CertificateInfo
}

/**
 * The type a write is stored with. An omitted (or empty) type is `Opaque`, as in Kubernetes,
 * except that data holding tls.crt or tls.key keeps meaning `kubernetes.io/tls`: ingressd took
 * an omitted type for TLS before it stored other types, and manifests written for it still do.
 */
function secretType (input: Pick<SecretInput, 'type' | 'data' | 'stringData'>): string {
  if (input.type !== undefined && input.type !== '') return input.type
  for (const source of [input.data, input.stringData]) {
    if (source !== undefined && (CERT_KEY in source || PRIVATE_KEY_KEY in source)) return TLS_SECRET_TYPE
  }
  return OPAQUE_SECRET_TYPE
}

/** Canonical JSON of write-only values (key → base64, keys sorted), so an unchanged write stores the same text. */
function encodeSecretValues (values: Readonly<Record<string, string>>): string {
  const sorted: Record<string, string> = {}
  for (const key of Object.keys(values).sort()) sorted[key] = values[key] as string
  return JSON.stringify(sorted)
}

/**
 * The write-only values of a non-TLS Secret from the stored column, or undefined when the column
 * holds none (no Secret, or a TLS Secret's PEM key, which never begins with '{').
 */
function decodeSecretValues (stored: string | undefined): Record<string, string> | undefined {
  if (stored === undefined || !stored.startsWith('{')) return undefined
  try {
    const parsed = JSON.parse(stored) as unknown
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined
    const values: Record<string, string> = {}
    for (const [key, value] of Object.entries(parsed)) if (typeof value === 'string') values[key] = value
    return values
  } catch {
    return undefined
  }
}

/**
 * Reads show each write-only value as a placeholder of its size: base64 of as many `*` bytes, so
 * `kubectl describe secret` prints every key with its size, as on a cluster, and a decoded value
 * reads as asterisks, never as the value. A write that sends a placeholder back (an edited read,
 * `kubectl edit`, a patch) keeps the stored value of that key.
 */
export function writeOnlyPlaceholder (bytes: number): string {
  return Buffer.alloc(bytes, '*').toString('base64')
}

/** True when `base64` decodes to one or more `*` bytes and nothing else: a placeholder sent back. */
function isPlaceholder (base64: string): boolean {
  const bytes = Buffer.from(base64, 'base64')
  return bytes.length > 0 && bytes.every(b => b === 0x2a)
}

/** The annotation `kubectl apply` keeps the whole manifest in, write-only values included. */
export const LAST_APPLIED_ANNOTATION = 'kubectl.kubernetes.io/last-applied-configuration'

/**
 * The last-applied-configuration annotation of a Secret with its write-only values replaced by
 * placeholders: client-side `kubectl apply` copies the manifest, private key and passwords
 * included, into an annotation that every read returns. Text that is not a JSON object is kept
 * as it is (kubectl only ever writes JSON there).
 */
export function redactLastApplied (annotation: string, tls: boolean): string {
  let parsed: unknown
  try {
    parsed = JSON.parse(annotation)
  } catch {
    return annotation
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return annotation
  const manifest = parsed as { data?: unknown, stringData?: unknown }
  const writeOnly = (key: string): boolean => !tls || !PUBLIC_TLS_KEYS.includes(key)
  for (const source of ['data', 'stringData'] as const) {
    const values = manifest[source]
    if (typeof values !== 'object' || values === null) continue
    for (const [key, value] of Object.entries(values as Record<string, unknown>)) {
      if (typeof value !== 'string' || !writeOnly(key)) continue
      const bytes = source === 'data' ? Buffer.from(value, 'base64').length : Buffer.byteLength(value)
      ;(values as Record<string, unknown>)[key] = source === 'data' ? writeOnlyPlaceholder(bytes) : '*'.repeat(bytes)
    }
  }
  return JSON.stringify(parsed)
}

function isBase64 (encoded: string): boolean {
  return /^[A-Za-z0-9+/\r\n]*={0,2}\s*$/.test(encoded)
}

/** Checks keys as Kubernetes does; causes name `source[key]` and echo only the key. */
function checkKeys (input: SecretInput, causes: CauseList): void {
  for (const source of ['data', 'stringData'] as const) {
    for (const key of Object.keys(input[source] ?? {})) {
      const field = `${source}[${key}]`
      if (key.length > MAX_KEY_LENGTH) causes.invalid(field, key, `a key must be no more than ${MAX_KEY_LENGTH} characters`)
      else if (!SECRET_KEY.test(key)) causes.invalid(field, key, 'a valid config key must consist of alphanumeric characters, \'-\', \'_\' or \'.\' (e.g. \'key.name\', or \'KEY_NAME\', or \'key-name\')')
      else if (key === '.' || key === '..' || key.startsWith('..')) causes.invalid(field, key, 'must not be \'.\' or \'..\', nor start with \'..\'')
    }
  }
}

/** The written values as canonical base64 by key (stringData wins over data); causes for values that are not base64. */
function writtenValues (input: SecretInput, causes: CauseList): Record<string, string> {
  const values: Record<string, string> = {}
  for (const [key, encoded] of Object.entries(input.data ?? {})) {
    // The value is never echoed: it may be the secret itself, or a typo of it.
    if (!isBase64(encoded)) causes.invalid(`data[${key}]`, '<base64>', 'must be base64-encoded')
    else values[key] = Buffer.from(encoded, 'base64').toString('base64')
  }
  for (const [key, text] of Object.entries(input.stringData ?? {})) values[key] = Buffer.from(text, 'utf8').toString('base64')
  return values
}

/** Decoded byte length of canonical (padded) base64, without decoding it. */
function decodedBytes (base64: string): number {
  const padding = base64.endsWith('==') ? 2 : base64.endsWith('=') ? 1 : 0
  return base64.length / 4 * 3 - padding
}

function checkTotalSize (bytes: number, causes: CauseList): void {
  if (bytes > MAX_SECRET_BYTES) causes.invalid('data', `${bytes} bytes`, `the values of a Secret may not exceed ${MAX_SECRET_BYTES} bytes in total`)
}

/** Why `pem` is not a CA bundle, or undefined when it is one: PEM certificates, every one parseable, no private key. */
function caBundleProblem (pem: string): string | undefined {
  if (PEM_PRIVATE_KEY.test(pem)) return 'ca.crt holds a private key; it must hold only certificates, and it is served to every reader of the Secret'
  let count = 0
  for (const match of pem.matchAll(PEM_CERTIFICATE)) {
    try {
      // eslint-disable-next-line no-new
      new X509Certificate(match[0])
    } catch {
      return `certificate ${count} in ca.crt is not a valid PEM-encoded X.509 certificate`
    }
    count++
  }
  return count === 0 ? 'ca.crt does not contain a PEM certificate (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----)' : undefined
}

/**
 * Validates a Secret and splits it into what is stored. `stored` is what the write-only column
 * already holds for this Secret. For TLS, a write that leaves tls.key out keeps the stored key.
 * For other types, a write that names no key at all (in data or stringData: a metadata-only
 * change, or a read sent back, whose `data` is `{}`) keeps the stored values; a write that names
 * any key replaces the whole set, as a Kubernetes PUT does. `tlsCauses` is true when the causes
 * are about the certificate material (INGRESSD_ERR_TLS_INVALID).
 */
export function prepareSecret (input: SecretInput, stored: string | undefined, causes: CauseList): { prepared?: PreparedSecret, tlsCauses: boolean } {
  const type = secretType(input)
  return type === TLS_SECRET_TYPE ? prepareTlsSecret(input, stored, causes) : prepareOpaqueSecret(input, type, stored, causes)
}

function prepareTlsSecret (input: SecretInput, stored: string | undefined, causes: CauseList): { prepared?: PreparedSecret, tlsCauses: boolean } {
  for (const source of ['data', 'stringData'] as const) {
    for (const key of Object.keys(input[source] ?? {})) {
      if (!TLS_KEYS.includes(key)) causes.notSupported(`${source}[${key}]`, key, TLS_KEYS)
    }
  }
  const written = writtenValues(input, causes)
  const text = (key: string): string | undefined => written[key] === undefined ? undefined : Buffer.from(written[key], 'base64').toString('utf8')
  const cert = text(CERT_KEY)
  // A column holding a non-TLS Secret's values is no key to keep (the type change is refused on store).
  const sentKey = written[PRIVATE_KEY_KEY] !== undefined && isPlaceholder(written[PRIVATE_KEY_KEY]) ? undefined : text(PRIVATE_KEY_KEY)
  const key = sentKey ?? (decodeSecretValues(stored) === undefined ? stored : undefined)
  const ca = text(CA_CERT_KEY)
  if (cert === undefined) causes.required(`data[${CERT_KEY}]`, 'a kubernetes.io/tls Secret needs tls.crt')
  if (key === undefined) causes.required(`data[${PRIVATE_KEY_KEY}]`, 'a kubernetes.io/tls Secret needs tls.key')
  if (cert === undefined || key === undefined || !causes.empty) return { tlsCauses: false }
  checkTotalSize(Buffer.byteLength(cert) + Buffer.byteLength(key) + (ca === undefined ? 0 : Buffer.byteLength(ca)), causes)
  if (!causes.empty) return { tlsCauses: false }

  let tlsCauses = false
  // tls.crt and ca.crt are served back: a key pasted into either would be served with them.
  if (PEM_PRIVATE_KEY.test(cert)) {
    causes.invalid(`data[${CERT_KEY}]`, '<certificate>', 'tls.crt holds a private key; put the key in tls.key only, since tls.crt is served to every reader of the Secret')
    tlsCauses = true
  }
  const caProblem = ca === undefined ? undefined : caBundleProblem(ca)
  if (caProblem !== undefined) {
    causes.invalid(`data[${CA_CERT_KEY}]`, '<certificate>', caProblem)
    tlsCauses = true
  }
  const inspection = inspectTlsMaterial(cert, key)
  if (!inspection.ok) {
    for (const p of inspection.problems) causes.invalid(`data[${p.field}]`, p.field === PRIVATE_KEY_KEY ? '<redacted>' : '<certificate>', `${p.reason}: ${p.message}`)
    tlsCauses = true
  }
  if (!inspection.ok || tlsCauses) return { tlsCauses }
  const data: Record<string, string> = { [CERT_KEY]: written[CERT_KEY] as string }
  if (written[CA_CERT_KEY] !== undefined) data[CA_CERT_KEY] = written[CA_CERT_KEY]
  const body: PreparedSecret['body'] = { type: TLS_SECRET_TYPE, data }
  if (input.immutable !== undefined) body.immutable = input.immutable
  return { prepared: { body, privateKey: key, certificate: inspection.info }, tlsCauses: false }
}

function prepareOpaqueSecret (input: SecretInput, type: string, stored: string | undefined, causes: CauseList): { prepared?: PreparedSecret, tlsCauses: boolean } {
  checkKeys(input, causes)
  const written = writtenValues(input, causes)
  const namesNoKey = Object.keys(input.data ?? {}).length === 0 && Object.keys(input.stringData ?? {}).length === 0
  const storedValues = decodeSecretValues(stored)
  const kept = namesNoKey ? storedValues : undefined
  const values = kept ?? written
  for (const [key, value] of Object.entries(input.data ?? {})) {
    if (!isBase64(value) || !isPlaceholder(value)) continue
    const previous = storedValues?.[key]
    if (previous !== undefined) values[key] = previous
    else causes.invalid(`data[${key}]`, '<placeholder>', 'is the placeholder reads show for a write-only value, and this Secret has no stored value for the key: send the value itself')
  }
  if (type === BASIC_AUTH_SECRET_TYPE && values.username === undefined && values.password === undefined) {
    causes.required('data[username]', 'a kubernetes.io/basic-auth Secret needs username or password')
    causes.required('data[password]', 'a kubernetes.io/basic-auth Secret needs username or password')
  }
  checkTotalSize(Object.values(values).reduce((sum, v) => sum + decodedBytes(v), 0), causes)
  if (!causes.empty) return { tlsCauses: false }
  const body: PreparedSecret['body'] = { type, data: {} }
  if (input.immutable !== undefined) body.immutable = input.immutable
  return { prepared: { body, privateKey: encodeSecretValues(values) }, tlsCauses: false }
}
