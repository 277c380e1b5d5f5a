/**
 * Service (v1): the ports an ingress backend names, mapped through targetPort to Endpoints, or an
 * ExternalName resolved by DNS.
 */
import Type from 'typebox'
import { ObjectMeta, ObjectMetaInput } from './meta.js'
import { CauseList, isDns1035Label, isDns1123Label, isDns1123Subdomain } from './validation.js'

const ServicePort = Type.Object({
  name: Type.Optional(Type.String({ examples: ['http'] })),
  port: Type.Integer({ examples: [80] }),
  targetPort: Type.Optional(Type.Union([Type.Integer(), Type.String()], { examples: [8080] })),
  protocol: Type.Optional(Type.Union([Type.Literal('TCP'), Type.Literal('UDP'), Type.Literal('SCTP')])),
  appProtocol: Type.Optional(Type.String()),
  nodePort: Type.Optional(Type.Integer())
}, { additionalProperties: false })

export const ServiceSpec = Type.Object({
  type: Type.Optional(Type.Union([Type.Literal('ClusterIP'), Type.Literal('ExternalName'), Type.Literal('NodePort'), Type.Literal('LoadBalancer')], { description: 'NodePort and LoadBalancer route like ClusterIP' })),
  ports: Type.Optional(Type.Array(ServicePort)),
  externalName: Type.Optional(Type.String({ examples: ['backend.example.com'] })),
  selector: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'Stored, not used: Endpoints name the addresses' })),
  clusterIP: Type.Optional(Type.String()),
  clusterIPs: Type.Optional(Type.Array(Type.String())),
  sessionAffinity: Type.Optional(Type.String()),
  ipFamilies: Type.Optional(Type.Array(Type.String())),
  ipFamilyPolicy: Type.Optional(Type.String())
}, { additionalProperties: false })
export type ServiceSpec = Type.Static<typeof ServiceSpec>

export const ServiceInput = Type.Object({
  apiVersion: Type.Literal('v1'),
  kind: Type.Literal('Service'),
  metadata: ObjectMetaInput,
  spec: ServiceSpec,
  status: Type.Optional(Type.Unknown())
}, {
  additionalProperties: false,
  $id: 'ServiceInput',
  examples: [{ apiVersion: 'v1', kind: 'Service', metadata: { name: 'service1' }, spec: { ports: [{ name: 'http', port: 80, targetPort: 8080 }] } }]
})

export const Service = Type.Object({
  apiVersion: Type.Literal('v1'),
  kind: Type.Literal('Service'),
  metadata: ObjectMeta,
  spec: ServiceSpec,
  status: Type.Optional(Type.Object({ conditions: Type.Optional(Type.Array(Type.Unknown())) }))
}, { $id: 'Service' })
export type Service = Type.Static<typeof Service>

/** The API server's rules for a Service spec. */
export function validateServiceSpec (spec: ServiceSpec, causes: CauseList): void {
  const type = spec.type ?? 'ClusterIP'
  if (type === 'ExternalName') {
    if (spec.externalName === undefined || spec.externalName === '') causes.required('spec.externalName', 'an ExternalName service needs spec.externalName')
    else if (!isDns1123Subdomain(spec.externalName.replace(/\.$/, ''))) causes.invalid('spec.externalName', spec.externalName, 'must be a DNS name')
  } else if (spec.ports === undefined || spec.ports.length === 0) {
    causes.required('spec.ports', 'a service needs at least one port')
  }
  const names = new Set<string>()
  const ports = spec.ports ?? []
  ports.forEach((p, i) => {
    const field = `spec.ports[${i}]`
    if (p.port < 1 || p.port > 65535) causes.invalid(`${field}.port`, p.port, 'must be between 1 and 65535, inclusive')
    if (typeof p.targetPort === 'number' && (p.targetPort < 1 || p.targetPort > 65535)) causes.invalid(`${field}.targetPort`, p.targetPort, 'must be between 1 and 65535, inclusive')
    if (typeof p.targetPort === 'string' && !isDns1035Label(p.targetPort)) causes.invalid(`${field}.targetPort`, p.targetPort, 'a named port must be an IANA service name')
    if (ports.length > 1 && (p.name === undefined || p.name === '')) causes.required(`${field}.name`, 'each port needs a name when a service has more than one')
    if (p.name !== undefined && p.name !== '') {
      if (!isDns1123Label(p.name)) causes.invalid(`${field}.name`, p.name, 'must be a DNS-1123 label (lowercase alphanumerics and "-", at most 63 characters), as Kubernetes requires of a port name')
      if (names.has(p.name)) causes.duplicate(`${field}.name`, p.name)
      names.add(p.name)
    }
  })
}
