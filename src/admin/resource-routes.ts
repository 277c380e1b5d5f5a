/**
 * The Kubernetes-style resource paths: for every kind and every API version it is served in,
 * list (one namespace or all), create, read, replace, merge-patch and delete.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import Type, { type TSchema } from 'typebox'
import { IngressdError } from '../errors.js'
import { parseLabelSelector } from '../resources/label-selector.js'
import { applyJsonPatch } from '../resources/json-patch.js'
import { applyMergePatch } from '../resources/merge-patch.js'
import { applyStrategicMergePatch } from '../resources/strategic-merge-patch.js'
import { findUnknownFields, pruneUnknownFields, strictDecodingMessage } from '../resources/unknown-fields.js'
import { ListMeta, StatusSchema } from '../resources/meta.js'
import { findKind, KINDS, prepareObject, presentObject, type KindDefinition } from '../resources/kinds.js'
import type { AuditEntry, ListCursor, ObjectStore, StoredObject, WriteOutcome } from '../store/object-store.js'
import { parseObjectText, parsePatchText } from './content.js'
import { parseFieldSelector } from './kube/field-selector.js'
import { parseIncludeObject, toTable, wantsTable } from './kube/table.js'
import { isWatchRequest, serveWatch, type WatchHub } from './kube/watch.js'
import { objectStatus } from './object-status.js'
import { WaitQuery, warningHeader, type StoreWriter, type WaitMode, type WriteSync } from './write-sync.js'

/** What the resource routes need from the rest of the admin plane. */
export interface ResourceRouteContext {
  store: ObjectStore
  sync: WriteSync
  writer: StoreWriter
  /** Cluster mode: the live nodes' addresses, which a served Ingress's status lists. */
  liveAddresses?: () => readonly string[] | undefined
  /** The open watch streams (`?watch=true`), closed when the admin API stops. */
  watches?: WatchHub
}

/** `CoreV1`, `NetworkingV1`, `ExtensionsV1beta1`: the operationId infix Kubernetes' own spec uses. */
function versionTag (apiVersion: string): string {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') as [string, string] : ['core', apiVersion]
  const groupName = (group.split('.')[0] ?? group)
  return groupName.charAt(0).toUpperCase() + groupName.slice(1) + version.charAt(0).toUpperCase() + version.slice(1)
}

/** The body types every write takes (YAML includes JSON, so any type but a patch type is read as YAML). */
const BODY_TYPES = ['application/json', 'application/yaml', 'application/vnd.kubernetes.protobuf']

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
  fieldSelector: Type.Optional(Type.String({ description: '`metadata.name=x`, `metadata.namespace!=y` (comma-separated, all must hold)' })),
  watch: Type.Optional(Type.String({ description: '`true`: stream changes as Kubernetes watch events (one JSON object per line) instead of a list' })),
  resourceVersion: Type.Optional(Type.String({ description: 'With watch: the changes after this version (unset or `0`: every current object first, as ADDED events). 410 Expired when older than the store keeps.' })),
  timeoutSeconds: Type.Optional(Type.String({ pattern: '^[0-9]+$', description: 'With watch: end the stream after this many seconds' })),
  allowWatchBookmarks: Type.Optional(Type.String({ description: 'With watch: `true` sends BOOKMARK events carrying the current resourceVersion while idle' })),
  includeObject: Type.Optional(Type.String({ description: 'With a Table Accept: None, Metadata (default) or Object' })),
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
async function replyAfterSync (ctx: ResourceRouteContext, req: FastifyRequest, reply: FastifyReply, code: number, body: () => unknown, extraWarnings: string[] = []): Promise<unknown> {
  const warning = warningHeader([...extraWarnings, ...await ctx.sync.afterWrite((req.query as { wait?: WaitMode }).wait)])
  if (warning !== undefined) reply.header('warning', warning)
  return reply.code(code).send(body())
}

/** The audit entry for a change made by `req`. */
export function auditEntry (req: FastifyRequest, verb: AuditEntry['verb'], object: StoredObject, outcome: AuditEntry['outcome'], resourceVersion = Number(object.meta.resourceVersion)): AuditEntry {
  return { actor: req.headers.authorization === undefined ? 'loopback' : 'token', client: req.ip, verb, kind: object.kind, namespace: object.meta.namespace, name: object.meta.name, resourceVersion, outcome }
}

/** The query parameters of a write, as the Kubernetes API takes them. */
const WriteQuery = Type.Object({
  ...WaitQuery,
  dryRun: Type.Optional(Type.Literal('All', { description: 'Validate the write and answer with the object it would store, without storing it or changing what is served (`kubectl --dry-run=server`)' })),
  fieldValidation: Type.Optional(Type.Union([Type.Literal('Strict'), Type.Literal('Warn'), Type.Literal('Ignore')], { description: 'Fields the schema does not know: Strict refuses the write (400, kubectl\'s default), Warn drops them with a Warning header, Ignore drops them (`kubectl --validate=false`). Unset: refused as invalid (422), as before kubectl support.' })),
  fieldManager: Type.Optional(Type.String({ description: 'Accepted and ignored: ingressd keeps no managedFields' }))
})

/** How one write is to be made: for real or as a dry run, and what to do with unknown fields. */
interface WriteMode {
  dryRun: boolean
  fieldValidation?: 'Strict' | 'Warn' | 'Ignore'
}

function writeMode (query: unknown): WriteMode {
  const q = query as { dryRun?: string, fieldValidation?: WriteMode['fieldValidation'] }
  return { dryRun: q.dryRun === 'All', ...(q.fieldValidation === undefined ? {} : { fieldValidation: q.fieldValidation }) }
}

/**
 * Server-side field validation (`?fieldValidation=`): with Strict an object with fields its schema
 * does not declare is refused with the message kubectl prints; with Warn or Ignore they are dropped
 * (Warn adds a warning per field). Unset, the schema check in prepareObject refuses them (422).
 */
function checkFields (input: unknown, mode: WriteMode, warnings: string[]): unknown {
  if (mode.fieldValidation === undefined || typeof input !== 'object' || input === null) return input
  const { apiVersion, kind } = input as { apiVersion?: unknown, kind?: unknown }
  const def = findKind(apiVersion, kind)
  if (def === undefined) return input
  const schema = (def.versions[apiVersion as string] as { input: TSchema }).input
  const unknown = findUnknownFields(schema, input)
  if (unknown.length === 0) return input
  if (mode.fieldValidation === 'Strict') {
    const version = String(apiVersion).split('/').pop() ?? String(apiVersion)
    throw new IngressdError('INGRESSD_ERR_BAD_REQUEST', strictDecodingMessage(def.kind, version, unknown), { causes: unknown.map(field => ({ reason: 'FieldValueInvalid', field: field.replace(/^\./, ''), message: `unknown field "${field.replace(/^\./, '')}"` })) })
  }
  if (mode.fieldValidation === 'Warn') warnings.push(...unknown.map(field => `unknown field "${field.replace(/^\./, '')}"`))
  return pruneUnknownFields(schema, input)
}

/** Thrown inside a dry run's transaction to roll it back after the write was worked out. */
class DryRunRollback extends Error {}

/**
 * A dry run: the write runs in a local SQLite transaction that is rolled back, so every check the
 * real write makes (conflicts, existence, validation) runs and nothing is stored, announced or
 * served (in cluster mode too: PostgreSQL is not asked).
 */
function dryRunWrite<T> (store: ObjectStore, fn: () => T): T {
  let result: { value: T } | undefined
  try {
    store.write(() => {
      result = { value: fn() }
      throw new DryRunRollback('dry run')
    })
  } catch (err) {
    if (!(err instanceof DryRunRollback)) throw err
  }
  if (result === undefined) throw new IngressdError('INGRESSD_ERR_INTERNAL', 'the dry run produced no result')
  return result.value
}

/** The patch types PATCH takes, by Content-Type. */
const PATCH_TYPES = ['application/merge-patch+json', 'application/strategic-merge-patch+json', 'application/json-patch+json'] as const

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
  /** A list or one object as a Kubernetes Table when the Accept asks for one (`kubectl get`). */
  const maybeTable = (req: FastifyRequest, items: Record<string, unknown>[], listMeta: { resourceVersion: string, continue?: string }): Record<string, unknown> | undefined => {
    const tableVersion = wantsTable(req.headers.accept)
    if (tableVersion === undefined) return undefined
    return toTable(def.kind, apiVersion, items, { includeObject: parseIncludeObject((req.query as { includeObject?: string }).includeObject), listMeta, tableVersion })
  }

  const list = (req: FastifyRequest, reply: FastifyReply, namespace: string | undefined): unknown => {
    const query = req.query as { labelSelector?: string, fieldSelector?: string, limit?: string, continue?: string, watch?: string, includeObject?: string }
    const selector = query.labelSelector === undefined || query.labelSelector === '' ? undefined : parseLabelSelector(query.labelSelector)
    const fields = query.fieldSelector === undefined || query.fieldSelector === '' ? undefined : parseFieldSelector(query.fieldSelector)
    if (isWatchRequest(req.query)) {
      const tableVersion = wantsTable(req.headers.accept)
      return serveWatch(req, reply, {
        store,
        ...(ctx.watches === undefined ? {} : { hub: ctx.watches }),
        kind: def.kind,
        apiVersion,
        ...(namespace === undefined ? {} : { namespace }),
        present,
        ...(selector === undefined ? {} : { labelSelector: selector }),
        ...(fields === undefined ? {} : { fieldSelector: fields }),
        ...(tableVersion === undefined ? {} : { table: { tableVersion, includeObject: parseIncludeObject(query.includeObject) } })
      })
    }
    const limit = query.limit === undefined || query.limit === '0' ? Infinity : Number(query.limit)
    const cursor = query.continue === undefined || query.continue === '' ? undefined : decodeCursor(query.continue)
    const resourceVersion = String(store.resourceVersion())
    const items: Record<string, unknown>[] = []
    let last: StoredObject | undefined
    let more = false
    for (const obj of store.iterate(def.kind, namespace, cursor)) {
      if (selector !== undefined && !selector.matches(obj.meta.labels)) continue
      if (fields !== undefined && !fields.matches(obj.meta)) continue
      if (items.length >= limit) {
        more = true
        break
      }
      items.push(present(obj))
      last = obj
    }
    const metadata: { resourceVersion: string, continue?: string } = { resourceVersion }
    if (more && last !== undefined) metadata.continue = encodeCursor(last)
    return maybeTable(req, items, metadata) ?? { apiVersion, kind: `${def.kind}List`, metadata, items }
  }

  app.get(collection, {
    schema: { tags, operationId: `list${tag}${nsPart}${def.kind}`, summary: `List ${def.plural}${def.namespaced ? ' in a namespace' : ''}`, description: 'With `watch=true`, a stream of watch events instead. With `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`, a Table of kubectl\'s columns.', ...(collectionParams === undefined ? {} : { params: collectionParams }), querystring: ListQuery, response: { 200: ListSchema, ...errorResponses } }
  }, async (req, reply) => list(req, reply, def.namespaced ? nsOf(req.params as Record<string, string>) : undefined))

  if (def.namespaced) {
    app.get(`${basePath(apiVersion)}/${def.plural}`, {
      schema: { tags, operationId: `list${tag}${def.kind}ForAllNamespaces`, summary: `List ${def.plural} across all namespaces`, querystring: ListQuery, response: { 200: ListSchema, ...errorResponses } }
    }, async (req, reply) => list(req, reply, undefined))
  }

  app.post(collection, {
    schema: { tags, operationId: `create${tag}${nsPart}${def.kind}`, summary: `Create ${article(def.kind)}`, description: 'JSON, YAML or Kubernetes protobuf body. 201 with the stored object; 409 if it exists.', consumes: BODY_TYPES, ...(collectionParams === undefined ? {} : { params: collectionParams }), querystring: WriteQuery, body: input, response: { 201: output, ...errorResponses } }
  }, async (req, reply) => {
    const namespace = nsOf(req.params as Record<string, string>)
    const mode = writeMode(req.query)
    const warnings: string[] = []
    const obj = prepareObject(checkFields(parseObjectText(req.body as string), mode, warnings), { namespace }, storedKey)
    if (obj.def !== def) throw new IngressdError('INGRESSD_ERR_UNKNOWN_KIND', `the body is a ${obj.def.kind}, but this path takes ${def.kind} objects`, { subject: subject(obj.name) })
    if (mode.dryRun) {
      const { object } = dryRunWrite(store, () => store.put(obj, 'create'))
      return await sendNow(reply, 201, present(object), warnings)
    }
    const { object } = await ctx.writer.write(() => audited(req, 'create', store.put(obj, 'create')))
    return await replyAfterSync(ctx, req, reply, 201, () => present(object), warnings)
  })

  app.get(item, {
    schema: { tags, operationId: `read${tag}${nsPart}${def.kind}`, summary: `Read ${article(def.kind)}`, params, response: { 200: output, ...errorResponses } }
  }, async (req) => {
    const p = req.params as Record<string, string>
    const obj = store.get(def.kind, nsOf(p), p.name as string)
    if (obj === undefined) throw notFound(p.name as string)
    const presented = present(obj)
    return maybeTable(req, [presented], { resourceVersion: obj.meta.resourceVersion }) ?? presented
  })

  app.put(item, {
    schema: { tags, operationId: `replace${tag}${nsPart}${def.kind}`, summary: `Replace ${article(def.kind)}`, description: 'Send metadata.resourceVersion as read to get 409 instead of overwriting a newer change.', consumes: BODY_TYPES, params, querystring: WriteQuery, body: input, response: { 200: output, ...errorResponses } }
  }, async (req, reply) => {
    const p = req.params as Record<string, string>
    const mode = writeMode(req.query)
    const warnings: string[] = []
    const obj = prepareObject(checkFields(parseObjectText(req.body as string), mode, warnings), { namespace: nsOf(p), name: p.name as string }, storedKey)
    if (obj.def !== def) throw new IngressdError('INGRESSD_ERR_UNKNOWN_KIND', `the body is a ${obj.def.kind}, but this path takes ${def.kind} objects`, { subject: subject(obj.name) })
    if (mode.dryRun) {
      const { object } = dryRunWrite(store, () => store.put(obj, 'replace'))
      return await sendNow(reply, 200, present(object), warnings)
    }
    const { object } = await ctx.writer.write(() => audited(req, 'replace', store.put(obj, 'replace')))
    return await replyAfterSync(ctx, req, reply, 200, () => present(object), warnings)
  })

  app.patch(item, {
    schema: { tags, operationId: `patch${tag}${nsPart}${def.kind}`, summary: `Patch ${article(def.kind)}`, description: 'Content-Type: application/merge-patch+json (RFC 7386: objects merge, null deletes, anything else replaces), application/strategic-merge-patch+json (what kubectl apply, edit, label and annotate send: as Kubernetes merges them, lists by their merge keys) or application/json-patch+json (RFC 6902 operations).', consumes: [...PATCH_TYPES], params, querystring: WriteQuery, body: Type.Union([Type.Object({}, { additionalProperties: true }), Type.Array(Type.Object({}, { additionalProperties: true }))]), response: { 200: output, ...errorResponses } }
  }, async (req, reply) => {
    const p = req.params as Record<string, string>
    const namespace = nsOf(p)
    const mode = writeMode(req.query)
    const warnings: string[] = []
    const patchType = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase()
    const patch = parsePatchText(req.body as string, patchType === 'application/json-patch+json' ? 'array' : 'object')
    const patchOne = (): { object: StoredObject, outcome: WriteOutcome } => {
      const current = store.get(def.kind, namespace, p.name as string)
      if (current === undefined) throw notFound(p.name as string)
      const base = present(current)
      const patched = patchType === 'application/json-patch+json'
        ? applyJsonPatch(base, patch)
        : patchType === 'application/strategic-merge-patch+json' ? applyStrategicMergePatch(def.kind, base, patch) : applyMergePatch(base, patch) as Record<string, unknown>
      const { status: _status, ...merged } = patched
      const obj = prepareObject(checkFields(merged, mode, warnings), { namespace, name: p.name as string }, storedKey)
      return store.put(obj, 'replace')
    }
    if (mode.dryRun) {
      const { object } = dryRunWrite(store, patchOne)
      return await sendNow(reply, 200, present(object), warnings)
    }
    const { object } = await ctx.writer.write(() => audited(req, 'patch', patchOne()))
    return await replyAfterSync(ctx, req, reply, 200, () => present(object), warnings)
  })

  app.delete(item, {
    schema: { tags, operationId: `delete${tag}${nsPart}${def.kind}`, summary: `Delete ${article(def.kind)}`, description: 'Answers 200 with the deleted object, as Kubernetes does. A DeleteOptions body (propagationPolicy...) is accepted; `dryRun=All` deletes nothing.', params, querystring: WriteQuery, response: { 200: output, ...errorResponses } }
  }, async (req, reply) => {
    const p = req.params as Record<string, string>
    const mode = writeMode(req.query)
    if (mode.dryRun) {
      const current = store.get(def.kind, nsOf(p), p.name as string)
      if (current === undefined) throw notFound(p.name as string)
      return await sendNow(reply, 200, present(current), [])
    }
    const deleted = await ctx.writer.write(() => {
      const gone = store.delete(def.kind, nsOf(p), p.name as string, def)
      store.recordAudit(auditEntry(req, 'delete', gone, 'deleted', store.resourceVersion()))
      return gone
    })
    return await replyAfterSync(ctx, req, reply, 200, () => presentObject(def, apiVersion, deleted.meta, deleted.content))
  })
}

/** Answers at once (a dry run: nothing to wait for), with the field-validation warnings. */
async function sendNow (reply: FastifyReply, code: number, body: unknown, warnings: string[]): Promise<FastifyReply> {
  const warning = warningHeader(warnings)
  if (warning !== undefined) reply.header('warning', warning)
  return await reply.code(code).send(body)
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
