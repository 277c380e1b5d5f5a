/**
 * /healthz (the process answers) and /readyz (the store is open and the data plane serves its
 * first compiled tables), open without a token so probes need no secret.
 */
import type { FastifyInstance } from 'fastify'
import Type from 'typebox'

/** What readiness depends on; the data plane sets `ready` once its first tables serve. */
export interface Readiness {
  ready: () => boolean
  detail: () => Record<string, unknown>
}

const Health = Type.Object({ status: Type.String({ examples: ['ok'] }) }, { additionalProperties: true })

export function registerHealthRoutes (app: FastifyInstance, readiness: Readiness): void {
  app.get('/healthz', { schema: { tags: ['Health'], operationId: 'getHealth', summary: 'Liveness: the process answers', security: [], response: { 200: Health } } }, async () => ({ status: 'ok' }))
  app.get('/readyz', { schema: { tags: ['Health'], operationId: 'getReadiness', summary: 'Readiness: the store is open and the first tables serve', security: [], response: { 200: Health, 503: Health } } }, async (_req, reply) => {
    const ok = readiness.ready()
    return reply.code(ok ? 200 : 503).send({ status: ok ? 'ok' : 'starting', ...readiness.detail() })
  })
}
