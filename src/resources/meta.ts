/**
 * ObjectMeta and the list and status envelopes every resource shares.
 */
import Type from 'typebox'

const StringMap = Type.Record(Type.String(), Type.String())

/**
 * metadata as clients send it. Server-managed fields (uid, resourceVersion, generation,
 * creationTimestamp) are accepted and then set by the store; others a manifest exported from a
 * cluster may carry (managedFields, selfLink, ownerReferences...) are accepted and dropped.
 */
export const ObjectMetaInput = Type.Object({
  name: Type.Optional(Type.String({ description: 'DNS-1123 subdomain (a DNS-1035 label for Services)', examples: ['basic'] })),
  namespace: Type.Optional(Type.String({ description: 'Defaults to the namespace in the path, else "default"', examples: ['default'] })),
  labels: Type.Optional(StringMap),
  annotations: Type.Optional(StringMap),
  uid: Type.Optional(Type.String()),
  resourceVersion: Type.Optional(Type.String({ description: 'Send the value you read to make PUT fail with 409 if the object changed since' })),
  generation: Type.Optional(Type.Integer()),
  creationTimestamp: Type.Optional(Type.Union([Type.String(), Type.Null()]))
}, { additionalProperties: true })

/** metadata as the API returns it: every server-managed field is set. */
export const ObjectMeta = Type.Object({
  name: Type.String(),
  namespace: Type.Optional(Type.String()),
  labels: Type.Optional(StringMap),
  annotations: Type.Optional(StringMap),
  uid: Type.String({ format: 'uuid' }),
  resourceVersion: Type.String({ description: 'Increases on every write across the store' }),
  generation: Type.Integer({ description: 'Increases when the object\'s spec (or data) changes' }),
  creationTimestamp: Type.String({ format: 'date-time' })
})
export type ObjectMeta = Type.Static<typeof ObjectMeta>

/** metadata of a list: the store's resourceVersion and the token for the next page. */
export const ListMeta = Type.Object({
  resourceVersion: Type.String(),
  continue: Type.Optional(Type.String({ description: 'Pass as `continue` to get the next page' })),
  remainingItemCount: Type.Optional(Type.Integer())
})

/** A condition in status.conditions, as Kubernetes objects carry them. */
export const Condition = Type.Object({
  type: Type.String({ examples: ['Served'] }),
  status: Type.Union([Type.Literal('True'), Type.Literal('False'), Type.Literal('Unknown')]),
  reason: Type.String(),
  message: Type.String(),
  lastTransitionTime: Type.Optional(Type.String({ format: 'date-time' })),
  observedGeneration: Type.Optional(Type.Integer())
})
export type Condition = Type.Static<typeof Condition>

/** The Kubernetes Status body of every failed admin request. */
export const StatusSchema = Type.Object({
  kind: Type.Literal('Status'),
  apiVersion: Type.Literal('v1'),
  metadata: Type.Object({}),
  status: Type.Literal('Failure'),
  message: Type.String(),
  reason: Type.String({ examples: ['NotFound', 'AlreadyExists', 'Invalid', 'Conflict', 'BadRequest', 'Unauthorized'] }),
  details: Type.Object({
    name: Type.Optional(Type.String()),
    group: Type.Optional(Type.String()),
    kind: Type.Optional(Type.String()),
    errorCode: Type.String({ description: 'Stable ingressd error code, listed in docs/errors.md', examples: ['INGRESSD_ERR_NOT_FOUND'] }),
    causes: Type.Optional(Type.Array(Type.Object({
      reason: Type.String(),
      message: Type.String(),
      field: Type.String({ examples: ['spec.rules[0].host'] })
    })))
  }),
  code: Type.Integer()
}, { $id: 'Status', description: 'Kubernetes Status: why a request failed' })
