/**
 * The SNI table: which certificate the HTTPS listener presents for the name a client asks for in
 * its TLS ClientHello. Plain frozen data built by compile-certificates.ts next to the route table
 * and swapped with it; a lookup is one Map get, or two for a wildcard.
 *
 * Order, as ingress-nginx and Kong choose: the exact name, then a `*.` wildcard covering exactly
 * one more label (`*.foo.com` serves `a.foo.com`, not `a.b.foo.com` nor `foo.com`), then the
 * default certificate.
 */
import type { SecureContext } from 'node:tls'
import type { CertificateKeyType, PemPair } from './tls-options.js'

/** One certificate as served: its context (built once) and what a status or log says about it. */
export interface ServedCertificate {
  /** `namespace/name` of the Secret, or `(generated)` for the gateway's own default certificate. */
  readonly source: string
  readonly context: SecureContext
  readonly subject: string
  /** The names the certificate is for (SAN DNS names, else its CN), lowercase. */
  readonly dnsNames: readonly string[]
  readonly notBefore: string
  readonly notAfter: string
  readonly fingerprintSha256: string
  readonly keyType: CertificateKeyType
}

export interface SniTable {
  /** The store version this table was compiled from. */
  readonly generation: number
  /** Certificates by exact host name (lowercase, no trailing dot). */
  readonly exact: ReadonlyMap<string, ServedCertificate>
  /** Certificates of `*.foo.com` TLS hosts, keyed by the parent domain `foo.com`. */
  readonly wildcards: ReadonlyMap<string, ServedCertificate>
  /** The default certificate: for clients without SNI, and names with no certificate. */
  readonly fallback: ServedCertificate
  /** The default certificate's PEM: the listener builds its no-SNI context from it. */
  readonly fallbackPem: Readonly<PemPair>
  /**
   * Changes whenever some name would get a different certificate than under the previous table.
   * The listener then renews its session-ticket keys, so no client resumes a session made under
   * the old certificate: every new connection sees the new one.
   */
  readonly certificateEpoch: number
}

/** Source of the current SNI table (the reloader); undefined until the first compile. */
export interface SniSource {
  readonly sni: SniTable | undefined
}

/**
 * The certificate to present for `servername` (the SNI value; undefined or '' when the client
 * sent none). Case and one trailing dot are ignored.
 */
export function selectCertificate (table: SniTable, servername: string | undefined): ServedCertificate {
  if (servername === undefined || servername === '') return table.fallback
  let name = servername.toLowerCase()
  if (name.endsWith('.')) name = name.slice(0, -1)
  const exact = table.exact.get(name)
  if (exact !== undefined) return exact
  const dot = name.indexOf('.')
  if (dot > 0) {
    const wildcard = table.wildcards.get(name.slice(dot + 1))
    if (wildcard !== undefined) return wildcard
  }
  return table.fallback
}

/** Freezes the parts into an SniTable. The maps must not be changed afterwards. */
export function createSniTable (parts: SniTable): SniTable {
  return Object.freeze({ ...parts, fallbackPem: Object.freeze({ ...parts.fallbackPem }) })
}
