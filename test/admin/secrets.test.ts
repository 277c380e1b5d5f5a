import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { generateSelfSigned } from '../../src/resources/tls-material.js'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { client } from '../cli/run.js'

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
    t.same(Object.keys(res.body.data), ['tls.crt', 'tls.key'], 'data holds tls.crt and a placeholder for tls.key')
    t.equal(Buffer.from(res.body.data['tls.key'], 'base64').toString(), '*'.repeat(res.body.status.keyBytes), 'the placeholder: as many asterisks as the key has bytes')
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
    t.same(Object.keys(res.body.data), ['tls.crt', 'tls.key'])
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
        t.same(Object.keys(item.data), ['tls.crt', 'tls.key'], `${path}: data holds tls.crt and the tls.key placeholder`)
        t.match(Buffer.from(item.data['tls.key'], 'base64').toString(), /^\*+$/, `${path}: tls.key reads as asterisks`)
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
      ['key pasted into tls.crt', SECRETS, secret('pasted', { stringData: { 'tls.crt': a.cert + a.key, 'tls.key': a.key } })],
      ['key as ca.crt', SECRETS, secret('extra', { data: { 'tls.crt': b64(a.cert), 'tls.key': b64(a.key), 'ca.crt': b64(a.key) } })],
      ['extra data key', SECRETS, secret('extra', { data: { 'tls.crt': b64(a.cert), 'tls.key': b64(a.key), 'tls.pem': b64(a.key) } })],
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

/** A value no other text in a test holds by chance. */
function secretValue (label: string): string {
  return `${label}-${randomBytes(18).toString('hex')}`
}

/**
 * Substrings that only a copy of `value` would contain: the text, each of its longer lines, and
 * its base64 at each of the three alignments (as it would sit inside a larger base64 text).
 */
function valueMarkers (value: string): string[] {
  const lines = value.split('\n').filter(l => l.length >= 16)
  const shifted = [0, 1, 2].map(offset => b64(value.slice(offset)).slice(4, -4))
  return [value, b64(value), ...lines, ...shifted].filter(m => m.length >= 16)
}

/** Asserts `text` holds none of the markers of any value. */
function noValue (t: Tap, text: string, values: string[], what: string): void {
  const found = values.flatMap(valueMarkers).filter(m => text.includes(m))
  t.same(found.length, 0, `${what}: no secret value${found.length > 0 ? ` (found ${JSON.stringify(found[0]?.slice(0, 24))}...)` : ''}`)
}

/** What the write-only column holds for a non-TLS Secret, decoded: for asserting what was stored. */
function storedValues (gw: TestGateway, name: string, namespace = 'default'): Record<string, string> | undefined {
  const raw = gw.gateway.store.privateKey(namespace, name)
  if (raw === undefined) return undefined
  return Object.fromEntries(Object.entries(JSON.parse(raw) as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]))
}

function sizes (values: Record<string, string>): Record<string, { bytes: number }> {
  return Object.fromEntries(Object.keys(values).sort().map(k => [k, { bytes: Buffer.byteLength(values[k] as string) }]))
}

function opaque (name: string, body: Record<string, unknown>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { apiVersion: 'v1', kind: 'Secret', metadata: { name, ...extra }, ...body }
}

/** A YAML block scalar of `text`, indented for a stringData entry. */
function yamlBlock (text: string): string {
  return `|\n${text.replace(/\n$/, '').split('\n').map(l => `    ${l}`).join('\n')}`
}

t.test('the values of Opaque, basic-auth and other non-TLS Secrets are write-only', async t => {
  const gw = await startTestGateway(t, { INGRESSD_LOG_LEVEL: 'debug' })
  const ingressd = client(gw.admin)
  const tlsPair = await generateSelfSigned({ commonName: 'opaque.example.com', dnsNames: ['opaque.example.com'], keyType: 'ec' })
  const ca = await generateSelfSigned({ commonName: 'Client CA', isCA: true, keyType: 'ec' })
  const htpasswd = `alice:$apr1$${secretValue('salt')}$${secretValue('hash')}\nbob:{SHA}${secretValue('sha')}\n`
  const htpasswd2 = `carol:$2y$05$${secretValue('bcrypt')}\n`
  const [userA, userB] = ['alice', 'bob']
  const hashA = `$apr1$${secretValue('map-a')}`
  const hashB = `{SHA}${secretValue('map-b')}`
  const username = secretValue('user')
  const password = secretValue('password')
  const password2 = secretValue('password2')
  const token = secretValue('token')
  const note = `${secretValue('note-line-1')}\n${secretValue('note-line-2')}\n`
  const apiKey = secretValue('api-key')

  const cases: Array<{ name: string, body: Record<string, unknown>, type: string, values: Record<string, string> }> = [
    { name: 'htpasswd-string', body: { type: 'Opaque', stringData: { auth: htpasswd } }, type: 'Opaque', values: { auth: htpasswd } },
    { name: 'htpasswd-data', body: { type: 'Opaque', data: { auth: b64(htpasswd2) } }, type: 'Opaque', values: { auth: htpasswd2 } },
    { name: 'auth-map', body: { type: 'Opaque', stringData: { [userA]: hashA, [userB]: hashB } }, type: 'Opaque', values: { [userA]: hashA, [userB]: hashB } },
    { name: 'client-ca', body: { data: { 'ca.crt': b64(ca.cert) } }, type: 'Opaque', values: { 'ca.crt': ca.cert } },
    { name: 'basic-auth', body: { type: 'kubernetes.io/basic-auth', stringData: { username, password } }, type: 'kubernetes.io/basic-auth', values: { username, password } },
    { name: 'password-only', body: { type: 'kubernetes.io/basic-auth', data: { password: b64(password2) } }, type: 'kubernetes.io/basic-auth', values: { password: password2 } },
    { name: 'omitted-type', body: { data: { 'note.txt': b64(note) }, stringData: { token } }, type: 'Opaque', values: { 'note.txt': note, token } },
    { name: 'custom-type', body: { type: 'example.com/api-token', stringData: { 'api.key': apiKey } }, type: 'example.com/api-token', values: { 'api.key': apiKey } },
    { name: 'tls-material-as-opaque', body: { type: 'Opaque', stringData: { 'tls.crt': tlsPair.cert, 'tls.key': tlsPair.key } }, type: 'Opaque', values: { 'tls.crt': tlsPair.cert, 'tls.key': tlsPair.key } },
    { name: 'empty', body: { type: 'Opaque' }, type: 'Opaque', values: {} }
  ]
  const values = cases.flatMap(c => Object.values(c.values))
  t.ok(values.every(v => valueMarkers(v).length >= 3), 'every value has distinctive markers')
  for (const v of values) {
    t.ok(valueMarkers(v).some(m => JSON.stringify({ data: { x: b64(`pre${v}`) } }).includes(m)), 'the markers find a value inside a larger base64 text')
  }

  /** Checks a served Secret: its type, placeholders (asterisks of each value's size) in data, every size in status.data. */
  const served = (t: Tap, item: any, c: typeof cases[number], what: string): void => {
    t.equal(item.type, c.type, `${what}: type`)
    t.same(item.data, Object.fromEntries(Object.entries(sizes(c.values)).map(([k, v]) => [k, Buffer.alloc(v.bytes, '*').toString('base64')])), `${what}: data holds placeholders, no value`)
    t.equal(item.stringData, undefined, `${what}: stringData is not echoed`)
    t.same(item.status?.data, sizes(c.values), `${what}: status.data has every key with its size`)
    t.equal(item.status?.keyBytes, undefined, `${what}: no keyBytes (that is a TLS Secret's)`)
  }

  await t.test('a create answers with the keys and sizes, never a value', async t => {
    for (const c of cases) {
      const res = await gw.api('POST', SECRETS, opaque(c.name, c.body, { labels: { group: 'write-only' } }))
      t.equal(res.status, 201, `${c.name}: ${res.text.slice(0, 300)}`)
      noValue(t, res.text, values, `${c.name}: create response`)
      served(t, res.body, c, c.name)
      t.same(storedValues(gw, c.name), c.values, `${c.name}: every value is stored`)
    }
  })

  await t.test('reads and lists never carry a value', async t => {
    const byName = new Map(cases.map(c => [c.name, c]))
    const paths = [...cases.map(c => `${SECRETS}/${c.name}`), SECRETS, ALL_SECRETS, `${ALL_SECRETS}?labelSelector=group%3Dwrite-only`, `${SECRETS}?limit=3`]
    for (const path of paths) {
      const res = await gw.api('GET', path)
      t.equal(res.status, 200, path)
      noValue(t, res.text, values, `GET ${path}`)
      for (const item of res.body.items ?? [res.body]) served(t, item, byName.get(item.metadata.name) as typeof cases[number], `GET ${path} ${String(item.metadata.name)}`)
    }
    let next: string | undefined = ''
    let pages = 0
    while (next !== undefined) {
      const page = await gw.api('GET', `${SECRETS}?limit=2${next === '' ? '' : `&continue=${next}`}`)
      noValue(t, page.text, values, `page ${pages}`)
      next = page.body.metadata.continue
      pages++
    }
    t.equal(pages, Math.ceil(cases.length / 2), 'every page read')
  })

  await t.test('writes that keep the values answer without them', async t => {
    const patch = await gw.api('PATCH', `${SECRETS}/basic-auth`, { metadata: { labels: { group: 'write-only', patched: 'yes' } } })
    t.equal(patch.status, 200, patch.text.slice(0, 300))
    noValue(t, patch.text, values, 'PATCH response')
    const put = await gw.api('PUT', `${SECRETS}/htpasswd-string`, opaque('htpasswd-string', { type: 'Opaque' }, { labels: { group: 'write-only', put: 'yes' } }))
    t.equal(put.status, 200, put.text.slice(0, 300))
    noValue(t, put.text, values, 'PUT response')
    t.same(put.body.status.data, sizes({ auth: htpasswd }))
  })

  await t.test('/apply answers with outcomes, never a value', async t => {
    const yaml = `apiVersion: v1
kind: Secret
metadata:
  name: applied-auth
  labels: {group: write-only}
type: Opaque
stringData:
  auth: ${yamlBlock(htpasswd)}
---
apiVersion: v1
kind: Secret
metadata:
  name: applied-basic
  labels: {group: write-only}
type: kubernetes.io/basic-auth
data:
  username: ${b64(username)}
  password: ${b64(password)}
`
    const res = await gw.api('POST', '/apply', yaml, { 'content-type': 'application/yaml' })
    t.equal(res.status, 200, res.text.slice(0, 300))
    t.same(res.body.summary, ['secret/applied-auth created', 'secret/applied-basic created'])
    noValue(t, res.text, values, '/apply result')
    t.same(storedValues(gw, 'applied-auth'), { auth: htpasswd })
    const again = await gw.api('POST', '/apply', yaml, { 'content-type': 'application/yaml' })
    t.same(again.body.summary, ['secret/applied-auth unchanged', 'secret/applied-basic unchanged'], 'the same manifest again changes nothing')
    noValue(t, again.text, values, '/apply result')
    cases.push({ name: 'applied-auth', body: {}, type: 'Opaque', values: { auth: htpasswd } }, { name: 'applied-basic', body: {}, type: 'kubernetes.io/basic-auth', values: { username, password } })
  })

  await t.test('the CLI prints keys and sizes, never a value', async t => {
    const file = join(gw.dir, 'basic-auth.yaml')
    writeFileSync(file, `apiVersion: v1\nkind: Secret\nmetadata:\n  name: cli-auth\ntype: Opaque\nstringData:\n  auth: ${yamlBlock(htpasswd2)}\n`)
    const applied = await ingressd('apply', '-f', file)
    t.same(applied, { code: 0, stdout: 'secret/cli-auth created\n', stderr: '' })
    noValue(t, applied.stdout + applied.stderr, values, 'ingressd apply')

    const outputs: Array<[string, string]> = []
    for (const args of [['get', 'secrets'], ['get', 'secrets', '-A', '-o', 'wide'], ['get', 'secrets', '-o', 'yaml'], ['get', 'secrets', '-o', 'json']]) {
      const res = await ingressd(...args)
      t.equal(res.code, 0, args.join(' '))
      outputs.push([args.join(' '), res.stdout + res.stderr])
    }
    for (const c of cases) {
      for (const args of [['get', 'secret', c.name, '-o', 'yaml'], ['get', 'secret', c.name, '-o', 'json'], ['describe', 'secret', c.name]]) {
        const res = await ingressd(...args)
        t.equal(res.code, 0, args.join(' '))
        outputs.push([args.join(' '), res.stdout + res.stderr])
      }
      const described = await ingressd('describe', 'secret', c.name)
      t.match(described.stdout, new RegExp(`\\nType: +${c.type.replace(/\./g, '\\.')}\\n`), `describe ${c.name}: the type`)
      for (const [key, value] of Object.entries(c.values)) {
        t.match(described.stdout, new RegExp(`\\n${key.replace(/\./g, '\\.')}: +${Buffer.byteLength(value)} bytes\\n`), `describe ${c.name}: ${key} with its size`)
      }
    }
    for (const [what, output] of outputs) noValue(t, output, values, what)
    const table = await ingressd('get', 'secret', 'auth-map')
    t.match(table.stdout, /^NAME +TYPE +DATA +AGE\nauth-map +Opaque +2 +\d+s\n$/, 'the DATA column counts the write-only keys')
  })

  await t.test('a DELETE answers without the values, and they go with the Secret', async t => {
    const res = await gw.api('DELETE', `${SECRETS}/basic-auth`)
    t.equal(res.status, 200)
    noValue(t, res.text, values, 'DELETE response')
    t.equal(gw.gateway.store.privateKey('default', 'basic-auth'), undefined)
  })

  await t.test('the audit log and the log hold no value', async t => {
    const audit = gw.gateway.store.auditEntries(1000)
    t.ok(audit.length >= cases.length, `the audit log has entries (${audit.length})`)
    noValue(t, JSON.stringify(audit), values, 'the audit log')
    const rows = gw.gateway.store.db.prepare('SELECT * FROM audit_log').all()
    noValue(t, JSON.stringify(rows), values, 'the audit_log table')
    t.ok(gw.logs.length > 20, `the debug log has lines (${gw.logs.length})`)
    for (const [i, line] of gw.logs.entries()) {
      const found = values.flatMap(valueMarkers).filter(m => line.includes(m))
      if (found.length > 0) t.fail(`log line ${i} holds a secret value: ${line.slice(0, 200)}`)
    }
    noValue(t, gw.logs.join('\n'), values, 'the log')
  })
})

t.test('updates of a non-TLS Secret: a write that names a key replaces the set, one that names none keeps it', async t => {
  const gw = await startTestGateway(t)
  const [v1, v2, v3, v4, user, pass] = ['v1', 'v2', 'v3', 'v4', 'user', 'pass'].map(secretValue) as [string, string, string, string, string, string]
  const all = [v1, v2, v3, v4, user, pass]
  const read = async (name: string): Promise<any> => (await gw.api('GET', `${SECRETS}/${name}`)).body
  const created = await gw.api('POST', SECRETS, opaque('auth', { type: 'Opaque', stringData: { auth: v1, extra: v2 } }))
  t.equal(created.status, 201)

  await t.test('a read sent back (placeholders in data) keeps the values', async t => {
    const { status: _status, ...current } = await read('auth')
    current.metadata.labels = { edited: 'yes' }
    const res = await gw.api('PUT', `${SECRETS}/auth`, current)
    t.equal(res.status, 200, res.text.slice(0, 300))
    noValue(t, res.text, all, 'PUT response')
    t.same(res.body.metadata.labels, { edited: 'yes' })
    t.same(res.body.status.data, sizes({ auth: v1, extra: v2 }))
    t.equal(res.body.metadata.generation, 1, 'labels only: the generation stands')
    t.same(storedValues(gw, 'auth'), { auth: v1, extra: v2 })
  })

  await t.test('a PUT without data or type keeps the values', async t => {
    const res = await gw.api('PUT', `${SECRETS}/auth`, opaque('auth', {}, { labels: { edited: 'again' } }))
    t.equal(res.status, 200, res.text.slice(0, 300))
    t.same(storedValues(gw, 'auth'), { auth: v1, extra: v2 })
  })

  await t.test('a merge patch of metadata keeps the values', async t => {
    const res = await gw.api('PATCH', `${SECRETS}/auth`, { metadata: { annotations: { note: 'kept' } } })
    t.equal(res.status, 200, res.text.slice(0, 300))
    t.same(storedValues(gw, 'auth'), { auth: v1, extra: v2 })
  })

  await t.test('a merge patch that deletes a key removes that key; the others keep their values (patched as placeholders)', async t => {
    const res = await gw.api('PATCH', `${SECRETS}/auth`, { data: { extra: null } })
    t.equal(res.status, 200, res.text.slice(0, 300))
    t.same(res.body.status.data, sizes({ auth: v1 }), 'extra is gone')
    t.equal(res.body.metadata.generation, 2)
    t.same(storedValues(gw, 'auth'), { auth: v1 })
  })

  await t.test('a merge patch with a key sets that key, as in Kubernetes; the others keep their values', async t => {
    const res = await gw.api('PATCH', `${SECRETS}/auth`, { stringData: { extra: v3 } })
    t.equal(res.status, 200, res.text.slice(0, 300))
    noValue(t, res.text, all, 'PATCH response')
    t.same(res.body.status.data, sizes({ auth: v1, extra: v3 }))
    t.equal(res.body.metadata.generation, 3)
    t.same(storedValues(gw, 'auth'), { auth: v1, extra: v3 })
  })

  await t.test('a placeholder for a key that holds no value is refused, naming the key', async t => {
    const res = await gw.api('PATCH', `${SECRETS}/auth`, { data: { fresh: Buffer.alloc(4, '*').toString('base64') } })
    t.equal(res.status, 422, res.text.slice(0, 300))
    t.same(res.body.details.causes.map((c: any) => c.field), ['data[fresh]'])
    t.same(storedValues(gw, 'auth'), { auth: v1, extra: v3 }, 'nothing stored')
  })

  await t.test('a PUT with data replaces the whole set', async t => {
    const res = await gw.api('PUT', `${SECRETS}/auth`, opaque('auth', { type: 'Opaque', data: { other: b64(v4) } }))
    t.equal(res.status, 200, res.text.slice(0, 300))
    t.same(res.body.status.data, sizes({ other: v4 }))
    t.same(storedValues(gw, 'auth'), { other: v4 })
  })

  await t.test('/apply: the same values are unchanged, a manifest without data keeps them, new values configure', async t => {
    // As the PUT before left it: no labels, no annotations.
    const manifest = (body: Record<string, unknown>): Record<string, unknown> => opaque('auth', { type: 'Opaque', ...body })
    t.same((await gw.api('POST', '/apply', manifest({ stringData: { other: v4 } }))).body.summary, ['secret/auth unchanged'])
    t.same((await gw.api('POST', '/apply', manifest({}))).body.summary, ['secret/auth unchanged'])
    t.same((await gw.api('POST', '/apply', manifest({ stringData: { other: v1 } }))).body.summary, ['secret/auth configured'])
    t.same(storedValues(gw, 'auth'), { other: v1 })
  })

  await t.test('basic-auth: a metadata change keeps username and password; a write with data replaces them', async t => {
    t.equal((await gw.api('POST', SECRETS, opaque('basic', { type: 'kubernetes.io/basic-auth', stringData: { username: user, password: pass } }))).status, 201)
    const patch = await gw.api('PATCH', `${SECRETS}/basic`, { metadata: { labels: { team: 'a' } } })
    t.equal(patch.status, 200, patch.text.slice(0, 300))
    t.same(storedValues(gw, 'basic'), { username: user, password: pass })
    const put = await gw.api('PUT', `${SECRETS}/basic`, opaque('basic', { type: 'kubernetes.io/basic-auth', stringData: { username: user } }))
    t.equal(put.status, 200, put.text.slice(0, 300))
    t.same(storedValues(gw, 'basic'), { username: user })
  })

  await t.test('the type is immutable, as in Kubernetes', async t => {
    const before = await read('auth')
    const res = await gw.api('PUT', `${SECRETS}/auth`, opaque('auth', { type: 'kubernetes.io/basic-auth', stringData: { username: user } }))
    t.equal(res.status, 422, res.text.slice(0, 300))
    t.match(res.body.details.causes, [{ field: 'type', message: /field is immutable/ }])
    noValue(t, res.text, all, 'refused PUT')
    t.equal((await read('auth')).metadata.resourceVersion, before.metadata.resourceVersion, 'nothing stored')
    t.same(storedValues(gw, 'auth'), { other: v1 })

    // Before other types, an omitted type meant TLS: such a write to a TLS Secret must not turn it into an empty Opaque one.
    const pair = await generateSelfSigned({ commonName: 'imm.example.com', dnsNames: ['imm.example.com'], keyType: 'ec' })
    t.equal((await gw.api('POST', SECRETS, secret('tls', { stringData: { 'tls.crt': pair.cert, 'tls.key': pair.key } }))).status, 201)
    const untyped = await gw.api('PUT', `${SECRETS}/tls`, opaque('tls', {}, { labels: { a: 'b' } }))
    t.equal(untyped.status, 422, untyped.text.slice(0, 300))
    t.match(untyped.body.details.causes, [{ field: 'type', message: /"Opaque": field is immutable/ }])
    noKey(t, untyped.text, [pair.key], 'refused PUT')
    t.equal(gw.gateway.store.privateKey('default', 'tls'), pair.key, 'the key is kept')
    const toTls = await gw.api('PUT', `${SECRETS}/auth`, secret('auth', { stringData: { 'tls.crt': pair.cert, 'tls.key': pair.key } }))
    t.equal(toTls.status, 422, toTls.text.slice(0, 300))
    t.match(toTls.body.details.causes, [{ field: 'type' }])
    noKey(t, toTls.text, [pair.key], 'refused PUT')
  })
})

t.test('invalid non-TLS Secrets are refused with the field named, and nothing is stored', async t => {
  const gw = await startTestGateway(t)
  const v = secretValue('refused')
  const long = 'k'.repeat(254)
  const MiB = 1024 * 1024
  const attempts: Array<[string, Record<string, unknown>, string[]]> = [
    ['a value that is not base64', { type: 'Opaque', data: { auth: `not base64 ${v}` } }, ['data[auth]']],
    ['a key with a slash', { stringData: { 'a/b': v } }, ['stringData[a/b]']],
    ['a key with a space', { type: 'Opaque', data: { 'bad key': b64(v) } }, ['data[bad key]']],
    ['a key "."', { stringData: { '.': v } }, ['stringData[.]']],
    ['a key ".."', { stringData: { '..': v } }, ['stringData[..]']],
    ['a key starting with ".."', { stringData: { '..data': v } }, ['stringData[..data]']],
    ['a key of 254 characters', { stringData: { [long]: v } }, [`stringData[${long}]`]],
    ['an empty key', { type: 'Opaque', data: { '': b64(v) } }, ['data[]']],
    ['values over 1 MiB in total', { type: 'Opaque', stringData: { a: 'x'.repeat(MiB / 2), b: 'y'.repeat(MiB / 2 + 1) } }, ['data']],
    ['one value over 1 MiB', { type: 'Opaque', data: { big: Buffer.alloc(MiB + 1, 7).toString('base64') } }, ['data']],
    ['basic-auth without username or password', { type: 'kubernetes.io/basic-auth', stringData: { user: v } }, ['data[username]', 'data[password]']],
    ['basic-auth with no data', { type: 'kubernetes.io/basic-auth' }, ['data[username]', 'data[password]']],
    ['a value that is not a string', { type: 'Opaque', stringData: { auth: 42 } }, ['stringData.auth']]
  ]
  for (const [what, body, fields] of attempts) {
    const res = await gw.api('POST', SECRETS, opaque('refused', body))
    t.equal(res.status, 422, `${what}: ${res.text.slice(0, 300)}`)
    t.match(res.body, { kind: 'Status', reason: 'Invalid', details: { errorCode: 'INGRESSD_ERR_INVALID' } }, what)
    t.same(res.body.details.causes.map((c: any) => c.field), fields, `${what}: the cause names ${fields.join(', ')}`)
    noValue(t, res.text, [v], `${what}: the answer`)
    t.equal((await gw.api('GET', `${SECRETS}/refused`)).status, 404, `${what}: nothing stored`)
  }

  const exactly = await gw.api('POST', SECRETS, opaque('one-mib', { type: 'Opaque', stringData: { a: 'x'.repeat(MiB / 2), b: 'y'.repeat(MiB / 2) } }))
  t.equal(exactly.status, 201, '1 MiB in total is allowed')
  t.same(exactly.body.status.data, { a: { bytes: MiB / 2 }, b: { bytes: MiB / 2 } })

  const existing = await gw.api('POST', SECRETS, opaque('existing', { type: 'Opaque', stringData: { auth: v } }))
  t.equal(existing.status, 201)
  const badPut = await gw.api('PUT', `${SECRETS}/existing`, opaque('existing', { type: 'Opaque', stringData: { 'no/slash': 'x' } }))
  t.equal(badPut.status, 422)
  t.same(badPut.body.details.causes.map((c: any) => c.field), ['stringData[no/slash]'])
  t.equal((await gw.api('GET', `${SECRETS}/existing`)).body.metadata.resourceVersion, existing.body.metadata.resourceVersion, 'a refused PUT changes nothing')
  t.same(storedValues(gw, 'existing'), { auth: v })

  const bundle = await gw.api('POST', '/apply', [opaque('bundle-ok', { stringData: { auth: v } }), opaque('bundle-bad', { type: 'kubernetes.io/basic-auth', stringData: { auth: v } })])
  t.equal(bundle.status, 422)
  t.same(bundle.body.details.causes.map((c: any) => c.field), ['items[1].data[username]', 'items[1].data[password]'])
  noValue(t, bundle.text, [v], 'refused bundle')
  t.equal((await gw.api('GET', `${SECRETS}/bundle-ok`)).status, 404, 'nothing of the refused bundle was stored')
})

t.test('a TLS Secret may carry ca.crt: validated, public, served back like tls.crt', async t => {
  const gw = await startTestGateway(t)
  const ingressd = client(gw.admin)
  const [pair, ca, ca2] = await Promise.all([
    generateSelfSigned({ commonName: 'mtls.example.com', dnsNames: ['mtls.example.com'], keyType: 'ec' }),
    generateSelfSigned({ commonName: 'Client CA', isCA: true, keyType: 'ec' }),
    generateSelfSigned({ commonName: 'Other CA', isCA: true, keyType: 'ec' })
  ])
  const bundle = ca.cert + ca2.cert

  const res = await gw.api('POST', SECRETS, secret('mtls', { data: { 'tls.crt': b64(pair.cert), 'tls.key': b64(pair.key), 'ca.crt': b64(bundle) } }))
  t.equal(res.status, 201, res.text.slice(0, 300))
  noKey(t, res.text, [pair.key], 'create response')
  t.same(Object.keys(res.body.data).sort(), ['ca.crt', 'tls.crt', 'tls.key'])
  t.equal(res.body.data['ca.crt'], b64(bundle), 'ca.crt is served back')
  t.equal(res.body.status.keyBytes, Buffer.byteLength(pair.key))
  t.equal((await gw.api('GET', `${SECRETS}/mtls`)).body.data['ca.crt'], b64(bundle))
  const described = await ingressd('describe', 'secret', 'mtls')
  t.match(described.stdout, new RegExp(`\\nca\\.crt: +${Buffer.byteLength(bundle)} bytes\\ntls\\.crt: +${Buffer.byteLength(pair.cert)} bytes\\ntls\\.key: +${Buffer.byteLength(pair.key)} bytes\\n`))
  noKey(t, described.stdout, [pair.key], 'describe')

  const untyped = await gw.api('POST', SECRETS, { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'untyped' }, stringData: { 'tls.crt': pair.cert, 'tls.key': pair.key, 'ca.crt': ca.cert } })
  t.equal(untyped.status, 201, untyped.text.slice(0, 300))
  t.equal(untyped.body.type, 'kubernetes.io/tls', 'an omitted type with tls.crt and tls.key is still TLS')

  const withoutCa = await gw.api('PUT', `${SECRETS}/mtls`, secret('mtls', { data: { 'tls.crt': b64(pair.cert) } }))
  t.equal(withoutCa.status, 200, withoutCa.text.slice(0, 300))
  t.same(Object.keys(withoutCa.body.data), ['tls.crt', 'tls.key'], 'ca.crt is public: a write without it removes it, as for tls.crt')
  t.equal(gw.gateway.store.privateKey('default', 'mtls'), pair.key)

  const broken = ca.cert.split('\n').map((line, i) => i === 3 ? 'A'.repeat(line.length) : line).join('\n')
  const refused: Array<[string, string]> = [
    ['text', 'not a certificate'],
    ['a truncated certificate', ca.cert.slice(0, 200)],
    ['a corrupt certificate', broken],
    ['a private key', pair.key],
    ['a certificate and a private key', ca.cert + pair.key]
  ]
  for (const [what, value] of refused) {
    const bad = await gw.api('POST', SECRETS, secret('bad-ca', { stringData: { 'tls.crt': pair.cert, 'tls.key': pair.key, 'ca.crt': value } }))
    t.equal(bad.status, 422, `${what}: ${bad.text.slice(0, 300)}`)
    t.equal(bad.body.details.errorCode, 'INGRESSD_ERR_TLS_INVALID', what)
    t.same(bad.body.details.causes.map((c: any) => c.field), ['data[ca.crt]'], `${what}: the cause names data[ca.crt]`)
    noKey(t, bad.text, [pair.key], `${what}: the answer`)
    t.equal((await gw.api('GET', `${SECRETS}/bad-ca`)).status, 404, `${what}: nothing stored`)
  }
})

t.test('kubectl apply\'s last-applied-configuration annotation never keeps a write-only value', async t => {
  const gw = await startTestGateway(t)
  const pair = await generateSelfSigned({ commonName: 'applied.example.com', dnsNames: ['applied.example.com'], keyType: 'ec' })
  const password = secretValue('password')
  const LAST = 'kubectl.kubernetes.io/last-applied-configuration'
  // What client-side `kubectl apply` sends: the manifest, and the same manifest in the annotation.
  const tlsManifest = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'applied-tls', namespace: 'default' }, type: 'kubernetes.io/tls', data: { 'tls.crt': b64(pair.cert), 'tls.key': b64(pair.key) } }
  const opaqueManifest = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'applied-opaque', namespace: 'default' }, type: 'Opaque', data: { user: b64('admin') }, stringData: { password } }
  for (const manifest of [tlsManifest, opaqueManifest]) {
    const body = { ...manifest, metadata: { ...manifest.metadata, annotations: { [LAST]: JSON.stringify(manifest) + '\n' } } }
    const created = await gw.api('POST', SECRETS, body)
    t.equal(created.status, 201, created.text.slice(0, 300))
    const read = await gw.api('GET', `${SECRETS}/${manifest.metadata.name}`)
    const listed = await gw.api('GET', SECRETS)
    for (const [what, text] of [['create response', created.text], ['read', read.text], ['list', listed.text]] as const) {
      noKey(t, text, [pair.key], `${manifest.metadata.name} ${what}`)
      noValue(t, text, [password], `${manifest.metadata.name} ${what}`)
    }
    const annotation = JSON.parse(read.body.metadata.annotations[LAST])
    t.equal(annotation.kind, 'Secret', 'the annotation is still the manifest')
    if (manifest === tlsManifest) {
      t.equal(annotation.data['tls.crt'], b64(pair.cert), 'public values are kept as sent')
      t.equal(Buffer.from(annotation.data['tls.key'], 'base64').toString(), '*'.repeat(Buffer.byteLength(pair.key)), 'tls.key: a placeholder of its size')
    } else {
      t.equal(Buffer.from(annotation.data.user, 'base64').toString(), '*****', 'every value of an Opaque Secret: a placeholder')
      t.equal(annotation.stringData.password, '*'.repeat(password.length), 'stringData too')
    }
  }
  t.equal(await storedKey(gw, 'default', 'applied-tls'), pair.key, 'the key itself is stored')
  t.same(storedValues(gw, 'applied-opaque'), { password, user: 'admin' })
})
