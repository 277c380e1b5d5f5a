/**
 * Certificates for upstream servers in tests (HTTPS and gRPC origins the gateway connects to): a
 * CA, or a leaf for serverAuth with its names as subjectAltName (DNS names and IPv4 addresses),
 * EC P-256, issued at test time (tls.ts's issueCertificate, valid for a day).
 */
import { issueCertificate, type IssuedCertificate } from './tls.js'

/** A CA, or a server certificate for `names` (DNS names and IP addresses) signed by `issuer`: EC P-256, serverAuth. */
export async function issueServerCertificate (opts: { subject: string, ca?: boolean, issuer?: IssuedCertificate, names?: string[] }): Promise<IssuedCertificate> {
  const notBefore = new Date(Date.now() - 60_000)
  return await issueCertificate({ ...opts, names: opts.ca === true ? undefined : (opts.names ?? []), notBefore, notAfter: new Date(notBefore.getTime() + 86_400_000) })
}
