/**
 * Kubernetes Table output (meta.k8s.io/v1 and v1beta1): what `kubectl get` asks for with
 * `Accept: application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json`.
 * The server picks the columns and formats every cell, so kubectl prints what it prints against
 * Kubernetes: the columns and cells of k8s.io/kubernetes pkg/printers/internalversion/printers.go.
 *
 * As Kubernetes' TableConvertor does, every column is sent, the `-o wide` ones (priority 1)
 * included, and kubectl hides those unless asked; ages are computed here from creationTimestamp
 * (`5m`, `3d4h`, as duration.HumanDuration writes them). Each row carries the object's metadata
 * (PartialObjectMetadata, the default), the whole object, or nothing (`?includeObject=`):
 * kubectl reads namespaces (`-A`) and labels (`--show-labels`, `-L`) from it.
 *
 * The cell formatters shared with our own CLI come from cli/printers.ts; the few cells our CLI
 * approximates (ADDRESS sorted and not clipped, a Service's CLUSTER-IP and EXTERNAL-IP, an
 * IngressClass's PARAMETERS) are written here the way Kubernetes' printers write them.
 */
import { IngressdError } from '../../errors.js'
import { formatEndpoints, formatHosts, formatIngressPorts, formatLabels, formatServicePorts, secretDataKeys, type EndpointsView, type IngressClassView, type IngressView, type ObjectView, type SecretView, type ServiceView } from '../../cli/printers.js'
import { age } from '../../cli/table.js'
import type { KindName } from '../../resources/stored.js'

/** The meta.k8s.io version a client asked its Table in. */
export type TableVersion = 'v1' | 'v1beta1'

/** What each row carries besides its cells (`?includeObject=`; Metadata when unset). */
export type IncludeObject = 'None' | 'Metadata' | 'Object'

/** One column, as meta/v1 TableColumnDefinition describes it. */
export interface TableColumnDefinition {
  name: string
  type: string
  format: string
  description: string
  /** 0: always printed; 1: only with `-o wide`. */
  priority: number
}

/** How a Table is built. */
export interface TableOptions {
  includeObject: IncludeObject
  /** metadata of the Table: a list's resourceVersion and continue token, or one object's resourceVersion. */
  listMeta: { resourceVersion: string, continue?: string, remainingItemCount?: number }
  tableVersion: TableVersion
  /**
   * Leaves columnDefinitions out (null, as Kubernetes encodes them then): watch events after the
   * first carry rows only, and kubectl keeps the columns it has.
   */
  noHeaders?: boolean
  /** The clock ages are computed against (tests). */
  now?: Date
}

const NAME_DESCRIPTION = 'Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names'
const AGE_DESCRIPTION = 'CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata'

function column (name: string, description: string, extra: Partial<TableColumnDefinition> = {}): TableColumnDefinition {
  return { name, type: 'string', format: '', description, priority: 0, ...extra }
}

const NAME = column('Name', NAME_DESCRIPTION, { format: 'name' })
const AGE = column('Age', AGE_DESCRIPTION)

/** The columns Kubernetes defines for each kind, in its order, with its names (kubectl upper-cases them). */
const COLUMNS: Readonly<Record<KindName, readonly TableColumnDefinition[]>> = {
  Ingress: [
    NAME,
    column('Class', 'The name of the IngressClass resource that should be used for additional configuration'),
    column('Hosts', 'Hosts that incoming requests are matched against before the ingress rule'),
    column('Address', 'Address is a list containing ingress points for the load-balancer'),
    column('Ports', 'Ports of TLS configurations that open'),
    AGE
  ],
  Service: [
    NAME,
    column('Type', 'type determines how the Service is exposed. Defaults to ClusterIP.'),
    column('Cluster-IP', 'clusterIP is the IP address of the service and is usually assigned randomly.'),
    column('External-IP', 'externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.'),
    column('Port(s)', 'The list of ports that are exposed by this service.'),
    AGE,
    column('Selector', 'Route service traffic to pods with label keys and values matching this selector.', { priority: 1 })
  ],
  Endpoints: [
    NAME,
    column('Endpoints', 'The set of all endpoints is the union of all subsets.'),
    AGE
  ],
  Secret: [
    NAME,
    column('Type', 'Used to facilitate programmatic handling of secret data.'),
    column('Data', 'Data contains the secret data: the number of keys it holds.'),
    AGE
  ],
  IngressClass: [
    NAME,
    column('Controller', 'Controller that is responsible for handling this class'),
    column('Parameters', 'A reference to a resource with additional parameters'),
    AGE
  ]
}

/** The column definitions of a kind (all of them: priority 1 ones are kubectl's `-o wide`). */
export function tableColumns (kind: KindName): readonly TableColumnDefinition[] {
  return COLUMNS[kind]
}

/** status.loadBalancer.ingress as Kubernetes prints it: each IP (else hostname) once, sorted, comma-joined. */
function loadBalancerAddresses (entries: { ip?: string, hostname?: string }[] | undefined): string {
  const addresses = new Set<string>()
  for (const entry of entries ?? []) {
    if (entry.ip !== undefined && entry.ip !== '') addresses.add(entry.ip)
    else if (entry.hostname !== undefined && entry.hostname !== '') addresses.add(entry.hostname)
  }
  return [...addresses].sort().join(',')
}

type ServiceTableView = ServiceView & {
  spec?: ServiceView['spec'] & { clusterIPs?: string[], externalIPs?: string[] }
  status?: { loadBalancer?: { ingress?: { ip?: string, hostname?: string }[] } }
}

/** CLUSTER-IP: the first of spec.clusterIPs (which Kubernetes defaults from spec.clusterIP), or `<none>`. */
function serviceClusterIP (svc: ServiceTableView): string {
  const first = svc.spec?.clusterIPs?.[0] ?? svc.spec?.clusterIP
  return first === undefined || first === '' ? '<none>' : first
}

/** EXTERNAL-IP, as Kubernetes' getServiceExternalIP: `<none>`, `<pending>` for a LoadBalancer without addresses, or the external name. */
function serviceExternalIP (svc: ServiceTableView, type: string): string {
  const external = svc.spec?.externalIPs ?? []
  switch (type) {
    case 'ClusterIP':
    case 'NodePort':
      return external.length > 0 ? external.join(',') : '<none>'
    case 'LoadBalancer': {
      const lb = loadBalancerAddresses(svc.status?.loadBalancer?.ingress)
      if (external.length > 0) return [...(lb === '' ? [] : lb.split(',')), ...external].join(',')
      return lb === '' ? '<pending>' : lb
    }
    case 'ExternalName':
      return svc.spec?.externalName ?? ''
  }
  return '<unknown>'
}

/** The cells of one object's row, every column included. */
function rowCells (kind: KindName, obj: ObjectView, now: Date): unknown[] {
  const name = obj.metadata?.name ?? ''
  const created = age(obj.metadata?.creationTimestamp, now)
  switch (kind) {
    case 'Ingress': {
      const ing = obj as IngressView
      return [name, ing.spec?.ingressClassName ?? '<none>', formatHosts(ing), loadBalancerAddresses(ing.status?.loadBalancer?.ingress), formatIngressPorts(ing), created]
    }
    case 'Service': {
      const svc = obj as ServiceTableView
      // The API server defaults spec.type to ClusterIP; a stored object may leave it out.
      const type = svc.spec?.type ?? 'ClusterIP'
      return [name, type, serviceClusterIP(svc), serviceExternalIP(svc, type), formatServicePorts(svc), created, formatLabels(svc.spec?.selector)]
    }
    case 'Endpoints':
      return [name, formatEndpoints(obj as EndpointsView), created]
    case 'Secret': {
      const secret = obj as SecretView
      // Kubernetes counts the keys of data; ours serves write-only values by size only, in status.
      return [name, secret.type ?? 'Opaque', secretDataKeys(secret).length, created]
    }
    case 'IngressClass': {
      const ic = obj as IngressClassView
      const p = ic.spec?.parameters
      // A pointer in Kubernetes: an apiGroup set to "" still prints its dot.
      const parameters = p === undefined ? '<none>' : `${p.kind ?? ''}${p.apiGroup === undefined ? '' : `.${p.apiGroup}`}/${p.name ?? ''}`
      return [name, ic.spec?.controller ?? '', parameters, created]
    }
  }
}

/** `PartialObjectMetadata`: an object's metadata alone, as rows carry it by default. */
function partialObjectMetadata (item: Record<string, unknown>, tableVersion: TableVersion): Record<string, unknown> {
  return { kind: 'PartialObjectMetadata', apiVersion: `meta.k8s.io/${tableVersion}`, metadata: item.metadata ?? {} }
}

function rowObject (item: Record<string, unknown>, kind: KindName, apiVersion: string, opts: TableOptions): Record<string, unknown> | null {
  switch (opts.includeObject) {
    case 'None': return null
    case 'Object': return { apiVersion, kind, ...item }
    case 'Metadata': return partialObjectMetadata(item, opts.tableVersion)
  }
}

/**
 * A Table of `items` (objects as the API serves them, status included, in `apiVersion`): one row
 * per item, with Kubernetes' columns for `kind`. For one object (`kubectl get ingress NAME`) use
 * {@link tableFromObject}.
 */
export function toTable (kind: KindName, apiVersion: string, items: Record<string, unknown>[], opts: TableOptions): Record<string, unknown> {
  const now = opts.now ?? new Date()
  const metadata: Record<string, unknown> = {}
  if (opts.listMeta.resourceVersion !== '') metadata.resourceVersion = opts.listMeta.resourceVersion
  if (opts.listMeta.continue !== undefined && opts.listMeta.continue !== '') metadata.continue = opts.listMeta.continue
  if (opts.listMeta.remainingItemCount !== undefined) metadata.remainingItemCount = opts.listMeta.remainingItemCount
  return {
    kind: 'Table',
    apiVersion: `meta.k8s.io/${opts.tableVersion}`,
    metadata,
    columnDefinitions: opts.noHeaders === true ? null : COLUMNS[kind],
    rows: items.map(item => ({ cells: rowCells(kind, item as ObjectView, now), object: rowObject(item, kind, apiVersion, opts) }))
  }
}

/** A Table of one object: its metadata.resourceVersion is the object's, as Kubernetes' table convertor sets it. */
export function tableFromObject (kind: KindName, apiVersion: string, item: Record<string, unknown>, opts: Omit<TableOptions, 'listMeta'>): Record<string, unknown> {
  const resourceVersion = (item.metadata as { resourceVersion?: unknown } | undefined)?.resourceVersion
  return toTable(kind, apiVersion, [item], { ...opts, listMeta: { resourceVersion: typeof resourceVersion === 'string' ? resourceVersion : '' } })
}

/** One media range of an Accept header. */
interface AcceptClause {
  type: string
  subType: string
  params: Map<string, string>
  q: number
}

function parseAccept (header: string): AcceptClause[] {
  const clauses: AcceptClause[] = []
  for (const part of header.split(',')) {
    const [range = '', ...rawParams] = part.split(';').map(s => s.trim())
    if (range === '') continue
    const [type = '', subType = '*'] = range.toLowerCase().split('/')
    const params = new Map<string, string>()
    let q = 1
    for (const p of rawParams) {
      const eq = p.indexOf('=')
      if (eq <= 0) continue
      const key = p.slice(0, eq).trim().toLowerCase()
      const value = p.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1')
      if (key === 'q') q = Number.isNaN(Number(value)) ? 0 : Number(value)
      else params.set(key, value)
    }
    clauses.push({ type, subType, params, q })
  }
  // goautoneg's order: higher q first, then concrete types before wildcards; stable otherwise.
  const specificity = (c: AcceptClause): number => (c.type === '*' ? 0 : 2) + (c.subType === '*' ? 0 : 1)
  return clauses
    .map((c, i) => ({ c, i }))
    .sort((a, b) => b.c.q - a.c.q || specificity(b.c) - specificity(a.c) || a.i - b.i)
    .map(x => x.c)
    .filter(c => c.q > 0)
}

/**
 * Whether the Accept header asks for a Table, and in which version: the clauses are tried in
 * order of preference, as the API server negotiates them, and the first one ingressd can answer
 * decides. `application/json` (or any JSON range without `as=`) first means a plain object or
 * list; a Table of another group or version, or in another media type (YAML, protobuf), is
 * passed over for the next clause.
 */
export function wantsTable (accept: string | undefined): TableVersion | undefined {
  if (accept === undefined || accept.trim() === '') return undefined
  for (const clause of parseAccept(accept)) {
    const json = (clause.type === 'application' && (clause.subType === 'json' || clause.subType === '*')) || (clause.type === '*' && clause.subType === '*')
    if (!json) continue
    const as = clause.params.get('as')
    const group = clause.params.get('g')
    const version = clause.params.get('v')
    if (as === undefined && group === undefined && version === undefined) return undefined
    if (as === 'Table' && group === 'meta.k8s.io' && (version === 'v1' || version === 'v1beta1')) return version
  }
  return undefined
}

/** `?includeObject=`: Metadata when unset; anything else but None and Object is refused as Kubernetes refuses it. */
export function parseIncludeObject (raw: string | undefined): IncludeObject {
  if (raw === undefined || raw === '' || raw === 'Metadata') return 'Metadata'
  if (raw === 'None' || raw === 'Object') return raw
  const message = `includeObject: Unsupported value: ${JSON.stringify(raw)}: supported values: "Metadata", "None", "Object"`
  throw new IngressdError('INGRESSD_ERR_BAD_REQUEST', `Unable to convert to Table as requested: ${message}`, { causes: [{ reason: 'FieldValueNotSupported', field: 'includeObject', message }] })
}
