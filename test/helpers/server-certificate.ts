/**
 * Certificates for upstream servers in tests (HTTPS and gRPC origins the gateway connects to): a
 * CA, or a leaf for serverAuth with its names as subjectAltName (DNS names and IPv4 addresses),
 * EC P-256, issued at test time.
 */
import type { IssuedCertificate } from './tls.js'

/** A CA, or a server certificate for `names` (DNS names and IP addresses) signed by `issuer`: EC P-256, serverAuth. */
export async function issueServerCertificate (opts: { subject: string, ca?: boolean, issuer?: IssuedCertificate, names?: string[] }): Promise<IssuedCertificate> {
  const x509 = await import('@peculiar/x509')
  const { webcrypto, createPrivateKey, KeyObject, randomBytes } = await import('node:crypto')
  const subtle = webcrypto.subtle
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256' }
  const keys = await subtle.generateKey(algorithm, true, ['sign', 'verify'])
  const issuerCert = opts.issuer === undefined ? undefined : new x509.X509Certificate(opts.issuer.cert)
  const signingKey = opts.issuer === undefined
    ? keys.privateKey
    : await subtle.importKey('pkcs8', createPrivateKey(opts.issuer.key).export({ type: 'pkcs8', format: 'der' }), algorithm, false, ['sign'])
  const extensions: InstanceType<typeof x509.Extension>[] = opts.ca === true
    ? [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true)]
    : [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        new x509.SubjectAlternativeNameExtension((opts.names ?? []).map(n => /^[\d.]+$/.test(n) ? { type: 'ip' as const, value: n } : { type: 'dns' as const, value: n }))
      ]
  const notBefore = new Date(Date.now() - 60_000)
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomBytes(8).toString('hex').replace(/^[89a-f]/, '1'),
    subject: opts.subject,
    issuer: issuerCert?.subject ?? opts.subject,
    notBefore,
    notAfter: new Date(notBefore.getTime() + 86_400_000),
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    publicKey: keys.publicKey,
    signingKey,
    extensions
  }, webcrypto)
  return { cert: cert.toString('pem') + '\n', key: KeyObject.from(keys.privateKey).export({ type: 'pkcs8', format: 'pem' }) as string }
}
