import t, { type Test } from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import { generateSelfSigned } from '../../src/resources/tls-material.js'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'

const ING = '/apis/networking.k8s.io/v1/namespaces/default/ingresses'
const SVC = '/api/v1/namespaces/default/services'
const SECRETS = '/api/v1/namespaces/default/secrets'
/** Every write bumps the store-wide resourceVersion, which every list reports. */
const ALL_INGRESSES = '/apis/networking.k8s.io/v1/ingresses'
const YAML = { 'content-type': 'application/yaml' }
const JSON_TYPE = { 'content-type': 'application/json' }

interface PathSpec {
  path?: string
  pathType?: string
  backend?: unknown
  [extra: string]: unknown
}

function ingress (name: string, opts: { host?: string, paths?: PathSpec[], annotations?: Record<string, string>, namespace?: string } = {}): Record<string, any> {
  const paths = (opts.paths ?? [{ path: '/', pathType: 'Prefix' }]).map(p => ({ backend: { service: { name: 'web', port: { number: 80 } } }, ...p }))
  const metadata: Record<string, unknown> = { name }
  if (opts.namespace !== undefined) metadata.namespace = opts.namespace
  if (opts.annotations !== undefined) metadata.annotations = opts.annotations
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata,
    spec: { rules: [{ host: opts.host ?? `${name}.example.com`, http: { paths } }] }
  }
}

function withPath (name: string, path: string, pathType = 'Prefix'): Record<string, any> {
  return ingress(name, { paths: [{ path, pathType }] })
}

function tlsSecret (name: string, data: Record<string, string>, type = 'kubernetes.io/tls'): Record<string, unknown> {
  return { apiVersion: 'v1', kind: 'Secret', metadata: { name }, type, data }
}

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64')

interface Case {
  name: string
  method?: string
  path?: string
  body?: unknown
  headers?: Record<string, string>
  status: number
  reason: string
  errorCode: string
  /** Found in the message or in one cause's field: the offending field (or, for unparseable bodies, where it broke). */
  names: string | RegExp
  /** When set, some cause's field equals it exactly. */
  field?: string
  /** When set, the message matches it: why the value is refused. */
  why?: RegExp
  /** Objects that must not exist afterwards (GET answers 404). */
  absent: string[]
  /** Objects that existed before and must read back exactly as before. */
  kept?: string[]
}

function assertStatus (t: Test, res: Awaited<ReturnType<TestGateway['api']>>, c: Pick<Case, 'status' | 'reason' | 'errorCode' | 'names' | 'field' | 'why'>): void {
  t.equal(res.status, c.status, `HTTP ${c.status}; got ${res.text.slice(0, 300)}`)
  const body = res.body ?? {}
  t.equal(body.kind, 'Status')
  t.equal(body.apiVersion, 'v1')
  t.equal(body.status, 'Failure')
  t.equal(body.reason, c.reason)
  t.equal(body.code, c.status)
  t.equal(body.details?.errorCode, c.errorCode)
  t.type(body.message, 'string')
  const fields: string[] = (body.details?.causes ?? []).map((x: { field: string }) => x.field)
  const haystack = [String(body.message), ...fields]
  const found = haystack.some(s => typeof c.names === 'string' ? s.includes(c.names) : c.names.test(s))
  t.ok(found, `message or a cause field names ${String(c.names)}: ${JSON.stringify({ message: body.message, fields })}`)
  if (c.field !== undefined) t.ok(fields.includes(c.field), `a cause names field ${c.field}: ${JSON.stringify(fields)}`)
  if (c.why !== undefined) t.match(body.message, c.why)
  for (const cause of body.details?.causes ?? []) {
    t.type(cause.reason, 'string')
    t.type(cause.message, 'string')
  }
}

async function storeVersion (gw: TestGateway): Promise<string> {
  const list = await gw.api('GET', ALL_INGRESSES)
  return list.body.metadata.resourceVersion
}

async function runCase (t: Test, gw: TestGateway, c: Case): Promise<void> {
  const before = await storeVersion(gw)
  // What the client wrote (status is the data plane's to update, so it is left out).
  const content = async (p: string): Promise<unknown> => {
    const { status: _status, ...rest } = (await gw.api('GET', p)).body
    return rest
  }
  const keptBefore = await Promise.all((c.kept ?? []).map(content))
  const res = await gw.api(c.method ?? 'POST', c.path ?? ING, c.body, c.headers)
  assertStatus(t, res, c)
  for (const p of c.absent) t.equal((await gw.api('GET', p)).status, 404, `${p} was not stored`)
  for (const [i, p] of (c.kept ?? []).entries()) t.same(await content(p), keptBefore[i], `${p} is unchanged`)
  t.equal(await storeVersion(gw), before, 'the store\'s resourceVersion did not move')
}

t.test('bad input is refused with a Status naming the problem, and nothing is stored', async t => {
  const gw = await startTestGateway(t)
  const [a, b] = await Promise.all([
    generateSelfSigned({ commonName: 'a.example.com', dnsNames: ['a.example.com'] }),
    generateSelfSigned({ commonName: 'b.example.com', dnsNames: ['b.example.com'] })
  ])
  const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string

  // Objects the conflict cases run against.
  const existing = await gw.api('POST', ING, ingress('existing'))
  t.equal(existing.status, 201)
  const edited = await gw.api('PATCH', `${ING}/existing`, { metadata: { labels: { edited: 'yes' } } })
  t.equal(edited.status, 200)
  const staleVersion: string = existing.body.metadata.resourceVersion
  t.not(edited.body.metadata.resourceVersion, staleVersion)

  const invalid = { status: 422, reason: 'Invalid', errorCode: 'INGRESSD_ERR_INVALID' }
  const badRequest = { status: 400, reason: 'BadRequest' }
  const tlsInvalid = { status: 422, reason: 'Invalid', errorCode: 'INGRESSD_ERR_TLS_INVALID' }
  const path0 = 'spec.rules[0].http.paths[0]'

  const cases: Case[] = [
    {
      name: 'malformed YAML',
      body: 'apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: bad-yaml\n spec: [unclosed\n',
      headers: YAML,
      ...badRequest,
      errorCode: 'INGRESSD_ERR_MALFORMED_BODY',
      names: /line \d+/,
      absent: [`${ING}/bad-yaml`]
    },
    {
      name: 'malformed JSON (truncated)',
      body: '{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "bad-json"}, "spec": {',
      headers: JSON_TYPE,
      ...badRequest,
      errorCode: 'INGRESSD_ERR_MALFORMED_BODY',
      names: /not valid JSON.*line \d+, column \d+/,
      absent: [`${ING}/bad-json`]
    },
    {
      name: 'malformed JSON (single quotes, which YAML would take)',
      body: JSON.stringify(ingress('bad-json-quotes')).replace(/"/g, '\''),
      headers: JSON_TYPE,
      ...badRequest,
      errorCode: 'INGRESSD_ERR_MALFORMED_BODY',
      names: /not valid JSON.*line \d+, column \d+/,
      absent: [`${ING}/bad-json-quotes`]
    },
    {
      name: 'malformed JSON (trailing comma)',
      body: JSON.stringify(ingress('bad-json-comma')).replace(/}$/, ',}'),
      headers: JSON_TYPE,
      ...badRequest,
      errorCode: 'INGRESSD_ERR_MALFORMED_BODY',
      names: /not valid JSON.*line \d+, column \d+/,
      absent: [`${ING}/bad-json-comma`]
    },
    {
      name: 'malformed JSON across lines',
      body: JSON.stringify(ingress('bad-json-lines'), null, 2).replace('"kind": "Ingress"', '\'kind\': "Ingress"'),
      headers: JSON_TYPE,
      ...badRequest,
      errorCode: 'INGRESSD_ERR_MALFORMED_BODY',
      names: 'line 3, column 3',
      absent: [`${ING}/bad-json-lines`]
    },
    {
      name: 'empty body, JSON content type',
      body: '',
      headers: JSON_TYPE,
      ...badRequest,
      errorCode: 'INGRESSD_ERR_MALFORMED_BODY',
      names: 'empty',
      absent: []
    },
    {
      name: 'no body at all',
      ...badRequest,
      errorCode: 'INGRESSD_ERR_MALFORMED_BODY',
      names: 'empty',
      absent: []
    },
    {
      name: 'two YAML documents sent to a single-object path',
      body: 'apiVersion: v1\nkind: Service\nmetadata:\n  name: two-a\nspec:\n  ports: [{port: 80}]\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: two-b\nspec:\n  ports: [{port: 80}]\n',
      path: SVC,
      headers: YAML,
      ...badRequest,
      errorCode: 'INGRESSD_ERR_MALFORMED_BODY',
      names: /several YAML documents/,
      absent: [`${SVC}/two-a`, `${SVC}/two-b`]
    },
    {
      name: 'unknown kind',
      body: { ...ingress('unknown-kind'), kind: 'Gateway' },
      ...badRequest,
      errorCode: 'INGRESSD_ERR_UNKNOWN_KIND',
      names: '"Gateway"',
      absent: [`${ING}/unknown-kind`]
    },
    {
      name: 'unknown apiVersion',
      body: { ...ingress('unknown-version'), apiVersion: 'networking.k8s.io/v2' },
      ...badRequest,
      errorCode: 'INGRESSD_ERR_UNKNOWN_KIND',
      names: 'networking.k8s.io/v2',
      absent: [`${ING}/unknown-version`]
    },
    {
      name: 'a Service POSTed to the ingresses path',
      body: { apiVersion: 'v1', kind: 'Service', metadata: { name: 'wrong-path' }, spec: { ports: [{ port: 80 }] } },
      ...badRequest,
      errorCode: 'INGRESSD_ERR_UNKNOWN_KIND',
      names: 'Service',
      absent: [`${SVC}/wrong-path`, `${ING}/wrong-path`]
    },
    {
      name: 'spec.rules is a string',
      body: { ...ingress('rules-string'), spec: { rules: 'host: a.example.com' } },
      ...invalid,
      names: 'spec.rules',
      field: 'spec.rules',
      absent: [`${ING}/rules-string`]
    },
    {
      name: 'port number is a string',
      body: ingress('port-string', { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'web', port: { number: '80' } } } }] }),
      ...invalid,
      names: `${path0}.backend.service.port.number`,
      field: `${path0}.backend.service.port.number`,
      absent: [`${ING}/port-string`]
    },
    {
      name: 'metadata.labels is a list',
      body: { ...ingress('labels-list'), metadata: { name: 'labels-list', labels: ['app=web'] } },
      ...invalid,
      names: 'metadata.labels',
      field: 'metadata.labels',
      absent: [`${ING}/labels-list`]
    },
    {
      name: 'unknown spec field (pathtype for pathType)',
      body: ingress('typo', { paths: [{ path: '/', pathtype: 'Prefix' }] }),
      ...invalid,
      names: `${path0}.pathtype`,
      field: `${path0}.pathtype`,
      absent: [`${ING}/typo`]
    },
    {
      name: 'name with uppercase letters',
      body: ingress('Shop'),
      ...invalid,
      names: 'metadata.name',
      field: 'metadata.name',
      absent: [`${ING}/Shop`, `${ING}/shop`]
    },
    {
      name: 'name with an underscore',
      body: ingress('my_shop'),
      ...invalid,
      names: 'metadata.name',
      field: 'metadata.name',
      absent: [`${ING}/my_shop`]
    },
    {
      name: 'name of 300 characters',
      body: ingress('a'.repeat(300), { host: 'long.example.com' }),
      ...invalid,
      names: 'metadata.name',
      field: 'metadata.name',
      // Too long to be a name, so too long for the path too: see the test below.
      absent: []
    },
    {
      name: 'Service name starting with a digit',
      path: SVC,
      body: { apiVersion: 'v1', kind: 'Service', metadata: { name: '1web' }, spec: { ports: [{ port: 80 }] } },
      ...invalid,
      names: 'metadata.name',
      field: 'metadata.name',
      absent: [`${SVC}/1web`]
    },
    {
      name: 'namespace in the body differs from the path',
      body: ingress('elsewhere', { namespace: 'other' }),
      ...badRequest,
      errorCode: 'INGRESSD_ERR_NAMESPACE_MISMATCH',
      names: /namespace.*other/,
      absent: [`${ING}/elsewhere`, '/apis/networking.k8s.io/v1/namespaces/other/ingresses/elsewhere']
    },
    ...([
      ['Prefix path without a leading /', 'path-relative', 'foo', 'Prefix'],
      ['Exact path without a leading /', 'path-relative-exact', 'foo/bar', 'Exact'],
      ['path containing //', 'path-double-slash', '/a//b', 'Prefix'],
      ['path containing /../', 'path-dotdot', '/a/../b', 'Prefix'],
      ['path containing %2F', 'path-encoded-slash', '/a%2Fb', 'Exact'],
      ['path ending /..', 'path-trailing-dotdot', '/a/..', 'Prefix']
    ] as const).map(([name, obj, p, type]): Case => ({
      name,
      body: withPath(obj, p, type),
      ...invalid,
      names: `${path0}.path`,
      field: `${path0}.path`,
      absent: [`${ING}/${obj}`]
    })),
    ...([
      ['host is an IP address', 'host-ip', '10.0.0.1'],
      ['host with a port', 'host-port', 'foo.example.com:8080'],
      ['host is *', 'host-star', '*'],
      ['host with a wildcard inside', 'host-inner-star', 'foo.*.com'],
      ['host with uppercase letters', 'host-upper', 'Foo.Example.com']
    ] as const).map(([name, obj, host]): Case => ({
      name,
      body: ingress(obj, { host }),
      ...invalid,
      names: 'spec.rules[0].host',
      field: 'spec.rules[0].host',
      absent: [`${ING}/${obj}`]
    })),
    {
      name: 'backend with both port name and number',
      body: ingress('both-ports', { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'web', port: { name: 'http', number: 80 } } } }] }),
      ...invalid,
      names: `${path0}.backend.service.port`,
      field: `${path0}.backend.service.port`,
      absent: [`${ING}/both-ports`]
    },
    {
      name: 'port number 70000',
      body: ingress('port-70000', { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'web', port: { number: 70000 } } } }] }),
      ...invalid,
      names: `${path0}.backend.service.port.number`,
      field: `${path0}.backend.service.port.number`,
      absent: [`${ING}/port-70000`]
    },
    ...([
      ['catastrophic regex, ImplementationSpecific', 'regex-redos', '/(a+)+$', 'ImplementationSpecific', /backtrack/],
      ['catastrophic regex, Prefix (a regex too on a use-regex ingress)', 'regex-redos-prefix', '/(a+)+$', 'Prefix', /backtrack/],
      ['invalid regex', 'regex-invalid', '/api/(v1', 'ImplementationSpecific', /regular expression/],
      ['invalid regex, Prefix', 'regex-invalid-prefix', '/api/[v1', 'Prefix', /regular expression/]
    ] as const).map(([name, obj, p, type, why]): Case => ({
      name,
      body: ingress(obj, { paths: [{ path: p, pathType: type }], annotations: { 'nginx.ingress.kubernetes.io/use-regex': 'true' } }),
      ...invalid,
      names: `${path0}.path`,
      field: `${path0}.path`,
      why,
      absent: [`${ING}/${obj}`]
    })),
    {
      name: 'missing pathType in v1',
      body: ingress('no-path-type', { paths: [{ path: '/' }] }),
      ...invalid,
      names: `${path0}.pathType`,
      field: `${path0}.pathType`,
      absent: [`${ING}/no-path-type`]
    },
    {
      name: 'duplicate create',
      body: ingress('existing', { host: 'other.example.com' }),
      status: 409,
      reason: 'AlreadyExists',
      errorCode: 'INGRESSD_ERR_ALREADY_EXISTS',
      names: '"existing"',
      absent: [],
      kept: [`${ING}/existing`]
    },
    {
      name: 'stale resourceVersion on PUT',
      method: 'PUT',
      path: `${ING}/existing`,
      body: { ...ingress('existing', { host: 'stale.example.com' }), metadata: { name: 'existing', resourceVersion: staleVersion } },
      status: 409,
      reason: 'Conflict',
      errorCode: 'INGRESSD_ERR_CONFLICT',
      names: '"existing"',
      absent: [],
      kept: [`${ING}/existing`]
    },
    {
      name: 'PATCH as server-side apply (application/apply-patch+yaml)',
      method: 'PATCH',
      path: `${ING}/existing`,
      body: 'metadata:\n  labels:\n    edited: ssa\n',
      headers: { 'content-type': 'application/apply-patch+yaml' },
      status: 415,
      reason: 'UnsupportedMediaType',
      errorCode: 'INGRESSD_ERR_UNSUPPORTED_MEDIA_TYPE',
      names: 'server-side apply is not supported',
      absent: [],
      kept: [`${ING}/existing`]
    },
    {
      name: 'JSON patch whose test fails',
      method: 'PATCH',
      path: `${ING}/existing`,
      body: JSON.stringify([{ op: 'test', path: '/spec/rules/0/host', value: 'other.example.com' }, { op: 'replace', path: '/spec/rules/0/host', value: 'patched.example.com' }]),
      headers: { 'content-type': 'application/json-patch+json' },
      status: 422,
      reason: 'Invalid',
      errorCode: 'INGRESSD_ERR_INVALID',
      names: 'testing value /spec/rules/0/host failed',
      absent: [],
      kept: [`${ING}/existing`]
    },
    {
      name: 'merge patch that is not JSON',
      method: 'PATCH',
      path: `${ING}/existing`,
      body: '{metadata: {labels: {edited: no}}}',
      headers: { 'content-type': 'application/merge-patch+json' },
      ...badRequest,
      errorCode: 'INGRESSD_ERR_MALFORMED_BODY',
      names: /not valid JSON.*line 1, column 2/,
      absent: [],
      kept: [`${ING}/existing`]
    },
    {
      name: 'TLS Secret whose key does not match its certificate',
      path: SECRETS,
      body: tlsSecret('mismatch', { 'tls.crt': b64(a.cert), 'tls.key': b64(b.key) }),
      ...tlsInvalid,
      names: 'data[tls.key]',
      field: 'data[tls.key]',
      why: /does not match/,
      absent: [`${SECRETS}/mismatch`]
    },
    {
      name: 'TLS Secret with a garbage certificate',
      path: SECRETS,
      body: tlsSecret('garbage-cert', { 'tls.crt': b64('-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n'), 'tls.key': b64(a.key) }),
      ...tlsInvalid,
      names: 'data[tls.crt]',
      field: 'data[tls.crt]',
      why: /not a valid PEM-encoded X.509/,
      absent: [`${SECRETS}/garbage-cert`]
    },
    {
      name: 'TLS Secret with an RSA 1024 key',
      path: SECRETS,
      body: tlsSecret('weak-key', { 'tls.crt': b64(a.cert), 'tls.key': b64(rsa1024) }),
      ...tlsInvalid,
      names: 'data[tls.key]',
      field: 'data[tls.key]',
      why: /RSA key of 1024 bits/,
      absent: [`${SECRETS}/weak-key`]
    },
    {
      name: 'basic-auth Secret without username or password',
      path: SECRETS,
      body: tlsSecret('basic', { auth: b64('alice:$apr1$x$y') }, 'kubernetes.io/basic-auth'),
      ...invalid,
      names: 'data[username]',
      field: 'data[username]',
      why: /username or password/,
      absent: [`${SECRETS}/basic`]
    },
    {
      name: '/apply bundle whose 3rd of 3 objects is invalid',
      path: '/apply',
      body: [
        { apiVersion: 'v1', kind: 'Service', metadata: { name: 'bundle-svc' }, spec: { ports: [{ port: 80 }] } },
        ingress('bundle-one'),
        ingress('bundle-two', { host: 'Bad_Host.example.com' })
      ],
      ...invalid,
      names: 'items[2].spec.rules[0].host',
      field: 'items[2].spec.rules[0].host',
      absent: [`${SVC}/bundle-svc`, `${ING}/bundle-one`, `${ING}/bundle-two`]
    },
    {
      name: '/apply YAML stream whose 3rd document is a Secret with a mismatched key',
      path: '/apply',
      headers: YAML,
      body: [
        'apiVersion: v1\nkind: Service\nmetadata:\n  name: stream-svc\nspec:\n  ports: [{port: 80}]',
        'apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: stream-ing\nspec:\n  defaultBackend:\n    service: {name: stream-svc, port: {number: 80}}',
        `apiVersion: v1\nkind: Secret\nmetadata:\n  name: stream-tls\ntype: kubernetes.io/tls\ndata:\n  tls.crt: ${b64(a.cert)}\n  tls.key: ${b64(b.key)}`
      ].join('\n---\n') + '\n',
      ...tlsInvalid,
      names: 'items[2].data[tls.key]',
      field: 'items[2].data[tls.key]',
      absent: [`${SVC}/stream-svc`, `${ING}/stream-ing`, `${SECRETS}/stream-tls`]
    }
  ]

  for (const c of cases) await t.test(c.name, async t => runCase(t, gw, c))
})

t.test('a body over the admin body limit is refused with 413 and a Status', async t => {
  const gw = await startTestGateway(t, { INGRESSD_ADMIN_BODY_LIMIT: '1k' })
  const big = ingress('too-big', { annotations: { 'example.com/padding': 'x'.repeat(2048) } })
  for (const [what, path, body] of [['a create', ING, big], ['an apply', '/apply', [big]]] as const) {
    await t.test(what, async t => runCase(t, gw, {
      name: what,
      path,
      body,
      status: 413,
      reason: 'RequestEntityTooLarge',
      errorCode: 'INGRESSD_ERR_BODY_TOO_LARGE',
      names: /1024 bytes|INGRESSD_ADMIN_BODY_LIMIT/,
      absent: [`${ING}/too-big`]
    }))
  }
  // Just under the limit is fine.
  const small = await gw.api('POST', ING, ingress('small'))
  t.equal(small.status, 201)
})

t.test('names up to 253 characters can be read, replaced and deleted; longer ones answer a Status', async t => {
  const gw = await startTestGateway(t)
  const long = ['a'.repeat(63), 'b'.repeat(63), 'c'.repeat(63), 'd'.repeat(61)].join('.')
  t.equal(long.length, 253)
  const created = await gw.api('POST', ING, ingress(long, { host: 'long.example.com' }))
  t.equal(created.status, 201)
  t.equal((await gw.api('GET', `${ING}/${long}`)).status, 200)
  t.equal((await gw.api('PUT', `${ING}/${long}`, ingress(long, { host: 'longer.example.com' }))).status, 200)
  t.equal((await gw.api('DELETE', `${ING}/${long}`)).status, 200)
  t.equal((await gw.api('GET', `${ING}/${long}`)).status, 404)

  const tooLong = await gw.api('GET', `${ING}/${'a'.repeat(300)}`)
  assertStatus(t, tooLong, { status: 400, reason: 'BadRequest', errorCode: 'INGRESSD_ERR_BAD_REQUEST', names: 'max param length' })
})
