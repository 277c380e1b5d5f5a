/**
 * The protobuf messages ingressd reads and writes, as protobufjs descriptors (the build bundles
 * src/ and ships no .proto files): the Kubernetes objects kubectl 1.32 and newer POST as
 * `application/vnd.kubernetes.protobuf` (field numbers from k8s.io/api `core/v1`, `networking/v1`
 * and k8s.io/apimachinery `meta/v1`, `runtime`, `util/intstr` generated.proto), and the part of
 * gnostic's `openapi.v2.Document` (openapiv2/OpenAPIv2.proto) that kubectl reads from
 * `/openapi/v2`.
 *
 * Each Kubernetes field also says how Go's encoding/json writes it (its `json:"..."` tag), so a
 * decoded object reads as the JSON the same client would have sent: see {@link JsonEmit}.
 */
import protobuf from 'protobufjs/light.js'

/**
 * How Go's encoding/json writes a field of a Kubernetes type, which decides what a decoded
 * protobuf field becomes in JSON:
 * - `omitempty` (the default): a non-pointer `omitempty` field, left out when empty or zero;
 * - `pointer`: a pointer field, written whenever it is set, even to "" or 0;
 * - `always`: a field without `omitempty`, written whenever the message carries it (Go's protobuf
 *   marshaller always writes non-pointer fields, so that is whenever it was sent);
 * - `inline`: an embedded struct (`json:",inline"`), whose fields are written in the parent;
 * - `skip`: not decoded into the request (status: the server sets it; a create from kubectl
 *   carries an empty one).
 * A message-typed field is written whenever it is present, as Go writes a non-nil pointer or a
 * struct (omitempty does not omit structs); `metav1.Time` is the exception, left out when zero.
 */
export type JsonEmit = 'omitempty' | 'pointer' | 'always' | 'inline' | 'skip'

/** `[field number, type, how Go writes it]`; the type is a scalar, a message, `repeated T` or `map<K,V>`. */
type FieldSpec = readonly [number, string, JsonEmit?]

/** The option each Kubernetes field carries its {@link JsonEmit} in. */
export const JSON_EMIT_OPTION = 'go_json'

function field ([id, type, emit]: FieldSpec, edition: Edition): protobuf.IField | protobuf.IMapField {
  const extra = { ...(emit === undefined ? {} : { options: { [JSON_EMIT_OPTION]: emit } }), ...(edition === 'proto2' ? { edition } : {}) }
  const map = /^map<(\w+),\s*([\w.]+)>$/.exec(type)
  if (map !== null) return { keyType: map[1] as string, type: map[2] as string, id, ...extra }
  const repeated = type.startsWith('repeated ')
  return { type: repeated ? type.slice('repeated '.length) : type, id, ...(repeated ? { rule: 'repeated' } : {}), ...extra }
}

/**
 * proto2 for Kubernetes' messages: a field sent empty is still set after decoding, which is how
 * a pointer field set to "" stays distinguishable from an unset one. proto3 for gnostic's.
 */
type Edition = 'proto2' | 'proto3'

function messageOf (edition: Edition, fields: Record<string, FieldSpec>, oneofs?: Record<string, string[]>): protobuf.IType {
  return {
    fields: Object.fromEntries(Object.entries(fields).map(([name, spec]) => [name, field(spec, edition)])),
    ...(oneofs === undefined ? {} : { oneofs: Object.fromEntries(Object.entries(oneofs).map(([name, members]) => [name, { oneof: members }])) })
  }
}

/** A k8s.io generated.proto message (proto2). */
const kube = (fields: Record<string, FieldSpec>): protobuf.IType => messageOf('proto2', fields)
/** A gnostic OpenAPIv2.proto message (proto3). */
const message = (fields: Record<string, FieldSpec>, oneofs?: Record<string, string[]>): protobuf.IType => messageOf('proto3', fields, oneofs)

/** Nests a package's messages under its dotted name, as protobufjs namespaces. */
function packages (list: Record<string, Record<string, protobuf.IType>>): protobuf.INamespace {
  const root: protobuf.INamespace = { nested: {} }
  for (const [name, types] of Object.entries(list)) {
    let ns = root
    for (const part of name.split('.')) {
      ns.nested ??= {}
      ns = (ns.nested[part] ??= { nested: {} }) as protobuf.INamespace
    }
    ns.nested = { ...ns.nested, ...types }
  }
  return root
}

const META = '.k8s.io.apimachinery.pkg.apis.meta.v1'
const INTSTR = '.k8s.io.apimachinery.pkg.util.intstr.IntOrString'
const CORE = '.k8s.io.api.core.v1'

const KUBERNETES = {
  'k8s.io.apimachinery.pkg.runtime': {
    // The envelope after the 4-byte magic `k8s\0`: the object's type and its own encoding.
    Unknown: kube({ typeMeta: [1, 'TypeMeta'], raw: [2, 'bytes'], contentEncoding: [3, 'string'], contentType: [4, 'string'] }),
    TypeMeta: kube({ apiVersion: [1, 'string'], kind: [2, 'string'] })
  },
  'k8s.io.apimachinery.pkg.util.intstr': {
    // type 0: intVal, type 1: strVal; written as a JSON number or string.
    IntOrString: kube({ type: [1, 'int64'], intVal: [2, 'int32'], strVal: [3, 'string'] })
  },
  'k8s.io.apimachinery.pkg.apis.meta.v1': {
    // selfLink (4) and managedFields (17) are server-set and not read.
    ObjectMeta: kube({
      name: [1, 'string'],
      generateName: [2, 'string'],
      namespace: [3, 'string'],
      uid: [5, 'string'],
      resourceVersion: [6, 'string'],
      generation: [7, 'int64'],
      creationTimestamp: [8, 'Time'],
      deletionTimestamp: [9, 'Time'],
      deletionGracePeriodSeconds: [10, 'int64', 'pointer'],
      labels: [11, 'map<string,string>'],
      annotations: [12, 'map<string,string>'],
      ownerReferences: [13, 'repeated OwnerReference'],
      finalizers: [14, 'repeated string']
    }),
    OwnerReference: kube({
      apiVersion: [5, 'string', 'always'],
      kind: [1, 'string', 'always'],
      name: [3, 'string', 'always'],
      uid: [4, 'string', 'always'],
      controller: [6, 'bool', 'pointer'],
      blockOwnerDeletion: [7, 'bool', 'pointer']
    }),
    Time: kube({ seconds: [1, 'int64'], nanos: [2, 'int32'] })
  },
  'k8s.io.api.core.v1': {
    Secret: kube({
      metadata: [1, `${META}.ObjectMeta`],
      immutable: [5, 'bool', 'pointer'],
      data: [2, 'map<string,bytes>'],
      stringData: [4, 'map<string,string>'],
      type: [3, 'string']
    }),
    Service: kube({ metadata: [1, `${META}.ObjectMeta`], spec: [2, 'ServiceSpec'], status: [3, 'bytes', 'skip'] }),
    ServiceSpec: kube({
      ports: [1, 'repeated ServicePort'],
      selector: [2, 'map<string,string>'],
      clusterIP: [3, 'string'],
      clusterIPs: [18, 'repeated string'],
      type: [4, 'string'],
      externalIPs: [5, 'repeated string'],
      sessionAffinity: [7, 'string'],
      loadBalancerIP: [8, 'string'],
      loadBalancerSourceRanges: [9, 'repeated string'],
      externalName: [10, 'string'],
      externalTrafficPolicy: [11, 'string'],
      healthCheckNodePort: [12, 'int32'],
      publishNotReadyAddresses: [13, 'bool'],
      sessionAffinityConfig: [14, 'SessionAffinityConfig'],
      ipFamilies: [19, 'repeated string'],
      ipFamilyPolicy: [17, 'string', 'pointer'],
      allocateLoadBalancerNodePorts: [20, 'bool', 'pointer'],
      loadBalancerClass: [21, 'string', 'pointer'],
      internalTrafficPolicy: [22, 'string', 'pointer'],
      trafficDistribution: [23, 'string', 'pointer']
    }),
    ServicePort: kube({
      name: [1, 'string'],
      protocol: [2, 'string'],
      appProtocol: [6, 'string', 'pointer'],
      port: [3, 'int32', 'always'],
      targetPort: [4, INTSTR],
      nodePort: [5, 'int32']
    }),
    SessionAffinityConfig: kube({ clientIP: [1, 'ClientIPConfig'] }),
    ClientIPConfig: kube({ timeoutSeconds: [1, 'int32', 'pointer'] }),
    Endpoints: kube({ metadata: [1, `${META}.ObjectMeta`], subsets: [2, 'repeated EndpointSubset'] }),
    EndpointSubset: kube({ addresses: [1, 'repeated EndpointAddress'], notReadyAddresses: [2, 'repeated EndpointAddress'], ports: [3, 'repeated EndpointPort'] }),
    EndpointAddress: kube({ ip: [1, 'string', 'always'], hostname: [3, 'string'], nodeName: [4, 'string', 'pointer'], targetRef: [2, 'ObjectReference'] }),
    EndpointPort: kube({ name: [1, 'string'], port: [2, 'int32', 'always'], protocol: [3, 'string'], appProtocol: [4, 'string', 'pointer'] }),
    ObjectReference: kube({
      kind: [1, 'string'],
      namespace: [2, 'string'],
      name: [3, 'string'],
      uid: [4, 'string'],
      apiVersion: [5, 'string'],
      resourceVersion: [6, 'string'],
      fieldPath: [7, 'string']
    }),
    TypedLocalObjectReference: kube({ apiGroup: [1, 'string', 'pointer'], kind: [2, 'string', 'always'], name: [3, 'string', 'always'] })
  },
  'k8s.io.api.networking.v1': {
    Ingress: kube({ metadata: [1, `${META}.ObjectMeta`], spec: [2, 'IngressSpec'], status: [3, 'bytes', 'skip'] }),
    IngressSpec: kube({ ingressClassName: [4, 'string', 'pointer'], defaultBackend: [1, 'IngressBackend'], tls: [2, 'repeated IngressTLS'], rules: [3, 'repeated IngressRule'] }),
    IngressBackend: kube({ service: [4, 'IngressServiceBackend'], resource: [3, `${CORE}.TypedLocalObjectReference`] }),
    IngressServiceBackend: kube({ name: [1, 'string', 'always'], port: [2, 'ServiceBackendPort'] }),
    ServiceBackendPort: kube({ name: [1, 'string'], number: [2, 'int32'] }),
    IngressTLS: kube({ hosts: [1, 'repeated string'], secretName: [2, 'string'] }),
    IngressRule: kube({ host: [1, 'string'], ingressRuleValue: [2, 'IngressRuleValue', 'inline'] }),
    IngressRuleValue: kube({ http: [1, 'HTTPIngressRuleValue'] }),
    HTTPIngressRuleValue: kube({ paths: [1, 'repeated HTTPIngressPath', 'always'] }),
    HTTPIngressPath: kube({ path: [1, 'string'], pathType: [3, 'string', 'pointer'], backend: [2, 'IngressBackend'] }),
    IngressClass: kube({ metadata: [1, `${META}.ObjectMeta`], spec: [2, 'IngressClassSpec'] }),
    IngressClassSpec: kube({ controller: [1, 'string'], parameters: [2, 'IngressClassParametersReference'] }),
    // Go's proto name is aPIGroup; its JSON name, apiGroup.
    IngressClassParametersReference: kube({ apiGroup: [1, 'string', 'pointer'], kind: [2, 'string', 'always'], name: [3, 'string', 'always'], scope: [4, 'string', 'pointer'], namespace: [5, 'string', 'pointer'] })
  }
}

/**
 * gnostic's OpenAPI v2 messages, trimmed to what ingressd writes: field numbers as in
 * OpenAPIv2.proto, unused fields left out (a reader skips none it does not find). Maps are
 * `Named*` pairs, which keep the document's order; `Any` holds a value as YAML text.
 */
const GNOSTIC = {
  'openapi.v2': {
    Document: message({
      swagger: [1, 'string'],
      info: [2, 'Info'],
      host: [3, 'string'],
      basePath: [4, 'string'],
      schemes: [5, 'repeated string'],
      consumes: [6, 'repeated string'],
      produces: [7, 'repeated string'],
      paths: [8, 'Paths'],
      definitions: [9, 'Definitions'],
      vendorExtension: [16, 'repeated NamedAny']
    }),
    Info: message({ title: [1, 'string'], version: [2, 'string'], description: [3, 'string'] }),
    Any: message({ yaml: [2, 'string'] }),
    NamedAny: message({ name: [1, 'string'], value: [2, 'Any'] }),
    Paths: message({ vendorExtension: [1, 'repeated NamedAny'], path: [2, 'repeated NamedPathItem'] }),
    NamedPathItem: message({ name: [1, 'string'], value: [2, 'PathItem'] }),
    PathItem: message({
      ref: [1, 'string'],
      get: [2, 'Operation'],
      put: [3, 'Operation'],
      post: [4, 'Operation'],
      delete: [5, 'Operation'],
      options: [6, 'Operation'],
      head: [7, 'Operation'],
      patch: [8, 'Operation'],
      parameters: [9, 'repeated ParametersItem'],
      vendorExtension: [10, 'repeated NamedAny']
    }),
    Operation: message({
      tags: [1, 'repeated string'],
      summary: [2, 'string'],
      description: [3, 'string'],
      operationId: [5, 'string'],
      produces: [6, 'repeated string'],
      consumes: [7, 'repeated string'],
      parameters: [8, 'repeated ParametersItem'],
      responses: [9, 'Responses'],
      schemes: [10, 'repeated string'],
      deprecated: [11, 'bool'],
      vendorExtension: [13, 'repeated NamedAny']
    }),
    ParametersItem: message({ parameter: [1, 'Parameter'], jsonReference: [2, 'JsonReference'] }, { oneof: ['parameter', 'jsonReference'] }),
    JsonReference: message({ ref: [1, 'string'], description: [2, 'string'] }),
    Parameter: message({ bodyParameter: [1, 'BodyParameter'], nonBodyParameter: [2, 'NonBodyParameter'] }, { oneof: ['bodyParameter', 'nonBodyParameter'] }),
    BodyParameter: message({ description: [1, 'string'], name: [2, 'string'], in: [3, 'string'], required: [4, 'bool'], schema: [5, 'Schema'], vendorExtension: [6, 'repeated NamedAny'] }),
    NonBodyParameter: message({
      headerParameterSubSchema: [1, 'bytes'],
      formDataParameterSubSchema: [2, 'bytes'],
      queryParameterSubSchema: [3, 'QueryParameterSubSchema'],
      pathParameterSubSchema: [4, 'PathParameterSubSchema']
    }, { oneof: ['headerParameterSubSchema', 'formDataParameterSubSchema', 'queryParameterSubSchema', 'pathParameterSubSchema'] }),
    QueryParameterSubSchema: message({ required: [1, 'bool'], in: [2, 'string'], description: [3, 'string'], name: [4, 'string'], allowEmptyValue: [5, 'bool'], type: [6, 'string'], format: [7, 'string'], uniqueItems: [20, 'bool'], vendorExtension: [23, 'repeated NamedAny'] }),
    PathParameterSubSchema: message({ required: [1, 'bool'], in: [2, 'string'], description: [3, 'string'], name: [4, 'string'], type: [5, 'string'], format: [6, 'string'], uniqueItems: [19, 'bool'], vendorExtension: [22, 'repeated NamedAny'] }),
    Responses: message({ responseCode: [1, 'repeated NamedResponseValue'], vendorExtension: [2, 'repeated NamedAny'] }),
    NamedResponseValue: message({ name: [1, 'string'], value: [2, 'ResponseValue'] }),
    ResponseValue: message({ response: [1, 'Response'], jsonReference: [2, 'JsonReference'] }, { oneof: ['response', 'jsonReference'] }),
    Response: message({ description: [1, 'string'], schema: [2, 'SchemaItem'], vendorExtension: [5, 'repeated NamedAny'] }),
    SchemaItem: message({ schema: [1, 'Schema'], fileSchema: [2, 'bytes'] }, { oneof: ['schema', 'fileSchema'] }),
    Definitions: message({ additionalProperties: [1, 'repeated NamedSchema'] }),
    NamedSchema: message({ name: [1, 'string'], value: [2, 'Schema'] }),
    Schema: message({
      ref: [1, 'string'],
      format: [2, 'string'],
      title: [3, 'string'],
      description: [4, 'string'],
      default: [5, 'Any'],
      uniqueItems: [16, 'bool'],
      required: [19, 'repeated string'],
      enum: [20, 'repeated Any'],
      additionalProperties: [21, 'AdditionalPropertiesItem'],
      type: [22, 'TypeItem'],
      items: [23, 'ItemsItem'],
      allOf: [24, 'repeated Schema'],
      properties: [25, 'Properties'],
      readOnly: [27, 'bool'],
      vendorExtension: [31, 'repeated NamedAny']
    }),
    AdditionalPropertiesItem: message({ schema: [1, 'Schema'], boolean: [2, 'bool'] }, { oneof: ['schema', 'boolean'] }),
    TypeItem: message({ value: [1, 'repeated string'] }),
    ItemsItem: message({ schema: [1, 'repeated Schema'] }),
    Properties: message({ additionalProperties: [1, 'repeated NamedSchema'] })
  }
}

/** Every message above, resolved. */
export const PROTO_ROOT: protobuf.Root = protobuf.Root.fromJSON(packages({ ...KUBERNETES, ...GNOSTIC }))
PROTO_ROOT.resolveAll()

/** The Kubernetes objects ingressd decodes from protobuf, by `apiVersion/kind`. */
export const OBJECT_MESSAGES: Readonly<Record<string, string>> = {
  'v1/Secret': 'k8s.io.api.core.v1.Secret',
  'v1/Service': 'k8s.io.api.core.v1.Service',
  'v1/Endpoints': 'k8s.io.api.core.v1.Endpoints',
  'networking.k8s.io/v1/Ingress': 'k8s.io.api.networking.v1.Ingress',
  'networking.k8s.io/v1/IngressClass': 'k8s.io.api.networking.v1.IngressClass'
}

/** The envelope of every Kubernetes protobuf body. */
export const UNKNOWN_MESSAGE = PROTO_ROOT.lookupType('k8s.io.apimachinery.pkg.runtime.Unknown')

/** gnostic's OpenAPI v2 document, as `/openapi/v2` serves it in protobuf. */
export const OPENAPI_V2_DOCUMENT = PROTO_ROOT.lookupType('openapi.v2.Document')
