/**
 * A certificate that passes every check of inspectTlsMaterial (it parses, its key matches) but that
 * OpenSSL refuses to load into a TLS context: an RSA leaf signed with SHA-1 by a CA ("ca md too
 * weak" at OpenSSL 3's default security level). The Secret API accepts it; only a TLS context
 * build finds out.
 */
import { KeyObject, createPrivateKey, webcrypto } from 'node:crypto'
import { generateSelfSigned } from '../../src/resources/tls-material.js'

export async function sha1SignedLeaf (host: string): Promise<{ cert: string, key: string }> {
  const x509 = await import('@peculiar/x509')
  const subtle = webcrypto.subtle
  const ca = await generateSelfSigned({ commonName: 'weak test CA', keyType: 'rsa', isCA: true })
  const caCert = new x509.X509Certificate(ca.cert)
  const algorithm = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-1' }
  const signingKey = await subtle.importKey('pkcs8', createPrivateKey(ca.key).export({ type: 'pkcs8', format: 'der' }), algorithm, false, ['sign'])
  const keys = await subtle.generateKey({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, true, ['sign', 'verify'])
  const cert = await x509.X509CertificateGenerator.create({
    subject: [{ CN: [host] }],
    issuer: caCert.subjectName,
    notBefore: new Date(Date.now() - 86_400_000),
    notAfter: new Date(Date.now() + 30 * 86_400_000),
    publicKey: keys.publicKey,
    signingKey,
    signingAlgorithm: algorithm,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: host }])]
  }, webcrypto)
  return { cert: cert.toString('pem') + '\n', key: KeyObject.from(keys.privateKey).export({ type: 'pkcs8', format: 'pem' }) as string }
}
