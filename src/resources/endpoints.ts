/**
 * Endpoints (v1): the addresses behind a Service of the same name.
 */
import { isIP } from 'node:net'
import Type from 'typebox'
import { ObjectMeta, ObjectMetaInput } from './meta.js'
import type { CauseList } from './validation.js'

const EndpointAddress = Type.Object({
  ip: Type.String({ examples: ['127.0.0.1'] }),
  hostname: Type.Optional(Type.String()),
  nodeName: Type.Optional(Type.String()),
  targetRef: Type.Optional(Type.Unknown())
}, { additionalProperties: false })

const EndpointPort = Type.Object({
  name: Type.Optional(Type.String({ examples: ['http'] })),
  port: Type.Integer({ examples: [8080] }),
  protocol: Type.Optional(Type.Union([Type.Literal('TCP'), Type.Literal('UDP'), Type.Literal('SCTP')])),
  appProtocol: Type.Optional(Type.String())
}, { additionalProperties: false })

export const EndpointSubset = Type.Object({
  addresses: Type.Optional(Type.Array(EndpointAddress)),
  notReadyAddresses: Type.Optional(Type.Array(EndpointAddress)),
  ports: Type.Optional(Type.Array(EndpointPort))
}, { additionalProperties: false })

export const EndpointsInput = Type.Object({
  apiVersion: Type.Literal('v1'),
  kind: Type.Literal('Endpoints'),
  metadata: ObjectMetaInput,
  subsets: Type.Optional(Type.Array(EndpointSubset))
}, {
  additionalProperties: false,
  $id: 'EndpointsInput',
  examples: [{ apiVersion: 'v1', kind: 'Endpoints', metadata: { name: 'service1' }, subsets: [{ addresses: [{ ip: '127.0.0.1' }], ports: [{ name: 'http', port: 8080 }] }] }]
})

export const Endpoints = Type.Object({
  apiVersion: Type.Literal('v1'),
  kind: Type.Literal('Endpoints'),
  metadata: ObjectMeta,
  subsets: Type.Optional(Type.Array(EndpointSubset))
}, { $id: 'Endpoints' })
export type Endpoints = Type.Static<typeof Endpoints>

/**
 * The API server's rules for Endpoints, less one: loopback addresses are allowed, because a
 * gateway on a laptop proxies to processes on the same machine.
 */
export function validateEndpointSubsets (subsets: Type.Static<typeof EndpointSubset>[] | undefined, causes: CauseList): void {
  subsets?.forEach((subset, i) => {
    for (const list of ['addresses', 'notReadyAddresses'] as const) {
      subset[list]?.forEach((a, j) => {
        if (isIP(a.ip) === 0) causes.invalid(`subsets[${i}].${list}[${j}].ip`, a.ip, 'must be a valid IP address')
      })
    }
    const ports = subset.ports ?? []
    ports.forEach((p, j) => {
      if (p.port < 1 || p.port > 65535) causes.invalid(`subsets[${i}].ports[${j}].port`, p.port, 'must be between 1 and 65535, inclusive')
      if (ports.length > 1 && (p.name === undefined || p.name === '')) causes.required(`subsets[${i}].ports[${j}].name`, 'each port needs a name when a subset has more than one')
    })
  })
}
