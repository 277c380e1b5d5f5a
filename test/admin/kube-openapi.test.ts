import { createHash } from 'node:crypto'
import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { buildAdminApp } from '../../src/admin/app.js'
import { registerDiscoveryRoutes } from '../../src/admin/kube/discovery.js'
import { buildKubeOpenApi, registerKubeOpenApi } from '../../src/admin/kube/openapi.js'
import { OPENAPI_V2_DOCUMENT } from '../../src/admin/kube/proto-descriptors.js'
import { GatewayMetrics } from '../../src/metrics.js'
import { KINDS } from '../../src/resources/kinds.js'
import { ChangeFeed } from '../../src/store/change-feed.js'
import { openDatabase } from '../../src/store/database.js'
import { ObjectStore } from '../../src/store/object-store.js'
import { kubectlBinaries, kubectlFor, noKubectlReason } from '../helpers/kubectl.js'

type JsonObject = Record<string, unknown>

const V2_PROTOBUF = 'application/com.github.proto-openapi.spec.v2.v1.0+protobuf'
const KUBECTL_V2_ACCEPT = 'application/com.github.proto-openapi.spec.v2@v1.0+protobuf'

const docs = buildKubeOpenApi()
const v3 = (key: string): JsonObject => JSON.parse(docs.v3.get(key)?.json ?? 'null') as JsonObject
const v2 = JSON.parse(docs.v2.json) as JsonObject

function get (value: unknown, ...path: string[]): unknown {
  let cur = value
  for (const key of path) cur = (cur as JsonObject | undefined)?.[key]
  return cur
}

/** A schema with its `$ref` (bare or wrapped in a one-element allOf) followed. */
function resolve (doc: JsonObject, schema: unknown): JsonObject {
  let s = schema as JsonObject
  if (Array.isArray(s.allOf) && s.allOf.length === 1) s = s.allOf[0] as JsonObject
  const ref = s.$ref as string | undefined
  if (ref === undefined) return s
  const name = ref.replace(/^#\/(components\/schemas|definitions)\//, '')
  const target = (get(doc, 'components', 'schemas', name) ?? get(doc, 'definitions', name)) as JsonObject | undefined
  if (target === undefined) throw new Error(`unresolved ${ref}`)
  return target
}

/** Every field path of a TypeBox schema (`spec.rules[].http.paths[].path`), maps as `{}`. */
function typeboxPaths (schema: JsonObject, prefix = ''): string[] {
  const members = Array.isArray(schema.anyOf) ? schema.anyOf as JsonObject[] : [schema]
  return members.flatMap(s => {
    if (s.type === 'array') return typeboxPaths(s.items as JsonObject, `${prefix}[]`)
    if (s.patternProperties !== undefined) return typeboxPaths(Object.values(s.patternProperties as JsonObject)[0] as JsonObject, `${prefix}{}`)
    return Object.entries((s.properties ?? {}) as JsonObject).flatMap(([key, child]) => {
      const path = prefix === '' ? key : `${prefix}.${key}`
      return [path, ...typeboxPaths(child as JsonObject, path)]
    })
  })
}

/** Whether a field path exists in a generated schema, following `$ref`s. */
function hasPath (doc: JsonObject, schema: unknown, path: string): boolean {
  const segments = path.match(/[^.[\]{}]+|\[\]|\{\}/g) ?? []
  let cur = resolve(doc, schema)
  for (const segment of segments) {
    const next = segment === '[]' ? cur.items : segment === '{}' ? cur.additionalProperties : get(cur, 'properties', segment)
    if (next === undefined) return false
    cur = resolve(doc, next)
  }
  return true
}

function refs (value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(refs)
  if (typeof value !== 'object' || value === null) return []
  return Object.entries(value).flatMap(([k, v]) => k === '$ref' ? [v as string] : refs(v))
}

t.test('one v3 document per group version served, hashed as kube-openapi hashes them, byte for byte stable', async t => {
  const served = [...new Set(KINDS.flatMap(def => Object.keys(def.versions)))].map(v => v.includes('/') ? `apis/${v}` : `api/${v}`).sort()
  const index = JSON.parse(docs.v3Index.json) as { paths: Record<string, { serverRelativeURL: string }> }
  t.strictSame(Object.keys(index.paths), served, 'the index lists every group version of KINDS')
  for (const [key, doc] of docs.v3) {
    t.equal(doc.hash, createHash('sha512').update(doc.json).digest('hex').toUpperCase(), `${key}: SHA-512 of the document, uppercase hex`)
    t.equal(index.paths[key]?.serverRelativeURL, `/openapi/v3/${key}?hash=${doc.hash}`, `${key}: the index links it with its hash`)
  }
  const again = buildKubeOpenApi()
  t.equal(again.v3Index.json, docs.v3Index.json, 'the index is the same when built again')
  t.equal(again.v2.json, docs.v2.json, 'so is the v2 document')
  t.ok(again.v2Protobuf.equals(docs.v2Protobuf), 'and its protobuf')
  t.strictSame(docs.unusedTableEntries, [], 'every description and extension in the tables names a field that exists')
})

t.test('every field of every kind, sent or read, is in the documents', async t => {
  for (const def of KINDS) {
    for (const [apiVersion, version] of Object.entries(def.versions)) {
      const key = apiVersion.includes('/') ? `apis/${apiVersion}` : `api/${apiVersion}`
      const doc = v3(key)
      const pkg = apiVersion.includes('/') ? `io.k8s.api.${apiVersion.split('/')[0]?.split('.')[0] ?? ''}.${apiVersion.split('/')[1] ?? ''}` : `io.k8s.api.core.${apiVersion}`
      const kind = get(doc, 'components', 'schemas', `${pkg}.${def.kind}`) as JsonObject
      t.strictSame(kind['x-kubernetes-group-version-kind'], [{ group: apiVersion.includes('/') ? apiVersion.split('/')[0] : '', kind: def.kind, version: apiVersion.split('/').pop() }], `${def.kind} ${apiVersion}: named ${pkg}.${def.kind}, with its GVK`)
      const fields = [...new Set([...typeboxPaths(version.output as unknown as JsonObject), ...typeboxPaths(version.input as unknown as JsonObject)])]
      const missing = fields.filter(path => !hasPath(doc, kind, path))
      t.strictSame(missing, [], `${def.kind} ${apiVersion}: all ${fields.length} fields of the TypeBox schemas are there`)
      const v2Missing = fields.filter(path => !hasPath(v2, get(v2, 'definitions', `${pkg}.${def.kind}`), path))
      t.strictSame(v2Missing, [], `${def.kind} ${apiVersion}: and in the v2 document`)
    }
  }
  for (const [key] of docs.v3) {
    const doc = v3(key)
    const dangling = refs(doc).filter(ref => get(doc, 'components', 'schemas', ref.replace('#/components/schemas/', '')) === undefined)
    t.strictSame(dangling, [], `${key}: every $ref resolves in the document`)
  }
  t.strictSame(refs(v2).filter(ref => get(v2, 'definitions', ref.replace('#/definitions/', '')) === undefined), [], 'v2: every $ref resolves')
})

t.test('what kubectl explain and apply read', async t => {
  const doc = v3('apis/networking.k8s.io/v1')
  const schemas = get(doc, 'components', 'schemas') as JsonObject
  const ingress = schemas['io.k8s.api.networking.v1.Ingress'] as JsonObject
  const spec = resolve(doc, get(ingress, 'properties', 'spec'))
  t.equal(spec, schemas['io.k8s.api.networking.v1.IngressSpec'], 'Ingress.spec is a $ref to IngressSpec')
  const rules = get(spec, 'properties', 'rules') as JsonObject
  t.equal(rules['x-kubernetes-list-type'], 'atomic', 'spec.rules is an atomic list, as k8s.io/api declares')
  t.strictSame(rules.items, { $ref: '#/components/schemas/io.k8s.api.networking.v1.IngressRule' }, 'its items are IngressRule')
  const rule = schemas['io.k8s.api.networking.v1.IngressRule'] as JsonObject
  t.strictSame(Object.keys(rule.properties as JsonObject), ['host', 'http'], 'IngressRule: host and http')
  t.match(rule.description, /IngressRule represents the rules/, 'with a description')
  t.match(get(rule, 'properties', 'host', 'description'), /fully qualified domain name/, 'and descriptions of its fields')
  t.strictSame(get(schemas, 'io.k8s.api.networking.v1.HTTPIngressPath', 'properties', 'pathType', 'enum'), ['Exact', 'Prefix', 'ImplementationSpecific'], 'pathType lists its values')
  t.equal(get(schemas, 'io.k8s.api.networking.v1.HTTPIngressRuleValue', 'properties', 'paths', 'x-kubernetes-list-type'), 'atomic', 'paths are atomic too')

  const core = get(v3('api/v1'), 'components', 'schemas') as JsonObject
  t.strictSame(get(core, 'io.k8s.api.core.v1.ServiceSpec', 'properties', 'ports'), {
    description: get(core, 'io.k8s.api.core.v1.ServiceSpec', 'properties', 'ports', 'description'),
    items: { $ref: '#/components/schemas/io.k8s.api.core.v1.ServicePort' },
    type: 'array',
    'x-kubernetes-list-map-keys': ['port', 'protocol'],
    'x-kubernetes-list-type': 'map',
    'x-kubernetes-patch-merge-key': 'port',
    'x-kubernetes-patch-strategy': 'merge'
  }, 'Service spec.ports merge by port')
  t.equal(get(core, 'io.k8s.api.core.v1.ServicePort', 'properties', 'targetPort', 'allOf', '0', '$ref'), '#/components/schemas/io.k8s.apimachinery.pkg.util.intstr.IntOrString', 'targetPort is an IntOrString')

  const paths = doc.paths as JsonObject
  t.strictSame(Object.keys(paths), [
    '/apis/networking.k8s.io/v1/ingressclasses',
    '/apis/networking.k8s.io/v1/ingressclasses/{name}',
    '/apis/networking.k8s.io/v1/ingresses',
    '/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses',
    '/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses/{name}'
  ], 'collection and item paths, and every namespace\'s list (where kubectl 1.27 explain looks the GVK up)')
  const item = paths['/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses/{name}'] as JsonObject
  t.strictSame(Object.keys(item).sort(), ['delete', 'get', 'parameters', 'patch', 'put'], 'an item is read, replaced, patched and deleted')
  for (const method of ['get', 'put', 'patch', 'delete']) {
    t.strictSame(get(item, method, 'x-kubernetes-group-version-kind'), { group: 'networking.k8s.io', kind: 'Ingress', version: 'v1' }, `${method}: its GVK`)
    t.equal(get(item, method, 'x-kubernetes-action'), method, `${method}: its action`)
  }
  const patch = item.patch as JsonObject
  t.ok((patch.parameters as JsonObject[]).some(p => p.name === 'fieldValidation' && p.in === 'query'), 'PATCH takes fieldValidation: kubectl sends fieldValidation=Strict and skips its own validation')
  t.strictSame(Object.keys(get(patch, 'requestBody', 'content') as JsonObject), ['application/json-patch+json', 'application/merge-patch+json', 'application/strategic-merge-patch+json'], 'PATCH takes the three patch types ingressd implements (no server-side apply)')
  t.equal(get(paths, '/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses', 'get', 'x-kubernetes-action'), 'list', 'a collection GET lists')
})

/** gnostic's document read back into Swagger 2.0 JSON: the inverse of the encoder, for the parts it writes. */
function fromGnostic (message: JsonObject): JsonObject {
  const yaml = (any: JsonObject): unknown => JSON.parse(any.yaml as string)
  const named = <T>(list: unknown, convert: (v: JsonObject) => T): Record<string, T> => Object.fromEntries(((list ?? []) as JsonObject[]).map(n => [n.name as string, convert(n.value as JsonObject)]))
  const extensions = (list: unknown): JsonObject => named(list, yaml)
  const schema = (s: JsonObject): JsonObject => {
    const out: JsonObject = {}
    if (s.ref !== undefined) out.$ref = s.ref
    for (const key of ['format', 'description', 'required']) if (s[key] !== undefined) out[key] = s[key]
    if (s.enum !== undefined) out.enum = (s.enum as JsonObject[]).map(yaml)
    if (s.type !== undefined) out.type = (get(s, 'type', 'value') as string[])[0]
    if (s.items !== undefined) out.items = schema((get(s, 'items', 'schema') as JsonObject[])[0] as JsonObject)
    if (s.properties !== undefined) out.properties = named(get(s, 'properties', 'additionalProperties'), schema)
    if (s.additionalProperties !== undefined) out.additionalProperties = schema(get(s, 'additionalProperties', 'schema') as JsonObject)
    return { ...out, ...extensions(s.vendorExtension) }
  }
  const parameter = (p: JsonObject): JsonObject => {
    const body = get(p, 'parameter', 'bodyParameter') as JsonObject | undefined
    if (body !== undefined) return { ...body, schema: schema(body.schema as JsonObject) }
    return (get(p, 'parameter', 'nonBodyParameter', 'queryParameterSubSchema') ?? get(p, 'parameter', 'nonBodyParameter', 'pathParameterSubSchema')) as JsonObject
  }
  const operation = (op: JsonObject): JsonObject => {
    const { vendorExtension, parameters, responses, ...rest } = op
    return {
      ...rest,
      ...(parameters === undefined ? {} : { parameters: (parameters as JsonObject[]).map(parameter) }),
      responses: named(get(responses, 'responseCode'), r => ({ description: get(r, 'response', 'description'), schema: schema(get(r, 'response', 'schema', 'schema') as JsonObject) })),
      ...extensions(vendorExtension)
    }
  }
  const pathItem = (item: JsonObject): JsonObject => Object.fromEntries(Object.entries(item).map(([k, v]) => [k, k === 'parameters' ? (v as JsonObject[]).map(parameter) : operation(v as JsonObject)]))
  return {
    swagger: message.swagger,
    info: message.info,
    paths: named(get(message, 'paths', 'path'), pathItem),
    definitions: named(get(message, 'definitions', 'additionalProperties'), schema)
  }
}

t.test('the v2 protobuf is the v2 document, as gnostic encodes it', async t => {
  const decoded = OPENAPI_V2_DOCUMENT.toObject(OPENAPI_V2_DOCUMENT.decode(docs.v2Protobuf), { defaults: false, arrays: false }) as JsonObject
  t.strictSame(fromGnostic(decoded), v2, 'decoded with the same descriptors, every path, parameter, response and definition comes back')
  const ingress = get(decoded, 'definitions', 'additionalProperties') as JsonObject[]
  const named = ingress.find(d => d.name === 'io.k8s.api.networking.v1.Ingress') as JsonObject
  t.strictSame(get(named, 'value', 'vendorExtension'), [{ name: 'x-kubernetes-group-version-kind', value: { yaml: '[{"group":"networking.k8s.io","kind":"Ingress","version":"v1"}]\n' } }], 'extensions are YAML text (JSON is YAML), as kubectl parses them')
})

/** The admin app as ingressd builds it (the Kubernetes OpenAPI routes included). */
async function adminApp (t: Test): Promise<FastifyInstance> {
  const db = openDatabase(':memory:')
  const app = await buildAdminApp({ store: new ObjectStore(db), feed: new ChangeFeed(), logger: false, bodyLimit: 1 << 20, metrics: new GatewayMetrics(), readiness: { ready: () => true, detail: () => ({}) } })
  await app.ready()
  t.teardown(async () => {
    await app.close()
    db.close()
  })
  return app
}

t.test('the routes, in the admin app', async t => {
  const app = await adminApp(t)
  const index = await app.inject({ url: '/openapi/v3', headers: { accept: 'application/json, */*' } })
  t.equal(index.statusCode, 200)
  t.equal(index.body, docs.v3Index.json, 'GET /openapi/v3: the index')
  const url = (JSON.parse(index.body) as { paths: Record<string, { serverRelativeURL: string }> }).paths['apis/networking.k8s.io/v1']?.serverRelativeURL as string

  const hashed = await app.inject({ url, headers: { accept: 'application/json' } })
  t.equal(hashed.statusCode, 200)
  t.equal(hashed.body, docs.v3.get('apis/networking.k8s.io/v1')?.json, 'the group version\'s document')
  t.equal(hashed.headers['cache-control'], 'public, immutable', 'with its hash: cacheable for good')
  t.equal(hashed.headers.etag, `"${docs.v3.get('apis/networking.k8s.io/v1')?.hash ?? ''}"`, 'its ETag is the hash')

  const plain = await app.inject({ url: '/openapi/v3/api/v1' })
  t.equal(plain.statusCode, 200, 'GET /openapi/v3/api/v1')
  t.equal(plain.headers['cache-control'], undefined, 'without a hash: no caching promise')
  const stale = await app.inject({ url: '/openapi/v3/api/v1?hash=0123ABCD' })
  t.equal(stale.statusCode, 301, 'a stale hash is redirected, as kube-openapi does')
  t.equal(stale.headers.location, `/openapi/v3/api/v1?hash=${docs.v3.get('api/v1')?.hash ?? ''}`, 'to the current one')
  const cached = await app.inject({ url: '/openapi/v3/api/v1', headers: { 'if-none-match': plain.headers.etag as string } })
  t.equal(cached.statusCode, 304, 'If-None-Match with the ETag: not modified')
  const missing = await app.inject({ url: '/openapi/v3/apis/apps/v1' })
  t.equal(missing.statusCode, 404, 'a group version ingressd does not serve: 404')
  t.equal(JSON.parse(missing.body).kind, 'Status', 'as a Status')

  const pb = await app.inject({ url: '/openapi/v2?timeout=32s', headers: { accept: KUBECTL_V2_ACCEPT } })
  t.equal(pb.statusCode, 200)
  t.equal(pb.headers['content-type'], V2_PROTOBUF, 'kubectl\'s protobuf Accept: answered as kube-openapi answers it')
  t.ok(pb.rawPayload.equals(docs.v2Protobuf), 'the gnostic document')
  for (const accept of ['application/json', '*/*', undefined]) {
    const json = await app.inject({ url: '/openapi/v2', headers: accept === undefined ? {} : { accept } })
    t.match(json.headers['content-type'], /^application\/json/, `Accept ${accept ?? '(none)'}: JSON`)
    t.equal(json.body, docs.v2.json)
  }

  const swagger = app.swagger() as { paths: Record<string, Record<string, { tags?: string[] }>> }
  for (const path of ['/openapi/v3', '/openapi/v3/api/{version}', '/openapi/v3/apis/{group}/{version}', '/openapi/v2']) {
    t.strictSame(swagger.paths[path]?.get?.tags, ['Kubernetes API'], `${path} is in Swagger UI, under Kubernetes API`)
  }
})

/** A server for kubectl: discovery, these OpenAPI routes, and just enough of ingresses and services for `kubectl apply` twice. */
async function kubectlServer (t: Test): Promise<{ url: string, requests: { method: string, url: string, accept: string, contentType: string, body: string }[] }> {
  const app = Fastify()
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => done(null, body))
  registerDiscoveryRoutes(app)
  registerKubeOpenApi(app)
  const requests: { method: string, url: string, accept: string, contentType: string, body: string }[] = []
  app.addHook('onRequest', async req => {
    requests.push({ method: req.method, url: req.url, accept: req.headers.accept ?? '', contentType: req.headers['content-type'] ?? '', body: '' })
  })
  app.addHook('preHandler', async req => {
    const last = requests.findLast(r => r.url === req.url)
    if (last !== undefined && typeof req.body === 'string') last.body = req.body
  })
  const objects = new Map<string, JsonObject>()
  const notFound = { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404, message: 'not found' }
  for (const base of ['/api/v1/namespaces/:namespace/:plural', '/apis/:group/:version/namespaces/:namespace/:plural']) {
    app.get(`${base}/:name`, async (req, reply) => objects.get(req.url.split('?')[0] as string) ?? reply.code(404).send(notFound))
    app.post(base, async (req, reply) => {
      const object = JSON.parse(req.body as string) as JsonObject & { metadata: JsonObject }
      object.metadata = { ...object.metadata, namespace: (req.params as { namespace: string }).namespace, uid: 'b7f2f1d2-0000-4000-8000-000000000000', resourceVersion: '1' }
      objects.set(`${req.url.split('?')[0] as string}/${object.metadata.name as string}`, object)
      return reply.code(201).send(object)
    })
    app.patch(`${base}/:name`, async (req, reply) => objects.get(req.url.split('?')[0] as string) ?? reply.code(404).send(notFound))
  }
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => await app.close())
  return { url: `http://127.0.0.1:${(app.server.address() as { port: number }).port}`, requests }
}

const INGRESS = (host: string, name: string): string => `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: ${name}
  annotations:
    nginx.ingress.kubernetes.io/rewrite-target: /
spec:
  rules:
  - host: ${host}
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
`
const SERVICE = (httpsTarget: number, name: string): string => `apiVersion: v1
kind: Service
metadata: {name: ${name}}
spec:
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: https, port: 443, targetPort: ${httpsTarget}}
`

/** The OpenAPI requests of one kubectl run, shortly: `v3 apis/networking.k8s.io/v1`, `v2 (protobuf)`. */
function fetched (requests: { url: string, accept: string }[]): string[] {
  return [...new Set(requests.filter(r => r.url.startsWith('/openapi/')).map(r => {
    const path = (r.url.split('?')[0] as string).replace(/^\/openapi\//, '')
    return path === 'v2' ? `v2 (${r.accept.includes('protobuf') ? 'protobuf' : 'json'})` : path === 'v3' ? 'v3 index' : `v3 ${path.replace(/^v3\//, '')}`
  }))]
}

const binaries = kubectlBinaries()

t.test('the real kubectl, every version here: explain and apply read these documents', { skip: noKubectlReason(binaries) ?? false }, async t => {
  const server = await kubectlServer(t)
  const summary: string[] = []

  for (const binary of binaries) {
    await t.test(`kubectl ${binary.version}`, async t => {
      const minor = Number(binary.version.split('.')[1])
      const seen: Record<string, string[]> = {}
      /** Runs one command with a fresh cache, so what it fetches is all it needs. */
      const run = async (label: string, args: string[], input?: string): Promise<{ stdout: string, stderr: string }> => {
        const from = server.requests.length
        const result = await kubectlFor(t, binary, server.url).run(args, input === undefined ? {} : { input })
        t.equal(result.code, 0, `${label}: exit 0${result.code === 0 ? '' : `\n${result.stderr}`}`)
        seen[label] = fetched(server.requests.slice(from))
        return result
      }

      const rules = await run('explain ingress.spec.rules', ['explain', 'ingress.spec.rules'])
      // kubectl 1.20 renders from v2 and names every object type "Object".
      const typeName = (type: string): string => minor >= 27 ? type : 'Object'
      t.match(rules.stdout, new RegExp(`(FIELD|RESOURCE): +rules <\\[\\]${typeName('IngressRule')}>`), 'rules are a list of IngressRule')
      t.match(rules.stdout, /IngressRule represents the rules mapping the paths/, 'with the IngressRule description')
      t.match(rules.stdout, /host\t<string>\n +Host is the fully qualified domain name/, 'and its fields, described')
      t.match(rules.stdout, new RegExp(`http\\t<${typeName('HTTPIngressRuleValue')}>`), 'http is an HTTPIngressRuleValue')

      const recursive = await run('explain ingress --recursive', ['explain', 'ingress', '--recursive'])
      t.match(recursive.stdout, /KIND: +Ingress/)
      for (const field of ['ingressClassName', 'defaultBackend', 'secretName', 'pathType', 'loadBalancer']) t.match(recursive.stdout, new RegExp(`\\b${field}\\t`), `--recursive lists ${field}`)

      const ports = await run('explain service.spec.ports', ['explain', 'service.spec.ports'])
      t.match(ports.stdout, new RegExp(`(FIELD|RESOURCE): +ports <\\[\\]${typeName('ServicePort')}>`), 'ports are a list of ServicePort')
      t.match(ports.stdout, /targetPort\t<(string|IntOrString)>/, 'targetPort is listed')

      if (minor >= 27) {
        // Before 1.27 explain has only the v2 renderer (the checks above ran on it).
        const v2 = await run('explain --output=plaintext-openapiv2', ['explain', 'ingress.spec.rules', '--output=plaintext-openapiv2'])
        t.match(v2.stdout, /host\t<string>\n +Host is the fully qualified domain name/, 'the v2 renderer reads the gnostic protobuf')
      }

      const name = `demo-${minor}`
      await run('apply (create)', ['apply', '-f', '-'], INGRESS('a.example.com', name))
      const changed = await run('apply (patch)', ['apply', '-f', '-'], INGRESS('b.example.com', name))
      t.notMatch(changed.stderr, /warning: error calculating patch/, 'the patch came from the OpenAPI schemas without a warning')
      const ingressPatch = server.requests.findLast(r => r.method === 'PATCH' && r.url.includes(`/ingresses/${name}`))
      t.equal(ingressPatch?.contentType, 'application/strategic-merge-patch+json', 'a strategic merge patch')
      t.match(JSON.parse(ingressPatch?.body ?? '{}'), { spec: { rules: [{ host: 'b.example.com' }] } }, 'rules (atomic) are sent whole')

      await run('apply service (create)', ['apply', '-f', '-'], SERVICE(8443, `web-${minor}`))
      const service = await run('apply service (patch)', ['apply', '-f', '-'], SERVICE(9443, `web-${minor}`))
      t.notMatch(service.stderr, /warning: error calculating patch/)
      const servicePatch = server.requests.findLast(r => r.method === 'PATCH' && r.url.includes(`/services/web-${minor}`))
      t.strictSame(JSON.parse(servicePatch?.body ?? '{}').spec, { '$setElementOrder/ports': [{ port: 80 }, { port: 443 }], ports: [{ port: 443, targetPort: 9443 }] }, 'Service ports are merged by port')

      if (minor >= 29) t.notOk(seen['apply (patch)']?.some(f => f.startsWith('v2')), 'apply computes its patch from OpenAPI v3: v2 is not fetched')
      else t.ok(seen['apply (patch)']?.includes('v2 (protobuf)'), 'apply fetches the v2 protobuf')
      summary.push(`kubectl ${binary.version}: ${Object.entries(seen).map(([label, docs]) => `${label} -> ${docs.join(', ') || 'nothing'}`).join('; ')}`)
    })
  }
  t.comment(`What each kubectl fetched (fresh cache per command):\n${summary.join('\n')}`)
})
