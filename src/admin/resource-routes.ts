/**
 * The Kubernetes-style resource paths: for every kind and every API version it is served in,
 * list (one namespace or all), create, read, replace, merge-patch and delete.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import Type, { type TSchema } from 'typebox'
import { IngressdError } from '../errors.js'
import { parseLabelSelector } from '../resources/label-selector.js'
import { applyMergePatch } from '../resources/merge-patch.js'
import { ListMeta, StatusSchema } from '../resources/meta.js'
import { KINDS, prepareObject, presentObject, type KindDefinition } from '../resources/kinds.js'
import type { AuditEntry, ListCursor, ObjectStore, StoredObject, WriteOutcome } from '../store/object-store.js'
import { parseObjectText } from './content.js'
import { objectStatus } from './object-status.js'
import { WaitQuery, warningHeader, type StoreWriter, type WaitMode, type WriteSync } from './write-sync.js'

/** What the resource routes need from the rest of the admin plane. */
export interface ResourceRouteContext {
  store: ObjectStore
  sync: WriteSync
  writer: StoreWriter
  /** Cluster mode: the live nodes' addresses, which a served Ingress's status lists. */
  liveAddresses?: () => readonly string[] | undefined
}

/** `CoreV1`, `NetworkingV1`, `ExtensionsV1beta1`: the operationId infix Kubernetes' own spec uses. */
function versionTag (apiVersion: string): string {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') as [string, string] : ['core', apiVersion]
  const groupName = (group.split('.')[0] ?? group)
  return groupName.charAt(0).toUpperCase() + groupName.slice(1) + version.charAt(0).toUpperCase() + version.slice(1)
}

/** The body types every write takes (YAML includes JSON, so any type but a patch type is read as YAML). */
const BODY_TYPES = ['application/json', 'application/yaml']

function article (kind: string): string {
  return /^[AEIOU]/.test(kind) ? `an ${kind}` : `a ${kind}`
}

function basePath (apiVersion: string): string {
  return apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`
}

function encodeCursor (obj: StoredObject): string {
  return Buffer.from(JSON.stringify({ ns: obj.meta.namespace, n: obj.meta.name }), 'utf8').toString('base64url')
}

function decodeCursor (token: string): ListCursor {
  try {
    const parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { ns?: unknown, n?: unknown }
    if (typeof parsed.ns === 'string' && typeof parsed.n === 'string') return { namespace: parsed.ns, name: parsed.n }
  } catch {}
  throw new IngressdError('INGRESSD_ERR_BAD_REQUEST', 'continue: the token is not one this API returned; start the list again without it', { causes: [{ reason: 'FieldValueInvalid', field: 'continue', message: 'invalid continue token' }] })
}

const ListQuery = Type.Object({
  labelSelector: Type.Optional(Type.String({ description: 'Kubernetes label selector: `app=web,tier!=cache,env in (a,b),!canary`' })),
  limit: Type.Optional(Type.String({ pattern: '^[0-9]+$', description: 'Page size; the reply\'s metadata.continue fetches the next page' })),
  continue: Type.Optional(Type.String({ description: 'metadata.continue of the previous page' }))
})

function schemaId (schema: TSchema): string {
  return String((schema as { $id?: string }).$id)
}

/** A reference to a schema registered by its $id, so the OpenAPI document lists each shape once. */
export function ref (schema: TSchema): TSchema {
  return { $ref: `${schemaId(schema)}#` } as unknown as TSchema
}

const StatusRef = ref(StatusSchema)
const errorResponses = {
  400: StatusRef,
  401: StatusRef,
  404: StatusRef,
  409: StatusRef,
  413: StatusRef,
  415: StatusRef,
  422: StatusRef
}

/**
 * Sends a write's reply once the data plane serves it (with a Kubernetes Warning header if it did
 * not in time). The body is built after the wait, so it carries the status the data plane reported.
 */
async function replyAfterSync (ctx: ResourceRouteContext, req: FastifyRequest, reply: FastifyReply, code: number, body: () => unknown): Promise<unknown> {
  const warning = warningHeader(await ctx.sync.afterWrite((req.query as { wait?: WaitMode }).wait))
  if (warning !== undefined) reply.header('warning', warning)
  return reply.code(code).send(body())
}

/** The audit entry for a change made by `req`. */
export function auditEntry (req: FastifyRequest, verb: AuditEntry['verb'], object: StoredObject, outcome: AuditEntry['outcome'], resourceVersion = Number(object.meta.resourceVersion)): AuditEntry {
  return { actor: req.headers.authorization === undefined ? 'loopback' : 'token', client: req.ip, verb, kind: object.kind, namespace: object.meta.namespace, name: object.meta.name, resourceVersion, outcome }
}

function registerVersion (app: FastifyInstance, ctx: ResourceRouteContext, def: KindDefinition, apiVersion: string, outputSchema: TSchema, inputSchema: TSchema): void {
  /** Records a put in the audit log, in its transaction, and hands the result on. */
  const audited = <T extends { object: StoredObject, outcome: WriteOutcome }>(req: FastifyRequest, verb: AuditEntry['verb'], result: T): T => {
    if (result.outcome !== 'unchanged') ctx.store.recordAudit(auditEntry(req, verb, result.object, result.outcome))
    return result
  }
  const output = ref(outputSchema)
  const input = ref(inputSchema)
  const tag = versionTag(apiVersion)
  const isStorage = apiVersion === def.storageVersion
  const tags = [isStorage ? def.kind : `${def.kind} (${apiVersion})`]
  const nsPart = def.namespaced ? 'Namespaced' : ''
  const collection = def.namespaced ? `${basePath(apiVersion)}/namespaces/:namespace/${def.plural}` : `${basePath(apiVersion)}/${def.plural}`
  const item = `${collection}/:name`
  const params = Type.Object(def.namespaced ? { namespace: Type.String(), name: Type.String() } : { name: Type.String() })
  const collectionParams = def.namespaced ? Type.Object({ namespace: Type.String() }) : undefined
  const writeQuery = Type.Object(WaitQuery)
  const ListSchema = Type.Object({
    apiVersion: Type.Literal(apiVersion),
    kind: Type.Literal(`${def.kind}List`),
    metadata: ListMeta,
    items: Type.Array(output)
  })
  const { store } = ctx
  const subject = (name: string): { name: string, group: string, kind: string } => ({ name, group: def.group, kind: def.kind })
  const present = (obj: StoredObject): Record<string, unknown> => presentObject(def, apiVersion, obj.meta, obj.content, objectStatus(store, obj, ctx))
  const notFound = (name: string): IngressdError => new IngressdError('INGRESSD_ERR_NOT_FOUND', `${def.plural}${def.group === '' ? '' : `.${def.group}`} "${name}" not found`, { subject: subject(name) })
  const storedKey = (ns: string, name: string): string | undefined => store.privateKey(ns, name)
  const nsOf = (p: Record<string, string>): string => def.namespaced ? (p.namespace ?? 'default') : ''

  const list = (namespace: string | undefined, query: { labelSelector?: string, limit?: string, continue?: string }): unknown => {
    const selector = query.labelSelector === undefined || query.labelSelector === '' ? undefined : parseLabelSelector(query.labelSelector)
    const limit = query.limit === undefined || query.limit === '0' ? Infinity : Number(query.limit)
    const cursor = query.continue === undefined || query.continue === '' ? undefined : decodeCursor(query.continue)
    const resourceVersion = String(store.resourceVersion())
    const items: Record<string, unknown>[] = []
    let last: StoredObject | undefined
    let more = false
    for (const obj of store.iterate(def.kind, namespace, cursor)) {
      if (selector !== undefined && !selector.matches(obj.meta.labels)) continue
      if (items.length >= limit) {
        more = true
        break
      }
      items.push(present(obj))
      last = obj
    }
    const metadata: Record<string, unknown> = { resourceVersion }
    if (more && last !== undefined) metadata.continue = encodeCursor(last)
    return { apiVersion, kind: `${def.kind}List`, metadata, items }
  }

  app.get(collection, {
    schema: { tags, operationId: `list${tag}${nsPart}${def.kind}`, summary: `List ${def.plural}${def.namespaced ? ' in a namespace' : ''}`, ...(collectionParams === undefined ? {} : { params: collectionParams }), querystring: ListQuery, response: { 200: ListSchema, ...errorResponses } }
  }, async (req) => list(def.namespaced ? nsOf(req.params as Record<string, string>) : undefined, req.query as Record<string, string>))

  if (def.namespaced) {
    app.get(`${basePath(apiVersion)}/${def.plural}`, {
      schema: { tags, operationId: `list${tag}${def.kind}ForAllNamespaces`, summary: `List ${def.plural} across all namespaces`, querystring: ListQuery, response: { 200: ListSchema, ...errorResponses } }
    }, async (req) => list(undefined, req.query as Record<string, string>))
  }

  app.post(collection, {
    schema: { tags, operationId: `create${tag}${nsPart}${def.kind}`, summary: `Create ${article(def.kind)}`, description: 'JSON or YAML body. 201 with the stored object; 409 if it exists.', consumes: BODY_TYPES, ...(collectionParams === undefined ? {} : { params: collectionParams }), querystring: writeQuery, body: input, response: { 201: output, ...errorResponses } }
  }, async (req, reply) => {
    const namespace = nsOf(req.params as Record<string, string>)
    const obj = prepareObject(parseObjectText(req.body as string), { namespace }, storedKey)
    if (obj.def !== def) throw new IngressdError('INGRESSD_ERR_UNKNOWN_KIND', `the body is a ${obj.def.kind}, but this path takes ${def.kind} objects`, { subject: subject(obj.name) })
    const { object } = await ctx.writer.write(() => audited(req, 'create', store.put(obj, 'create')))
    return await replyAfterSync(ctx, req, reply, 201, () => present(object))
  })

  app.get(item, {
    schema: { tags, operationId: `read${tag}${nsPart}${def.kind}`, summary: `Read ${article(def.kind)}`, params, response: { 200: output, ...errorResponses } }
  }, async (req) => {
    const p = req.params as Record<string, string>
    const obj = store.get(def.kind, nsOf(p), p.name as string)
    if (obj === undefined) throw notFound(p.name as string)
    return present(obj)
  })

  app.put(item, {
    schema: { tags, operationId: `replace${tag}${nsPart}${def.kind}`, summary: `Replace ${article(def.kind)}`, description: 'Send metadata.resourceVersion as read to get 409 instead of overwriting a newer change.', consumes: BODY_TYPES, params, querystring: writeQuery, body: input, response: { 200: output, ...errorResponses } }
  }, async (req, reply) => {
    const p = req.params as Record<string, string>
    const obj = prepareObject(parseObjectText(req.body as string), { namespace: nsOf(p), name: p.name as string }, storedKey)
    if (obj.def !== def) throw new IngressdError('INGRESSD_ERR_UNKNOWN_KIND', `the body is a ${obj.def.kind}, but this path takes ${def.kind} objects`, { subject: subject(obj.name) })
    const { object } = await ctx.writer.write(() => audited(req, 'replace', store.put(obj, 'replace')))
    return await replyAfterSync(ctx, req, reply, 200, () => present(object))
  })

  app.patch(item, {
    schema: { tags, operationId: `patch${tag}${nsPart}${def.kind}`, summary: `Merge-patch ${article(def.kind)}`, description: 'Content-Type: application/merge-patch+json (RFC 7386): objects merge, null deletes, anything else replaces.', consumes: ['application/merge-patch+json'], params, querystring: writeQuery, body: Type.Object({}, { additionalProperties: true }), response: { 200: output, ...errorResponses } }
  }, async (req, reply) => {
    const p = req.params as Record<string, string>
    const namespace = nsOf(p)
    const patch = parseObjectText(req.body as string)
    const { object } = await ctx.writer.write(() => {
      const current = store.get(def.kind, namespace, p.name as string)
      if (current === undefined) throw notFound(p.name as string)
      const { status: _status, ...merged } = applyMergePatch(presentObject(def, apiVersion, current.meta, current.content), patch) as Record<string, unknown>
      const obj = prepareObject(merged, { namespace, name: p.name as string }, storedKey)
      return audited(req, 'patch', store.put(obj, 'replace'))
    })
    return await replyAfterSync(ctx, req, reply, 200, () => present(object))
  })

  app.delete(item, {
    schema: { tags, operationId: `delete${tag}${nsPart}${def.kind}`, summary: `Delete ${article(def.kind)}`, description: 'Answers 200 with the deleted object, as Kubernetes does.', params, querystring: writeQuery, response: { 200: output, ...errorResponses } }
  }, async (req, reply) => {
    const p = req.params as Record<string, string>
    const deleted = await ctx.writer.write(() => {
      const gone = store.delete(def.kind, nsOf(p), p.name as string, def)
      store.recordAudit(auditEntry(req, 'delete', gone, 'deleted', store.resourceVersion()))
      return gone
    })
    return await replyAfterSync(ctx, req, reply, 200, () => presentObject(def, apiVersion, deleted.meta, deleted.content))
  })
}

/** Registers every kind's paths in every version it is served in. */
export function registerResourceRoutes (app: FastifyInstance, ctx: ResourceRouteContext): void {
  const shared = new Map<string, TSchema>([[schemaId(StatusSchema), StatusSchema]])
  for (const def of KINDS) {
    for (const v of Object.values(def.versions)) for (const schema of [v.input, v.output]) shared.set(schemaId(schema), schema)
  }
  for (const schema of shared.values()) app.addSchema(schema)
  for (const def of KINDS) {
    for (const [apiVersion, version] of Object.entries(def.versions)) registerVersion(app, ctx, def, apiVersion, version.output, version.input)
  }
}
