/**
 * Live updates: every committed change is served as soon as the admin call returns, requests on
 * a stable route never fail while a thousand other changes land, and a WebSocket stays open
 * across the same churn.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { request } from 'undici'
import { WebSocket, WebSocketServer } from 'ws'
import { startTestGateway } from '../helpers/gateway.js'
import { startOrigin } from '../helpers/origin.js'
import { startSteadyLoad } from '../helpers/load.js'
import { apply, serviceManifests } from '../helpers/backends.js'
import { prepareObject } from '../../src/resources/kinds.js'
import { generateSelfSigned } from '../../src/resources/tls-material.js'
import { tlsSecret } from '../helpers/tls.js'

const ING = '/apis/networking.k8s.io/v1/namespaces/default/ingresses'

function ingress (name: string, host: string, service: string, path = '/'): Record<string, any> {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name },
    spec: { rules: [{ host, http: { paths: [{ path, pathType: 'Prefix', backend: { service: { name: service, port: { number: 8080 } } } }] } }] }
  }
}

t.test('1,000 changes to other routes: zero failed requests on a stable route, a WebSocket stays open, each change live on return', async t => {
  const gw = await startTestGateway(t, { INGRESSD_LOG_LEVEL: 'warn' })
  const stable = await startOrigin(t, 'stable')
  const churn = await startOrigin(t, 'churn')

  // A WebSocket echo origin.
  const wsHttp = createServer()
  const wss = new WebSocketServer({ server: wsHttp })
  wss.on('connection', sock => sock.on('message', data => sock.send(`echo:${String(data)}`)))
  await new Promise<void>(resolve => wsHttp.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { wss.close(); wsHttp.closeAllConnections(); wsHttp.close() })
  const wsOrigin = { name: 'ws', host: '127.0.0.1', port: (wsHttp.address() as AddressInfo).port } as any

  await apply(gw, [
    ...serviceManifests('stable', [stable]),
    ...serviceManifests('churn', [churn]),
    ...serviceManifests('ws', [wsOrigin]),
    ingress('stable', 'stable.example.com', 'stable'),
    ingress('ws', 'ws.example.com', 'ws')
  ])

  const ws = new WebSocket(`ws://127.0.0.1:${gw.httpPort}/chat`, { headers: { host: 'ws.example.com' } })
  await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject) })
  const echoes: string[] = []
  let wsClosed = false
  ws.on('message', data => echoes.push(String(data)))
  ws.on('close', () => { wsClosed = true })

  // Steady keep-alive load on the stable route.
  const load = startSteadyLoad(t, gw.http, { host: 'stable.example.com', path: '/stable', origin: stable, connections: 8 })

  // 1,000 admin changes to other routes, each checked live right after its call returns.
  let changes = 0
  let notLive = 0
  const started = Date.now()
  for (let i = 0; changes < 1000; i++) {
    const name = `churn-${i}`
    const host = `churn-${i}.example.com`
    const created = await gw.api('POST', ING, ingress(name, host, 'churn'))
    changes++
    if (created.status !== 201) t.fail(`create ${name}: ${created.status}`)
    const first = await request(`${gw.http}/`, { headers: { host } })
    await first.body.text()
    if (first.statusCode !== 200) notLive++

    const moved = ingress(name, host, 'churn', '/moved')
    moved.metadata.resourceVersion = created.body.metadata.resourceVersion
    await gw.api('PUT', `${ING}/${name}`, moved)
    changes++
    const old = await request(`${gw.http}/`, { headers: { host } })
    await old.body.text()
    if (old.statusCode !== 404) notLive++

    if (i % 2 === 0) {
      await gw.api('DELETE', `${ING}/${name}`)
      changes++
      const gone = await request(`${gw.http}/moved`, { headers: { host } })
      await gone.body.text()
      if (gone.statusCode !== 404) notLive++
    }
    if (i % 25 === 0) ws.send(`m${i}`)
  }
  const churnMs = Date.now() - started
  await load.stop()

  ws.send('last')
  await new Promise(resolve => setTimeout(resolve, 200))
  t.equal(wsClosed, false, 'the WebSocket is still open')
  t.ok(echoes.includes('echo:last'), 'and still echoes after the churn')
  t.equal(echoes.length, echoes.filter(e => e.startsWith('echo:')).length)
  ws.close()

  t.comment(`${changes} changes in ${churnMs} ms; ${load.ok} requests on the stable route, ${load.failed} failed; ${echoes.length} WebSocket echoes`)
  t.equal(load.failed, 0, `no request on the stable route failed${load.failures.length > 0 ? `: ${load.failures.slice(0, 3).join('; ')}` : ''}`)
  t.ok(load.ok > 100, 'the stable route carried load throughout')
  t.equal(notLive, 0, 'every change was live when its admin call returned')
})

t.test('a change that cannot be served leaves the other routes and the last good table serving', async t => {
  const gw = await startTestGateway(t)
  const origin = await startOrigin(t, 'echo')
  await apply(gw, [...serviceManifests('echo', [origin]), ingress('good', 'good.example.com', 'echo')])
  // A second ingress claiming the same host and path loses to the older one and says so.
  const loser = await gw.api('POST', ING, ingress('late', 'good.example.com', 'echo'))
  t.equal(loser.status, 201)
  const conflicted = loser.body.status.conditions.find((c: any) => c.type === 'Conflicted')
  t.ok(conflicted, 'the loser\'s status says why')
  t.match(conflicted.message, 'default/good')
  const res = await request(`${gw.http}/`, { headers: { host: 'good.example.com' } })
  t.equal(res.statusCode, 200)
  await res.body.text()
})

t.test('a path that stops compiling is dropped and reported; the rest of the host keeps serving', async t => {
  const gw = await startTestGateway(t)
  const origin = await startOrigin(t, 'echo')
  // '/a(' is a fine plain prefix path, but not a regular expression.
  const plain = ingress('plain', 'mixed.example.com', 'echo', '/a(')
  plain.spec.rules[0].http.paths[0].pathType = 'ImplementationSpecific'
  plain.spec.rules[0].http.paths.push({ path: '/ok', pathType: 'ImplementationSpecific', backend: { service: { name: 'echo', port: { number: 8080 } } } })
  await apply(gw, [...serviceManifests('echo', [origin]), plain])
  t.equal((await request(`${gw.http}/a(`, { headers: { host: 'mixed.example.com' } })).statusCode, 200)

  // Another ingress puts the host in regex mode, as ingress-nginx does for every path of the host.
  const regex = ingress('regex', 'mixed.example.com', 'echo', '/re.x')
  regex.metadata.annotations = { 'nginx.ingress.kubernetes.io/use-regex': 'true' }
  regex.spec.rules[0].http.paths[0].pathType = 'ImplementationSpecific'
  await apply(gw, [regex])
  const status = (await gw.api('GET', `${ING}/plain`)).body.status
  const cond = status.conditions.find((c: any) => c.type === 'PathsCompiled')
  t.equal(cond?.status, 'False', 'the broken path is reported on its ingress')
  t.match(cond?.message, '/a(')
  const ok = await request(`${gw.http}/ok`, { headers: { host: 'mixed.example.com' } })
  await ok.body.text()
  t.equal(ok.statusCode, 200, 'the ingress\'s other path still serves')
  const re = await request(`${gw.http}/reax`, { headers: { host: 'mixed.example.com' } })
  await re.body.text()
  t.equal(re.statusCode, 200, 'the new regex path serves')
})

t.test('writes that change nothing served do not rebuild the tables', async t => {
  const gw = await startTestGateway(t)
  const origin = await startOrigin(t, 'echo')
  await apply(gw, [...serviceManifests('echo', [origin]), ingress('quiet', 'quiet.example.com', 'echo')])
  const before = gw.gateway.reloader.compiles
  // Labels, an IngressClass, and an unchanged re-apply: stored, answered, but no compile.
  const labelled = await gw.api('PATCH', `${ING}/quiet`, { metadata: { labels: { team: 'a' } } })
  t.equal(labelled.status, 200)
  await gw.api('POST', '/apis/networking.k8s.io/v1/ingressclasses', { apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass', metadata: { name: 'nginx' }, spec: { controller: 'k8s.io/ingress-nginx' } })
  await apply(gw, [ingress('quiet', 'quiet.example.com', 'echo')])
  t.equal(gw.gateway.reloader.compiles, before, 'no compile for labels, IngressClass objects or unchanged objects')
  const res = await request(`${gw.http}/`, { headers: { host: 'quiet.example.com' } })
  await res.body.text()
  t.equal(res.statusCode, 200)
  // An annotation can change routing: it compiles.
  await gw.api('PATCH', `${ING}/quiet`, { metadata: { annotations: { 'nginx.ingress.kubernetes.io/rewrite-target': '/x' } } })
  t.equal(gw.gateway.reloader.compiles, before + 1)
})

t.test('statuses follow the incremental compile: a conflict lost and then won, a service appearing, a delete and re-create', async t => {
  const gw = await startTestGateway(t)
  const origin = await startOrigin(t, 'echo')
  await apply(gw, [...serviceManifests('echo', [origin]), ingress('first', 'shared.example.com', 'echo')])
  const conditions = async (name: string): Promise<Record<string, { status: string, message: string }>> => {
    const res = await gw.api('GET', `${ING}/${name}`)
    return Object.fromEntries((res.body?.status?.conditions ?? []).map((c: { type: string, status: string, message: string }) => [c.type, c]))
  }
  // Created later on the same host and path: it loses, and says so in the reply.
  const second = await gw.api('POST', ING, ingress('second', 'shared.example.com', 'echo'))
  t.equal(second.status, 201)
  const lost = Object.fromEntries(second.body.status.conditions.map((c: { type: string }) => [c.type, c]))
  t.equal(lost.Served?.status, 'False')
  t.match(lost.Conflicted?.message, /served by default\/first/)
  t.equal((await conditions('first')).Served?.status, 'True')

  // The older one goes: the younger one's status changes although the younger one did not.
  t.equal((await gw.api('DELETE', `${ING}/first`)).status, 200)
  const won = await conditions('second')
  t.equal(won.Served?.status, 'True')
  t.equal(won.Conflicted, undefined)

  // A backend that does not exist yet, then does: the status follows the Service.
  await gw.api('POST', ING, ingress('later', 'later.example.com', 'later-svc'))
  t.equal((await conditions('later')).BackendsReady?.status, 'False')
  await apply(gw, serviceManifests('later-svc', [origin]))
  t.equal((await conditions('later')).BackendsReady, undefined, 'no backend problem once the Service and Endpoints exist')

  // Deleted and created again, same spec: the status row, removed by the delete, is written again.
  t.equal((await gw.api('DELETE', `${ING}/second`)).status, 200)
  const again = await gw.api('POST', ING, ingress('second', 'shared.example.com', 'echo'))
  t.equal(Object.fromEntries(again.body.status.conditions.map((c: { type: string }) => [c.type, c])).Served?.status, 'True')
  const res = await request(`${gw.http}/`, { headers: { host: 'shared.example.com' } })
  await res.body.text()
  t.equal(res.statusCode, 200)

  // The same within one reload pass: both commits land before the reloader looks.
  const { store, reloader } = gw.gateway
  store.write(() => store.delete('Ingress', 'default', 'second', { group: 'networking.k8s.io' }))
  store.write(() => store.put(prepareObject(ingress('second', 'shared.example.com', 'echo'), { namespace: 'default' }, () => undefined), 'create'))
  while (reloader.generation < store.resourceVersion()) await new Promise(resolve => setTimeout(resolve, 5))
  t.equal((store.status('Ingress', 'default', 'second')?.status.conditions as { type: string, status: string }[] | undefined)?.find(c => c.type === 'Served')?.status, 'True', 'the status is written again though its text did not change')
})

t.test('a TLS Secret deleted and created again within one reload pass gets its status row back', async t => {
  const gw = await startTestGateway(t)
  const pem = await generateSelfSigned({ commonName: 'again.example.com', dnsNames: ['again.example.com'] })
  t.equal((await gw.api('POST', '/api/v1/namespaces/default/secrets', tlsSecret('again-tls', pem))).status, 201)
  const { store, reloader } = gw.gateway
  const conditions = (): { type: string, status: string }[] | undefined => store.status('Secret', 'default', 'again-tls')?.status.conditions as { type: string, status: string }[] | undefined
  t.ok(conditions(), 'a status row after the create')
  // Both commits land before the reloader looks: the status it renders is the same text as before.
  store.write(() => store.delete('Secret', 'default', 'again-tls', { group: '' }))
  store.write(() => store.put(prepareObject(tlsSecret('again-tls', pem), { namespace: 'default' }, () => undefined), 'create'))
  t.equal(conditions(), undefined, 'the delete removed the status row')
  while (reloader.generation < store.resourceVersion()) await new Promise(resolve => setTimeout(resolve, 5))
  t.ok(conditions(), 'the status row is written again though its text did not change')
})
