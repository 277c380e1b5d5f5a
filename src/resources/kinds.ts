/**
 * The resource kinds ingressd serves: their paths, API versions and schemas, and the one
 * function that turns what a client sent into what the store keeps (validated, converted to
 * the storage version, the private key split off) and back.
 */
import type { TSchema } from 'typebox'
import { IngressdError, invalidObject, type Cause } from '../errors.js'
import { Endpoints, EndpointsInput, validateEndpointSubsets } from './endpoints.js'
import { BETA_INGRESS_VERSIONS, Ingress, IngressBeta, IngressBetaInput, IngressV1Input, ingressSpecFromBeta, ingressSpecToBeta, validateIngressSpec, type IngressSpecType } from './ingress.js'
import { IngressClass, IngressClassInput } from './ingress-class.js'
import { LAST_APPLIED_ANNOTATION, Secret, SecretInput, prepareSecret, redactLastApplied, writeOnlyPlaceholder } from './secret.js'
import { Service, ServiceInput, validateServiceSpec } from './service.js'
import { CauseList, structuralValidator, validateLabelsAndAnnotations, validateObjectName } from './validation.js'
import type { CertificateInfo } from './tls-material.js'
import { presentMetadata, STORAGE, type KindName, type StoredContent, type StoredMeta } from './stored.js'

interface VersionDefinition {
  input: TSchema
  output: TSchema
  check: (value: unknown) => Cause[]
}

/** One kind: where it lives in the API and which versions of it are served. */
export interface KindDefinition {
  kind: KindName
  group: string
  plural: string
  namespaced: boolean
  nameRule: 'subdomain' | 'dns1035'
  storageVersion: string
  versions: Record<string, VersionDefinition>
}

function versions (entries: [string, TSchema, TSchema][]): Record<string, VersionDefinition> {
  return Object.fromEntries(entries.map(([v, input, output]) => [v, { input, output, check: structuralValidator(input) }]))
}

/** A kind's storage version and scope, from the table the data plane reads too. */
function stored (kind: KindName): Pick<KindDefinition, 'namespaced' | 'storageVersion'> {
  return { namespaced: STORAGE[kind].namespaced, storageVersion: STORAGE[kind].apiVersion }
}

export const KINDS: readonly KindDefinition[] = [
  {
    kind: 'Ingress',
    group: 'networking.k8s.io',
    plural: 'ingresses',
    ...stored('Ingress'),
    nameRule: 'subdomain',
    versions: versions([
      ['networking.k8s.io/v1', IngressV1Input, Ingress],
      ...BETA_INGRESS_VERSIONS.map(v => [v, IngressBetaInput, IngressBeta] as [string, TSchema, TSchema])
    ])
  },
  { kind: 'Service', group: '', plural: 'services', ...stored('Service'), nameRule: 'dns1035', versions: versions([['v1', ServiceInput, Service]]) },
  { kind: 'Endpoints', group: '', plural: 'endpoints', ...stored('Endpoints'), nameRule: 'subdomain', versions: versions([['v1', EndpointsInput, Endpoints]]) },
  { kind: 'Secret', group: '', plural: 'secrets', ...stored('Secret'), nameRule: 'subdomain', versions: versions([['v1', SecretInput, Secret]]) },
  { kind: 'IngressClass', group: 'networking.k8s.io', plural: 'ingressclasses', ...stored('IngressClass'), nameRule: 'subdomain', versions: versions([['networking.k8s.io/v1', IngressClassInput, IngressClass]]) }
]

const BY_KIND = new Map(KINDS.map(k => [k.kind, k]))

/** The definition of a kind by name. */
export function kindDefinition (kind: KindName): KindDefinition {
  const def = BY_KIND.get(kind)
  if (def === undefined) throw new IngressdError('INGRESSD_ERR_INTERNAL', `unknown kind ${kind}`)
  return def
}

/** Finds the kind an object's apiVersion and kind name, or undefined when ingressd does not serve it. */
export function findKind (apiVersion: unknown, kind: unknown): KindDefinition | undefined {
  const def = KINDS.find(k => k.kind === kind)
  if (def === undefined || typeof apiVersion !== 'string' || def.versions[apiVersion] === undefined) return undefined
  return def
}

/** A validated write, ready for the store. */
export interface PreparedObject {
  def: KindDefinition
  namespace: string
  name: string
  labels?: Record<string, string>
  annotations?: Record<string, string>
  /** metadata.resourceVersion as sent: a PUT precondition when present. */
  resourceVersion?: string
  content: StoredContent
  privateKey?: string
  certificate?: CertificateInfo
}

/** Where a write is going: the path's namespace and name, when it has them. */
export interface WriteTarget {
  namespace?: string
  name?: string
}

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/**
 * Validates one object as the API server would and converts it to the storage version.
 * Throws IngressdError (Invalid, with a cause per field) when anything is wrong; nothing is stored.
 */
export function prepareObject (input: unknown, target: WriteTarget, storedKey?: (namespace: string, name: string) => string | undefined): PreparedObject {
  if (!isRecord(input)) throw new IngressdError('INGRESSD_ERR_BAD_REQUEST', 'the body must be a JSON or YAML object')
  const def = findKind(input.apiVersion, input.kind)
  if (def === undefined) {
    throw new IngressdError('INGRESSD_ERR_UNKNOWN_KIND', `no kind "${String(input.kind)}" is registered for version "${String(input.apiVersion)}": ingressd serves ${KINDS.map(k => `${k.kind} (${Object.keys(k.versions).join(', ')})`).join('; ')}`)
  }
  const apiVersion = input.apiVersion as string
  const version = def.versions[apiVersion] as VersionDefinition
  const rawMeta = isRecord(input.metadata) ? input.metadata : {}
  const displayName = typeof rawMeta.name === 'string' ? rawMeta.name : (target.name ?? '')
  const structural = version.check(input)
  if (structural.length > 0) throw invalidObject(def.kind, def.group, displayName, structural)

  const meta = input.metadata as { name?: string, namespace?: string, labels?: Record<string, string>, annotations?: Record<string, string>, resourceVersion?: string }
  if (target.name !== undefined && meta.name !== undefined && meta.name !== target.name) {
    throw new IngressdError('INGRESSD_ERR_NAMESPACE_MISMATCH', `the name of the object (${meta.name}) does not match the name on the URL (${target.name})`, { subject: { name: meta.name, group: def.group, kind: def.kind } })
  }
  if (def.namespaced && target.namespace !== undefined && meta.namespace !== undefined && meta.namespace !== target.namespace) {
    throw new IngressdError('INGRESSD_ERR_NAMESPACE_MISMATCH', `the namespace of the provided object (${meta.namespace}) does not match the namespace sent on the request (${target.namespace})`, { subject: { name: displayName, group: def.group, kind: def.kind } })
  }
  const name = meta.name ?? target.name ?? ''
  const namespace = def.namespaced ? (meta.namespace ?? target.namespace ?? 'default') : ''
  const causes = new CauseList()
  validateObjectName({ name, namespace }, def.namespaced, def.nameRule, causes)
  validateLabelsAndAnnotations(meta, causes)

  const prepared: PreparedObject = { def, namespace, name, content: {} }
  if (meta.labels !== undefined && Object.keys(meta.labels).length > 0) prepared.labels = meta.labels
  if (meta.annotations !== undefined && Object.keys(meta.annotations).length > 0) prepared.annotations = meta.annotations
  if (meta.resourceVersion !== undefined && meta.resourceVersion !== '') prepared.resourceVersion = meta.resourceVersion
  let errorCode: 'INGRESSD_ERR_INVALID' | 'INGRESSD_ERR_TLS_INVALID' = 'INGRESSD_ERR_INVALID'

  switch (def.kind) {
    case 'Ingress': {
      const spec = (apiVersion === def.storageVersion ? input.spec : ingressSpecFromBeta(input.spec as Parameters<typeof ingressSpecFromBeta>[0])) as IngressSpecType
      validateIngressSpec(spec, meta.annotations, causes, { namespace, name })
      prepared.content = { spec }
      break
    }
    case 'Service':
      validateServiceSpec(input.spec as Parameters<typeof validateServiceSpec>[0], causes)
      prepared.content = { spec: input.spec }
      break
    case 'Endpoints':
      validateEndpointSubsets(input.subsets as Parameters<typeof validateEndpointSubsets>[0], causes)
      prepared.content = input.subsets === undefined ? {} : { subsets: input.subsets }
      break
    case 'IngressClass':
      prepared.content = input.spec === undefined ? {} : { spec: input.spec }
      break
    case 'Secret': {
      const existingKey = causes.empty ? storedKey?.(namespace, name) : undefined
      const { prepared: secret, tlsCauses } = prepareSecret(input as Parameters<typeof prepareSecret>[0], existingKey, causes)
      if (tlsCauses) errorCode = 'INGRESSD_ERR_TLS_INVALID'
      if (secret !== undefined) {
        const lastApplied = prepared.annotations?.[LAST_APPLIED_ANNOTATION]
        if (lastApplied !== undefined) prepared.annotations = { ...prepared.annotations, [LAST_APPLIED_ANNOTATION]: redactLastApplied(lastApplied, secret.body.type === 'kubernetes.io/tls') }
        prepared.content = { ...secret.body }
        // Always set, so a write never leaves another type's write-only value behind in the column.
        prepared.privateKey = secret.privateKey
        if (secret.certificate !== undefined) prepared.certificate = secret.certificate
      }
      break
    }
  }
  if (!causes.empty) throw invalidObject(def.kind, def.group, name, causes.causes, errorCode)
  return prepared
}

/** Builds the object a client reads, in the apiVersion it asked for. */
export function presentObject (def: KindDefinition, apiVersion: string, meta: StoredMeta, content: StoredContent, status?: Record<string, unknown>): Record<string, unknown> {
  const metadata = presentMetadata(def.namespaced, meta)
  let body = content
  if (def.kind === 'Ingress' && apiVersion !== def.storageVersion) {
    body = { ...content, spec: ingressSpecToBeta(content.spec as IngressSpecType) }
  }
  if (def.kind === 'Secret' && status !== undefined) body = { ...body, data: withPlaceholders(body.data as Record<string, string> | undefined, status) }
  const out: Record<string, unknown> = { apiVersion, kind: def.kind, metadata, ...body }
  if (status !== undefined) out.status = status
  return out
}

/** A Secret's served data: the public values, and a placeholder of its size for each write-only one (status.keyBytes, status.data). */
function withPlaceholders (data: Record<string, string> | undefined, status: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = { ...data }
  if (typeof status.keyBytes === 'number') out['tls.key'] = writeOnlyPlaceholder(status.keyBytes)
  for (const [key, size] of Object.entries((status.data ?? {}) as Record<string, { bytes: number }>)) out[key] = writeOnlyPlaceholder(size.bytes)
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0))
}
