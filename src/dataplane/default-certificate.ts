/**
 * The gateway's own default certificate, served when no ingress has one for the name a client
 * asks for (or it asks for none) and INGRESSD_DEFAULT_CERT names no usable Secret. Like
 * ingress-nginx's, it is self-signed with the subject "Kubernetes Ingress Controller Fake
 * Certificate" and names no host, so it tells a client nothing about the hosts behind it.
 *
 * It is generated on the first start and kept in the store (gateway_state), so restarts and
 * every process sharing the store serve the same one; it is replaced when it nears its end.
 */
import { generateSelfSigned, inspectTlsMaterial } from '../resources/tls-material.js'
import type { GatewayState } from '../store/gateway-state.js'
import type { PemPair } from './tls-options.js'

/** The subject CN of the generated default certificate, as ingress-nginx names its own. */
export const FAKE_CERTIFICATE_CN = 'Kubernetes Ingress Controller Fake Certificate'

const STATE_KEY = 'default-certificate'
const VALIDITY_DAYS = 3650
/** A stored certificate closer than this to its end is replaced at start-up. */
const RENEW_BEFORE_MS = 30 * 86_400_000

/** True when `pem` is a servable certificate and key, valid for at least RENEW_BEFORE_MS after `now`. */
function usable (pem: PemPair | undefined, now: Date): pem is PemPair {
  if (pem === undefined || typeof pem.cert !== 'string' || typeof pem.key !== 'string') return false
  const inspection = inspectTlsMaterial(pem.cert, pem.key, now)
  return inspection.ok && Date.parse(inspection.info.notAfter) - now.getTime() > RENEW_BEFORE_MS
}

/**
 * The generated default certificate: the stored one, or a new one (stored before it is
 * returned) when there is none yet or it is about to expire. Concurrent starts agree on one.
 */
export async function ensureDefaultCertificate (state: GatewayState, now = new Date()): Promise<PemPair> {
  const stored = state.get<PemPair>(STATE_KEY)
  if (usable(stored, now)) return stored
  // EC P-256 rather than ingress-nginx's RSA 2048: every TLS 1.2+ client takes it, and it is
  // generated in milliseconds instead of up to a second on the first start.
  const fresh = await generateSelfSigned({ commonName: FAKE_CERTIFICATE_CN, days: VALIDITY_DAYS, keyType: 'ec', notBefore: now })
  // Another process may have stored one while this one was generating: keep theirs.
  return stored === undefined ? state.setIfAbsent(STATE_KEY, fresh) : state.replace(STATE_KEY, stored, fresh)
}
