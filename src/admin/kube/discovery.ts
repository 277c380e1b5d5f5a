/**
 * Kubernetes API discovery, as kubectl reads it before any other request: `/api` and `/apis`
 * (legacy APIVersions / APIGroupList, or the aggregated APIGroupDiscoveryList that kubectl 1.27
 * and newer ask for first), and one APIResourceList per group version. Everything is derived
 * from the kinds ingressd serves (resources/kinds.ts) plus the read-only views kubectl's
 * `describe` asks for (events, EndpointSlices), so a new kind shows up here without a second list.
 */
import type { FastifyInstance, FastifyReply } from 'fastify'
import Type from 'typebox'
import { KINDS } from '../../resources/kinds.js'

/** One resource of a group version, as discovery lists it. */
export interface DiscoveredResource {
  /** The plural: the path segment (`ingresses`). */
  name: string
  singularName: string
  kind: string
  namespaced: boolean
  verbs: readonly string[]
  shortNames?: readonly string[]
}

const WRITE_VERBS = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'] as const
const READ_VERBS = ['get', 'list'] as const

/** kubectl's short names for our kinds, as Kubernetes publishes them (no `ing` on extensions/v1beta1). */
const SHORT_NAMES: Readonly<Record<string, readonly string[]>> = {
  'v1/services': ['svc'],
  'v1/endpoints': ['ep'],
  'v1/events': ['ev'],
  'networking.k8s.io/v1/ingresses': ['ing'],
  'discovery.k8s.io/v1/endpointslices': []
}

/** Read-only resources served for `kubectl describe` (admin/kube/describe-views.ts). */
const VIEWS: readonly (DiscoveredResource & { groupVersion: string })[] = [
  { groupVersion: 'v1', name: 'events', singularName: 'event', kind: 'Event', namespaced: true, verbs: ['list'] },
  { groupVersion: 'discovery.k8s.io/v1', name: 'endpointslices', singularName: 'endpointslice', kind: 'EndpointSlice', namespaced: true, verbs: READ_VERBS }
]

/** Every group version ingressd serves and its resources, in the order discovery lists them. */
export function servedGroupVersions (): Map<string, DiscoveredResource[]> {
  const out = new Map<string, DiscoveredResource[]>()
  const add = (groupVersion: string, resource: DiscoveredResource): void => {
    const list = out.get(groupVersion) ?? []
    list.push(resource)
    out.set(groupVersion, list)
  }
  for (const def of KINDS) {
    for (const apiVersion of Object.keys(def.versions)) {
      const shortNames = SHORT_NAMES[`${apiVersion}/${def.plural}`]
      add(apiVersion, { name: def.plural, singularName: def.kind.toLowerCase(), kind: def.kind, namespaced: def.namespaced, verbs: WRITE_VERBS, ...(shortNames === undefined || shortNames.length === 0 ? {} : { shortNames }) })
    }
  }
  for (const { groupVersion, ...view } of VIEWS) {
    const shortNames = SHORT_NAMES[`${groupVersion}/${view.name}`]
    add(groupVersion, { ...view, ...(shortNames === undefined || shortNames.length === 0 ? {} : { shortNames }) })
  }
  return out
}

function splitGroupVersion (groupVersion: string): { group: string, version: string } {
  const slash = groupVersion.indexOf('/')
  return slash === -1 ? { group: '', version: groupVersion } : { group: groupVersion.slice(0, slash), version: groupVersion.slice(slash + 1) }
}

/**
 * The named groups in the order kubectl should prefer them: networking.k8s.io before extensions,
 * so `kubectl get ingress` resolves to networking.k8s.io/v1 (Kubernetes lists them by priority
 * too); within a group, v1 before beta versions (the preferred version first).
 */
function groupOrder (versions: Map<string, DiscoveredResource[]>): { name: string, versions: string[] }[] {
  const groups = new Map<string, string[]>()
  for (const gv of versions.keys()) {
    const { group, version } = splitGroupVersion(gv)
    if (group === '') continue
    groups.set(group, [...(groups.get(group) ?? []), version])
  }
  const priority = (name: string): number => name === 'networking.k8s.io' ? 0 : name === 'extensions' ? 2 : 1
  return [...groups.entries()]
    .map(([name, vs]) => ({ name, versions: vs.sort((a, b) => versionRank(a) - versionRank(b)) }))
    .sort((a, b) => priority(a.name) - priority(b.name) || a.name.localeCompare(b.name))
}

/** v1 < v1beta2 < v1beta1 < v1alpha1, as Kubernetes orders versions (most preferred first). */
function versionRank (version: string): number {
  const m = /^v(\d+)(?:(alpha|beta)(\d+))?$/.exec(version)
  if (m === null) return 1000
  const major = Number(m[1])
  const stage = m[2] === undefined ? 0 : m[2] === 'beta' ? 1 : 2
  return stage * 100 - major * 10 - Number(m[3] ?? 0)
}

/** The APIResourceList of a group version (`GET /api/v1`, `GET /apis/networking.k8s.io/v1`). */
export function resourceList (groupVersion: string, resources: readonly DiscoveredResource[]): Record<string, unknown> {
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion,
    resources: resources.map(r => ({ name: r.name, singularName: r.singularName, namespaced: r.namespaced, kind: r.kind, verbs: r.verbs, ...(r.shortNames === undefined ? {} : { shortNames: r.shortNames }) }))
  }
}

/** Which aggregated discovery document the Accept header asks for first, if any (kubectl 1.27+). */
export function aggregatedDiscoveryVersion (accept: string | undefined): 'v2' | 'v2beta1' | undefined {
  for (const part of (accept ?? '').split(',')) {
    const [type, ...params] = part.split(';').map(s => s.trim())
    if (type === 'application/json' || type === '*/*' || type === 'application/*') {
      const p = new Map(params.map(kv => kv.split('=').map(s => s.trim()) as [string, string]))
      if (p.get('as') !== 'APIGroupDiscoveryList' || p.get('g') !== 'apidiscovery.k8s.io') return undefined
      const v = p.get('v')
      if (v === 'v2' || v === 'v2beta1') return v
    }
  }
  return undefined
}

/** One group's aggregated discovery entry: its versions and, inline, their resources. */
function discoveryGroup (name: string, versions: string[], all: Map<string, DiscoveredResource[]>): Record<string, unknown> {
  return {
    metadata: name === '' ? {} : { name },
    versions: versions.map(version => ({
      version,
      freshness: 'Current',
      resources: (all.get(name === '' ? version : `${name}/${version}`) ?? []).map(r => ({
        resource: r.name,
        responseKind: { group: name, version, kind: r.kind },
        scope: r.namespaced ? 'Namespaced' : 'Cluster',
        singularResource: r.singularName,
        verbs: r.verbs,
        ...(r.shortNames === undefined ? {} : { shortNames: r.shortNames })
      }))
    }))
  }
}

function sendAggregated (reply: FastifyReply, version: 'v2' | 'v2beta1', items: Record<string, unknown>[]): FastifyReply {
  // The exact media type, parameters included: client-go checks it before reading the body.
  return reply
    .header('content-type', `application/json;g=apidiscovery.k8s.io;v=${version};as=APIGroupDiscoveryList`)
    .header('vary', 'Accept')
    .send(JSON.stringify({ kind: 'APIGroupDiscoveryList', apiVersion: `apidiscovery.k8s.io/${version}`, metadata: {}, items }))
}

const DISCOVERY_TAG = 'Kubernetes API'
const AnyObject = Type.Object({}, { additionalProperties: true })

/** Registers `/api`, `/apis` and every group version's resource list. */
export function registerDiscoveryRoutes (app: FastifyInstance): void {
  const all = servedGroupVersions()
  const groups = groupOrder(all)
  const legacy = [...all.keys()].filter(gv => !gv.includes('/'))
  const schema = (operationId: string, summary: string): Record<string, unknown> => ({ tags: [DISCOVERY_TAG], operationId, summary, response: { 200: AnyObject } })

  app.get('/api', { schema: schema('getCoreAPIVersions', 'Discovery: the core group\'s versions (APIVersions, or the aggregated APIGroupDiscoveryList when asked for)') }, async (req, reply) => {
    const aggregated = aggregatedDiscoveryVersion(req.headers.accept)
    if (aggregated !== undefined) return sendAggregated(reply, aggregated, [discoveryGroup('', legacy, all)])
    const host = req.headers.host ?? `${req.hostname}`
    return reply.header('vary', 'Accept').send({ kind: 'APIVersions', versions: legacy, serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: host }] })
  })

  app.get('/apis', { schema: schema('getAPIGroups', 'Discovery: the named groups (APIGroupList, or the aggregated APIGroupDiscoveryList when asked for)') }, async (req, reply) => {
    const aggregated = aggregatedDiscoveryVersion(req.headers.accept)
    if (aggregated !== undefined) return sendAggregated(reply, aggregated, groups.map(g => discoveryGroup(g.name, g.versions, all)))
    return reply.header('vary', 'Accept').send({
      kind: 'APIGroupList',
      apiVersion: 'v1',
      groups: groups.map(g => {
        const versions = g.versions.map(version => ({ groupVersion: `${g.name}/${version}`, version }))
        return { name: g.name, versions, preferredVersion: versions[0] }
      })
    })
  })

  for (const g of groups) {
    app.get(`/apis/${g.name}`, { schema: schema(`getAPIGroup${g.name.replace(/\W/g, '')}`, `Discovery: the ${g.name} group`) }, async () => {
      const versions = g.versions.map(version => ({ groupVersion: `${g.name}/${version}`, version }))
      return { kind: 'APIGroup', apiVersion: 'v1', name: g.name, versions, preferredVersion: versions[0] }
    })
  }

  for (const [groupVersion, resources] of all) {
    const path = groupVersion.includes('/') ? `/apis/${groupVersion}` : `/api/${groupVersion}`
    const body = resourceList(groupVersion, resources)
    app.get(path, { schema: schema(`getAPIResources${groupVersion.replace(/\W/g, '')}`, `Discovery: the resources of ${groupVersion}`) }, async () => body)
  }
}
