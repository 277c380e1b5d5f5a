/**
 * `describe`: kubectl's describe layouts for the kinds ingressd stores. Text is written with tabs
 * and laid out by {@link tabulate}, so sections align exactly as kubectl's do.
 *
 * An ingress's backends are shown with the endpoints its Service resolves to (read from the
 * Service and the Endpoints of the same name, as the data plane resolves them), or with the
 * error the lookup gave, as kubectl shows them. A Secret shows the size of each value, the
 * write-only ones (`tls.key`, every value of a non-TLS Secret) from its status: those never leave
 * the server.
 */
import { ApiError, type AdminClient } from './client.js'
import { CLIENT_KINDS, itemPath, type ClientKind } from './kinds.js'
import {
  describeNode,
  formatAddress,
  formatEndpointList,
  formatLabels,
  servicePortEndpoints,
  secretDataKeys,
  type BackendView,
  type ConditionView,
  type EndpointsView,
  type IngressClassView,
  type IngressView,
  type NodeView,
  type ObjectView,
  type SecretView,
  type ServicePortView,
  type ServiceView
} from './printers.js'
import { tabulate } from './table.js'

/** kubectl leaves out this annotation: it is its own bookkeeping. */
const SKIPPED_ANNOTATIONS = new Set(['kubectl.kubernetes.io/last-applied-configuration'])
/** Longer annotations are printed on lines of their own, cut to this length. */
const MAX_ANNOTATION_LENGTH = 140

function kindOf (name: ClientKind['kind']): ClientKind {
  return CLIENT_KINDS.find(k => k.kind === name) as ClientKind
}

/** `Labels:` with one `key=value` per line (sorted), or `<none>`. */
function labelLines (title: string, labels: Record<string, string> | undefined): string[] {
  const keys = Object.keys(labels ?? {}).sort()
  if (keys.length === 0) return [`${title}:\t<none>`]
  return keys.map((k, i) => `${i === 0 ? `${title}:` : ''}\t${k}=${labels?.[k] ?? ''}`)
}

/** `Annotations:` with one `key: value` per line; long or multi-line values get lines of their own. */
function annotationLines (annotations: Record<string, string> | undefined): string[] {
  const keys = Object.keys(annotations ?? {}).filter(k => !SKIPPED_ANNOTATIONS.has(k)).sort()
  if (keys.length === 0) return ['Annotations:\t<none>']
  const lines: string[] = []
  keys.forEach((key, i) => {
    const lead = i === 0 ? 'Annotations:\t' : '\t'
    const value = (annotations?.[key] ?? '').replace(/\n$/, '')
    if (value.length + key.length + 2 > MAX_ANNOTATION_LENGTH || value.includes('\n')) {
      lines.push(`${lead}${key}:`)
      for (const part of value.split('\n')) {
        const max = MAX_ANNOTATION_LENGTH - 2
        lines.push(`\t  ${part.length > max ? `${part.slice(0, max)}...` : part}`)
      }
    } else {
      lines.push(`${lead}${key}: ${value}`)
    }
  })
  return lines
}

/** `Conditions:` as a Type/Status/Reason/Message table, or `<none>`. */
function conditionLines (conditions: ConditionView[] | undefined): string[] {
  if (conditions === undefined || conditions.length === 0) return ['Conditions:\t<none>']
  return [
    'Conditions:',
    '  Type\tStatus\tReason\tMessage',
    '  ----\t------\t------\t-------',
    ...conditions.map(c => `  ${c.type ?? ''}\t${c.status ?? ''}\t${c.reason ?? ''}\t${(c.message ?? '').replace(/\s*[\n\t]\s*/g, ' ')}`)
  ]
}

/** What describe knows about one service: the objects, or the errors reading them gave. */
interface ServiceLookup {
  service?: ServiceView
  serviceError?: string
  endpoints?: EndpointsView
  endpointsError?: string
}

/** Reads a service and its endpoints once per describe; a missing one becomes kubectl's `<error: ...>` text. */
function serviceLookup (client: AdminClient, namespace: string): (name: string) => Promise<ServiceLookup> {
  const cache = new Map<string, Promise<ServiceLookup>>()
  const read = async <T>(kind: ClientKind, name: string): Promise<{ obj?: T, error?: string }> => {
    try {
      return { obj: (await client.get<T>(itemPath(kind, namespace, name))).body }
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return { error: err.message }
      throw err
    }
  }
  return async name => {
    let found = cache.get(name)
    if (found === undefined) {
      found = Promise.all([read<ServiceView>(kindOf('Service'), name), read<EndpointsView>(kindOf('Endpoints'), name)]).then(([svc, eps]) => {
        const out: ServiceLookup = {}
        if (svc.obj !== undefined) out.service = svc.obj
        if (svc.error !== undefined) out.serviceError = svc.error
        if (eps.obj !== undefined) out.endpoints = eps.obj
        if (eps.error !== undefined) out.endpointsError = eps.error
        return out
      })
      cache.set(name, found)
    }
    return await found
  }
}

/** Where an ExternalName service port sends traffic: `backend.example.com:443`, as the data plane resolves it. */
function externalTarget (service: ServiceView, port: ServicePortView | undefined, backendPort: number | undefined): string | undefined {
  const host = (service.spec?.externalName ?? '').replace(/\.$/, '')
  const ports = service.spec?.ports ?? []
  let target: number | undefined
  if (port !== undefined) target = typeof port.targetPort === 'number' ? port.targetPort : port.port
  else if (ports.length === 0) target = backendPort
  return target === undefined || host === '' ? undefined : `${host}:${target}`
}

/** `service1:80 (127.0.0.1:9000)`, `service2:80 (<error: endpoints "service2" not found>)`. */
async function describeBackend (lookup: (name: string) => Promise<ServiceLookup>, backend: BackendView | undefined): Promise<string> {
  if (backend?.service === undefined) {
    if (backend?.resource !== undefined) return `${backend.resource.kind ?? ''}/${backend.resource.name ?? ''}`
    return '<default>'
  }
  const { name = '', port = {} } = backend.service
  const label = `${name}:${port.number ?? port.name ?? ''}`
  const found = await lookup(name)
  const svcPort = found.service?.spec?.ports?.find(p => port.number !== undefined ? p.port === port.number : p.name === port.name)
  if (found.service?.spec?.type === 'ExternalName') {
    const target = externalTarget(found.service, svcPort, port.number)
    return `${label} (${target ?? `<error: service "${name}" has no port ${port.number ?? port.name ?? ''}>`})`
  }
  // kubectl reads the Endpoints first, so a missing service shows as missing endpoints.
  if (found.endpointsError !== undefined) return `${label} (<error: ${found.endpointsError}>)`
  if (found.serviceError !== undefined) return `${label} (<error: ${found.serviceError}>)`
  if (svcPort === undefined) return `${label} (<error: service "${name}" has no port ${port.number ?? port.name ?? ''}>)`
  return `${label} (${formatEndpointList(servicePortEndpoints(svcPort, found.endpoints))})`
}

/** `kubectl describe ingress`. */
export async function describeIngress (client: AdminClient, ingress: IngressView): Promise<string> {
  const namespace = ingress.metadata?.namespace ?? 'default'
  const lookup = serviceLookup(client, namespace)
  const spec = ingress.spec ?? {}
  const lines: string[] = [
    `Name:\t${ingress.metadata?.name ?? ''}`,
    ...labelLines('Labels', ingress.metadata?.labels),
    `Namespace:\t${namespace}`,
    `Address:\t${formatAddress(ingress, true)}`,
    `Ingress Class:\t${spec.ingressClassName ?? '<none>'}`,
    `Default backend:\t${await describeBackend(lookup, spec.defaultBackend)}`
  ]
  if ((spec.tls ?? []).length > 0) {
    lines.push('TLS:')
    for (const tls of spec.tls ?? []) {
      const hosts = (tls.hosts ?? []).join(',')
      lines.push(tls.secretName === undefined || tls.secretName === '' ? `  SNI routes ${hosts}` : `  ${tls.secretName} terminates ${hosts}`)
    }
  }
  lines.push('Rules:', '  Host\tPath\tBackends', '  ----\t----\t--------')
  let count = 0
  for (const rule of spec.rules ?? []) {
    if (rule.http === undefined) continue
    count++
    lines.push(`  ${rule.host === undefined || rule.host === '' ? '*' : rule.host}\t`)
    for (const path of rule.http.paths ?? []) lines.push(`    \t${path.path ?? ''} \t${await describeBackend(lookup, path.backend)}`)
  }
  if (count === 0) lines.push(`  *\t*\t${await describeBackend(lookup, spec.defaultBackend)}`)
  lines.push(...annotationLines(ingress.metadata?.annotations))
  lines.push(...conditionLines(ingress.status?.conditions))
  lines.push('Events:\t<none>')
  return tabulate(lines.join('\n') + '\n')
}

/** `kubectl describe secret`, plus what the certificate says. Sizes only: no secret text is printed. */
export function describeSecret (secret: SecretView): string {
  const lines: string[] = [
    `Name:\t${secret.metadata?.name ?? ''}`,
    `Namespace:\t${secret.metadata?.namespace ?? ''}`,
    ...labelLines('Labels', secret.metadata?.labels),
    ...annotationLines(secret.metadata?.annotations),
    '',
    `Type:\t${secret.type ?? ''}`,
    '',
    'Data',
    '====',
    ...secretDataKeys(secret).map(k => `${k.key}:\t${k.bytes} bytes`)
  ]
  const cert = secret.status?.certificate
  if (cert !== undefined) {
    lines.push(
      '',
      'Certificate',
      '===========',
      `Subject:\t${cert.subject ?? ''}`,
      `Issuer:\t${cert.issuer ?? ''}`,
      `DNS names:\t${(cert.dnsNames ?? []).length === 0 ? '<none>' : (cert.dnsNames ?? []).join(', ')}`,
      `Not before:\t${cert.notBefore ?? ''}`,
      `Not after:\t${cert.notAfter ?? ''}`,
      `Expired:\t${cert.expired === true ? 'true' : 'false'}`,
      `Key:\t${cert.keyType ?? ''}${cert.keyBits === undefined ? '' : ` ${cert.keyBits} bits`}`,
      `Chain length:\t${cert.chainLength ?? ''}`,
      `Self-signed:\t${cert.selfSigned === true ? 'true' : 'false'}`,
      `Serial number:\t${cert.serialNumber ?? ''}`,
      `SHA-256 fingerprint:\t${cert.fingerprintSha256 ?? ''}`
    )
  }
  if (secret.status?.conditions !== undefined) lines.push('', ...conditionLines(secret.status.conditions))
  return tabulate(lines.join('\n') + '\n')
}

/** `kubectl describe service`, each port with the endpoints it resolves to. */
export async function describeService (client: AdminClient, service: ServiceView): Promise<string> {
  const namespace = service.metadata?.namespace ?? 'default'
  const spec = service.spec ?? {}
  const type = spec.type ?? 'ClusterIP'
  const lines: string[] = [
    `Name:\t${service.metadata?.name ?? ''}`,
    `Namespace:\t${namespace}`,
    ...labelLines('Labels', service.metadata?.labels),
    ...annotationLines(service.metadata?.annotations),
    `Selector:\t${formatLabels(spec.selector)}`,
    `Type:\t${type}`
  ]
  if (spec.clusterIP !== undefined && spec.clusterIP !== '') lines.push(`IP:\t${spec.clusterIP}`)
  if (type === 'ExternalName') lines.push(`External Name:\t${spec.externalName ?? ''}`)
  let endpoints: EndpointsView | undefined
  if (type !== 'ExternalName' && (spec.ports ?? []).length > 0) endpoints = await client.find<EndpointsView>(itemPath(kindOf('Endpoints'), namespace, service.metadata?.name ?? ''))
  for (const port of spec.ports ?? []) {
    const protocol = port.protocol ?? 'TCP'
    lines.push(`Port:\t${port.name === undefined || port.name === '' ? '<unset>' : port.name}\t${port.port ?? ''}/${protocol}`)
    lines.push(`TargetPort:\t${port.targetPort ?? port.port ?? ''}/${protocol}`)
    if (port.nodePort !== undefined && port.nodePort > 0) lines.push(`NodePort:\t${port.name === undefined || port.name === '' ? '<unset>' : port.name}\t${port.nodePort}/${protocol}`)
    lines.push(`Endpoints:\t${type === 'ExternalName' ? externalTarget(service, port, undefined) ?? '<none>' : formatEndpointList(servicePortEndpoints(port, endpoints))}`)
  }
  lines.push(`Session Affinity:\t${spec.sessionAffinity ?? 'None'}`)
  lines.push('Events:\t<none>')
  return tabulate(lines.join('\n') + '\n')
}

/** `kubectl describe endpoints`. */
export function describeEndpoints (endpoints: EndpointsView): string {
  const lines: string[] = [
    `Name:\t${endpoints.metadata?.name ?? ''}`,
    `Namespace:\t${endpoints.metadata?.namespace ?? ''}`,
    ...labelLines('Labels', endpoints.metadata?.labels),
    ...annotationLines(endpoints.metadata?.annotations),
    'Subsets:'
  ]
  for (const subset of endpoints.subsets ?? []) {
    const ips = (subset.addresses ?? []).map(a => a.ip ?? '').filter(ip => ip !== '')
    const notReady = (subset.notReadyAddresses ?? []).map(a => a.ip ?? '').filter(ip => ip !== '')
    lines.push(`  Addresses:\t${ips.length === 0 ? '<none>' : ips.join(',')}`)
    lines.push(`  NotReadyAddresses:\t${notReady.length === 0 ? '<none>' : notReady.join(',')}`)
    if ((subset.ports ?? []).length > 0) {
      lines.push('  Ports:', '    Name\tPort\tProtocol', '    ----\t----\t--------')
      for (const p of subset.ports ?? []) lines.push(`    ${p.name === undefined || p.name === '' ? '<unset>' : p.name}\t${p.port ?? ''}\t${p.protocol ?? 'TCP'}`)
    }
    lines.push('')
  }
  lines.push('Events:\t<none>')
  return tabulate(lines.join('\n') + '\n')
}

/** `kubectl describe ingressclass`. */
export function describeIngressClass (ingressClass: IngressClassView): string {
  const p = ingressClass.spec?.parameters
  const lines: string[] = [
    `Name:\t${ingressClass.metadata?.name ?? ''}`,
    ...labelLines('Labels', ingressClass.metadata?.labels),
    ...annotationLines(ingressClass.metadata?.annotations),
    `Controller:\t${ingressClass.spec?.controller ?? ''}`
  ]
  if (p !== undefined) {
    lines.push('Parameters:', `  APIGroup:\t${p.apiGroup ?? ''}`, `  Kind:\t${p.kind ?? ''}`, `  Name:\t${p.name ?? ''}`)
  }
  lines.push('Events:\t<none>')
  return tabulate(lines.join('\n') + '\n')
}

/** The describe text of any object the client knows. */
export async function describeObject (client: AdminClient, kind: ClientKind, obj: ObjectView): Promise<string> {
  switch (kind.kind) {
    case 'Ingress': return await describeIngress(client, obj as IngressView)
    case 'Service': return await describeService(client, obj as ServiceView)
    case 'Secret': return describeSecret(obj as SecretView)
    case 'Endpoints': return describeEndpoints(obj as EndpointsView)
    case 'IngressClass': return describeIngressClass(obj as IngressClassView)
    case 'Node': return describeNode(obj as NodeView)
  }
}
