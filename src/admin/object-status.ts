/**
 * The status an object is read with: what the data plane reported about it (served, address,
 * conflicts, problems) and what the store itself can tell (references to services and secrets
 * that do not exist yet, which Kubernetes accepts and so do we).
 */
import { isIP } from 'node:net'
import type { Condition } from '../resources/meta.js'
import { ingressServiceNames, type IngressSpecType } from '../resources/ingress.js'
import { CERT_KEY } from '../resources/tls-material.js'
import { inspectTlsMaterial } from '../resources/tls-material.js'
import { TLS_SECRET_TYPE } from '../resources/secret.js'
import type { ObjectStore, StoredObject } from '../store/object-store.js'

function referencesCondition (missing: string[], generation: number): Condition {
  return missing.length === 0
    ? { type: 'ReferencesResolved', status: 'True', reason: 'AllFound', message: 'every referenced service and secret exists', observedGeneration: generation }
    : { type: 'ReferencesResolved', status: 'False', reason: 'ReferenceNotFound', message: `not found: ${missing.join(', ')}`, observedGeneration: generation }
}

/** What a status needs besides the store. */
export interface StatusContext {
  /** Cluster mode: the distinct addresses of the live nodes (undefined until a node list was read). */
  liveAddresses?: () => readonly string[] | undefined
}

/** `{ ip }` for an IP address, `{ hostname }` otherwise: an entry of status.loadBalancer.ingress. */
function loadBalancerEntry (address: string): { ip: string } | { hostname: string } {
  return isIP(address) === 0 ? { hostname: address } : { ip: address }
}

/**
 * status.loadBalancer: this node's address when it serves the ingress; in cluster mode every live
 * node's instead, since they all serve the same store (a node that cannot compile it shows as
 * such in the node list).
 */
function loadBalancer (reported: Record<string, unknown>, ctx: StatusContext): unknown {
  const local = reported.loadBalancer as { ingress?: unknown[] } | undefined
  if ((local?.ingress ?? []).length === 0) return local ?? {}
  const live = ctx.liveAddresses?.()
  if (live === undefined || live.length === 0) return local
  return { ingress: live.map(loadBalancerEntry) }
}

function ingressStatus (store: ObjectStore, obj: StoredObject, ctx: StatusContext): Record<string, unknown> {
  const spec = obj.content.spec as IngressSpecType
  const ns = obj.meta.namespace
  const missing: string[] = []
  for (const svc of ingressServiceNames(spec)) {
    if (store.get('Service', ns, svc) === undefined) missing.push(`service ${ns}/${svc}`)
  }
  for (const tls of spec.tls ?? []) {
    if (tls.secretName !== undefined && tls.secretName !== '' && store.get('Secret', ns, tls.secretName) === undefined) missing.push(`secret ${ns}/${tls.secretName}`)
  }
  const reported = store.status('Ingress', ns, obj.meta.name)?.status ?? {}
  const conditions = [...(reported.conditions as Condition[] | undefined ?? []), referencesCondition(missing, obj.meta.generation)]
  const status: Record<string, unknown> = { loadBalancer: loadBalancer(reported, ctx), conditions }
  return status
}

function reportedConditions (store: ObjectStore, obj: StoredObject): Condition[] {
  return store.status('Secret', obj.meta.namespace, obj.meta.name)?.status?.conditions as Condition[] | undefined ?? []
}

/**
 * A TLS Secret's key size and what its certificate says; for any other type, the size of each
 * write-only value (`status.data`), worked out by the store without the values leaving it.
 */
function secretStatus (store: ObjectStore, obj: StoredObject): Record<string, unknown> {
  if (obj.content.type !== TLS_SECRET_TYPE) {
    const status: Record<string, unknown> = { data: store.secretValueSizes(obj.meta.namespace, obj.meta.name) }
    const reported = reportedConditions(store, obj)
    if (reported.length > 0) status.conditions = reported
    return status
  }
  const certB64 = (obj.content.data as Record<string, string> | undefined)?.[CERT_KEY]
  const key = store.privateKey(obj.meta.namespace, obj.meta.name)
  if (certB64 === undefined || key === undefined) return {}
  const inspection = inspectTlsMaterial(Buffer.from(certB64, 'base64').toString('utf8'), key)
  const status: Record<string, unknown> = { keyBytes: obj.keyBytes }
  if (inspection.ok) {
    const { keyBytes: _k, certBytes: _c, ...certificate } = inspection.info
    status.certificate = certificate
    const conditions: Condition[] = [inspection.info.expired
      ? { type: 'CertificateValid', status: 'False', reason: 'Expired', message: `the certificate expired at ${inspection.info.notAfter}` }
      : { type: 'CertificateValid', status: 'True', reason: 'Valid', message: `valid until ${inspection.info.notAfter}` }]
    status.conditions = [...conditions, ...reportedConditions(store, obj)]
  }
  return status
}

/** The status to serve with `obj`, or undefined for kinds that have none. */
export function objectStatus (store: ObjectStore, obj: StoredObject, ctx: StatusContext = {}): Record<string, unknown> | undefined {
  switch (obj.kind) {
    case 'Ingress': return ingressStatus(store, obj, ctx)
    case 'Secret': return secretStatus(store, obj)
    default: return undefined
  }
}
