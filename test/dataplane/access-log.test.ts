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
    const log = createAccessLog(ours.logger)
    log.write(c.req as unknown as FastifyRequest, reply as unknown as FastifyReply, c.info)
    log.close()
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
  const log = createAccessLog(logger)
  log.write({ id: 'x', socket: {}, headers: {}, method: 'GET', url: '/' } as unknown as FastifyRequest, { statusCode: 200, elapsedTime: 1, getHeader: () => undefined } as unknown as FastifyReply, null)
  log.close()
  t.same(lines, [])
})

t.test('lines reach the destination in batches, in order, and none waits more than about 100 ms', async t => {
  const { logger, lines } = capture()
  const log = createAccessLog(logger)
  const reply = { statusCode: 200, elapsedTime: 1, getHeader: () => undefined } as unknown as FastifyReply
  const request = (i: number): FastifyRequest => ({ id: `r${i}`, socket: { remoteAddress: '127.0.0.1' }, headers: { host: 'web.example.com' }, method: 'GET', url: `/${i}` }) as unknown as FastifyRequest
  for (let i = 0; i < 500; i++) log.write(request(i), reply, null)
  // 500 lines of ~150 characters: 16 KiB batches went out as they filled, the rest waits for the timer.
  const written = lines.join('').split('\n').filter(l => l !== '')
  t.ok(written.length > 0 && written.length < 500, `${written.length} of 500 lines written before the timer`)
  t.ok(lines.length < 10, `${lines.length} writes for ${written.length} lines`)
  await new Promise(resolve => setTimeout(resolve, 250))
  const all = lines.join('').split('\n').filter(l => l !== '')
  t.equal(all.length, 500, 'the rest arrived on the timer')
  t.same(all.map(l => (JSON.parse(l) as { reqId: string }).reqId), Array.from({ length: 500 }, (_, i) => `r${i}`))
  log.write(request(500), reply, null)
  log.close()
  t.equal(lines.join('').split('\n').filter(l => l !== '').length, 501, 'close writes what is left')
})
