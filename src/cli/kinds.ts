/**
 * The kinds the client verbs know: the names kubectl accepts for each (plural, singular, short
 * and fully qualified), and where each lives in the admin API.
 *
 * Plain data on purpose: the client does not load the resource schemas. A test checks it against
 * src/resources/kinds.ts so the two cannot drift apart.
 */

/** One kind as the client sees it. */
export interface ClientKind {
  kind: 'Ingress' | 'Service' | 'Endpoints' | 'Secret' | 'IngressClass' | 'Node'
  /** API group; '' for the core group. */
  group: string
  /** The version the client reads and writes (the storage version). */
  apiVersion: string
  plural: string
  namespaced: boolean
  /** kubectl's short names: `ing`, `svc`, `ep`. */
  shortNames: string[]
}

export const CLIENT_KINDS: readonly ClientKind[] = [
  { kind: 'Ingress', group: 'networking.k8s.io', apiVersion: 'networking.k8s.io/v1', plural: 'ingresses', namespaced: true, shortNames: ['ing'] },
  { kind: 'Service', group: '', apiVersion: 'v1', plural: 'services', namespaced: true, shortNames: ['svc'] },
  { kind: 'Endpoints', group: '', apiVersion: 'v1', plural: 'endpoints', namespaced: true, shortNames: ['ep'] },
  { kind: 'Secret', group: '', apiVersion: 'v1', plural: 'secrets', namespaced: true, shortNames: [] },
  { kind: 'IngressClass', group: 'networking.k8s.io', apiVersion: 'networking.k8s.io/v1', plural: 'ingressclasses', namespaced: false, shortNames: [] }
]

/**
 * The gateway nodes (`get nodes`): read-only, reported by the nodes themselves, so not among
 * CLIENT_KINDS, which are the kinds the API stores (and `apply` and `delete` take).
 */
export const NODE_KIND: ClientKind = { kind: 'Node', group: 'ingressd.io', apiVersion: 'ingressd.io/v1', plural: 'nodes', namespaced: false, shortNames: ['no'] }

/** Groups an Ingress is also served in by older manifests (`ingress.extensions` is still an Ingress). */
const LEGACY_GROUPS: Record<string, string[]> = { Ingress: ['extensions'] }

/** Every name that resolves to a kind: `ingress`, `ingresses`, `ing`, `ingresses.networking.k8s.io`, `Ingress`... */
const BY_NAME = new Map<string, ClientKind>()
for (const k of [...CLIENT_KINDS, NODE_KIND]) {
  const singular = k.kind.toLowerCase()
  const bare = [singular, k.plural, ...k.shortNames]
  // kubectl also takes the singular of Endpoints as "endpoint".
  if (k.kind === 'Endpoints') bare.push('endpoint')
  for (const name of bare) {
    BY_NAME.set(name, k)
    for (const group of [k.group, ...(LEGACY_GROUPS[k.kind] ?? [])]) {
      if (group !== '') BY_NAME.set(`${name}.${group}`, k)
    }
  }
}

/** The kind a kubectl resource name stands for (case-insensitive), or undefined. */
export function resolveKind (name: string): ClientKind | undefined {
  return BY_NAME.get(name.toLowerCase())
}

/** `ingresses (ing), services (svc), ...`: for "unknown kind" messages and usage text. */
export function kindNamesHelp (): string {
  return CLIENT_KINDS.map(k => k.shortNames.length === 0 ? k.plural : `${k.plural} (${k.shortNames.join(', ')})`).join(', ')
}

/** `/api/v1` or `/apis/networking.k8s.io/v1`: the root of an API version's paths. */
export function versionRoot (apiVersion: string): string {
  return apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`
}

/**
 * The collection path of a kind: in one namespace, or across all of them when `namespace` is
 * undefined (cluster-scoped kinds ignore it). `apiVersion` picks another served version.
 */
export function collectionPath (kind: ClientKind, namespace: string | undefined, apiVersion = kind.apiVersion): string {
  const root = versionRoot(apiVersion)
  if (!kind.namespaced || namespace === undefined) return `${root}/${kind.plural}`
  return `${root}/namespaces/${encodeURIComponent(namespace)}/${kind.plural}`
}

/** The path of one object. */
export function itemPath (kind: ClientKind, namespace: string, name: string, apiVersion = kind.apiVersion): string {
  return `${collectionPath(kind, namespace, apiVersion)}/${encodeURIComponent(name)}`
}

/**
 * How kubectl names a kind in its messages: `ingress.networking.k8s.io`, `service`, `secret`. An
 * apiVersion (from a manifest) gives its own group: `ingress.extensions`.
 */
export function qualifiedKind (kind: ClientKind, apiVersion = kind.apiVersion): string {
  const group = apiVersion.includes('/') ? apiVersion.slice(0, apiVersion.indexOf('/')) : ''
  return group === '' ? kind.kind.toLowerCase() : `${kind.kind.toLowerCase()}.${group}`
}

/** The kind of a manifest's apiVersion and kind, when it is one ingressd serves in that version. */
export function kindOfManifest (apiVersion: unknown, kind: unknown): ClientKind | undefined {
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') return undefined
  const found = CLIENT_KINDS.find(k => k.kind === kind)
  if (found === undefined) return undefined
  const group = apiVersion.includes('/') ? apiVersion.slice(0, apiVersion.indexOf('/')) : ''
  return group === found.group || (LEGACY_GROUPS[found.kind] ?? []).includes(group) ? found : undefined
}
