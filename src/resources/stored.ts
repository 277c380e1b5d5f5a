/**
 * Objects as the store keeps them, and how one is presented in its storage version: all the data
 * plane needs of the kinds. No schemas here (they live with each kind and the admin plane), so a
 * data-plane worker does not load TypeBox and every kind's validators.
 */
export type KindName = 'Ingress' | 'Service' | 'Endpoints' | 'Secret' | 'IngressClass'

/** The version each kind is stored in, and whether its objects live in a namespace. */
export const STORAGE: Readonly<Record<KindName, { apiVersion: string, namespaced: boolean }>> = {
  Ingress: { apiVersion: 'networking.k8s.io/v1', namespaced: true },
  Service: { apiVersion: 'v1', namespaced: true },
  Endpoints: { apiVersion: 'v1', namespaced: true },
  Secret: { apiVersion: 'v1', namespaced: true },
  IngressClass: { apiVersion: 'networking.k8s.io/v1', namespaced: false }
}

/** Server-managed metadata the store sets; clients' values are ignored (resourceVersion is a precondition). */
export interface StoredMeta {
  name: string
  namespace: string
  labels?: Record<string, string>
  annotations?: Record<string, string>
  uid: string
  resourceVersion: string
  generation: number
  creationTimestamp: string
}

/** An object as the store keeps it: the storage version's content, without metadata. */
export type StoredContent = Record<string, unknown>

/** `metadata` as the API shows it, in Kubernetes' field order. */
export function presentMetadata (namespaced: boolean, meta: StoredMeta): Record<string, unknown> {
  const metadata: Record<string, unknown> = { name: meta.name }
  if (namespaced) metadata.namespace = meta.namespace
  if (meta.labels !== undefined) metadata.labels = meta.labels
  if (meta.annotations !== undefined) metadata.annotations = meta.annotations
  metadata.uid = meta.uid
  metadata.resourceVersion = meta.resourceVersion
  metadata.generation = meta.generation
  metadata.creationTimestamp = meta.creationTimestamp
  return metadata
}

/** A stored object in its storage version, as the API serves it (without status). */
export function presentStored (kind: KindName, meta: StoredMeta, content: StoredContent): Record<string, unknown> {
  const { apiVersion, namespaced } = STORAGE[kind]
  return { apiVersion, kind, metadata: presentMetadata(namespaced, meta), ...content }
}
