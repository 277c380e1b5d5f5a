/**
 * What `get` prints for each kind (kubectl's default columns, and the -o wide extras), and the
 * small formatters `describe` shares with it: hosts, ports, addresses, endpoints, labels.
 *
 * Objects are read as the admin API serves them; every field is treated as optional, so an object
 * from a newer or older server still prints.
 */
import { isIPv6 } from 'node:net'
import type { ClientKind } from './kinds.js'
import { age, tabulate } from './table.js'

/** metadata, as far as the client reads it. */
export interface MetaView {
  name?: string
  namespace?: string
  labels?: Record<string, string>
  annotations?: Record<string, string>
  creationTimestamp?: string
}

/** A status condition. */
export interface ConditionView {
  type?: string
  status?: string
  reason?: string
  message?: string
}

/** Any object the API returns. */
export interface ObjectView {
  apiVersion?: string
  kind?: string
  metadata?: MetaView
  [key: string]: unknown
}

/** An ingress backend in the v1 shape. */
export interface BackendView {
  service?: { name?: string, port?: { number?: number, name?: string } }
  resource?: { kind?: string, name?: string }
}

export interface IngressView extends ObjectView {
  spec?: {
    ingressClassName?: string
    defaultBackend?: BackendView
    tls?: { hosts?: string[], secretName?: string }[]
    rules?: { host?: string, http?: { paths?: { path?: string, pathType?: string, backend?: BackendView }[] } }[]
  }
  status?: { loadBalancer?: { ingress?: { ip?: string, hostname?: string }[] }, conditions?: ConditionView[] }
}

export interface ServicePortView {
  name?: string
  port?: number
  targetPort?: number | string
  protocol?: string
  nodePort?: number
}

export interface ServiceView extends ObjectView {
  spec?: {
    type?: string
    ports?: ServicePortView[]
    externalName?: string
    clusterIP?: string
    selector?: Record<string, string>
    sessionAffinity?: string
  }
}

export interface EndpointsView extends ObjectView {
  subsets?: { addresses?: { ip?: string }[], notReadyAddresses?: { ip?: string }[], ports?: { name?: string, port?: number, protocol?: string }[] }[]
}

export interface SecretView extends ObjectView {
  type?: string
  data?: Record<string, string>
  status?: {
    keyBytes?: number
    /** The sizes of a non-TLS Secret's write-only values. */
    data?: Record<string, { bytes?: number }>
    certificate?: {
      subject?: string
      issuer?: string
      dnsNames?: string[]
      notBefore?: string
      notAfter?: string
      serialNumber?: string
      fingerprintSha256?: string
      keyType?: string
      keyBits?: number
      chainLength?: number
      selfSigned?: boolean
      expired?: boolean
    }
    conditions?: ConditionView[]
  }
}

export interface IngressClassView extends ObjectView {
  spec?: { controller?: string, parameters?: { apiGroup?: string, kind?: string, name?: string } }
}

/** A gateway node (GET /apis/ingressd.io/v1/nodes). */
export interface NodeView extends ObjectView {
  status?: {
    addresses?: string[]
    version?: string
    servedResourceVersion?: string
    storeResourceVersion?: string
    behind?: number
    state?: string
    lastHeartbeat?: string
    startedAt?: string
    problem?: string
  }
}

/** `ip:port`, bracketing IPv6 addresses as Go's net.JoinHostPort does. */
export function joinHostPort (host: string, port: number | string): string {
  return isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`
}

/** kubectl's way of capping a list: the first three, then ` + N more...`. */
function capped (list: string[], total: number, max = 3): string {
  const shown = list.slice(0, max).join(',')
  return total > max ? `${shown} + ${total - max} more...` : shown
}

/** `www.a.com,www.b.com`, `*` without hosts, capped at three as kubectl does. */
export function formatHosts (ingress: IngressView): string {
  const rules = ingress.spec?.rules ?? []
  const hosts: string[] = []
  let more = false
  for (const rule of rules) {
    if (hosts.length === 3) more = true
    if (!more && rule.host !== undefined && rule.host !== '') hosts.push(rule.host)
  }
  if (hosts.length === 0) return '*'
  return more ? `${hosts.join(',')} + ${rules.length - 3} more...` : hosts.join(',')
}

/** `80`, or `80, 443` when the ingress terminates TLS. */
export function formatIngressPorts (ingress: IngressView): string {
  return (ingress.spec?.tls ?? []).length > 0 ? '80, 443' : '80'
}

/** status.loadBalancer addresses joined with commas; cut at 16 characters unless `wide`, as kubectl does. */
export function formatAddress (ingress: IngressView, wide: boolean): string {
  const text = (ingress.status?.loadBalancer?.ingress ?? []).map(a => a.ip ?? a.hostname ?? '').filter(a => a !== '').join(',')
  return !wide && text.length > 16 ? `${text.slice(0, 16)}...` : text
}

/** `app=web,tier=front` (sorted), or `<none>`. */
export function formatLabels (labels: Record<string, string> | undefined): string {
  const keys = Object.keys(labels ?? {}).sort()
  return keys.length === 0 ? '<none>' : keys.map(k => `${k}=${labels?.[k] ?? ''}`).join(',')
}

/** Every `ip:port` of Endpoints (all ports), capped at three, or `<none>`: the ENDPOINTS column. */
export function formatEndpoints (endpoints: EndpointsView): string {
  const list: string[] = []
  let total = 0
  for (const subset of endpoints.subsets ?? []) {
    const ips = (subset.addresses ?? []).map(a => a.ip ?? '').filter(ip => ip !== '')
    const ports = subset.ports ?? []
    if (ports.length === 0) {
      total += ips.length
      list.push(...ips)
      continue
    }
    for (const port of ports) {
      total += ips.length
      for (const ip of ips) list.push(joinHostPort(ip, port.port ?? 0))
    }
  }
  return list.length === 0 ? '<none>' : capped(list, total)
}

/**
 * The `ip:port`s a service port sends traffic to, resolved as the data plane does: the Endpoints
 * port of the same name (or named like a string targetPort, or the only unnamed one); for
 * Endpoints that list no ports, a numeric targetPort, else the port itself.
 */
export function servicePortEndpoints (port: ServicePortView, endpoints: EndpointsView | undefined): string[] {
  const wantName = port.name ?? ''
  const out: string[] = []
  const seen = new Set<string>()
  for (const subset of endpoints?.subsets ?? []) {
    const addresses = (subset.addresses ?? []).map(a => a.ip ?? '').filter(ip => ip !== '')
    if (addresses.length === 0) continue
    const ports = subset.ports ?? []
    let epPort = ports.find(p => (p.name ?? '') === wantName)
    if (epPort === undefined && typeof port.targetPort === 'string') epPort = ports.find(p => p.name === port.targetPort)
    if (epPort === undefined && ports.length === 1 && (ports[0]?.name ?? '') === '') epPort = ports[0]
    let target = epPort?.port
    if (target === undefined && ports.length === 0) target = typeof port.targetPort === 'number' ? port.targetPort : port.targetPort === undefined ? port.port : undefined
    if (typeof target !== 'number') continue
    for (const ip of addresses) {
      const hostPort = joinHostPort(ip, target)
      if (seen.has(hostPort)) continue
      seen.add(hostPort)
      out.push(hostPort)
    }
  }
  return out
}

/** A list of endpoints as describe shows it: capped at three, or `<none>`. */
export function formatEndpointList (list: string[]): string {
  return list.length === 0 ? '<none>' : capped(list, list.length)
}

/** `80/TCP,443/TCP` (`80:30080/TCP` with a node port), or `<none>`. */
export function formatServicePorts (service: ServiceView): string {
  const ports = (service.spec?.ports ?? []).map(p => {
    const protocol = p.protocol ?? 'TCP'
    return p.nodePort !== undefined && p.nodePort > 0 ? `${p.port ?? ''}:${p.nodePort}/${protocol}` : `${p.port ?? ''}/${protocol}`
  })
  return ports.length === 0 ? '<none>' : ports.join(',')
}

/** How one kind prints as a table row. */
export interface Printer {
  headers: (wide: boolean) => string[]
  row: (obj: ObjectView, wide: boolean, now: Date) => string[]
}

const name = (obj: ObjectView): string => obj.metadata?.name ?? ''
const created = (obj: ObjectView, now: Date): string => age(obj.metadata?.creationTimestamp, now)

const PRINTERS: Record<ClientKind['kind'], Printer> = {
  Ingress: {
    headers: () => ['NAME', 'CLASS', 'HOSTS', 'ADDRESS', 'PORTS', 'AGE'],
    row: (obj, wide, now) => {
      const ing = obj as IngressView
      return [name(ing), ing.spec?.ingressClassName ?? '<none>', formatHosts(ing), formatAddress(ing, wide), formatIngressPorts(ing), created(ing, now)]
    }
  },
  Service: {
    headers: wide => ['NAME', 'TYPE', 'CLUSTER-IP', 'EXTERNAL-IP', 'PORT(S)', 'AGE', ...(wide ? ['SELECTOR'] : [])],
    row: (obj, wide, now) => {
      const svc = obj as ServiceView
      const type = svc.spec?.type ?? 'ClusterIP'
      const clusterIP = svc.spec?.clusterIP === undefined || svc.spec.clusterIP === '' ? '<none>' : svc.spec.clusterIP
      const external = type === 'ExternalName' && svc.spec?.externalName !== undefined && svc.spec.externalName !== '' ? svc.spec.externalName : '<none>'
      return [name(svc), type, clusterIP, external, formatServicePorts(svc), created(svc, now), ...(wide ? [formatLabels(svc.spec?.selector)] : [])]
    }
  },
  Endpoints: {
    headers: () => ['NAME', 'ENDPOINTS', 'AGE'],
    row: (obj, _wide, now) => [name(obj), formatEndpoints(obj as EndpointsView), created(obj, now)]
  },
  Secret: {
    headers: () => ['NAME', 'TYPE', 'DATA', 'AGE'],
    row: (obj, _wide, now) => {
      const secret = obj as SecretView
      return [name(secret), secret.type ?? '', String(secretDataKeys(secret).length), created(secret, now)]
    }
  },
  IngressClass: {
    headers: () => ['NAME', 'CONTROLLER', 'PARAMETERS', 'AGE'],
    row: (obj, _wide, now) => {
      const ic = obj as IngressClassView
      const p = ic.spec?.parameters
      const parameters = p === undefined ? '<none>' : `${p.kind ?? ''}${p.apiGroup === undefined || p.apiGroup === '' ? '' : `.${p.apiGroup}`}/${p.name ?? ''}`
      return [name(ic), ic.spec?.controller ?? '', parameters, created(ic, now)]
    }
  },
  // kubectl's get nodes shows STATUS and AGE; a gateway node's interesting facts are what it serves and when it last said so.
  Node: {
    headers: wide => ['NAME', 'STATUS', 'VERSION', 'SERVED', 'BEHIND', 'LAST SEEN', 'ADDRESSES', ...(wide ? ['AGE', 'PROBLEM'] : [])],
    row: (obj, wide, now) => {
      const status = (obj as NodeView).status ?? {}
      const addresses = status.addresses ?? []
      return [
        name(obj),
        status.state ?? '<unknown>',
        status.version ?? '',
        status.servedResourceVersion ?? '',
        String(status.behind ?? ''),
        age(status.lastHeartbeat, now),
        addresses.length === 0 ? '<none>' : addresses.join(','),
        ...(wide ? [age(status.startedAt, now), status.problem ?? '<none>'] : [])
      ]
    }
  }
}

/** The printer of a kind. */
export function printerFor (kind: ClientKind): Printer {
  return PRINTERS[kind.kind]
}

/**
 * The keys a Secret holds, with their sizes in bytes: `data` as served (tls.crt, ca.crt), plus
 * the write-only values, which are never served but whose sizes are: tls.key's in
 * `status.keyBytes`, every value of a non-TLS Secret in `status.data`.
 */
export function secretDataKeys (secret: SecretView): { key: string, bytes: number }[] {
  const keys = Object.entries(secret.data ?? {}).map(([key, value]) => ({ key, bytes: Buffer.from(value, 'base64').length }))
  for (const [key, size] of Object.entries(secret.status?.data ?? {})) {
    if (typeof size?.bytes === 'number' && !keys.some(k => k.key === key)) keys.push({ key, bytes: size.bytes })
  }
  if (typeof secret.status?.keyBytes === 'number' && !keys.some(k => k.key === 'tls.key')) keys.push({ key: 'tls.key', bytes: secret.status.keyBytes })
  return keys.sort((a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : 0)
}

/** `describe node`: what the node serves, whether it is alive, and since when. */
export function describeNode (node: NodeView, now: Date = new Date()): string {
  const status = node.status ?? {}
  const since = (timestamp: string | undefined): string => timestamp === undefined ? '<unknown>' : `${timestamp} (${age(timestamp, now)} ago)`
  const lines = [
    `Name:\t${node.metadata?.name ?? ''}`,
    `State:\t${status.state ?? '<unknown>'}`,
    `Addresses:\t${(status.addresses ?? []).length === 0 ? '<none>' : (status.addresses ?? []).join(',')}`,
    `Version:\t${status.version ?? ''}`,
    `Served resourceVersion:\t${status.servedResourceVersion ?? ''}`,
    `Store resourceVersion:\t${status.storeResourceVersion ?? ''}`,
    `Behind:\t${status.behind ?? ''}`,
    `Last Heartbeat:\t${since(status.lastHeartbeat)}`,
    `Started:\t${since(status.startedAt)}`,
    `Problem:\t${status.problem ?? '<none>'}`
  ]
  return tabulate(lines.join('\n') + '\n')
}
