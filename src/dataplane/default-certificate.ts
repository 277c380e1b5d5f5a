/**
 * The gateway's own default certificate, served when no ingress has one for the name a client
 * asks for (or it asks for none) and INGRESSD_DEFAULT_CERT names no usable Secret. Like
 * ingress-nginx's, it is self-signed with the subject "Kubernetes Ingress Controller Fake
 * Certificate" and names no host, so it tells a client nothing about the hosts behind it.
 *
 * It is generated on the first start and kept in the store (gateway_state), so restarts and
 * every process sharing the store serve the same one; it is replaced when it nears its end.
 */
import { generateSelfSigned, stillServable } from '../resources/tls-material.js'
import type { GatewayState } from '../store/gateway-state.js'
import type { PemPair } from './tls-options.js'

/** The subject CN of the generated default certificate, as ingress-nginx names its own. */
export const FAKE_CERTIFICATE_CN = 'Kubernetes Ingress Controller Fake Certificate'

const STATE_KEY = 'default-certificate'
const VALIDITY_DAYS = 3650

/**
 * The generated default certificate: the stored one, or a new one (stored before it is
 * returned) when there is none yet or it is about to expire. Concurrent starts agree on one.
 */
export async function ensureDefaultCertificate (state: GatewayState, now = new Date()): Promise<PemPair> {
  // EC P-256 rather than ingress-nginx's RSA 2048: every TLS 1.2+ client takes it, and it is
  // generated in milliseconds instead of up to a second on the first start.
  return await state.ensure(STATE_KEY, (pem: PemPair | undefined): pem is PemPair => stillServable(pem, now), async () =>
    await generateSelfSigned({ commonName: FAKE_CERTIFICATE_CN, days: VALIDITY_DAYS, keyType: 'ec', notBefore: now }))
}
