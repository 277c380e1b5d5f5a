/**
 * Secret (v1, type kubernetes.io/tls): a certificate chain and its private key.
 *
 * The private key is write-only. It is split off on write and kept in its own column, so no read
 * path can return it; reads carry the certificate and what it says (subject, names, validity),
 * plus the key's size, as `kubectl describe secret` shows it.
 */
import Type from 'typebox'
import { ObjectMeta, ObjectMetaInput, Condition } from './meta.js'
import { CERT_KEY, PRIVATE_KEY_KEY, inspectTlsMaterial, type CertificateInfo } from './tls-material.js'
import type { CauseList } from './validation.js'

export const TLS_SECRET_TYPE = 'kubernetes.io/tls'

export const SecretInput = Type.Object({
  apiVersion: Type.Literal('v1'),
  kind: Type.Literal('Secret'),
  metadata: ObjectMetaInput,
  type: Type.Optional(Type.String({ examples: [TLS_SECRET_TYPE] })),
  data: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'base64 of the PEM text: tls.crt and tls.key' })),
  stringData: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'PEM text: tls.crt and tls.key' })),
  immutable: Type.Optional(Type.Boolean())
}, {
  additionalProperties: false,
  $id: 'SecretInput',
  examples: [{ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'my-https' }, type: 'kubernetes.io/tls', stringData: { 'tls.crt': '-----BEGIN CERTIFICATE-----\n...', 'tls.key': '-----BEGIN PRIVATE KEY-----\n...' } }]
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

/** A Secret as served: tls.crt in data, tls.key never; what the certificate says in status. */
export const Secret = Type.Object({
  apiVersion: Type.Literal('v1'),
  kind: Type.Literal('Secret'),
  metadata: ObjectMeta,
  type: Type.String(),
  data: Type.Record(Type.String(), Type.String(), { description: 'tls.crt only: the private key is write-only' }),
  immutable: Type.Optional(Type.Boolean()),
  status: Type.Optional(Type.Object({
    certificate: Type.Optional(CertificateStatus),
    keyBytes: Type.Optional(Type.Integer({ description: 'Size of the stored tls.key; the key itself is never returned' })),
    conditions: Type.Optional(Type.Array(Condition))
  }))
}, { $id: 'Secret' })
export type Secret = Type.Static<typeof Secret>
type SecretInput = Type.Static<typeof SecretInput>

/** What a Secret write stores: the public part (served back) and the private key (never served). */
export interface PreparedSecret {
  body: { type: string, data: Record<string, string>, immutable?: boolean }
  privateKey: string
  certificate: CertificateInfo
}

function decodeField (input: SecretInput, key: string, causes: CauseList): string | undefined {
  const plain = input.stringData?.[key]
  if (plain !== undefined) return plain
  const encoded = input.data?.[key]
  if (encoded === undefined) return undefined
  if (!/^[A-Za-z0-9+/\r\n]*={0,2}\s*$/.test(encoded)) {
    causes.invalid(`data[${key}]`, '<base64>', 'must be base64-encoded')
    return undefined
  }
  return Buffer.from(encoded, 'base64').toString('utf8')
}

/**
 * Validates a TLS Secret and splits it into what is stored. `storedKey` is the key already held
 * for this Secret: a write that leaves tls.key out keeps it, since reads never return it.
 */
export function prepareSecret (input: SecretInput, storedKey: string | undefined, causes: CauseList): { prepared?: PreparedSecret, tlsCauses: boolean } {
  const type = input.type ?? TLS_SECRET_TYPE
  if (type !== TLS_SECRET_TYPE) {
    causes.notSupported('type', type, [TLS_SECRET_TYPE])
    return { tlsCauses: false }
  }
  const known = new Set([CERT_KEY, PRIVATE_KEY_KEY])
  for (const source of ['data', 'stringData'] as const) {
    for (const key of Object.keys(input[source] ?? {})) {
      if (!known.has(key)) causes.notSupported(`${source}[${key}]`, key, [CERT_KEY, PRIVATE_KEY_KEY])
    }
  }
  const cert = decodeField(input, CERT_KEY, causes)
  const key = decodeField(input, PRIVATE_KEY_KEY, causes) ?? storedKey
  if (cert === undefined) causes.required(`data[${CERT_KEY}]`, 'a kubernetes.io/tls Secret needs tls.crt')
  if (key === undefined) causes.required(`data[${PRIVATE_KEY_KEY}]`, 'a kubernetes.io/tls Secret needs tls.key')
  if (cert === undefined || key === undefined || !causes.empty) return { tlsCauses: false }
  const inspection = inspectTlsMaterial(cert, key)
  if (!inspection.ok) {
    for (const p of inspection.problems) causes.invalid(`data[${p.field}]`, p.field === PRIVATE_KEY_KEY ? '<redacted>' : '<certificate>', `${p.reason}: ${p.message}`)
    return { tlsCauses: true }
  }
  const body: PreparedSecret['body'] = { type, data: { [CERT_KEY]: Buffer.from(cert, 'utf8').toString('base64') } }
  if (input.immutable !== undefined) body.immutable = input.immutable
  return { prepared: { body, privateKey: key, certificate: inspection.info }, tlsCauses: false }
}
