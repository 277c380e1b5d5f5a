import t from 'tap'
import { generateSelfSigned } from '../../src/resources/tls-material.js'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'

const SECRETS = '/api/v1/namespaces/default/secrets'
const TEAM_SECRETS = '/api/v1/namespaces/team-b/secrets'
const ALL_SECRETS = '/api/v1/secrets'

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64')

/**
 * Substrings that only a copy of `keyPem` would contain: every body line of the PEM, the PEM
 * itself, and slices of its base64 (what `data` carries) taken at each of the three alignments.
 */
function keyMarkers (keyPem: string): string[] {
  const lines = keyPem.split('\n').filter(l => l.length >= 32 && !l.startsWith('-----'))
  const encoded = b64(keyPem)
  const mid = Math.floor(keyPem.length / 2)
  const slices = [0, 1, 2].map(offset => b64(keyPem.slice(mid + offset, mid + offset + 60)).slice(4, 60))
  const middle = encoded.slice(Math.floor(encoded.length / 2), Math.floor(encoded.length / 2) + 60)
  return [keyPem.trim(), encoded, middle, ...lines, ...slices].filter(m => m.length >= 32)
}

/** Asserts `text` holds none of the markers of any key. */
function noKey (t: Tap, text: string, keys: string[], what: string): void {
  const found = keys.flatMap(keyMarkers).filter(m => text.includes(m))
  t.same(found.length, 0, `${what}: no key material${found.length > 0 ? ` (found ${JSON.stringify(found[0]?.slice(0, 24))}...)` : ''}`)
}

type Tap = Pick<typeof t, 'same' | 'equal' | 'ok' | 'match'>

function secret (name: string, body: Record<string, unknown>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { apiVersion: 'v1', kind: 'Secret', metadata: { name, ...extra }, type: 'kubernetes.io/tls', ...body }
}

async function storedKey (gw: TestGateway, namespace: string, name: string): Promise<string | undefined> {
  return gw.gateway.store.privateKey(namespace, name)
}

t.test('private keys are write-only', async t => {
  const gw = await startTestGateway(t, { INGRESSD_LOG_LEVEL: 'debug' })
  const [a, b, c] = await Promise.all([
    generateSelfSigned({ commonName: 'web.example.com', dnsNames: ['web.example.com', 'www.example.com'], days: 30 }),
    generateSelfSigned({ commonName: 'web.example.com', dnsNames: ['web.example.com'], days: 60 }),
    generateSelfSigned({ commonName: 'team.example.com', dnsNames: ['team.example.com'], keyType: 'ec' })
  ])
  const keys = [a.key, b.key, c.key]
  t.ok(keys.every(k => keyMarkers(k).length >= 8), 'every key has distinctive markers')
  for (const k of keys) {
    const markers = keyMarkers(k)
    t.ok(markers.some(m => JSON.stringify({ data: { 'tls.key': b64(k) } }).includes(m)), 'the markers find a base64 key in JSON')
    t.ok(markers.some(m => JSON.stringify({ stringData: { 'tls.key': k } }).includes(m)), 'the markers find a PEM key in JSON')
    t.ok(markers.some(m => JSON.stringify({ slice: b64(k.slice(7)) }).includes(m)), 'the markers find part of a key re-encoded as base64')
  }

  await t.test('a create with base64 data answers without the key, and with what the certificate says', async t => {
    const res = await gw.api('POST', SECRETS, secret('web-tls', { data: { 'tls.crt': b64(a.cert), 'tls.key': b64(a.key) } }))
    t.equal(res.status, 201)
    noKey(t, res.text, keys, 'create response')
    t.same(Object.keys(res.body.data), ['tls.crt'], 'data holds tls.crt only')
    t.equal(res.body.data['tls.crt'], b64(a.cert))
    t.equal(res.body.type, 'kubernetes.io/tls')
    t.equal(res.body.stringData, undefined)
    const cert = res.body.status.certificate
    t.equal(cert.subject, 'CN=web.example.com')
    t.same(cert.dnsNames, ['web.example.com', 'www.example.com'])
    t.match(cert.notBefore, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    t.match(cert.notAfter, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    t.equal(Math.round((Date.parse(cert.notAfter) - Date.parse(cert.notBefore)) / 86_400_000), 30)
    t.equal(cert.keyType, 'rsa')
    t.equal(cert.expired, false)
    t.equal(res.body.status.keyBytes, Buffer.byteLength(a.key), 'keyBytes is the size of the stored key')
    t.match(res.body.status.conditions, [{ type: 'CertificateValid', status: 'True' }])
    t.equal(await storedKey(gw, 'default', 'web-tls'), a.key, 'the key is stored')
  })

  await t.test('a create with PEM stringData answers without the key', async t => {
    const res = await gw.api('POST', TEAM_SECRETS, secret('team-tls', { stringData: { 'tls.crt': c.cert, 'tls.key': c.key } }, { labels: { app: 'team' } }))
    t.equal(res.status, 201)
    noKey(t, res.text, keys, 'create response')
    t.same(Object.keys(res.body.data), ['tls.crt'])
    t.equal(res.body.stringData, undefined, 'stringData is not echoed')
    t.equal(res.body.status.certificate.keyType, 'ec')
    t.equal(res.body.status.keyBytes, Buffer.byteLength(c.key))
  })

  await t.test('reads and lists never carry the key', async t => {
    for (const path of [`${SECRETS}/web-tls`, `${TEAM_SECRETS}/team-tls`, SECRETS, TEAM_SECRETS, ALL_SECRETS, `${ALL_SECRETS}?labelSelector=app%3Dteam`, `${ALL_SECRETS}?limit=1`]) {
      const res = await gw.api('GET', path)
      t.equal(res.status, 200, path)
      noKey(t, res.text, keys, `GET ${path}`)
      const items = res.body.items ?? [res.body]
      t.ok(items.length > 0, `${path} has items`)
      for (const item of items) {
        t.same(Object.keys(item.data), ['tls.crt'], `${path}: data holds tls.crt only`)
        t.type(item.status.keyBytes, 'number')
        t.type(item.status.certificate.subject, 'string')
      }
    }
    const all = await gw.api('GET', ALL_SECRETS)
    t.same(all.body.items.map((i: any) => `${i.metadata.namespace}/${i.metadata.name}`), ['default/web-tls', 'team-b/team-tls'])
  })

  await t.test('a PUT without tls.key keeps the stored key', async t => {
    const res = await gw.api('PUT', `${SECRETS}/web-tls`, secret('web-tls', { data: { 'tls.crt': b64(a.cert) } }, { labels: { rotated: 'no' } }))
    t.equal(res.status, 200, res.text.slice(0, 300))
    noKey(t, res.text, keys, 'PUT response')
    t.same(res.body.metadata.labels, { rotated: 'no' })
    t.equal(res.body.status.keyBytes, Buffer.byteLength(a.key))
    t.equal(res.body.status.certificate.subject, 'CN=web.example.com')
    t.equal(await storedKey(gw, 'default', 'web-tls'), a.key)
  })

  await t.test('a PUT with the key answers without it', async t => {
    const res = await gw.api('PUT', `${SECRETS}/web-tls`, secret('web-tls', { data: { 'tls.crt': b64(a.cert), 'tls.key': b64(a.key) } }, { labels: { rotated: 'no', put: 'with-key' } }))
    t.equal(res.status, 200)
    noKey(t, res.text, keys, 'PUT response')
  })

  await t.test('a merge patch without tls.key keeps the stored key', async t => {
    const res = await gw.api('PATCH', `${SECRETS}/web-tls`, { metadata: { labels: { patched: 'yes' } } })
    t.equal(res.status, 200, res.text.slice(0, 300))
    noKey(t, res.text, keys, 'PATCH response')
    t.equal(res.body.metadata.labels.patched, 'yes')
    t.equal(res.body.status.keyBytes, Buffer.byteLength(a.key))
    t.equal(await storedKey(gw, 'default', 'web-tls'), a.key)
  })

  await t.test('a certificate that does not match the stored key is refused', async t => {
    const before = await gw.api('GET', `${SECRETS}/web-tls`)
    const put = await gw.api('PUT', `${SECRETS}/web-tls`, secret('web-tls', { data: { 'tls.crt': b64(b.cert) } }))
    t.equal(put.status, 422)
    t.match(put.body, { kind: 'Status', reason: 'Invalid', details: { errorCode: 'INGRESSD_ERR_TLS_INVALID' } })
    t.ok(put.body.details.causes.some((x: any) => x.field === 'data[tls.key]'), 'the cause names data[tls.key]')
    noKey(t, put.text, keys, 'refused PUT')
    const patch = await gw.api('PATCH', `${SECRETS}/web-tls`, { data: { 'tls.crt': b64(b.cert) } })
    t.equal(patch.status, 422)
    t.equal(patch.body.details.errorCode, 'INGRESSD_ERR_TLS_INVALID')
    noKey(t, patch.text, keys, 'refused PATCH')
    const after = await gw.api('GET', `${SECRETS}/web-tls`)
    t.same(after.body.data, before.body.data, 'the stored certificate is unchanged')
    t.equal(after.body.metadata.resourceVersion, before.body.metadata.resourceVersion)
    t.equal(await storedKey(gw, 'default', 'web-tls'), a.key)
  })

  await t.test('a merge patch can rotate certificate and key together', async t => {
    const res = await gw.api('PATCH', `${SECRETS}/web-tls`, { stringData: { 'tls.crt': b.cert, 'tls.key': b.key } })
    t.equal(res.status, 200, res.text.slice(0, 300))
    noKey(t, res.text, keys, 'PATCH response')
    t.equal(res.body.data['tls.crt'], b64(b.cert))
    t.equal(res.body.status.keyBytes, Buffer.byteLength(b.key))
    t.equal(res.body.stringData, undefined)
    t.equal(await storedKey(gw, 'default', 'web-tls'), b.key)
    // The old certificate does not match the rotated key any more.
    const back = await gw.api('PUT', `${SECRETS}/web-tls`, secret('web-tls', { data: { 'tls.crt': b64(a.cert) } }))
    t.equal(back.status, 422)
    t.equal(back.body.details.errorCode, 'INGRESSD_ERR_TLS_INVALID')
  })

  await t.test('/apply answers without the key', async t => {
    const yaml = `apiVersion: v1
kind: Secret
metadata:
  name: applied-tls
type: kubernetes.io/tls
stringData:
  tls.crt: |
${a.cert.trim().split('\n').map(l => `    ${l}`).join('\n')}
  tls.key: |
${a.key.trim().split('\n').map(l => `    ${l}`).join('\n')}
---
apiVersion: v1
kind: Secret
metadata:
  name: applied-tls-2
type: kubernetes.io/tls
data:
  tls.crt: ${b64(c.cert)}
  tls.key: ${b64(c.key)}
`
    const res = await gw.api('POST', '/apply', yaml, { 'content-type': 'application/yaml' })
    t.equal(res.status, 200, res.text.slice(0, 300))
    t.same(res.body.summary, ['secret/applied-tls created', 'secret/applied-tls-2 created'])
    noKey(t, res.text, keys, '/apply result')
    const again = await gw.api('POST', '/apply', yaml, { 'content-type': 'application/yaml' })
    t.same(again.body.summary, ['secret/applied-tls unchanged', 'secret/applied-tls-2 unchanged'])
    noKey(t, again.text, keys, '/apply result')
  })

  await t.test('a DELETE answers without the key', async t => {
    const res = await gw.api('DELETE', `${SECRETS}/applied-tls`)
    t.equal(res.status, 200)
    t.equal(res.body.metadata.name, 'applied-tls')
    noKey(t, res.text, keys, 'DELETE response')
    t.equal(await storedKey(gw, 'default', 'applied-tls'), undefined, 'the key went with the secret')
  })

  await t.test('refused writes answer without the key', async t => {
    const attempts: Array<[string, string, unknown, Record<string, string>?]> = [
      ['mismatched pair', SECRETS, secret('bad-pair', { data: { 'tls.crt': b64(a.cert), 'tls.key': b64(c.key) } })],
      ['Opaque type', SECRETS, { ...secret('opaque', { data: { 'tls.crt': b64(a.cert), 'tls.key': b64(a.key) } }), type: 'Opaque' }],
      ['extra data key', SECRETS, secret('extra', { data: { 'tls.crt': b64(a.cert), 'tls.key': b64(a.key), 'ca.crt': b64(a.key) } })],
      ['key not base64', SECRETS, secret('not-b64', { data: { 'tls.crt': b64(a.cert), 'tls.key': a.key } })],
      ['unknown field', SECRETS, { ...secret('unknown', { stringData: { 'tls.crt': a.cert, 'tls.key': a.key } }), strinData: { 'tls.key': a.key } }],
      ['key as a number', SECRETS, secret('number', { stringData: { 'tls.crt': a.cert, 'tls.key': 42 } })],
      ['malformed JSON', SECRETS, JSON.stringify(secret('json', { stringData: { 'tls.crt': a.cert, 'tls.key': a.key } })).replace(/}$/, ',}'), { 'content-type': 'application/json' }],
      ['malformed YAML', SECRETS, `apiVersion: v1\nkind: Secret\nmetadata: {name: yaml}\nstringData:\n  tls.key: ${JSON.stringify(a.key)}\n   tls.crt: [\n`, { 'content-type': 'application/yaml' }],
      ['wrong namespace', SECRETS, secret('ns', { stringData: { 'tls.crt': a.cert, 'tls.key': a.key } }, { namespace: 'elsewhere' })],
      ['bundle with a bad item', '/apply', [secret('bundle-ok', { stringData: { 'tls.crt': c.cert, 'tls.key': c.key } }), secret('bundle-bad', { stringData: { 'tls.crt': c.cert, 'tls.key': a.key } })]]
    ]
    for (const [what, path, body, headers] of attempts) {
      const res = await gw.api('POST', path, body, headers)
      t.ok(res.status >= 400 && res.status < 500, `${what}: refused (${res.status})`)
      t.equal(res.body?.kind, 'Status', `${what}: a Status`)
      noKey(t, res.text, keys, `${what}: the answer`)
    }
    t.equal((await gw.api('GET', `${SECRETS}/bundle-ok`)).status, 404, 'nothing of the refused bundle was stored')
  })

  await t.test('no log line holds key material', async t => {
    t.ok(gw.logs.length > 20, `the debug log has lines (${gw.logs.length})`)
    for (const [i, line] of gw.logs.entries()) {
      const found = keys.flatMap(keyMarkers).filter(m => line.includes(m))
      if (found.length > 0) t.fail(`log line ${i} holds key material: ${line.slice(0, 200)}`)
    }
    noKey(t, gw.logs.join('\n'), keys, 'the log')
  })
})

t.test('an expired certificate is accepted, and its status says so', async t => {
  const gw = await startTestGateway(t)
  const day = 86_400_000
  const old = await generateSelfSigned({ commonName: 'old.example.com', dnsNames: ['old.example.com'], notBefore: new Date(Date.now() - 400 * day), notAfter: new Date(Date.now() - 35 * day) })
  const res = await gw.api('POST', SECRETS, secret('old-tls', { stringData: { 'tls.crt': old.cert, 'tls.key': old.key } }))
  t.equal(res.status, 201, res.text.slice(0, 300))
  noKey(t, res.text, [old.key], 'create response')
  t.equal(res.body.status.certificate.expired, true)
  t.ok(Date.parse(res.body.status.certificate.notAfter) < Date.now())
  const cond = res.body.status.conditions.find((x: any) => x.type === 'CertificateValid')
  t.match(cond, { status: 'False', reason: 'Expired' })
  t.match(cond.message, res.body.status.certificate.notAfter)
  const read = await gw.api('GET', `${SECRETS}/old-tls`)
  t.match(read.body.status.conditions, [{ type: 'CertificateValid', status: 'False', reason: 'Expired' }])
})
