/**
 * POST /apply: `kubectl apply -f` for ingressd. One or many manifests (multi-document YAML, a
 * JSON object, a List, or an array), validated first and committed all together or not at all.
 */
import type { FastifyInstance } from 'fastify'
import Type from 'typebox'
import { IngressdError } from '../errors.js'
import { prepareObject, type PreparedObject } from '../resources/kinds.js'
import { StatusSchema } from '../resources/meta.js'
import type { ObjectStore, WriteOutcome } from '../store/object-store.js'
import { parseManifestStream } from './content.js'
import { WaitQuery, warningHeader, type StoreWriter, type WaitMode, type WriteSync } from './write-sync.js'
import { auditEntry, ref } from './resource-routes.js'

const ApplyItem = Type.Object({
  apiVersion: Type.String(),
  kind: Type.String(),
  namespace: Type.Optional(Type.String()),
  name: Type.String(),
  outcome: Type.Union([Type.Literal('created'), Type.Literal('configured'), Type.Literal('unchanged')]),
  resourceVersion: Type.String()
})

const ApplyResult = Type.Object({
  kind: Type.Literal('ApplyResult'),
  apiVersion: Type.Literal('ingressd.io/v1'),
  items: Type.Array(ApplyItem),
  summary: Type.Array(Type.String({ examples: ['ingress.extensions/basic created'] }), { description: 'One line per object, as kubectl apply prints them' })
})

/** Flattens a body into objects: arrays and `List`s give their items. */
export function flattenManifests (docs: unknown[]): unknown[] {
  const out: unknown[] = []
  const visit = (doc: unknown): void => {
    if (Array.isArray(doc)) doc.forEach(visit)
    else if (typeof doc === 'object' && doc !== null && typeof (doc as { kind?: unknown }).kind === 'string' && /List$/.test((doc as { kind: string }).kind) && Array.isArray((doc as { items?: unknown }).items)) {
      ((doc as { items: unknown[] }).items).forEach(visit)
    } else out.push(doc)
  }
  docs.forEach(visit)
  return out
}

/** `ingress.extensions/basic created`: the line kubectl apply prints for an object. */
export function applySummaryLine (apiVersion: string, kind: string, name: string, outcome: WriteOutcome): string {
  const group = apiVersion.includes('/') ? apiVersion.split('/')[0] : ''
  return `${kind.toLowerCase()}${group === '' ? '' : `.${group ?? ''}`}/${name} ${outcome}`
}

function describe (doc: unknown, index: number): string {
  const d = doc as { kind?: unknown, metadata?: { name?: unknown } }
  return `object ${index + 1}${typeof d?.kind === 'string' ? ` (${d.kind}${typeof d.metadata?.name === 'string' ? ` ${d.metadata.name}` : ''})` : ''}`
}

/** Registers POST /apply. */
export function registerApplyRoute (app: FastifyInstance, ctx: { store: ObjectStore, sync: WriteSync, writer: StoreWriter }): void {
  app.post('/apply', {
    schema: {
      tags: ['Apply'],
      operationId: 'applyManifests',
      summary: 'Create or update many objects in one transaction',
      description: 'Like `kubectl apply -f`: multi-document YAML, a JSON object, a List or an array. Every object is validated first; all are committed together or none is. Objects without a namespace go to `?namespace=` (default "default").',
      querystring: Type.Object({ namespace: Type.Optional(Type.String({ description: 'Namespace for objects that name none' })), ...WaitQuery }),
      consumes: ['application/yaml', 'application/json'],
      body: Type.Union([Type.Object({}, { additionalProperties: true }), Type.Array(Type.Object({}, { additionalProperties: true }))], { description: 'One or many manifests, JSON or YAML' }),
      response: { 200: ApplyResult, 400: ref(StatusSchema), 401: ref(StatusSchema), 409: ref(StatusSchema), 413: ref(StatusSchema), 422: ref(StatusSchema) }
    }
  }, async (req, reply) => {
    const namespace = (req.query as { namespace?: string }).namespace ?? 'default'
    const docs = flattenManifests(parseManifestStream(req.body as string))
    if (docs.length === 0) throw new IngressdError('INGRESSD_ERR_BAD_REQUEST', 'the body holds no manifests')
    const { store } = ctx
    const items = await ctx.writer.write(() => {
      const prepared: { doc: unknown, obj: PreparedObject }[] = docs.map((doc, i) => {
        try {
          return { doc, obj: prepareObject(doc, { namespace }, (ns, name) => store.privateKey(ns, name)) }
        } catch (err) {
          if (err instanceof IngressdError) {
            const causes = err.causes.map(c => ({ ...c, field: `items[${i}].${c.field}` }))
            throw new IngressdError(err.code, `${describe(doc, i)}: ${err.message}`, { causes, subject: err.subject })
          }
          throw err
        }
      })
      return prepared.map(({ doc, obj }) => {
        const { object, outcome } = store.put(obj, 'apply')
        if (outcome !== 'unchanged') store.recordAudit(auditEntry(req, 'apply', object, outcome))
        const apiVersion = (doc as { apiVersion: string }).apiVersion
        const item: { apiVersion: string, kind: string, namespace?: string, name: string, outcome: WriteOutcome, resourceVersion: string } = { apiVersion, kind: obj.def.kind, name: obj.name, outcome, resourceVersion: object.meta.resourceVersion }
        if (obj.def.namespaced) item.namespace = obj.namespace
        return item
      })
    })
    const warning = warningHeader(await ctx.sync.afterWrite((req.query as { wait?: WaitMode }).wait))
    if (warning !== undefined) reply.header('warning', warning)
    return {
      kind: 'ApplyResult',
      apiVersion: 'ingressd.io/v1',
      items,
      summary: items.map(i => applySummaryLine(i.apiVersion, i.kind, i.name, i.outcome))
    }
  })
}
