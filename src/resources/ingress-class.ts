/**
 * IngressClass (networking.k8s.io/v1, cluster-scoped): accepted so that manifest bundles which
 * carry one apply cleanly. Which classes ingressd serves is configuration (INGRESSD_INGRESS_CLASSES).
 */
import Type from 'typebox'
import { ObjectMeta, ObjectMetaInput } from './meta.js'

export const IngressClassSpec = Type.Object({
  controller: Type.Optional(Type.String({ examples: ['k8s.io/ingress-nginx'] })),
  parameters: Type.Optional(Type.Object({
    apiGroup: Type.Optional(Type.String()),
    kind: Type.String(),
    name: Type.String(),
    namespace: Type.Optional(Type.String()),
    scope: Type.Optional(Type.String())
  }))
}, { additionalProperties: false })

export const IngressClassInput = Type.Object({
  apiVersion: Type.Literal('networking.k8s.io/v1'),
  kind: Type.Literal('IngressClass'),
  metadata: ObjectMetaInput,
  spec: Type.Optional(IngressClassSpec)
}, {
  additionalProperties: false,
  $id: 'IngressClassInput',
  examples: [{ apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass', metadata: { name: 'nginx' }, spec: { controller: 'k8s.io/ingress-nginx' } }]
})

export const IngressClass = Type.Object({
  apiVersion: Type.Literal('networking.k8s.io/v1'),
  kind: Type.Literal('IngressClass'),
  metadata: ObjectMeta,
  spec: Type.Optional(IngressClassSpec)
}, { $id: 'IngressClass' })
export type IngressClass = Type.Static<typeof IngressClass>
