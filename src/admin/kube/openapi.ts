/**
 * The OpenAPI documents kubectl reads: `/openapi/v3` (an index of group versions, each with a
 * document of its own) and `/openapi/v2` (one Swagger 2.0 document, in JSON or gnostic protobuf).
 * `kubectl explain` renders them, `kubectl apply` computes its strategic merge patches from them
 * (x-kubernetes-patch-* metadata) and checks that PATCH takes `fieldValidation` before it sends
 * `fieldValidation=Strict`.
 *
 * Generated from the same TypeBox schemas as /openapi.json (resources/kinds.ts: each version's
 * output and input schema, merged: every field a client may send or read), with the sub-schemas
 * named as Kubernetes names them (io.k8s.api.networking.v1.IngressRule...), so `kubectl explain
 * ingress.spec.rules` walks `$ref`s as it does against a cluster. What TypeBox does not say is
 * kept in three tables here: those names, field descriptions (added to TypeBox's own), and the
 * patch and list metadata k8s.io/api declares. A test fails when an entry matches no field.
 *
 * Documents are built once and are byte-for-byte deterministic: the hash in the v3 index (SHA-512,
 * uppercase hex, as kube-openapi computes it) only changes when a document does.
 */
import { createHash } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import Type from 'typebox'
import { IngressdError } from '../../errors.js'
import { KINDS, type KindDefinition } from '../../resources/kinds.js'
import { ListMeta } from '../../resources/meta.js'
import { VERSION } from '../../version.js'
import { encodeOpenApiV2Protobuf } from './protobuf.js'

type JsonObject = Record<string, unknown>

/** A schema in Kubernetes' OpenAPI dialect, before it is written as a v3 component or a v2 definition. */
interface KubeSchema {
  /** The named schema this one stands for (then only description and extensions are read besides). */
  ref?: string
  description?: string
  type?: string
  format?: string
  enum?: readonly unknown[]
  properties?: Record<string, KubeSchema>
  required?: readonly string[]
  items?: KubeSchema
  additionalProperties?: KubeSchema
  extensions?: JsonObject
}

/** Where Kubernetes names a sub-schema: a name (relative to the kind's package, or absolute) and the names below it. Arrays and maps pass their node on to their items. */
interface NameTree {
  name?: string
  fields?: Readonly<Record<string, NameTree>>
}

const META = 'io.k8s.apimachinery.pkg.apis.meta.v1'
const OBJECT_META = `${META}.ObjectMeta`
const LIST_META = `${META}.ListMeta`
const CONDITION = `${META}.Condition`
const PATCH = `${META}.Patch`
const INT_OR_STRING = 'io.k8s.apimachinery.pkg.util.intstr.IntOrString'
const TYPED_REFERENCE = 'io.k8s.api.core.v1.TypedLocalObjectReference'

/** The media types a PATCH takes, as Kubernetes lists them; kubectl apply looks for the strategic merge patch one. */
const PATCH_TYPES = ['application/json-patch+json', 'application/merge-patch+json', 'application/strategic-merge-patch+json'] // not server-side apply (application/apply-patch+yaml): ingressd keeps no managedFields
/** The media types a create or replace takes. */
const BODY_TYPES = ['application/json', 'application/yaml']
/** The media type kube-openapi answers gnostic protobuf with (it accepts the `@v1.0` spelling kubectl sends too). */
const V2_PROTOBUF = 'application/com.github.proto-openapi.spec.v2.v1.0+protobuf'
const V2_PROTOBUF_SUBTYPES = new Set(['com.github.proto-openapi.spec.v2.v1.0+protobuf', 'com.github.proto-openapi.spec.v2@v1.0+protobuf'])

const tree = (name: string | undefined, fields?: Record<string, NameTree>): NameTree => ({ ...(name === undefined ? {} : { name }), ...(fields === undefined ? {} : { fields }) })

// Functions, not shared nodes: every node of a kind's tree is its own object, so a node no field
// reaches is reported (TableUse) even when the same name is reached elsewhere.
const metadata = (): NameTree => tree(OBJECT_META)
const conditions = (): NameTree => tree(CONDITION)

function ingressNames (apiVersion: string): Record<string, NameTree> {
  const v1 = apiVersion === 'networking.k8s.io/v1'
  const backend = (): NameTree => tree('IngressBackend', { ...(v1 ? { service: tree('IngressServiceBackend', { port: tree('ServiceBackendPort') }) } : {}), resource: tree(TYPED_REFERENCE) })
  return {
    metadata: metadata(),
    spec: tree('IngressSpec', {
      [v1 ? 'defaultBackend' : 'backend']: backend(),
      tls: tree('IngressTLS'),
      rules: tree('IngressRule', { http: tree('HTTPIngressRuleValue', { paths: tree('HTTPIngressPath', { backend: backend() }) }) })
    }),
    status: tree('IngressStatus', { loadBalancer: tree('IngressLoadBalancerStatus', { ingress: tree('IngressLoadBalancerIngress') }), conditions: conditions() })
  }
}

/** The named sub-schemas of each kind, by field: a new tree per call. */
const KIND_NAMES: Readonly<Record<string, (apiVersion: string) => Record<string, NameTree>>> = {
  Ingress: ingressNames,
  Service: () => ({ metadata: metadata(), spec: tree('ServiceSpec', { ports: tree('ServicePort') }), status: tree('ServiceStatus') }),
  Endpoints: () => ({ metadata: metadata(), subsets: tree('EndpointSubset', { addresses: tree('EndpointAddress'), notReadyAddresses: tree('EndpointAddress'), ports: tree('EndpointPort') }) }),
  Secret: () => ({ metadata: metadata(), status: tree(undefined, { conditions: conditions() }) }),
  IngressClass: () => ({ metadata: metadata(), spec: tree('IngressClassSpec', { parameters: tree('IngressClassParametersReference') }) })
}

/** The versions Ingress is served in: v1 and the pre-v1 ones resources/ingress.ts lists. */
const INGRESS_VERSIONS = Object.keys(KINDS.find(def => def.kind === 'Ingress')?.versions ?? {})

const ATOMIC_LIST = { 'x-kubernetes-list-type': 'atomic' }
const CONDITION_LIST = { 'x-kubernetes-list-map-keys': ['type'], 'x-kubernetes-list-type': 'map', 'x-kubernetes-patch-merge-key': 'type', 'x-kubernetes-patch-strategy': 'merge' }
const ATOMIC_STRUCT = { 'x-kubernetes-map-type': 'atomic' }

/** Ingress's metadata is the same in every package it is served in: every list atomic (replaced whole by a patch). */
function ingressExtensions (pkg: string): Record<string, Record<string, JsonObject>> {
  return {
    [`${pkg}.IngressSpec`]: { tls: ATOMIC_LIST, rules: ATOMIC_LIST },
    [`${pkg}.IngressTLS`]: { hosts: ATOMIC_LIST },
    [`${pkg}.HTTPIngressRuleValue`]: { paths: ATOMIC_LIST },
    [`${pkg}.IngressLoadBalancerStatus`]: { ingress: ATOMIC_LIST },
    [`${pkg}.IngressStatus`]: { conditions: CONDITION_LIST }
  }
}

/**
 * The patch and list metadata k8s.io/api declares (patchStrategy/patchMergeKey tags, +listType,
 * +mapType), by schema and field ('' for the schema itself). kubectl apply reads the
 * x-kubernetes-patch-* ones to merge Service ports by port instead of replacing the list.
 */
const EXTENSIONS: Readonly<Record<string, Readonly<Record<string, JsonObject>>>> = {
  ...Object.assign({}, ...INGRESS_VERSIONS.map(v => ingressExtensions(packageOf(v)))) as Record<string, Record<string, JsonObject>>,
  'io.k8s.api.core.v1.ServiceSpec': {
    ports: { 'x-kubernetes-list-map-keys': ['port', 'protocol'], 'x-kubernetes-list-type': 'map', 'x-kubernetes-patch-merge-key': 'port', 'x-kubernetes-patch-strategy': 'merge' },
    selector: ATOMIC_STRUCT,
    clusterIPs: ATOMIC_LIST,
    ipFamilies: ATOMIC_LIST
  },
  'io.k8s.api.core.v1.ServiceStatus': { conditions: CONDITION_LIST },
  'io.k8s.api.core.v1.Endpoints': { subsets: ATOMIC_LIST },
  'io.k8s.api.core.v1.EndpointSubset': { addresses: ATOMIC_LIST, notReadyAddresses: ATOMIC_LIST, ports: ATOMIC_LIST },
  'io.k8s.api.core.v1.EndpointAddress': { '': ATOMIC_STRUCT },
  'io.k8s.api.core.v1.Secret': { 'status.conditions': CONDITION_LIST },
  [TYPED_REFERENCE]: { '': ATOMIC_STRUCT }
}

const API_CONVENTIONS = 'https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md'
const API_VERSION_TEXT = `APIVersion defines the versioned schema of this representation of an object. Servers convert recognized schemas to the latest internal value and reject unrecognized values. More info: ${API_CONVENTIONS}#resources`
const METADATA_TEXT = `Standard object's metadata. More info: ${API_CONVENTIONS}#metadata`
const KIND_TEXT = `Kind is a string value representing the REST resource this object represents. In CamelCase. More info: ${API_CONVENTIONS}#types-kinds`

function ingressDescriptions (pkg: string, v1: boolean): Record<string, Record<string, string>> {
  const backend = v1 ? 'defaultBackend' : 'backend'
  return {
    [`${pkg}.Ingress`]: {
      '': 'Ingress is a collection of rules that route inbound HTTP and HTTPS requests, by host and path, to Services. ingressd serves it on its data plane as ingress-nginx would.',
      spec: 'Spec is the desired state of the Ingress: its rules, TLS hosts and default backend.',
      status: 'Status is the current state of the Ingress, as ingressd reports it: the addresses it is served on and whether its routes compiled.'
    },
    [`${pkg}.IngressList`]: { '': 'IngressList is a collection of Ingress.', items: 'Items is the list of Ingress.' },
    [`${pkg}.IngressSpec`]: {
      '': 'IngressSpec describes the Ingress the user wishes to exist.',
      ingressClassName: 'IngressClassName is the name of the IngressClass this Ingress belongs to; ingressd serves the classes it is configured for (INGRESSD_INGRESS_CLASSES).',
      [backend]: 'The backend that serves requests matching no rule. When neither rules nor a default backend are given, the Ingress is invalid.',
      tls: 'TLS configuration: the hosts served over HTTPS and the kubernetes.io/tls Secret holding their certificate. Hosts are matched by SNI.',
      rules: 'A list of host rules used to configure the Ingress. Requests matching no rule go to the default backend.'
    },
    [`${pkg}.IngressBackend`]: v1
      ? {
          '': 'IngressBackend describes all endpoints for a given service and port.',
          service: 'Service references a Service as a backend. Mutually exclusive with resource.',
          resource: 'Resource is an ObjectRef to another Kubernetes resource in the namespace of the Ingress; ingressd only proxies to Services and refuses it.'
        }
      : {
          '': 'IngressBackend describes all endpoints for a given service and port.',
          serviceName: 'Specifies the name of the referenced Service.',
          servicePort: 'Specifies the port of the referenced Service: a number or a port name.',
          resource: 'Resource is an ObjectRef to another Kubernetes resource in the namespace of the Ingress; ingressd only proxies to Services and refuses it.'
        },
    ...(v1
      ? {
          [`${pkg}.IngressServiceBackend`]: {
            '': 'IngressServiceBackend references a Service as a backend.',
            name: 'Name is the referenced Service. The Service must exist in the same namespace as the Ingress.',
            port: 'Port of the referenced Service. A port name or port number is required.'
          },
          [`${pkg}.ServiceBackendPort`]: {
            '': 'ServiceBackendPort is the Service port being referenced.',
            name: 'Name is the name of the port on the Service. Mutually exclusive with number.',
            number: 'Number is the numerical port number (e.g. 80) on the Service. Mutually exclusive with name.'
          }
        }
      : {}),
    [`${pkg}.IngressTLS`]: {
      '': 'IngressTLS describes the transport layer security associated with an ingress.',
      hosts: 'Hosts is a list of hosts included in the TLS certificate: requests for them (by SNI) are served over HTTPS with the certificate of secretName.',
      secretName: 'SecretName is the name of the kubernetes.io/tls Secret, in the namespace of the Ingress, whose certificate and key serve these hosts.'
    },
    [`${pkg}.IngressRule`]: {
      '': 'IngressRule represents the rules mapping the paths under a specified host to the related backend services. Incoming requests are first evaluated for a host match, then routed to the backend associated with the matching path.',
      host: 'Host is the fully qualified domain name of a network host, as defined by RFC 3986, without a port. A wildcard (`*.example.com`) matches one DNS label. Without a host, the rule matches every request.',
      http: 'HTTP paths of this rule, each mapped to a backend.'
    },
    [`${pkg}.HTTPIngressRuleValue`]: {
      '': 'HTTPIngressRuleValue is a list of HTTP paths pointing to backends: http://<host>/<path>?<searchpart> -> backend, where path is matched against everything after the host and before the first \'?\' or \'#\'.',
      paths: 'A collection of paths that map requests to backends.'
    },
    [`${pkg}.HTTPIngressPath`]: {
      '': 'HTTPIngressPath associates a path with a backend. Incoming URLs matching the path are forwarded to the backend.',
      path: 'Path is matched against the path of an incoming request. It must begin with a \'/\' when pathType is Exact or Prefix; with the use-regex annotation (or a rewrite-target that uses a capture group, $1) it is a regular expression.',
      pathType: `PathType determines how the path is matched: Exact matches the URL path exactly; Prefix matches by URL path elements split by '/' (/foo matches /foo/bar but not /foobar); ImplementationSpecific matches as ingress-nginx does (a prefix, or a regular expression with use-regex).${v1 ? '' : ' Defaults to ImplementationSpecific.'}`,
      backend: 'Backend defines the referenced Service endpoint to which the traffic will be forwarded.'
    },
    [`${pkg}.IngressStatus`]: {
      '': 'IngressStatus describes the current state of the Ingress.',
      loadBalancer: 'LoadBalancer contains the addresses the Ingress is served on.',
      conditions: 'Conditions report whether ingressd serves the Ingress (Served) and which annotations it ignored or could not apply.'
    },
    [`${pkg}.IngressLoadBalancerStatus`]: { '': 'IngressLoadBalancerStatus represents the status of a load-balancer.', ingress: 'Ingress is a list containing ingress points for the load-balancer.' },
    [`${pkg}.IngressLoadBalancerIngress`]: {
      '': 'IngressLoadBalancerIngress represents the status of a load-balancer ingress point.',
      ip: 'IP is set for load-balancer ingress points that are IP based.',
      hostname: 'Hostname is set for load-balancer ingress points that are DNS based.'
    }
  }
}

/**
 * What TypeBox does not say about a field, by schema and field path ('' for the schema itself;
 * `a.b` below it for fields of unnamed sub-schemas, `a{}` for a map's values). Written after the
 * field's TypeBox description, which says what is particular to ingressd.
 */
const DESCRIPTIONS: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  ...Object.assign({}, ...INGRESS_VERSIONS.map(v => ingressDescriptions(packageOf(v), v === 'networking.k8s.io/v1'))) as Record<string, Record<string, string>>,
  [OBJECT_META]: {
    '': 'ObjectMeta is metadata that all persisted resources must have. ingressd sets uid, resourceVersion, generation and creationTimestamp; other server-set fields a manifest exported from a cluster carries are accepted and dropped.',
    name: 'Name must be unique within a namespace. Cannot be updated.',
    namespace: 'Namespace defines the space within which each name must be unique.',
    labels: 'Map of string keys and values that can be used to organize and categorize (scope and select) objects, with label selectors.',
    annotations: 'Annotations is an unstructured key value map stored with a resource. ingressd reads the nginx.ingress.kubernetes.io/* annotations of an Ingress (docs/annotations.md).',
    uid: 'UID is the unique in time and space value for this object. Set by the server on create; cannot be updated.',
    resourceVersion: 'An opaque value that represents the internal version of this object, used for optimistic concurrency.',
    generation: 'A sequence number representing a specific generation of the desired state.',
    creationTimestamp: 'The time the object was created, in RFC 3339 form, UTC. Set by the server.'
  },
  [LIST_META]: {
    '': 'ListMeta describes metadata that synthetic resources must have, including lists.',
    resourceVersion: 'The store\'s resourceVersion when the list was read.',
    remainingItemCount: 'The number of subsequent items in the list which are not included in this list response.'
  },
  [CONDITION]: {
    '': 'Condition contains details for one aspect of the current state of this API resource.',
    type: 'Type of condition in CamelCase.',
    status: 'Status of the condition, one of True, False, Unknown.',
    reason: 'Reason contains a programmatic identifier indicating the reason for the condition\'s last transition.',
    message: 'Message is a human readable message indicating details about the transition.',
    lastTransitionTime: 'The last time the condition transitioned from one status to another.',
    observedGeneration: 'The .metadata.generation that the condition was set based upon.'
  },
  [INT_OR_STRING]: { '': 'IntOrString is a type that can hold an int32 or a string. In JSON it is a number or a string.' },
  [PATCH]: { '': 'Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.' },
  [TYPED_REFERENCE]: {
    '': 'TypedLocalObjectReference contains enough information to let you locate the typed referenced object inside the same namespace.',
    apiGroup: 'APIGroup is the group for the resource being referenced. If it is not specified, the kind must be in the core API group.',
    kind: 'Kind is the type of resource being referenced.',
    name: 'Name is the name of resource being referenced.'
  },
  'io.k8s.api.core.v1.Service': {
    '': 'Service is a named abstraction of software service: the ports a backend of an Ingress names, mapped through targetPort to the addresses of the Endpoints of the same name, or an ExternalName resolved by DNS.',
    spec: 'Spec defines the behavior of a service.',
    status: 'Most recently observed status of the service.'
  },
  'io.k8s.api.core.v1.ServiceList': { '': 'ServiceList holds a list of services.', items: 'List of services.' },
  'io.k8s.api.core.v1.ServiceSpec': {
    '': 'ServiceSpec describes the attributes that a user creates on a service.',
    type: 'Type determines how the Service is exposed: ClusterIP (the default), ExternalName, NodePort or LoadBalancer.',
    ports: 'The list of ports that are exposed by this service. A service with more than one port names each.',
    externalName: 'ExternalName is the DNS name ingressd proxies to for a Service of type ExternalName.',
    selector: 'Route service traffic to pods with label keys and values matching this selector.',
    clusterIP: 'The IP address of the service. Stored, not used: ingressd proxies to the addresses of the Endpoints.',
    clusterIPs: 'The IP addresses of the service. Stored, not used.',
    sessionAffinity: 'Supports "ClientIP" and "None". Stored, not used.',
    ipFamilies: 'The IP families (IPv4, IPv6) assigned to this service. Stored, not used.',
    ipFamilyPolicy: 'The dual-stackness requested or required by this Service. Stored, not used.'
  },
  'io.k8s.api.core.v1.ServicePort': {
    '': 'ServicePort contains information on service\'s port.',
    name: 'The name of this port within the service; an Ingress backend may name the port by it. Required when the service has more than one port.',
    port: 'The port that will be exposed by this service; an Ingress backend names it by number.',
    targetPort: 'Number or name of the port on the Endpoints\' addresses that requests are sent to. A name is looked up among the Endpoints\' ports. When unset, the value of port.',
    protocol: 'The IP protocol for this port: TCP, UDP or SCTP. Default is TCP.',
    appProtocol: 'The application protocol for this port.',
    nodePort: 'The port on each node on which this service is exposed when type is NodePort or LoadBalancer. Stored, not used.'
  },
  'io.k8s.api.core.v1.ServiceStatus': { '': 'ServiceStatus represents the current status of a service.', conditions: 'Current service state.' },
  'io.k8s.api.core.v1.Endpoints': {
    '': 'Endpoints is the set of addresses behind the Service of the same name: where ingressd proxies the Service\'s ports to.',
    subsets: 'The set of all endpoints is the union of all subsets: each subset\'s addresses expose each of its ports.'
  },
  'io.k8s.api.core.v1.EndpointsList': { '': 'EndpointsList is a list of endpoints.', items: 'List of endpoints.' },
  'io.k8s.api.core.v1.EndpointSubset': {
    '': 'EndpointSubset is a group of addresses with a common set of ports.',
    addresses: 'IP addresses which offer the related ports and are ready to receive traffic.',
    notReadyAddresses: 'IP addresses which offer the related ports but are not ready; ingressd sends them no traffic.',
    ports: 'Port numbers available on the related IP addresses.'
  },
  'io.k8s.api.core.v1.EndpointAddress': {
    '': 'EndpointAddress is a tuple that describes single IP address.',
    ip: 'The IP of this endpoint. Loopback addresses are allowed: a gateway on a laptop proxies to local processes.',
    hostname: 'The Hostname of this endpoint.',
    nodeName: 'The node hosting this endpoint.',
    targetRef: 'Reference to the object providing the endpoint.'
  },
  'io.k8s.api.core.v1.EndpointPort': {
    '': 'EndpointPort is a tuple that describes a single port.',
    name: 'The name of this port, which a Service\'s named targetPort matches. Required when there is more than one port.',
    port: 'The port number of the endpoint.',
    protocol: 'The IP protocol for this port: TCP, UDP or SCTP. Default is TCP.',
    appProtocol: 'The application protocol for this port.'
  },
  'io.k8s.api.core.v1.Secret': {
    '': 'Secret holds secret data of a certain type: a kubernetes.io/tls certificate and key that serve an Ingress\'s TLS hosts, or the values of an auth annotation (htpasswd files, client CA bundles). Values that must stay secret are write-only.',
    immutable: 'Immutable, if set to true, ensures that data stored in the Secret cannot be updated (only object metadata can be modified).',
    status: 'What ingressd made of the Secret: the certificate it holds, and the sizes of the write-only values.',
    'status.certificate': 'The certificate in tls.crt, as ingressd parsed it.',
    'status.certificate.subject': 'The certificate\'s subject distinguished name.',
    'status.certificate.issuer': 'The certificate\'s issuer distinguished name.',
    'status.certificate.dnsNames': 'The DNS names of the certificate\'s subject alternative name extension.',
    'status.certificate.notBefore': 'The start of the certificate\'s validity.',
    'status.certificate.notAfter': 'The end of the certificate\'s validity.',
    'status.certificate.serialNumber': 'The certificate\'s serial number, in hexadecimal.',
    'status.certificate.fingerprintSha256': 'The SHA-256 fingerprint of the certificate.',
    'status.certificate.keyType': 'The type of the certificate\'s public key.',
    'status.certificate.keyBits': 'The size of the certificate\'s public key, in bits.',
    'status.certificate.chainLength': 'How many certificates tls.crt holds, the leaf included.',
    'status.certificate.selfSigned': 'Whether the certificate is signed by its own key.',
    'status.certificate.expired': 'Whether the certificate\'s validity has ended.',
    'status.data{}.bytes': 'The size of the value, in bytes.',
    'status.conditions': 'Conditions report whether the Secret is usable.'
  },
  'io.k8s.api.core.v1.SecretList': { '': 'SecretList is a list of Secret.', items: 'Items is a list of secret objects.' },
  'io.k8s.api.networking.v1.IngressClass': {
    '': 'IngressClass represents the class of the Ingress, referenced by the Ingress spec. Accepted so that manifest bundles which carry one apply cleanly; which classes ingressd serves is configuration (INGRESSD_INGRESS_CLASSES).',
    spec: 'Spec is the desired state of the IngressClass.'
  },
  'io.k8s.api.networking.v1.IngressClassList': { '': 'IngressClassList is a collection of IngressClasses.', items: 'Items is the list of IngressClasses.' },
  'io.k8s.api.networking.v1.IngressClassSpec': {
    '': 'IngressClassSpec provides information about the class of an Ingress.',
    controller: 'Controller refers to the name of the controller that should handle this class, such as k8s.io/ingress-nginx.',
    parameters: 'Parameters is a link to a custom resource containing additional configuration for the controller.'
  },
  'io.k8s.api.networking.v1.IngressClassParametersReference': {
    '': 'IngressClassParametersReference identifies an API object.',
    apiGroup: 'APIGroup is the group for the resource being referenced.',
    kind: 'Kind is the type of resource being referenced.',
    name: 'Name is the name of resource being referenced.',
    namespace: 'Namespace is the namespace of the resource being referenced, when scope is Namespace.',
    scope: 'Scope represents if this refers to a cluster or namespace scoped resource: Cluster (default) or Namespace.'
  }
}

/** Which table entries the documents used: an entry never used names a field that does not exist. */
class TableUse {
  private readonly used = new Set<string>()
  private readonly visited = new Set<NameTree>()
  private readonly trees: { label: string, fields: Readonly<Record<string, NameTree>> }[] = []

  lookup<T> (table: Readonly<Record<string, Readonly<Record<string, T>>>>, owner: string, path: string): T | undefined {
    const value = table[owner]?.[path]
    if (value !== undefined) this.used.add(`${owner} ${path}`)
    return value
  }

  /** A kind's name tree, whose every node must be reached by a field. */
  tree (label: string, fields: Readonly<Record<string, NameTree>>): Readonly<Record<string, NameTree>> {
    this.trees.push({ label, fields })
    return fields
  }

  visit (node: NameTree): void {
    this.visited.add(node)
  }

  unused (): string[] {
    const all = [DESCRIPTIONS, EXTENSIONS].flatMap(table => Object.entries(table).flatMap(([owner, fields]) => Object.keys(fields).map(path => `${owner} ${path}`)))
    const names: string[] = []
    const walk = (label: string, fields: Readonly<Record<string, NameTree>>, prefix: string): void => {
      for (const [key, node] of Object.entries(fields)) {
        const path = prefix === '' ? key : `${prefix}.${key}`
        if (!this.visited.has(node)) names.push(`${label} name of ${path}`)
        walk(label, node.fields ?? {}, path)
      }
    }
    for (const { label, fields } of this.trees) walk(label, fields, '')
    return [...[...new Set(all)].filter(key => !this.used.has(key)), ...names]
  }
}

/** `io.k8s.api.networking.v1`: the package Kubernetes names a group version's types in. */
function packageOf (apiVersion: string): string {
  const slash = apiVersion.indexOf('/')
  if (slash === -1) return `io.k8s.api.core.${apiVersion}`
  return `io.k8s.api.${apiVersion.slice(0, slash).split('.')[0] ?? ''}.${apiVersion.slice(slash + 1)}`
}

function splitApiVersion (apiVersion: string): { group: string, version: string } {
  const slash = apiVersion.indexOf('/')
  return slash === -1 ? { group: '', version: apiVersion } : { group: apiVersion.slice(0, slash), version: apiVersion.slice(slash + 1) }
}

/** Sentences joined into one description (TypeBox's often end without a full stop). */
function joinText (...parts: (string | undefined)[]): string | undefined {
  const texts = [...new Set(parts.filter((p): p is string => p !== undefined && p !== ''))]
  return texts.length === 0 ? undefined : texts.map((t, i) => i < texts.length - 1 && !/[.!?:]$/.test(t) ? `${t}.` : t).join(' ')
}

function asObject (value: unknown): JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as JsonObject : {}
}

/** Without null from a union (Kubernetes' schemas have no null type) and collapsed when one member is left. */
function withoutNull (schema: JsonObject): JsonObject {
  if (!Array.isArray(schema.anyOf)) return schema
  const members = (schema.anyOf as JsonObject[]).filter(m => m.type !== 'null')
  const { anyOf: _anyOf, ...rest } = schema
  return members.length === 1 ? { ...members[0], ...rest } : { ...rest, anyOf: members }
}

function isUnknown (schema: JsonObject): boolean {
  return schema.type === undefined && schema.anyOf === undefined && schema.const === undefined
}

function literals (schema: JsonObject): unknown[] | undefined {
  if (schema.const !== undefined) return [schema.const]
  if (!Array.isArray(schema.anyOf)) return undefined
  const values = (schema.anyOf as JsonObject[]).map(m => m.const)
  return values.every(v => v !== undefined) ? values : undefined
}

/**
 * One JSON Schema for a field from the output schema (what is read) and the input schema (what
 * is sent): the fields of both, what the input requires, both descriptions. Where they disagree
 * the output's shape wins (a date-time string over "string or null").
 */
function mergeSchemas (output: JsonObject | undefined, input: JsonObject | undefined): JsonObject {
  if (output === undefined || input === undefined) return withoutNull(output ?? input ?? {})
  const out = withoutNull(output)
  const inp = withoutNull(input)
  const description = joinText(out.description as string | undefined, inp.description as string | undefined)
  const described = (schema: JsonObject): JsonObject => description === undefined ? schema : { ...schema, description }
  if (isUnknown(out)) return described(inp)
  if (isUnknown(inp)) return described(out)
  const outValues = literals(out)
  const inValues = literals(inp)
  if (outValues !== undefined && inValues !== undefined) {
    const values = [...new Set([...outValues, ...inValues])]
    return described({ anyOf: values.map(v => ({ type: typeof v, const: v })) })
  }
  if (out.type === 'object' && inp.type === 'object') {
    const outProps = asObject(out.properties)
    const inProps = asObject(inp.properties)
    const merged: JsonObject = { ...out, required: inp.required ?? [] }
    if (out.properties !== undefined || inp.properties !== undefined) {
      const properties: JsonObject = {}
      for (const key of new Set([...Object.keys(outProps), ...Object.keys(inProps)])) {
        properties[key] = mergeSchemas(outProps[key] as JsonObject | undefined, inProps[key] as JsonObject | undefined)
      }
      merged.properties = properties
    }
    const outMap = out.patternProperties === undefined ? undefined : Object.values(asObject(out.patternProperties))[0] as JsonObject
    const inMap = inp.patternProperties === undefined ? undefined : Object.values(asObject(inp.patternProperties))[0] as JsonObject
    if (outMap !== undefined || inMap !== undefined) merged.patternProperties = { '^.*$': mergeSchemas(outMap, inMap) }
    return described(merged)
  }
  if (out.type === 'array' && inp.type === 'array') return described({ ...out, items: mergeSchemas(out.items as JsonObject, inp.items as JsonObject) })
  return described(out)
}

/** Position of a schema being converted: the named schema it belongs to and the path below it. */
interface Position {
  owner: string
  path: string
  names: NameTree | undefined
  pkg: string
}

/** Converts merged JSON Schemas into named Kubernetes schemas, collecting the named ones. */
class SchemaSet {
  readonly components = new Map<string, KubeSchema>()

  constructor (private readonly use: TableUse) {}

  /** Adds a named schema; the same name built twice must come out the same. */
  add (name: string, schema: KubeSchema): void {
    const before = this.components.get(name)
    if (before !== undefined && canonicalJson(before) !== canonicalJson(schema)) {
      throw new IngressdError('INGRESSD_ERR_INTERNAL', `OpenAPI: ${name} is generated from two different schemas`)
    }
    this.components.set(name, schema)
  }

  private qualified (name: string, pkg: string): string {
    return name.includes('.') ? name : `${pkg}.${name}`
  }

  /** A field (or array item, or map value) at `at`: a reference when Kubernetes names it, else inline. */
  field (original: JsonObject, at: Position): KubeSchema {
    const schema = withoutNull(original)
    const description = at.path === '' ? undefined : joinText(this.use.lookup(DESCRIPTIONS, at.owner, at.path), schema.description as string | undefined)
    const extensions = at.path === '' ? undefined : this.use.lookup(EXTENSIONS, at.owner, at.path)
    if (at.names !== undefined) this.use.visit(at.names)
    const isContainer = schema.type === 'array' || schema.patternProperties !== undefined
    let converted: KubeSchema
    if (at.names?.name !== undefined && !isContainer) {
      const name = this.qualified(at.names.name, at.pkg)
      this.add(name, this.named(schema, name, at))
      converted = { ref: name }
    } else {
      converted = this.shape(schema, at)
    }
    if (description !== undefined) converted.description = description
    if (extensions !== undefined) converted.extensions = { ...converted.extensions, ...extensions }
    return converted
  }

  /** A named schema's own body: its description and extensions come from the tables. */
  named (schema: JsonObject, name: string, at: Position): KubeSchema {
    const body = this.shape(schema, { owner: name, path: '', names: at.names, pkg: at.pkg })
    const description = this.use.lookup(DESCRIPTIONS, name, '')
    const extensions = this.use.lookup(EXTENSIONS, name, '')
    if (description !== undefined) body.description = description
    if (extensions !== undefined) body.extensions = { ...body.extensions, ...extensions }
    return body
  }

  private child (at: Position, segment: string, names: NameTree | undefined): Position {
    return { owner: at.owner, path: at.path === '' ? segment : `${at.path}.${segment}`, names, pkg: at.pkg }
  }

  /** The structure of a schema: type, format, enum, properties, items, map values. */
  shape (original: JsonObject, at: Position): KubeSchema {
    const schema = withoutNull(original)
    const values = literals(schema)
    if (values !== undefined) return { type: typeof values[0] === 'number' ? 'integer' : typeof values[0], enum: values }
    if (Array.isArray(schema.anyOf)) {
      const types = new Set((schema.anyOf as JsonObject[]).map(m => m.type))
      if (types.size === 2 && types.has('integer') && types.has('string')) {
        this.add(INT_OR_STRING, { type: 'string', format: 'int-or-string', description: this.use.lookup(DESCRIPTIONS, INT_OR_STRING, '') })
        return { ref: INT_OR_STRING }
      }
      throw new IngressdError('INGRESSD_ERR_INTERNAL', `OpenAPI: ${at.owner} ${at.path}: a union of ${[...types].join(', ')} has no Kubernetes form`)
    }
    switch (schema.type) {
      case 'object': {
        const out: KubeSchema = { type: 'object' }
        if (schema.properties !== undefined) {
          const props = asObject(schema.properties)
          out.properties = Object.fromEntries(Object.keys(props).sort().map(key => [key, this.field(props[key] as JsonObject, this.child(at, key, at.names?.fields?.[key]))]))
          const required = ((schema.required ?? []) as string[]).filter(key => key in props)
          if (required.length > 0) out.required = required
        }
        if (schema.patternProperties !== undefined) {
          const value = Object.values(asObject(schema.patternProperties))[0] as JsonObject
          out.additionalProperties = this.field(value, { ...at, path: `${at.path}{}`, names: at.names })
          delete out.additionalProperties.description
        }
        return out
      }
      case 'array': {
        const items = this.field(schema.items as JsonObject, { ...at, path: `${at.path}[]`, names: at.names })
        delete items.description
        return { type: 'array', items }
      }
      case 'string':
      case 'integer':
      case 'number':
      case 'boolean':
        return { type: schema.type, ...(typeof schema.format === 'string' && schema.format !== 'uuid' ? { format: schema.format } : {}) }
      default:
        return {}
    }
  }
}

/** JSON text with every object's keys sorted, as Go writes maps: the same document, the same bytes. */
function canonicalJson (value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return v
    return Object.fromEntries(Object.keys(v).sort().map(k => [k, (v as JsonObject)[k]]))
  })
}

type Dialect = 'v3' | 'v2'

function refPath (dialect: Dialect, name: string): string {
  return dialect === 'v3' ? `#/components/schemas/${name}` : `#/definitions/${name}`
}

/**
 * A schema as written in a document. In v3 a `$ref` with a description is wrapped in a
 * one-element allOf (an OpenAPI 3.0 `$ref` takes no siblings), which kubectl's explain templates
 * and its patch code both unwrap; v2 keeps them side by side, as Kubernetes' v2 document does.
 */
function render (schema: KubeSchema, dialect: Dialect): JsonObject {
  const extras: JsonObject = { ...(schema.description === undefined ? {} : { description: schema.description }), ...schema.extensions }
  if (schema.ref !== undefined) {
    const ref = { $ref: refPath(dialect, schema.ref) }
    if (Object.keys(extras).length === 0) return ref
    return dialect === 'v3' ? { allOf: [ref], ...extras } : { ...ref, ...extras }
  }
  const out: JsonObject = { ...extras }
  if (schema.type !== undefined) out.type = schema.type
  if (schema.format !== undefined) out.format = schema.format
  if (schema.enum !== undefined) out.enum = schema.enum
  if (schema.properties !== undefined) out.properties = Object.fromEntries(Object.entries(schema.properties).map(([k, v]) => [k, render(v, dialect)]))
  if (schema.required !== undefined) out.required = schema.required
  if (schema.items !== undefined) out.items = render(schema.items, dialect)
  if (schema.additionalProperties !== undefined) out.additionalProperties = render(schema.additionalProperties, dialect)
  return out
}

/** `CoreV1`, `NetworkingV1`, `ExtensionsV1beta1`: the operationId infix resource-routes.ts uses, as Kubernetes does. */
function versionTag (apiVersion: string): string {
  const { group, version } = splitApiVersion(apiVersion)
  const groupName = group === '' ? 'core' : (group.split('.')[0] ?? group)
  return groupName.charAt(0).toUpperCase() + groupName.slice(1) + version.charAt(0).toUpperCase() + version.slice(1)
}

interface Parameter {
  name: string
  in: 'path' | 'query'
  type: 'string' | 'integer'
  description: string
}

const NAME_PARAM: Parameter = { name: 'name', in: 'path', type: 'string', description: 'name of the object' }
const NAMESPACE_PARAM: Parameter = { name: 'namespace', in: 'path', type: 'string', description: 'object name and auth scope, such as for teams and projects' }
const LIST_PARAMS: Parameter[] = [
  { name: 'labelSelector', in: 'query', type: 'string', description: 'A selector to restrict the list of returned objects by their labels. Defaults to everything.' },
  { name: 'limit', in: 'query', type: 'integer', description: 'The most objects to return; the reply\'s metadata.continue fetches the next page.' },
  { name: 'continue', in: 'query', type: 'string', description: 'The metadata.continue of the previous page.' },
  { name: 'fieldSelector', in: 'query', type: 'string', description: 'A selector on metadata.name and metadata.namespace (=, ==, !=, comma-separated). Defaults to everything.' },
  { name: 'watch', in: 'query', type: 'string', description: 'Watch for changes and stream them as add, update and remove notifications (one JSON event per line).' },
  { name: 'resourceVersion', in: 'query', type: 'string', description: 'With watch: the changes after this version; unset or "0" starts with every current object.' },
  { name: 'timeoutSeconds', in: 'query', type: 'integer', description: 'With watch: end the stream after this many seconds.' },
  { name: 'allowWatchBookmarks', in: 'query', type: 'string', description: 'With watch: send BOOKMARK events carrying the current resourceVersion.' }
]
/** dryRun=All: validated as a real write, nothing stored (kubectl diff and --dry-run=server look for it). */
const DRY_RUN_PARAM: Parameter = { name: 'dryRun', in: 'query', type: 'string', description: 'When present, indicates that modifications should not be persisted. The only valid value is All: all dry run stages are processed.' }
const WRITE_PARAMS: Parameter[] = [
  DRY_RUN_PARAM,
  { name: 'fieldManager', in: 'query', type: 'string', description: 'fieldManager is a name associated with the actor or entity that is making these changes.' },
  { name: 'fieldValidation', in: 'query', type: 'string', description: 'fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields: Ignore, Warn or Strict (refuse the request). kubectl sends Strict.' }
]

/** One operation of a resource path, in neither dialect yet. */
interface Operation {
  method: 'get' | 'put' | 'post' | 'delete' | 'patch'
  action: 'list' | 'get' | 'post' | 'put' | 'patch' | 'delete'
  operationId: string
  description: string
  query: Parameter[]
  body?: { types: string[], schema: string }
  response: { code: '200' | '201', schema: string }
}

interface ResourcePath {
  path: string
  params: Parameter[]
  operations: Operation[]
}

function article (kind: string): string {
  return /^[AEIOU]/.test(kind) ? `an ${kind}` : `a ${kind}`
}

/** The paths of one kind in one version: the collection, one object, and (namespaced kinds) every namespace's. */
function resourcePaths (def: KindDefinition, apiVersion: string, kindName: string, listName: string): ResourcePath[] {
  const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`
  const tag = versionTag(apiVersion)
  const ns = def.namespaced ? 'Namespaced' : ''
  const collection = def.namespaced ? `${base}/namespaces/{namespace}/${def.plural}` : `${base}/${def.plural}`
  const scope = def.namespaced ? [NAMESPACE_PARAM] : []
  const paths: ResourcePath[] = [
    {
      path: collection,
      params: scope,
      operations: [
        { method: 'get', action: 'list', operationId: `list${tag}${ns}${def.kind}`, description: `list objects of kind ${def.kind}`, query: LIST_PARAMS, response: { code: '200', schema: listName } },
        { method: 'post', action: 'post', operationId: `create${tag}${ns}${def.kind}`, description: `create ${article(def.kind)}`, query: WRITE_PARAMS, body: { types: BODY_TYPES, schema: kindName }, response: { code: '201', schema: kindName } }
      ]
    },
    {
      path: `${collection}/{name}`,
      params: [NAME_PARAM, ...scope],
      operations: [
        { method: 'get', action: 'get', operationId: `read${tag}${ns}${def.kind}`, description: `read the specified ${def.kind}`, query: [], response: { code: '200', schema: kindName } },
        { method: 'put', action: 'put', operationId: `replace${tag}${ns}${def.kind}`, description: `replace the specified ${def.kind}`, query: WRITE_PARAMS, body: { types: BODY_TYPES, schema: kindName }, response: { code: '200', schema: kindName } },
        { method: 'patch', action: 'patch', operationId: `patch${tag}${ns}${def.kind}`, description: `partially update the specified ${def.kind}`, query: WRITE_PARAMS, body: { types: PATCH_TYPES, schema: PATCH }, response: { code: '200', schema: kindName } },
        { method: 'delete', action: 'delete', operationId: `delete${tag}${ns}${def.kind}`, description: `delete ${article(def.kind)}`, query: [DRY_RUN_PARAM], response: { code: '200', schema: kindName } }
      ]
    }
  ]
  if (def.namespaced) {
    paths.unshift({
      path: `${base}/${def.plural}`,
      params: [],
      operations: [{ method: 'get', action: 'list', operationId: `list${tag}${def.kind}ForAllNamespaces`, description: `list objects of kind ${def.kind} across all namespaces`, query: LIST_PARAMS, response: { code: '200', schema: listName } }]
    })
  }
  return paths
}

function renderParameter (param: Parameter, dialect: Dialect): JsonObject {
  const common = { description: param.description, in: param.in, name: param.name, ...(param.in === 'path' ? { required: true } : {}) }
  return dialect === 'v3' ? { ...common, schema: { type: param.type, uniqueItems: true } } : { ...common, type: param.type, uniqueItems: true }
}

function renderOperation (op: Operation, gvk: JsonObject, tag: string, dialect: Dialect): JsonObject {
  const extensions = { 'x-kubernetes-action': op.action, 'x-kubernetes-group-version-kind': gvk }
  const common = { description: op.description, operationId: op.operationId, tags: [tag], ...extensions }
  const query = op.query.map(p => renderParameter(p, dialect))
  if (dialect === 'v3') {
    const content = (schema: string, types: string[]): JsonObject => Object.fromEntries(types.map(t => [t, { schema: { $ref: refPath('v3', schema) } }]))
    return {
      ...common,
      ...(query.length === 0 ? {} : { parameters: query }),
      ...(op.body === undefined ? {} : { requestBody: { content: content(op.body.schema, op.body.types), required: true } }),
      responses: { [op.response.code]: { description: op.response.code === '201' ? 'Created' : 'OK', content: content(op.response.schema, ['application/json']) } }
    }
  }
  const body = op.body === undefined ? [] : [{ in: 'body', name: 'body', required: true, schema: { $ref: refPath('v2', op.body.schema) } }]
  return {
    ...common,
    consumes: op.body?.types ?? ['*/*'],
    produces: ['application/json'],
    schemes: ['https'],
    ...(body.length + query.length === 0 ? {} : { parameters: [...body, ...query] }),
    responses: { [op.response.code]: { description: op.response.code === '201' ? 'Created' : 'OK', schema: { $ref: refPath('v2', op.response.schema) } } }
  }
}

/** The schemas and paths of one group version, in neither dialect yet. */
interface GroupVersionModel {
  apiVersion: string
  components: Map<string, KubeSchema>
  paths: { path: ResourcePath, gvk: JsonObject, tag: string }[]
}

/** Builds one group version's model from the kinds served in it. */
function groupVersionModel (apiVersion: string, kinds: KindDefinition[], use: TableUse): GroupVersionModel {
  const set = new SchemaSet(use)
  const pkg = packageOf(apiVersion)
  const { group, version } = splitApiVersion(apiVersion)
  const tag = `${group === '' ? 'core' : (group.split('.')[0] ?? group)}_${version}`
  const paths: GroupVersionModel['paths'] = []
  set.add(PATCH, { type: 'object', description: use.lookup(DESCRIPTIONS, PATCH, '') })
  for (const def of kinds) {
    const served = def.versions[apiVersion]
    if (served === undefined) continue
    const kindName = `${pkg}.${def.kind}`
    const listName = `${pkg}.${def.kind}List`
    const gvk = { group, kind: def.kind, version }
    const merged = mergeSchemas(served.output as unknown as JsonObject, served.input as unknown as JsonObject)
    const body = set.named(merged, kindName, { owner: kindName, path: '', names: { fields: use.tree(`${def.kind} ${apiVersion}`, KIND_NAMES[def.kind]?.(apiVersion) ?? {}) }, pkg })
    body.properties = { ...body.properties, apiVersion: { type: 'string', description: API_VERSION_TEXT }, kind: { type: 'string', description: KIND_TEXT } }
    if (body.properties.metadata !== undefined) body.properties.metadata.description ??= METADATA_TEXT
    body.properties = Object.fromEntries(Object.keys(body.properties).sort().map(k => [k, (body.properties as Record<string, KubeSchema>)[k] as KubeSchema]))
    body.extensions = { ...body.extensions, 'x-kubernetes-group-version-kind': [gvk] }
    set.add(kindName, body)

    const listMeta = set.field(ListMeta as unknown as JsonObject, { owner: listName, path: 'metadata', names: tree(LIST_META), pkg })
    set.add(listName, {
      type: 'object',
      description: use.lookup(DESCRIPTIONS, listName, ''),
      properties: {
        apiVersion: { type: 'string', description: API_VERSION_TEXT },
        items: { type: 'array', description: use.lookup(DESCRIPTIONS, listName, 'items'), items: { ref: kindName } },
        kind: { type: 'string', description: KIND_TEXT },
        metadata: { ...listMeta, description: 'Standard list metadata.' }
      },
      required: ['items'],
      extensions: { 'x-kubernetes-group-version-kind': [{ group, kind: `${def.kind}List`, version }] }
    })
    for (const path of resourcePaths(def, apiVersion, kindName, listName)) paths.push({ path, gvk, tag })
  }
  return { apiVersion, components: set.components, paths }
}

function sortedEntries<T> (map: Map<string, T>): [string, T][] {
  return [...map.entries()].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
}

function renderPaths (model: GroupVersionModel, dialect: Dialect): JsonObject {
  const out: JsonObject = {}
  for (const { path, gvk, tag } of model.paths) {
    const item: JsonObject = {}
    if (path.params.length > 0) item.parameters = path.params.map(p => renderParameter(p, dialect))
    for (const op of path.operations) item[op.method] = renderOperation(op, gvk, tag, dialect)
    out[path.path] = item
  }
  return out
}

const INFO = { title: 'ingressd', version: VERSION }

/** A served document: its text, its hash (SHA-512, uppercase hex, as kube-openapi's ETag). */
export interface ServedDocument {
  json: string
  hash: string
}

/** Every OpenAPI document kubectl reads, built once. */
export interface KubeOpenApiDocuments {
  /** `/openapi/v3`: `{ paths: { 'apis/networking.k8s.io/v1': { serverRelativeURL } } }`. */
  v3Index: ServedDocument
  /** `/openapi/v3/api/v1`, `/openapi/v3/apis/<group>/<version>`, by `api/v1` / `apis/<group>/<version>`. */
  v3: ReadonlyMap<string, ServedDocument>
  /** `/openapi/v2` as JSON; `v2Protobuf` is the same document as gnostic protobuf. */
  v2: ServedDocument
  v2Protobuf: Buffer
  /** Description, extension and name table entries no field matched: a test keeps this empty. */
  unusedTableEntries: string[]
}

function served (document: unknown): ServedDocument {
  const json = canonicalJson(document)
  return { json, hash: createHash('sha512').update(json).digest('hex').toUpperCase() }
}

/** The key of a group version in the v3 index: `api/v1`, `apis/networking.k8s.io/v1`. */
function v3Key (apiVersion: string): string {
  return apiVersion.includes('/') ? `apis/${apiVersion}` : `api/${apiVersion}`
}

/**
 * Builds the OpenAPI v3 documents (one per group version ingressd serves, and their index) and
 * the OpenAPI v2 document (all group versions, as JSON and gnostic protobuf) from the kinds'
 * TypeBox schemas. Deterministic: the same kinds give the same bytes and hashes.
 */
export function buildKubeOpenApi (): KubeOpenApiDocuments {
  const use = new TableUse()
  const byVersion = new Map<string, KindDefinition[]>()
  for (const def of KINDS) for (const apiVersion of Object.keys(def.versions)) byVersion.set(apiVersion, [...(byVersion.get(apiVersion) ?? []), def])
  const models = sortedEntries(byVersion).map(([apiVersion, kinds]) => groupVersionModel(apiVersion, kinds, use))

  const v3 = new Map<string, ServedDocument>()
  for (const model of models) {
    v3.set(v3Key(model.apiVersion), served({
      openapi: '3.0.0',
      info: INFO,
      paths: renderPaths(model, 'v3'),
      components: { schemas: Object.fromEntries(sortedEntries(model.components).map(([name, schema]) => [name, render(schema, 'v3')])) }
    }))
  }
  const v3Index = served({ paths: Object.fromEntries(sortedEntries(v3).map(([key, doc]) => [key, { serverRelativeURL: `/openapi/v3/${key}?hash=${doc.hash}` }])) })

  const all = new SchemaSet(use)
  for (const model of models) for (const [name, schema] of model.components) all.add(name, schema)
  const v2Document = {
    swagger: '2.0',
    info: INFO,
    paths: Object.assign({}, ...models.map(model => renderPaths(model, 'v2'))) as JsonObject,
    definitions: Object.fromEntries(sortedEntries(all.components).map(([name, schema]) => [name, render(schema, 'v2')]))
  }
  const v2 = served(v2Document)
  return { v3Index, v3, v2, v2Protobuf: encodeOpenApiV2Protobuf(JSON.parse(v2.json) as JsonObject), unusedTableEntries: use.unused() }
}

/** The media types of an Accept header, most preferred first (by q, then order). */
function acceptedTypes (accept: string | undefined): string[] {
  return (accept ?? '*/*').split(',').map((part, i) => {
    const [type = '', ...params] = part.split(';').map(s => s.trim().toLowerCase())
    const q = params.map(p => /^q=([\d.]+)$/.exec(p)).find(m => m !== null)
    return { type, q: q === undefined || q === null ? 1 : Number(q[1]), i }
  }).filter(t => t.type !== '' && t.q > 0).sort((a, b) => b.q - a.q || a.i - b.i).map(t => t.type)
}

/** Whether the v2 document goes out as gnostic protobuf: the first acceptable type kube-openapi serves decides, JSON for wildcards. */
function wantsProtobuf (accept: string | undefined): boolean {
  for (const type of acceptedTypes(accept)) {
    const [main, sub = ''] = type.split('/')
    if (main === 'application' && V2_PROTOBUF_SUBTYPES.has(sub)) return true
    if ((main === 'application' || main === '*') && (sub === 'json' || sub === '*')) return false
  }
  return false
}

/** Answers a document kube-openapi's way: ETag, Vary, 304 for a matching If-None-Match. */
function sendDocument (req: FastifyRequest, reply: FastifyReply, hash: string, type: string, body: string | Buffer): FastifyReply {
  const etag = `"${hash}"`
  reply.header('etag', etag).header('vary', 'Accept')
  if (req.headers['if-none-match'] === etag) return reply.code(304).send()
  return reply.type(type).send(body)
}

const TAGS = ['Kubernetes API']
const Document = Type.Object({}, { additionalProperties: true })
const HashQuery = Type.Object({ hash: Type.Optional(Type.String({ description: 'The hash the index lists for this document: when it matches, the answer may be cached for good (Cache-Control: public, immutable); when not, a redirect to the current one' })) })

/**
 * Registers the OpenAPI documents kubectl downloads: `GET /openapi/v3` (the index),
 * `GET /openapi/v3/api/v1` and `GET /openapi/v3/apis/<group>/<version>` (one group version, with
 * `?hash=` answered as immutable), and `GET /openapi/v2` (gnostic protobuf when the Accept header
 * asks for it, as kubectl 1.27 and 1.28 do on every apply; JSON otherwise).
 */
export function registerKubeOpenApi (app: FastifyInstance): void {
  let built: KubeOpenApiDocuments | undefined
  const documents = (): KubeOpenApiDocuments => (built ??= buildKubeOpenApi())

  app.get('/openapi/v3', {
    schema: { tags: TAGS, operationId: 'getOpenAPIV3Index', summary: 'OpenAPI v3: the group versions, each with the URL of its document (hash included)', response: { 200: Document } }
  }, async (req, reply) => {
    const index = documents().v3Index
    return sendDocument(req, reply, index.hash, 'application/json', index.json)
  })

  const groupVersion = async (req: FastifyRequest, reply: FastifyReply, key: string): Promise<FastifyReply> => {
    const doc = documents().v3.get(key)
    if (doc === undefined) throw new IngressdError('INGRESSD_ERR_NOT_FOUND', `no OpenAPI v3 document for ${key}: ingressd serves ${[...documents().v3.keys()].join(', ')}`)
    const hash = (req.query as { hash?: string }).hash
    if (hash !== undefined && hash !== '') {
      // kube-openapi's answer to a stale hash: where the current document is.
      if (hash !== doc.hash) return reply.redirect(`/openapi/v3/${key}?hash=${doc.hash}`, 301)
      reply.header('cache-control', 'public, immutable').header('expires', new Date(Date.now() + 365 * 24 * 3600 * 1000).toUTCString())
    }
    return sendDocument(req, reply, doc.hash, 'application/json', doc.json)
  }
  app.get('/openapi/v3/api/:version', {
    schema: { tags: TAGS, operationId: 'getOpenAPIV3CoreGroupVersion', summary: 'OpenAPI v3 document of a core group version (api/v1): paths and schemas', params: Type.Object({ version: Type.String() }), querystring: HashQuery, response: { 200: Document } }
  }, async (req, reply) => await groupVersion(req, reply, `api/${(req.params as { version: string }).version}`))
  app.get('/openapi/v3/apis/:group/:version', {
    schema: { tags: TAGS, operationId: 'getOpenAPIV3GroupVersion', summary: 'OpenAPI v3 document of a group version (apis/networking.k8s.io/v1...): paths and schemas', params: Type.Object({ group: Type.String(), version: Type.String() }), querystring: HashQuery, response: { 200: Document } }
  }, async (req, reply) => {
    const { group, version } = req.params as { group: string, version: string }
    return await groupVersion(req, reply, `apis/${group}/${version}`)
  })

  app.get('/openapi/v2', {
    schema: {
      tags: TAGS,
      operationId: 'getOpenAPIV2',
      summary: 'OpenAPI v2 (Swagger 2.0) of every group version: gnostic protobuf for Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf (kubectl apply, 1.27 and 1.28), JSON otherwise',
      produces: ['application/json', V2_PROTOBUF],
      response: { 200: { description: 'The document', content: { 'application/json': { schema: Document }, [V2_PROTOBUF]: { schema: { type: 'string', format: 'binary' } } } } }
    }
  }, async (req, reply) => {
    const docs = documents()
    return wantsProtobuf(req.headers.accept)
      ? sendDocument(req, reply, docs.v2.hash, V2_PROTOBUF, docs.v2Protobuf)
      : sendDocument(req, reply, docs.v2.hash, 'application/json', docs.v2.json)
  })
}
