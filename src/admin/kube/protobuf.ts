/**
 * The protobuf the admin plane speaks with kubectl, both ways:
 * - in: Kubernetes request bodies (`application/vnd.kubernetes.protobuf`), which kubectl 1.32 and
 *   newer send for `kubectl create secret|service|ingress ...`: the magic `k8s\0`, then a
 *   runtime.Unknown envelope whose `raw` is the object's own protobuf. Decoded into the JSON the
 *   same kubectl would have sent (Go's encoding/json of the object), so every write path reads
 *   one shape and one validator judges it;
 * - out: the OpenAPI v2 document as gnostic's `openapi.v2.Document`, which kubectl 1.27 and 1.28
 *   download on every `kubectl apply`, as kube-openapi builds it from the JSON document.
 */
import protobuf from 'protobufjs/light.js'
import { IngressdError } from '../../errors.js'
import { JSON_EMIT_OPTION, OBJECT_MESSAGES, OPENAPI_V2_DOCUMENT, PROTO_ROOT, UNKNOWN_MESSAGE, type JsonEmit } from './proto-descriptors.js'

/** The 4 bytes every Kubernetes protobuf body starts with. */
const MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00])

const INT_OR_STRING = 'k8s.io.apimachinery.pkg.util.intstr.IntOrString'
const TIME = 'k8s.io.apimachinery.pkg.apis.meta.v1.Time'

function malformed (message: string): IngressdError {
  return new IngressdError('INGRESSD_ERR_MALFORMED_BODY', message)
}

/** What each decodable kind is called in messages: `Secret (v1)`. */
function supportedKinds (): string {
  return Object.keys(OBJECT_MESSAGES).map(key => {
    const slash = key.lastIndexOf('/')
    return `${key.slice(slash + 1)} (${key.slice(0, slash)})`
  }).join(', ')
}

/** int64 fields decode as Long when the `long` package loads, as numbers otherwise. */
function toNumber (value: unknown): number {
  if (typeof value === 'number') return value
  if (typeof value === 'object' && value !== null && 'toNumber' in value) return (value as { toNumber: () => number }).toNumber()
  return Number(value)
}

/** A scalar Go's omitempty leaves out: "", 0, false, empty bytes. */
function isZero (value: unknown): boolean {
  if (value instanceof Uint8Array) return value.length === 0
  if (typeof value === 'object' && value !== null) return toNumber(value) === 0
  return value === '' || value === 0 || value === false || value === undefined || value === null
}

/** metav1.Time as Go writes it: RFC 3339 in UTC, whole seconds; undefined for the zero time. */
function timeToJson (message: Record<string, unknown>): string | undefined {
  const seconds = toNumber(message.seconds ?? 0)
  if (seconds === 0 && toNumber(message.nanos ?? 0) === 0) return undefined
  // toISOString throws a RangeError past year 275760: the caller reports the body as malformed.
  return new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z')
}

function scalarToJson (field: protobuf.Field, value: unknown): unknown {
  if (field.type === 'bytes') return Buffer.from(value as Uint8Array).toString('base64')
  if (field.type === 'int64' || field.type === 'uint64') return toNumber(value)
  return value
}

function valueToJson (field: protobuf.Field, value: unknown): unknown {
  const type = field.resolvedType
  if (type instanceof protobuf.Type) return messageToJson(type, value as Record<string, unknown>)
  return scalarToJson(field, value)
}

/**
 * A decoded message as Go's encoding/json writes the same object: fields named as in JSON, left
 * out or kept by their `json` tag ({@link JsonEmit}), bytes as base64, IntOrString as a number or
 * a string, Time as RFC 3339.
 */
function messageToJson (type: protobuf.Type, message: Record<string, unknown>): unknown {
  if (type.fullName.slice(1) === INT_OR_STRING) return toNumber(message.type ?? 0) === 1 ? (message.strVal ?? '') : (message.intVal ?? 0)
  const out: Record<string, unknown> = {}
  for (const field of type.fieldsArray) {
    const emit = (field.options?.[JSON_EMIT_OPTION] ?? 'omitempty') as JsonEmit
    if (emit === 'skip' || !Object.hasOwn(message, field.name)) continue
    const value = message[field.name]
    if (field.map) {
      const map = value as Record<string, unknown>
      if (Object.keys(map).length === 0) continue
      out[field.name] = Object.fromEntries(Object.entries(map).map(([k, v]) => [k, valueToJson(field, v)]))
    } else if (field.repeated) {
      const list = value as unknown[]
      if (list.length === 0) continue
      out[field.name] = list.map(v => valueToJson(field, v))
    } else if (field.resolvedType instanceof protobuf.Type) {
      if (field.resolvedType.fullName.slice(1) === TIME) {
        const time = timeToJson(value as Record<string, unknown>)
        if (time !== undefined) out[field.name] = time
        continue
      }
      const nested = messageToJson(field.resolvedType, value as Record<string, unknown>)
      if (emit === 'inline') Object.assign(out, nested)
      else out[field.name] = nested
    } else if (emit !== 'omitempty' || !isZero(value)) {
      out[field.name] = scalarToJson(field, value)
    }
  }
  return out
}

/**
 * Decodes a Kubernetes protobuf request body into the object the JSON API would have received:
 * apiVersion, kind, metadata (server-set fields only when sent with a value), and the kind's own
 * fields (Secret data as base64, Service spec, Endpoints subsets, Ingress networking.k8s.io/v1
 * spec, IngressClass spec). Status is not read: the server sets it.
 *
 * Throws IngressdError: INGRESSD_ERR_UNSUPPORTED_MEDIA_TYPE for a kind ingressd does not decode
 * (the message names it; JSON works for every kind), INGRESSD_ERR_MALFORMED_BODY for a body that
 * is not a Kubernetes protobuf envelope or whose object does not decode.
 */
export function decodeKubernetesProtobuf (body: Buffer): Record<string, unknown> {
  if (body.length < MAGIC.length || !body.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw malformed('the body is sent as application/vnd.kubernetes.protobuf but does not start with the Kubernetes protobuf magic "k8s\\0"')
  }
  let envelope: Record<string, unknown>
  try {
    envelope = UNKNOWN_MESSAGE.decode(body.subarray(MAGIC.length)) as unknown as Record<string, unknown>
  } catch (err) {
    throw malformed(`the Kubernetes protobuf envelope (runtime.Unknown) does not decode: ${(err as Error).message}`)
  }
  const typeMeta = (envelope.typeMeta ?? {}) as { apiVersion?: string, kind?: string }
  const apiVersion = typeMeta.apiVersion ?? ''
  const kind = typeMeta.kind ?? ''
  const named = `${kind === '' ? 'an object without a kind' : kind} (${apiVersion === '' ? 'no apiVersion' : apiVersion})`
  const encoding = (envelope.contentEncoding ?? '') as string
  const contentType = (envelope.contentType ?? '') as string
  if (encoding !== '' || (contentType !== '' && contentType !== 'application/vnd.kubernetes.protobuf')) {
    throw new IngressdError('INGRESSD_ERR_UNSUPPORTED_MEDIA_TYPE', `the protobuf envelope of ${named} says its object is encoded as ${[contentType, encoding].filter(s => s !== '').join(' + ')}; ingressd reads only plain protobuf objects: send it as application/json`)
  }
  const typeName = OBJECT_MESSAGES[`${apiVersion}/${kind}`]
  if (typeName === undefined) {
    throw new IngressdError('INGRESSD_ERR_UNSUPPORTED_MEDIA_TYPE', `ingressd decodes protobuf bodies of ${supportedKinds()}; this one is ${named}: send it as application/json`)
  }
  const type = PROTO_ROOT.lookupType(typeName)
  let fields: Record<string, unknown>
  try {
    fields = messageToJson(type, type.decode((envelope.raw ?? new Uint8Array()) as Uint8Array) as unknown as Record<string, unknown>) as Record<string, unknown>
  } catch (err) {
    throw malformed(`the protobuf body of ${named} does not decode: ${(err as Error).message}`)
  }
  return { apiVersion, kind, ...fields }
}

type JsonObject = Record<string, unknown>

function isObject (value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/**
 * gnostic keeps a value it has no message for (an extension, an enum member) as YAML text;
 * JSON is YAML, and Go's YAML reader gives back the same maps, lists and scalars.
 */
function anyValue (value: unknown): JsonObject {
  return { yaml: `${JSON.stringify(value)}\n` }
}

/** The `x-` keys of an object, as gnostic's NamedAny list (omitted when there are none). */
function vendorExtensions (object: JsonObject): JsonObject[] | undefined {
  const named = Object.entries(object).filter(([key]) => key.startsWith('x-')).map(([name, value]) => ({ name, value: anyValue(value) }))
  return named.length === 0 ? undefined : named
}

function named<T> (object: unknown, convert: (value: JsonObject) => T): { name: string, value: T }[] {
  return Object.entries(isObject(object) ? object : {}).filter(([key]) => !key.startsWith('x-')).map(([name, value]) => ({ name, value: convert(value as JsonObject) }))
}

/** Copies the keys that are set, so the message carries no empty fields. */
function defined (object: JsonObject): JsonObject {
  return Object.fromEntries(Object.entries(object).filter(([, value]) => value !== undefined))
}

function gnosticSchema (schema: JsonObject): JsonObject {
  const additional = schema.additionalProperties
  const items = schema.items
  return defined({
    ref: schema.$ref,
    format: schema.format,
    title: schema.title,
    description: schema.description,
    uniqueItems: schema.uniqueItems,
    required: schema.required,
    enum: Array.isArray(schema.enum) ? schema.enum.map(anyValue) : undefined,
    additionalProperties: additional === undefined ? undefined : typeof additional === 'boolean' ? { boolean: additional } : { schema: gnosticSchema(additional as JsonObject) },
    type: schema.type === undefined ? undefined : { value: Array.isArray(schema.type) ? schema.type : [schema.type] },
    items: items === undefined ? undefined : { schema: (Array.isArray(items) ? items : [items]).map(s => gnosticSchema(s as JsonObject)) },
    allOf: Array.isArray(schema.allOf) ? schema.allOf.map(s => gnosticSchema(s as JsonObject)) : undefined,
    properties: schema.properties === undefined ? undefined : { additionalProperties: named(schema.properties, gnosticSchema) },
    readOnly: schema.readOnly,
    vendorExtension: vendorExtensions(schema)
  })
}

/** A Swagger 2.0 parameter: a `$ref`, a body parameter, or a query, path, header or form one. */
function gnosticParameter (parameter: JsonObject): JsonObject {
  if (typeof parameter.$ref === 'string') return { jsonReference: { ref: parameter.$ref } }
  if (parameter.in === 'body') {
    return { parameter: { bodyParameter: defined({ description: parameter.description, name: parameter.name, in: 'body', required: parameter.required, schema: isObject(parameter.schema) ? gnosticSchema(parameter.schema) : undefined, vendorExtension: vendorExtensions(parameter) }) } }
  }
  const common = defined({ required: parameter.required, in: parameter.in, description: parameter.description, name: parameter.name, type: parameter.type, format: parameter.format, uniqueItems: parameter.uniqueItems, vendorExtension: vendorExtensions(parameter) })
  if (parameter.in === 'path') return { parameter: { nonBodyParameter: { pathParameterSubSchema: common } } }
  if (parameter.in === 'query') return { parameter: { nonBodyParameter: { queryParameterSubSchema: common } } }
  throw new IngressdError('INGRESSD_ERR_INTERNAL', `OpenAPI v2: parameters in ${String(parameter.in)} are not encoded`)
}

function gnosticOperation (operation: JsonObject): JsonObject {
  return defined({
    tags: operation.tags,
    summary: operation.summary,
    description: operation.description,
    operationId: operation.operationId,
    produces: operation.produces,
    consumes: operation.consumes,
    parameters: Array.isArray(operation.parameters) ? operation.parameters.map(p => gnosticParameter(p as JsonObject)) : undefined,
    responses: isObject(operation.responses)
      ? {
          responseCode: named(operation.responses, response => ({
            response: defined({ description: response.description, schema: isObject(response.schema) ? { schema: gnosticSchema(response.schema) } : undefined })
          }))
        }
      : undefined,
    schemes: operation.schemes,
    deprecated: operation.deprecated,
    vendorExtension: vendorExtensions(operation)
  })
}

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch'] as const

function gnosticPathItem (item: JsonObject): JsonObject {
  const out: JsonObject = {}
  for (const method of METHODS) if (isObject(item[method])) out[method] = gnosticOperation(item[method])
  if (Array.isArray(item.parameters)) out.parameters = item.parameters.map(p => gnosticParameter(p as JsonObject))
  const extensions = vendorExtensions(item)
  if (extensions !== undefined) out.vendorExtension = extensions
  return out
}

/**
 * Encodes a Swagger 2.0 document as gnostic's `openapi.v2.Document` protobuf, the body of
 * `/openapi/v2` for `Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`:
 * what kube-openapi serves (it parses the JSON document with gnostic and marshals it). Maps keep
 * the document's key order. Covers the parts of Swagger 2.0 ingressd writes: info, paths with
 * their operations, body, query and path parameters and responses, and definitions (type,
 * format, description, properties, items, additionalProperties, required, enum, allOf, `$ref`
 * and `x-` extensions).
 */
export function encodeOpenApiV2Protobuf (document: JsonObject): Buffer {
  const info = isObject(document.info) ? document.info : {}
  const message = defined({
    swagger: document.swagger,
    info: defined({ title: info.title, version: info.version, description: info.description }),
    host: document.host,
    basePath: document.basePath,
    schemes: document.schemes,
    consumes: document.consumes,
    produces: document.produces,
    paths: isObject(document.paths) ? defined({ vendorExtension: vendorExtensions(document.paths), path: named(document.paths, gnosticPathItem) }) : undefined,
    definitions: isObject(document.definitions) ? { additionalProperties: named(document.definitions, gnosticSchema) } : undefined,
    vendorExtension: vendorExtensions(document)
  })
  return Buffer.from(OPENAPI_V2_DOCUMENT.encode(message).finish())
}
