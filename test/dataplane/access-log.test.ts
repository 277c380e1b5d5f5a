/**
 * The access line is built by hand for speed; it must stay exactly what pino itself writes for
 * `child({ reqId }).info(fields, 'access')`, keys in the same order, bindings included.
 */
import { Writable } from 'node:stream'
import t from 'tap'
import { pino } from 'pino'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { createAccessLog } from '../../src/dataplane/access-log.js'
import type { RequestInfo } from '../../src/dataplane/proxy.js'

function capture (): { logger: pino.Logger, lines: string[] } {
  const lines: string[] = []
  const sink = new Writable({ write (chunk, _enc, cb) { lines.push(String(chunk)); cb() } })
  // pino writes synchronously to a plain Writable, so the line is there when info() returns.
  return { logger: pino({ level: 'info', base: { pid: 4242 } }, sink).child({ component: 'dataplane' }), lines }
}

const route = { ingress: { namespace: 'default', name: 'web' }, host: 'web.example.com', backend: { namespace: 'default', service: 'web' } } as unknown as NonNullable<RequestInfo['route']>

const cases: { name: string, req: Record<string, unknown>, status: number, contentLength?: string, info: RequestInfo | null }[] = [
  {
    name: 'a proxied request',
    req: { id: 'abc123', socket: { remoteAddress: '127.0.0.1' }, headers: { host: 'web.example.com' }, method: 'GET', url: '/a?b=1' },
    status: 200,
    info: { route, upstream: { host: '10.0.0.1', port: 8080 } as never, upstreamMs: 1.23456, bytes: 100 }
  },
  {
    name: 'an answer of the gateway, with characters JSON must escape',
    req: { id: 'id "quoted" \\ and \u0001', socket: { remoteAddress: '::1' }, headers: { host: 'we"ird\\host' }, method: 'POST', url: '/p"a\\th\n' },
    status: 404,
    contentLength: '57',
    info: null
  },
  {
    name: 'no Host, no peer address, no length',
    req: { id: 'x', socket: {}, headers: {}, method: 'GET', url: '/' },
    status: 400,
    info: { upstreamMs: 3 }
  },
  {
    name: 'HTTP/2: the host is :authority',
    req: { id: 'h2', socket: { remoteAddress: '127.0.0.1' }, headers: { ':authority': 'h2.example.com', host: 'ignored' }, method: 'GET', url: '/' },
    status: 502,
    info: { route, upstream: { host: '::1', port: 80 } as never }
  }
]

for (const c of cases) {
  t.test(`${c.name}: the line is pino's`, async t => {
    const ours = capture()
    const theirs = capture()
    const reply = { statusCode: c.status, elapsedTime: 12.3456, getHeader: (name: string) => name === 'content-length' ? c.contentLength : undefined }
    createAccessLog(ours.logger)(c.req as unknown as FastifyRequest, reply as unknown as FastifyReply, c.info)
    const headers = c.req.headers as Record<string, string>
    theirs.logger.child({ reqId: c.req.id }).info({
      client: (c.req.socket as { remoteAddress?: string }).remoteAddress,
      host: headers[':authority'] ?? headers.host,
      method: c.req.method,
      path: c.req.url,
      status: c.status,
      bytes: c.info?.bytes ?? (Number(c.contentLength ?? 0) || undefined),
      upstream: c.info?.upstream === undefined ? undefined : `${c.info.upstream.host}:${c.info.upstream.port}`,
      ingress: c.info?.route === undefined ? undefined : 'default/web',
      upstreamMs: c.info?.upstreamMs === undefined ? undefined : Math.round(c.info.upstreamMs * 100) / 100,
      ms: 12.35
    }, 'access')
    t.equal(ours.lines.length, 1)
    const strip = (line: string): string => line.replace(/"time":\d+/, '"time":0')
    t.equal(strip(ours.lines[0] as string), strip(theirs.lines[0] as string))
    t.doesNotThrow(() => JSON.parse(ours.lines[0] as string))
  })
}

t.test('nothing is written when the level is above info', async t => {
  const { logger, lines } = capture()
  logger.level = 'warn'
  createAccessLog(logger)({ id: 'x', socket: {}, headers: {}, method: 'GET', url: '/' } as unknown as FastifyRequest, { statusCode: 200, elapsedTime: 1, getHeader: () => undefined } as unknown as FastifyReply, null)
  t.same(lines, [])
})
