/**
 * Paths a decoding backend would read differently from the gateway, sent byte for byte to a real
 * gateway with two rules on one host, `/public` and `/admin`, each to its own origin: a path
 * whose readings (with `%2F`, `%5C` or `\` taken for `/`) fall under different rules is refused
 * (access control per rule must not be bypassed); encoded unreserved characters are decoded and
 * routed as what every backend reads; a path every reading keeps under one rule passes as sent.
 */
import t from 'tap'
import { startTestGateway } from '../helpers/gateway.js'
import { startOrigin, type Origin } from '../helpers/origin.js'
import { apply, serviceManifests } from '../helpers/backends.js'
import { sendRaw } from '../helpers/raw.js'

const ingress = {
  apiVersion: 'networking.k8s.io/v1',
  kind: 'Ingress',
  metadata: { name: 'split' },
  spec: {
    rules: [{
      host: 'a.example',
      http: {
        paths: [
          { path: '/public', pathType: 'Prefix', backend: { service: { name: 'public', port: { number: 8080 } } } },
          { path: '/admin', pathType: 'Prefix', backend: { service: { name: 'admin', port: { number: 8080 } } } }
        ]
      }
    }]
  }
}

interface Case {
  target: string
  status: number
  /** The origin that must see the request, and the exact target it must see. */
  origin?: 'public' | 'admin'
  url?: string
  code?: string
}

const AMBIGUOUS = 'INGRESSD_ERR_AMBIGUOUS_PATH'

const CASES: Case[] = [
  // A decoding backend reads these as /admin while the gateway routes them elsewhere.
  { target: '/public/..%2Fadmin', status: 400, code: AMBIGUOUS },
  { target: '/public/..%2fadmin', status: 400, code: AMBIGUOUS },
  { target: '/public/..%5Cadmin', status: 400, code: AMBIGUOUS },
  { target: '/public/..%5cadmin', status: 400, code: AMBIGUOUS },
  { target: '/public/..\\admin', status: 400, code: AMBIGUOUS },
  { target: '/public%2F..%2Fadmin', status: 400, code: AMBIGUOUS },
  { target: '/public/x/..%2F..%2Fadmin/users', status: 400, code: AMBIGUOUS },
  // Routed nowhere by the gateway, under /admin by a backend that decodes only %2F.
  { target: '/admin%2F..%5C', status: 400, code: AMBIGUOUS },
  // A reading that climbs above the root.
  { target: '/public/..%2F..%2Fetc/passwd', status: 400, code: AMBIGUOUS },
  // Encoded unreserved characters: what every backend reads, so what is routed and sent.
  { target: '/%61dmin', status: 200, origin: 'admin', url: '/admin' },
  { target: '/%61%64%6D%69%6E/users?id=%61', status: 200, origin: 'admin', url: '/admin/users?id=%61' },
  { target: '/p%75blic/%7Euser', status: 200, origin: 'public', url: '/public/~user' },
  { target: '/public/%2e%2e/admin', status: 200, origin: 'admin', url: '/admin' },
  // Every reading stays under /public: forwarded as sent.
  { target: '/public/a%2Fb', status: 200, origin: 'public', url: '/public/a%2Fb' },
  { target: '/public/a%5Cb\\c', status: 200, origin: 'public', url: '/public/a%5Cb\\c' },
  { target: '/public/caf%C3%A9%20x', status: 200, origin: 'public', url: '/public/caf%C3%A9%20x' }
]

t.test('paths a decoding backend would read under another rule are refused; the rest route as they read', async t => {
  const gw = await startTestGateway(t)
  const origins: Record<'public' | 'admin', Origin> = { public: await startOrigin(t, 'public'), admin: await startOrigin(t, 'admin') }
  await apply(gw, [...serviceManifests('public', [origins.public]), ...serviceManifests('admin', [origins.admin]), ingress])
  for (const c of CASES) {
    for (const o of Object.values(origins)) o.seen.length = 0
    const answer = await sendRaw(gw.httpPort, `GET ${c.target} HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n`)
    // Anything the gateway may have started upstream arrives before the origins are read.
    await new Promise(resolve => setTimeout(resolve, 30))
    const seen = Object.values(origins).flatMap(o => o.seen.map(s => `${s.server} ${s.url}`))
    t.equal(answer.status, c.status, `${c.target}: ${c.status}`)
    if (c.code !== undefined) t.match(answer.body, `code: ${c.code}`, `${c.target}: ${c.code}`)
    if (c.origin === undefined) {
      t.ok(answer.closed, `${c.target}: the connection is closed`)
      t.same(seen, [], `${c.target}: no origin saw it`)
    } else {
      t.same(seen, [`${c.origin} ${c.url ?? ''}`], `${c.target}: ${c.origin} got ${c.url ?? ''}`)
    }
  }

  const upgrade = await sendRaw(gw.httpPort, 'GET /public/..%2Fadmin HTTP/1.1\r\nHost: a.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n')
  t.equal(upgrade.status, 400, 'an Upgrade request is refused the same way')
  t.match(upgrade.body, `code: ${AMBIGUOUS}`)
})
