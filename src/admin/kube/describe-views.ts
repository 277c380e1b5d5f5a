/**
 * Read-only views `kubectl describe` asks for besides the object itself: the events of an object
 * (ingressd records none: its object status carries the conditions instead, so the list is empty,
 * as on a cluster whose events expired), and the EndpointSlices of a Service (kubectl 1.31 and
 * newer print an Ingress's backends from them), made from the stored Endpoints, which stay the
 * one source of addresses.
 */
import { isIPv6 } from 'node:net'
import type { FastifyInstance } from 'fastify'
import Type from 'typebox'
import { IngressdError } from '../../errors.js'
import { parseLabelSelector } from '../../resources/label-selector.js'
import type { ObjectStore, StoredObject } from '../../store/object-store.js'

interface Subset {
  addresses?: { ip: string, hostname?: string, nodeName?: string }[]
  notReadyAddresses?: { ip: string, hostname?: string, nodeName?: string }[]
  ports?: { name?: string, port: number, protocol?: string, appProtocol?: string }[]
}

const SERVICE_NAME_LABEL = 'kubernetes.io/service-name'

/** The EndpointSlices of one Endpoints object: one per subset and address family, named after the service. */
export function endpointSlices (endpoints: StoredObject): Record<string, unknown>[] {
  const subsets = (endpoints.content.subsets ?? []) as Subset[]
  const out: Record<string, unknown>[] = []
  subsets.forEach((subset, i) => {
    for (const family of ['IPv4', 'IPv6'] as const) {
      const pick = (list: Subset['addresses'], ready: boolean): Record<string, unknown>[] => (list ?? [])
        .filter(a => isIPv6(a.ip) === (family === 'IPv6'))
        .map(a => ({ addresses: [a.ip], conditions: { ready, serving: ready, terminating: false }, ...(a.hostname === undefined ? {} : { hostname: a.hostname }), ...(a.nodeName === undefined ? {} : { nodeName: a.nodeName }) }))
      const items = [...pick(subset.addresses, true), ...pick(subset.notReadyAddresses, false)]
      if (items.length === 0) continue
      out.push({
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: {
          name: `${endpoints.meta.name}-${family.toLowerCase()}-${i}`,
          namespace: endpoints.meta.namespace,
          labels: { [SERVICE_NAME_LABEL]: endpoints.meta.name, 'endpointslice.kubernetes.io/managed-by': 'ingressd' },
          uid: endpoints.meta.uid,
          resourceVersion: endpoints.meta.resourceVersion,
          creationTimestamp: endpoints.meta.creationTimestamp
        },
        addressType: family,
        endpoints: items,
        ports: (subset.ports ?? []).map(p => ({ ...(p.name === undefined ? { name: '' } : { name: p.name }), port: p.port, protocol: p.protocol ?? 'TCP', ...(p.appProtocol === undefined ? {} : { appProtocol: p.appProtocol }) }))
      })
    }
  })
  return out
}

const ListQuery = Type.Object({
  labelSelector: Type.Optional(Type.String()),
  fieldSelector: Type.Optional(Type.String()),
  limit: Type.Optional(Type.String())
})
const AnyObject = Type.Object({}, { additionalProperties: true })
const TAG = 'Kubernetes API'

/** Registers the events and EndpointSlice list paths (all namespaces and one namespace). */
export function registerDescribeViews (app: FastifyInstance, store: ObjectStore): void {
  const eventList = (): Record<string, unknown> => ({ kind: 'EventList', apiVersion: 'v1', metadata: { resourceVersion: String(store.resourceVersion()) }, items: [] })
  const eventSchema = (operationId: string): Record<string, unknown> => ({ tags: [TAG], operationId, summary: 'Events: always empty (ingressd reports through status conditions); for kubectl describe', querystring: ListQuery, response: { 200: AnyObject } })
  app.get('/api/v1/events', { schema: eventSchema('listCoreV1EventForAllNamespaces') }, async () => eventList())
  app.get('/api/v1/namespaces/:namespace/events', { schema: eventSchema('listCoreV1NamespacedEvent') }, async () => eventList())

  const sliceList = (namespace: string | undefined, query: { labelSelector?: string, fieldSelector?: string }): Record<string, unknown> => {
    const selector = query.labelSelector === undefined || query.labelSelector === '' ? undefined : parseLabelSelector(query.labelSelector)
    if (query.fieldSelector !== undefined && query.fieldSelector !== '') {
      throw new IngressdError('INGRESSD_ERR_BAD_REQUEST', `field label not supported: ${query.fieldSelector.split(/[=!]/)[0] ?? ''}`)
    }
    const items: Record<string, unknown>[] = []
    for (const ep of store.iterate('Endpoints', namespace)) {
      for (const slice of endpointSlices(ep)) {
        const labels = (slice.metadata as { labels: Record<string, string> }).labels
        if (selector === undefined || selector.matches(labels)) items.push(slice)
      }
    }
    return { kind: 'EndpointSliceList', apiVersion: 'discovery.k8s.io/v1', metadata: { resourceVersion: String(store.resourceVersion()) }, items }
  }
  const sliceSchema = (operationId: string): Record<string, unknown> => ({ tags: [TAG], operationId, summary: 'EndpointSlices made from the stored Endpoints (read-only); for kubectl describe', querystring: ListQuery, response: { 200: AnyObject } })
  app.get('/apis/discovery.k8s.io/v1/endpointslices', { schema: sliceSchema('listDiscoveryV1EndpointSliceForAllNamespaces') }, async (req) => sliceList(undefined, req.query as Record<string, string>))
  app.get('/apis/discovery.k8s.io/v1/namespaces/:namespace/endpointslices', { schema: sliceSchema('listDiscoveryV1NamespacedEndpointSlice') }, async (req) => sliceList((req.params as { namespace: string }).namespace, req.query as Record<string, string>))
  app.get('/apis/discovery.k8s.io/v1/namespaces/:namespace/endpointslices/:name', { schema: { tags: [TAG], operationId: 'readDiscoveryV1NamespacedEndpointSlice', summary: 'One EndpointSlice made from the stored Endpoints (read-only)', response: { 200: AnyObject } } }, async (req) => {
    const { namespace, name } = req.params as { namespace: string, name: string }
    for (const ep of store.iterate('Endpoints', namespace)) {
      const slice = endpointSlices(ep).find(s => (s.metadata as { name: string }).name === name)
      if (slice !== undefined) return slice
    }
    throw new IngressdError('INGRESSD_ERR_NOT_FOUND', `endpointslices.discovery.k8s.io "${name}" not found`, { subject: { name, group: 'discovery.k8s.io', kind: 'endpointslices' } })
  })
}
