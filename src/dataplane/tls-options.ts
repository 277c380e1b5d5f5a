/**
 * The TLS parameters of the HTTPS listener: TLS 1.2 and 1.3 only, and Mozilla's "intermediate"
 * cipher list (https://ssl-config.mozilla.org/guidelines/5.7.json) for 1.2. Each certificate gets
 * one SecureContext, built by the first handshake that needs it and then kept (sni-table.ts), never
 * one per handshake.
 *
 * Why the listener orders its ciphers and signature algorithms by the default certificate's key
 * type (nodejs/node#54235): when an SNICallback hands Node a context, Node adds that context's
 * certificate and key to the connection beside the listener's default ones instead of replacing
 * them, one slot per key type. A certificate of the same type as the default replaces it; one of
 * another type sits next to it, and OpenSSL then picks whichever the preference order names first,
 * which with the client's order is often the default certificate (every common client lists ECDSA
 * first). So the listener takes the server's order, and its order puts the default certificate's
 * key type last: the only way it is picked is when it is the only one there, or the client cannot
 * use the certificate chosen for its name at all.
 */
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls'

/** A certificate chain (leaf first) and its private key, both PEM. */
export interface PemPair {
  cert: string
  key: string
}

/** The key types a served certificate can have (see inspectTlsMaterial). */
export type CertificateKeyType = 'rsa' | 'ec' | 'ed25519'

/** TLS 1.3 suites. They must be named: Node turns TLS 1.3 off for a context whose cipher string names none. */
const TLS13_SUITES = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256']

/**
 * TLS 1.2 suites by the certificate type they authenticate with (Ed25519 certificates use the
 * ECDSA ones). The DHE suites of the Mozilla list are left out: ingressd has no DH parameters to
 * offer (ingress-nginx leaves them unused the same way unless ssl-dh-param is set).
 */
const TLS12_SUITES = {
  ecdsa: ['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305'],
  rsa: ['ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-RSA-CHACHA20-POLY1305']
}

/** Signature algorithms by key type, strongest practical first. */
const SIGNATURE_ALGORITHMS: Record<CertificateKeyType, string[]> = {
  ec: ['ecdsa_secp256r1_sha256', 'ecdsa_secp384r1_sha384', 'ecdsa_secp521r1_sha512'],
  ed25519: ['ed25519'],
  rsa: ['rsa_pss_rsae_sha256', 'rsa_pss_rsae_sha384', 'rsa_pss_rsae_sha512', 'rsa_pss_pss_sha256', 'rsa_pss_pss_sha384', 'rsa_pss_pss_sha512', 'rsa_pkcs1_sha256', 'rsa_pkcs1_sha384', 'rsa_pkcs1_sha512']
}

/** Every cipher suite the listener accepts, in its order for an ECDSA default certificate. */
export const TLS_CIPHERS = [...TLS13_SUITES, ...TLS12_SUITES.rsa, ...TLS12_SUITES.ecdsa].join(':')

/** The lowest protocol version accepted. */
export const TLS_MIN_VERSION = 'TLSv1.2'

/** What each certificate's own context is built with besides its key and certificate. */
const CERTIFICATE_CONTEXT_OPTIONS: Readonly<SecureContextOptions> = Object.freeze({ minVersion: TLS_MIN_VERSION, ciphers: TLS_CIPHERS })

/**
 * The listener's own context options (the one clients without SNI get, and whose protocol
 * settings every connection keeps), for a default certificate of `defaultKeyType`: server
 * preference, with that key type's suites and signature algorithms last (see the file comment).
 * Every suite listed is strong, so taking the server's order costs clients nothing.
 */
export function listenerContextOptions (defaultKeyType: CertificateKeyType): SecureContextOptions {
  const tls12 = defaultKeyType === 'rsa' ? [...TLS12_SUITES.ecdsa, ...TLS12_SUITES.rsa] : [...TLS12_SUITES.rsa, ...TLS12_SUITES.ecdsa]
  const others = (Object.keys(SIGNATURE_ALGORITHMS) as CertificateKeyType[]).filter(t => t !== defaultKeyType)
  const sigalgs = [...others.flatMap(t => SIGNATURE_ALGORITHMS[t]), ...SIGNATURE_ALGORITHMS[defaultKeyType]]
  return { minVersion: TLS_MIN_VERSION, ciphers: [...TLS13_SUITES, ...tls12].join(':'), sigalgs: sigalgs.join(':'), honorCipherOrder: true }
}

/**
 * Builds the context one certificate is served with. Throws when OpenSSL refuses the material.
 * With `ca` (PEM), client certificates are verified against those CAs alone: Node then leaves its
 * bundled roots out of the context's store, and the certificate request names them.
 */
export function createCertificateContext (pem: PemPair, ca?: string): SecureContext {
  return createSecureContext(ca === undefined ? { ...CERTIFICATE_CONTEXT_OPTIONS, cert: pem.cert, key: pem.key } : { ...CERTIFICATE_CONTEXT_OPTIONS, cert: pem.cert, key: pem.key, ca })
}
