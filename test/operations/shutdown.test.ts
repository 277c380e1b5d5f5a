/**
 * Graceful shutdown, as an operator sees it: SIGTERM while a slow request is in flight lets it
 * finish, closes WebSockets with 1001, refuses new connections, and the process exits 0 with
 * the store closed cleanly; in one process and with two data-plane workers.
 */
import { createServer } from 'node:http'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect, type AddressInfo } from 'node:net'
import Database from 'better-sqlite3'
import t from 'tap'
import { request } from 'undici'
import { WebSocket, WebSocketServer } from 'ws'
import { startChildGateway } from '../helpers/child-gateway.js'
import { startOrigin } from '../helpers/origin.js'
import { serviceManifests } from '../helpers/backends.js'

for (const workers of ['1', '2']) {
  t.test(`SIGTERM (INGRESSD_WORKERS=${workers}): the slow request in flight completes, WebSockets get 1001, the process exits 0`, async t => {
    const dir = mkdtempSync(join(tmpdir(), 'ingressd-shutdown-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const slow = await startOrigin(t, 'slow', (_req, res) => { setTimeout(() => res.end('finished after 1.5 s'), 1500) })
    const wsHttp = createServer()
    const wss = new WebSocketServer({ server: wsHttp })
    wss.on('connection', sock => sock.on('message', data => sock.send(String(data))))
    await new Promise<void>(resolve => wsHttp.listen(0, '127.0.0.1', resolve))
    t.teardown(() => { wss.close(); wsHttp.closeAllConnections(); wsHttp.close() })

    const gw = await startChildGateway({ INGRESSD_DB: join(dir, 'db.sqlite'), INGRESSD_ADMIN_ADDR: '127.0.0.1:0', INGRESSD_HTTP_ADDR: '127.0.0.1:0', INGRESSD_HTTPS_ADDR: '127.0.0.1:0', INGRESSD_SHUTDOWN_GRACE: '10s', INGRESSD_WORKERS: workers })
    t.teardown(() => { if (gw.child.exitCode === null) gw.child.kill('SIGKILL') })
    const http = `http://${String(gw.started.http)}`
    const applied = await request(`${gw.admin}/apply`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify([
        ...serviceManifests('slow', [slow]),
        ...serviceManifests('ws', [{ name: 'ws', host: '127.0.0.1', port: (wsHttp.address() as AddressInfo).port } as any]),
        { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'slow' }, spec: { rules: [{ host: 'slow.example.com', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'slow', port: { number: 8080 } } } }] } }, { host: 'ws.example.com', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'ws', port: { number: 8080 } } } }] } }] } }
      ])
    })
    t.equal(applied.statusCode, 200)
    await applied.body.text()

    const ws = new WebSocket(`ws://${String(gw.started.http)}/`, { headers: { host: 'ws.example.com' } })
    await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject) })
    const wsClosed = new Promise<number>(resolve => ws.once('close', code => resolve(code)))

    const inFlight = request(`${http}/`, { headers: { host: 'slow.example.com' } }).then(async res => ({ status: res.statusCode, body: await res.body.text() }))
    await new Promise(resolve => setTimeout(resolve, 300))
    const signalledAt = Date.now()
    gw.child.kill('SIGTERM')

    t.equal(await wsClosed, 1001, 'the WebSocket is closed with 1001 (going away)')
    const done = await inFlight
    t.equal(done.status, 200, 'the request in flight completes')
    t.equal(done.body, 'finished after 1.5 s')
    const exit = await gw.exited
    t.equal(exit.code, 0, 'the process exits 0')
    t.ok(Date.now() - signalledAt < 9000, 'well within the grace period')
    t.ok(gw.lines.some(l => l.includes('"signal":"SIGTERM"')), 'the shutdown is logged')
    t.comment(`exited ${Date.now() - signalledAt} ms after SIGTERM`)
    await t.rejects(request(`${http}/`, { headers: { host: 'slow.example.com' } }), 'no new connections after shutdown')

    // The store was closed cleanly: no WAL left to recover, integrity intact.
    const db = new Database(join(dir, 'db.sqlite'), { readonly: true })
    t.equal(db.pragma('integrity_check', { simple: true }), 'ok')
    db.close()
  })
}

for (const workers of ['1', '2']) {
  t.test(`SIGTERM (INGRESSD_WORKERS=${workers}): an admin client that stalled does not hold the stop`, async t => {
    const dir = mkdtempSync(join(tmpdir(), 'ingressd-shutdown-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const gw = await startChildGateway({ INGRESSD_DB: join(dir, 'db.sqlite'), INGRESSD_ADMIN_ADDR: '127.0.0.1:0', INGRESSD_HTTP_ADDR: '127.0.0.1:0', INGRESSD_HTTPS_ADDR: '127.0.0.1:0', INGRESSD_SHUTDOWN_GRACE: '60s', INGRESSD_WORKERS: workers })
    t.teardown(() => { if (gw.child.exitCode === null) gw.child.kill('SIGKILL') })
    // A client that stalled mid-request: it announced a body and sent a few bytes of it.
    const { port } = new URL(gw.admin)
    const stalled = connect(Number(port), '127.0.0.1')
    stalled.on('error', () => {})
    await new Promise<void>(resolve => stalled.once('connect', () => resolve()))
    stalled.write('POST /apply HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n[{"apiVersion"')
    await new Promise(resolve => setTimeout(resolve, 300))
    const stoppedAt = Date.now()
    gw.child.kill('SIGTERM')
    const exit = await gw.exited
    const took = Date.now() - stoppedAt
    t.equal(exit.code, 0, 'the process exits 0')
    // The admin API gives requests in progress 5 s, then cuts them (the shutdown grace, 60 s here, is the data plane's).
    t.ok(took >= 4500 && took < 9000, `it stopped ${took} ms after SIGTERM (Fastify alone waited for the client)`)
    stalled.destroy()
  })
}
