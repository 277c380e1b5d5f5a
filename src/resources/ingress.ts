/**
 * Ingress: the networking.k8s.io/v1 schema (the storage version), the older
 * extensions/v1beta1 and networking.k8s.io/v1beta1 shapes, the conversions between them, and the
 * API server's validation rules.
 */
import { isIP } from 'node:net'
import Type from 'typebox'
import { Condition, ObjectMeta, ObjectMetaInput } from './meta.js'
import { parseIngressAnnotations } from './annotations.js'
import { regexPathProblem, usesRegexPaths } from './path-regex.js'
import { CauseList, isDns1035Label, isDns1123Subdomain } from './validation.js'

export const PATH_TYPES = ['Exact', 'Prefix', 'ImplementationSpecific'] as const
export type PathType = typeof PATH_TYPES[number]

const PathTypeSchema = Type.Union([Type.Literal('Exact'), Type.Literal('Prefix'), Type.Literal('ImplementationSpecific')])

const TypedLocalObjectReference = Type.Object({
  apiGroup: Type.Optional(Type.String()),
  kind: Type.String(),
  name: Type.String()
})

export const ServiceBackendPort = Type.Object({
  name: Type.Optional(Type.String({ examples: ['http'] })),
  number: Type.Optional(Type.Integer({ examples: [80] }))
}, { additionalProperties: false })

export const IngressBackend = Type.Object({
  service: Type.Optional(Type.Object({
    name: Type.String({ examples: ['service1'] }),
    port: ServiceBackendPort
  }, { additionalProperties: false })),
  resource: Type.Optional(TypedLocalObjectReference)
}, { additionalProperties: false })
export type IngressBackend = Type.Static<typeof IngressBackend>

const IngressTLS = Type.Object({
  hosts: Type.Optional(Type.Array(Type.String(), { examples: [['www.basic-ssl.com']] })),
  secretName: Type.Optional(Type.String({ examples: ['my-https'] }))
}, { additionalProperties: false })

const HTTPIngressPath = Type.Object({
  path: Type.Optional(Type.String({ examples: ['/path1'] })),
  pathType: PathTypeSchema,
  backend: IngressBackend
}, { additionalProperties: false })

const IngressRule = Type.Object({
  host: Type.Optional(Type.String({ examples: ['www.basic1.com'] })),
  http: Type.Optional(Type.Object({ paths: Type.Array(HTTPIngressPath) }, { additionalProperties: false }))
}, { additionalProperties: false })

export const IngressSpec = Type.Object({
  ingressClassName: Type.Optional(Type.String()),
  defaultBackend: Type.Optional(IngressBackend),
  tls: Type.Optional(Type.Array(IngressTLS)),
  rules: Type.Optional(Type.Array(IngressRule))
}, { additionalProperties: false })

export const IngressStatus = Type.Object({
  loadBalancer: Type.Optional(Type.Object({
    ingress: Type.Optional(Type.Array(Type.Object({
      ip: Type.Optional(Type.String()),
      hostname: Type.Optional(Type.String())
    })))
  })),
  conditions: Type.Optional(Type.Array(Condition))
})

/** An Ingress as clients send it in the v1 shape. */
export const IngressV1Input = Type.Object({
  apiVersion: Type.Literal('networking.k8s.io/v1'),
  kind: Type.Literal('Ingress'),
  metadata: ObjectMetaInput,
  spec: IngressSpec,
  status: Type.Optional(Type.Unknown())
}, {
  additionalProperties: false,
  $id: 'IngressInput',
  examples: [{
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name: 'basic', annotations: { 'nginx.ingress.kubernetes.io/rewrite-target': '/' } },
    spec: { rules: [{ host: 'www.basic1.com', http: { paths: [{ path: '/path1', pathType: 'Prefix', backend: { service: { name: 'service1', port: { number: 80 } } } }] } }] }
  }]
})

/** An Ingress as stored and served: the v1 shape with server-managed metadata and status. */
export const Ingress = Type.Object({
  apiVersion: Type.Literal('networking.k8s.io/v1'),
  kind: Type.Literal('Ingress'),
  metadata: ObjectMeta,
  spec: IngressSpec,
  status: Type.Optional(IngressStatus)
}, { $id: 'Ingress' })
export type Ingress = Type.Static<typeof Ingress>
export type IngressSpecType = Type.Static<typeof IngressSpec>

// The pre-v1 shapes: serviceName/servicePort backends, `backend` instead of `defaultBackend`,
// pathType optional.
const IntOrString = Type.Union([Type.Integer(), Type.String()])
const IngressBackendBeta = Type.Object({
  serviceName: Type.Optional(Type.String({ examples: ['service1'] })),
  servicePort: Type.Optional(IntOrString),
  resource: Type.Optional(TypedLocalObjectReference)
}, { additionalProperties: false })
type IngressBackendBeta = Type.Static<typeof IngressBackendBeta>

const IngressSpecBeta = Type.Object({
  ingressClassName: Type.Optional(Type.String()),
  backend: Type.Optional(IngressBackendBeta),
  tls: Type.Optional(Type.Array(IngressTLS)),
  rules: Type.Optional(Type.Array(Type.Object({
    host: Type.Optional(Type.String()),
    http: Type.Optional(Type.Object({
      paths: Type.Array(Type.Object({
        path: Type.Optional(Type.String()),
        pathType: Type.Optional(PathTypeSchema),
        backend: IngressBackendBeta
      }, { additionalProperties: false }))
    }, { additionalProperties: false }))
  }, { additionalProperties: false })))
}, { additionalProperties: false })
type IngressSpecBeta = Type.Static<typeof IngressSpecBeta>

export const BETA_INGRESS_VERSIONS = ['extensions/v1beta1', 'networking.k8s.io/v1beta1'] as const
export type BetaIngressVersion = typeof BETA_INGRESS_VERSIONS[number]

/** An Ingress in the extensions/v1beta1 or networking.k8s.io/v1beta1 shape, as sent. */
export const IngressBetaInput = Type.Object({
  apiVersion: Type.Union([Type.Literal('extensions/v1beta1'), Type.Literal('networking.k8s.io/v1beta1')]),
  kind: Type.Literal('Ingress'),
  metadata: ObjectMetaInput,
  spec: IngressSpecBeta,
  status: Type.Optional(Type.Unknown())
}, {
  additionalProperties: false,
  $id: 'IngressBetaInput',
  examples: [{
    apiVersion: 'extensions/v1beta1',
    kind: 'Ingress',
    metadata: { name: 'basic' },
    spec: { rules: [{ host: 'www.basic1.com', http: { paths: [{ path: '/path1', backend: { serviceName: 'service1', servicePort: 80 } }] } }] }
  }]
})

/** An Ingress served back in a pre-v1 shape. */
export const IngressBeta = Type.Object({
  apiVersion: Type.Union([Type.Literal('extensions/v1beta1'), Type.Literal('networking.k8s.io/v1beta1')]),
  kind: Type.Literal('Ingress'),
  metadata: ObjectMeta,
  spec: IngressSpecBeta,
  status: Type.Optional(IngressStatus)
}, { $id: 'IngressBeta' })

function backendFromBeta (b: IngressBackendBeta): IngressBackend {
  const out: IngressBackend = {}
  if (b.serviceName !== undefined || b.servicePort !== undefined) {
    const port = typeof b.servicePort === 'number'
      ? { number: b.servicePort }
      : /^\d+$/.test(b.servicePort ?? '') ? { number: Number(b.servicePort) } : { name: b.servicePort ?? '' }
    out.service = { name: b.serviceName ?? '', port }
  }
  if (b.resource !== undefined) out.resource = b.resource
  return out
}

function backendToBeta (b: IngressBackend): IngressBackendBeta {
  const out: IngressBackendBeta = {}
  if (b.service !== undefined) {
    out.serviceName = b.service.name
    out.servicePort = b.service.port.number ?? b.service.port.name ?? 0
  }
  if (b.resource !== undefined) out.resource = b.resource
  return out
}

/** Converts a pre-v1 spec to v1, as the API server does: a missing pathType becomes ImplementationSpecific. */
export function ingressSpecFromBeta (spec: IngressSpecBeta): IngressSpecType {
  const out: IngressSpecType = {}
  if (spec.ingressClassName !== undefined) out.ingressClassName = spec.ingressClassName
  if (spec.backend !== undefined) out.defaultBackend = backendFromBeta(spec.backend)
  if (spec.tls !== undefined) out.tls = spec.tls
  if (spec.rules !== undefined) {
    out.rules = spec.rules.map(rule => {
      const r: NonNullable<IngressSpecType['rules']>[number] = {}
      if (rule.host !== undefined) r.host = rule.host
      if (rule.http !== undefined) {
        r.http = {
          paths: rule.http.paths.map(p => {
            const path: { path?: string, pathType: PathType, backend: IngressBackend } = { pathType: p.pathType ?? 'ImplementationSpecific', backend: backendFromBeta(p.backend) }
            if (p.path !== undefined) path.path = p.path
            return path
          })
        }
      }
      return r
    })
  }
  return out
}

/** Converts a stored v1 spec back to a pre-v1 shape for reads at the older paths. */
export function ingressSpecToBeta (spec: IngressSpecType): IngressSpecBeta {
  const out: IngressSpecBeta = {}
  if (spec.ingressClassName !== undefined) out.ingressClassName = spec.ingressClassName
  if (spec.defaultBackend !== undefined) out.backend = backendToBeta(spec.defaultBackend)
  if (spec.tls !== undefined) out.tls = spec.tls
  if (spec.rules !== undefined) {
    out.rules = spec.rules.map(rule => {
      const r: NonNullable<IngressSpecBeta['rules']>[number] = {}
      if (rule.host !== undefined) r.host = rule.host
      if (rule.http !== undefined) {
        r.http = {
          paths: rule.http.paths.map(p => {
            // ImplementationSpecific is what the beta APIs default an omitted pathType to, so a beta
            // read leaves it out: the manifest read back is the manifest sent, and client-side
            // `kubectl apply` of an unchanged beta file finds nothing to patch ("unchanged").
            const path: { path?: string, pathType?: PathType, backend: IngressBackendBeta } = p.pathType === 'ImplementationSpecific' ? { backend: backendToBeta(p.backend) } : { pathType: p.pathType, backend: backendToBeta(p.backend) }
            if (p.path !== undefined) path.path = p.path
            return path
          })
        }
      }
      return r
    })
  }
  return out
}

/** Why a host is refused, or undefined. Wildcards are `*.` plus a DNS subdomain; IPs and ports are not hosts. */
export function hostProblem (host: string): string | undefined {
  if (isIP(host) !== 0) return 'must be a DNS name, not an IP address'
  if (host.includes(':')) return 'must be a DNS name without a port'
  if (host.startsWith('*.')) {
    return isDns1123Subdomain(host.slice(2)) ? undefined : 'a wildcard DNS-1123 subdomain must start with \'*.\', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, \'-\' or \'.\' and end with an alphanumeric character'
  }
  if (host.includes('*')) return 'a wildcard must be a single \'*\' label at the start, like \'*.example.com\''
  return isDns1123Subdomain(host) ? undefined : 'a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \'-\' or \'.\', and must start and end with an alphanumeric character'
}

const INVALID_PATH_SEQUENCES = ['//', '/./', '/../', '%2f', '%2F']
const INVALID_PATH_SUFFIXES = ['/..', '/.']
const IANA_SVC_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/

function validateBackend (backend: IngressBackend, field: string, causes: CauseList): void {
  if (backend.service !== undefined && backend.resource !== undefined) {
    causes.invalid(field, '', 'cannot set both service and resource backends')
    return
  }
  if (backend.resource !== undefined) {
    causes.notSupported(`${field}.resource`, backend.resource.kind, ['service backends only: ingressd proxies to Services'])
    return
  }
  if (backend.service === undefined) {
    causes.required(`${field}.service`, 'a backend must name a service')
    return
  }
  const svc = backend.service
  if (!isDns1035Label(svc.name)) causes.invalid(`${field}.service.name`, svc.name, 'a Service name must be a DNS-1035 label: lower case alphanumerics or \'-\', starting with a letter')
  const port = svc.port
  if (port.name !== undefined && port.number !== undefined) {
    causes.invalid(`${field}.service.port`, port, 'cannot set both port name and port number')
  } else if (port.number !== undefined) {
    if (port.number < 1 || port.number > 65535) causes.invalid(`${field}.service.port.number`, port.number, 'must be between 1 and 65535, inclusive')
  } else if (port.name !== undefined) {
    if (port.name.length > 15 || !IANA_SVC_NAME.test(port.name) || !/[a-z]/.test(port.name) || port.name.includes('--')) {
      causes.invalid(`${field}.service.port.name`, port.name, 'must be an IANA service name: at most 15 lower case alphanumerics or \'-\', with at least one letter')
    }
  } else {
    causes.required(`${field}.service.port`, 'port name or number is required')
  }
}

function validatePath (path: string | undefined, pathType: PathType, regex: boolean, field: string, causes: CauseList): void {
  if (pathType === 'ImplementationSpecific') {
    if (path === undefined || path === '') return
    if (!path.startsWith('/')) causes.invalid(`${field}.path`, path, 'must be an absolute path')
    else if (regex) {
      const problem = regexPathProblem(path)
      if (problem !== undefined) causes.invalid(`${field}.path`, path, problem)
    }
    return
  }
  if (path === undefined || path === '' || !path.startsWith('/')) {
    causes.invalid(`${field}.path`, path ?? '', 'must be an absolute path')
    return
  }
  for (const seq of INVALID_PATH_SEQUENCES) {
    if (path.includes(seq)) {
      causes.invalid(`${field}.path`, path, `must not contain '${seq}'`)
      return
    }
  }
  for (const suffix of INVALID_PATH_SUFFIXES) {
    if (path.endsWith(suffix)) {
      causes.invalid(`${field}.path`, path, `cannot end with '${suffix}'`)
      return
    }
  }
  // In regex mode the data plane matches Prefix paths as expressions too (Exact stays literal).
  if (regex && pathType === 'Prefix') {
    const problem = regexPathProblem(path)
    if (problem !== undefined) causes.invalid(`${field}.path`, path, problem)
  }
}

/** The API server's semantic rules for an Ingress in the v1 shape. */
export function validateIngressSpec (spec: IngressSpecType, annotations: Record<string, string> | undefined, causes: CauseList, owner: { namespace: string, name: string } = { namespace: 'default', name: '' }): void {
  const regex = usesRegexPaths(annotations)
  // The annotations ingressd understands are typed: a malformed value, or a snippet of raw
  // configuration, is refused here rather than discovered by the data plane. Unknown
  // nginx.ingress.kubernetes.io/* keys are accepted and reported as ignored on the status.
  for (const problem of parseIngressAnnotations(annotations, owner).problems) {
    causes.invalid(`metadata.annotations[${problem.key}]`, annotations?.[problem.key] ?? '', problem.message)
  }
  if (spec.defaultBackend === undefined && (spec.rules === undefined || spec.rules.length === 0)) {
    causes.required('spec', 'either `defaultBackend` or `rules` must be specified')
  }
  if (spec.ingressClassName !== undefined && !isDns1123Subdomain(spec.ingressClassName)) {
    causes.invalid('spec.ingressClassName', spec.ingressClassName, 'must be a DNS-1123 subdomain')
  }
  if (spec.defaultBackend !== undefined) validateBackend(spec.defaultBackend, 'spec.defaultBackend', causes)
  spec.tls?.forEach((tls, i) => {
    tls.hosts?.forEach((host, j) => {
      const problem = hostProblem(host)
      if (problem !== undefined) causes.invalid(`spec.tls[${i}].hosts[${j}]`, host, problem)
    })
    if (tls.secretName !== undefined && tls.secretName !== '' && !isDns1123Subdomain(tls.secretName)) {
      causes.invalid(`spec.tls[${i}].secretName`, tls.secretName, 'must be a DNS-1123 subdomain')
    }
  })
  spec.rules?.forEach((rule, i) => {
    const field = `spec.rules[${i}]`
    if (rule.host !== undefined && rule.host !== '') {
      const problem = hostProblem(rule.host)
      if (problem !== undefined) causes.invalid(`${field}.host`, rule.host, problem)
    }
    if (rule.http === undefined) return
    if (rule.http.paths.length === 0) causes.required(`${field}.http.paths`, 'at least one path is required')
    rule.http.paths.forEach((p, j) => {
      const pathField = `${field}.http.paths[${j}]`
      validatePath(p.path, p.pathType, regex, pathField, causes)
      validateBackend(p.backend, `${pathField}.backend`, causes)
    })
  })
}

/** Every service an ingress names, for status checks and the rules table. */
export function ingressServiceNames (spec: IngressSpecType): string[] {
  const names = new Set<string>()
  if (spec.defaultBackend?.service !== undefined) names.add(spec.defaultBackend.service.name)
  for (const rule of spec.rules ?? []) {
    for (const p of rule.http?.paths ?? []) if (p.backend.service !== undefined) names.add(p.backend.service.name)
  }
  return [...names]
}
