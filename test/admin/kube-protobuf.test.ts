import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { IngressdError } from '../../src/errors.js'
import { decodeKubernetesProtobuf } from '../../src/admin/kube/protobuf.js'
import { OBJECT_MESSAGES, PROTO_ROOT, UNKNOWN_MESSAGE } from '../../src/admin/kube/proto-descriptors.js'
import { BETA_INGRESS_VERSIONS } from '../../src/resources/ingress.js'
import { KINDS, prepareObject } from '../../src/resources/kinds.js'
import { kubectlBinaries, kubectlFor, noKubectlReason, type KubectlBinary } from '../helpers/kubectl.js'

type JsonObject = Record<string, unknown>

/**
 * What kubectl 1.31 sends as JSON, as the decoder returns it: Go writes a zero
 * metadata.creationTimestamp as null and an empty status, which the decoder leaves out (the
 * server sets both).
 */
function withoutServerFields (sent: JsonObject): JsonObject {
  const { status: _status, metadata, ...rest } = sent
  const { creationTimestamp, ...meta } = metadata as JsonObject
  return { ...rest, metadata: creationTimestamp === null ? meta : metadata }
}

/** Wraps an object's protobuf as kubectl does: the magic, then runtime.Unknown. */
function envelope (apiVersion: string, kind: string, raw: Uint8Array, extra: JsonObject = {}): Buffer {
  const unknown = UNKNOWN_MESSAGE.encode({ typeMeta: { apiVersion, kind }, raw, contentEncoding: '', contentType: '', ...extra }).finish()
  return Buffer.concat([Buffer.from('k8s\0', 'latin1'), unknown])
}

function encodeObject (apiVersion: string, kind: string, object: JsonObject): Buffer {
  const type = PROTO_ROOT.lookupType(OBJECT_MESSAGES[`${apiVersion}/${kind}`] as string)
  return envelope(apiVersion, kind, type.encode(type.fromObject(object)).finish())
}

function rejects (t: Test, body: Buffer, code: string, pattern: RegExp, what: string): void {
  try {
    decodeKubernetesProtobuf(body)
    t.fail(`${what}: decoded`)
  } catch (err) {
    t.ok(err instanceof IngressdError, `${what}: an IngressdError`)
    t.equal((err as IngressdError).code, code, `${what}: ${code}`)
    t.match((err as Error).message, pattern, `${what}: the message says what`)
  }
}

/**
 * Bodies kubectl 1.32 sent (protobuf) and kubectl 1.31 sent (JSON) for the same commands,
 * recorded once against a server like the one below.
 */
const RECORDED: { command: string, protobuf: string, json: JsonObject }[] = [
  {
    command: 'create secret generic gen --from-literal=a=b',
    protobuf: 'azhzAAoMCgJ2MRIGU2VjcmV0Eh8KEwoDZ2VuEgAaACIAKgAyADgAQgASBgoBYRIBYhoAGgAiAA==',
    json: { kind: 'Secret', apiVersion: 'v1', metadata: { name: 'gen', creationTimestamp: null }, data: { a: 'Yg==' } }
  },
  {
    command: 'create service clusterip svc1 --tcp=80:8080',
    protobuf: 'azhzAAoNCgJ2MRIHU2VydmljZRJsCiEKBHN2YzESABoAIgAqADIAOABCAFoLCgNhcHASBHN2YzESQwobCgc4MC04MDgwEgNUQ1AYUCIHCAAQkD8aACgAEgsKA2FwcBIEc3ZjMRoAIglDbHVzdGVySVA6AEIAUgBaAGAAaAAaAgoAGgAiAA==',
    json: { kind: 'Service', apiVersion: 'v1', metadata: { name: 'svc1', creationTimestamp: null, labels: { app: 'svc1' } }, spec: { ports: [{ name: '80-8080', protocol: 'TCP', port: 80, targetPort: 8080 }], selector: { app: 'svc1' }, type: 'ClusterIP' }, status: { loadBalancer: {} } }
  },
  {
    command: 'create ingress ing1 --rule=host/path=svc:80',
    protobuf: 'azhzAAofChRuZXR3b3JraW5nLms4cy5pby92MRIHSW5ncmVzcxJHChQKBGluZzESABoAIgAqADIAOABCABIrGikKBGhvc3QSIQofCh0KBS9wYXRoEg0iCwoDc3ZjEgQKABBQGgVFeGFjdBoCCgAaACIA',
    json: { kind: 'Ingress', apiVersion: 'networking.k8s.io/v1', metadata: { name: 'ing1', creationTimestamp: null }, spec: { rules: [{ host: 'host', http: { paths: [{ path: '/path', pathType: 'Exact', backend: { service: { name: 'svc', port: { number: 80 } } } }] } }] }, status: { loadBalancer: {} } }
  }
]

t.test('bodies kubectl 1.32 recorded decode to what kubectl 1.31 sends as JSON', async t => {
  for (const { command, protobuf, json } of RECORDED) {
    const decoded = decodeKubernetesProtobuf(Buffer.from(protobuf, 'base64'))
    t.strictSame(decoded, withoutServerFields(json), command)
    t.doesNotThrow(() => prepareObject(decoded, { namespace: 'default' }), `${command}: the decoded object passes validation`)
  }
})

t.test('every kind ingressd stores decodes, in its storage version', async t => {
  const served = KINDS.flatMap(def => Object.keys(def.versions).filter(v => !(BETA_INGRESS_VERSIONS as readonly string[]).includes(v)).map(v => `${v}/${def.kind}`)).sort()
  t.strictSame(Object.keys(OBJECT_MESSAGES).sort(), served, 'one message per kind and version (pre-v1 Ingress is never sent as protobuf: typed clients only create v1)')
  for (const [key, name] of Object.entries(OBJECT_MESSAGES)) t.ok(PROTO_ROOT.lookupType(name), `${key}: ${name} resolves`)
})

t.test('fields decode as Go writes them in JSON', async t => {
  t.test('omitempty drops zero values, pointers keep them, IntOrString picks its side', async t => {
    const body = encodeObject('v1', 'Service', {
      metadata: { name: 'web', generateName: '', namespace: 'team-a', uid: '', resourceVersion: '42', generation: 0, creationTimestamp: { seconds: 1767225600, nanos: 0 }, labels: {}, annotations: { a: 'b' } },
      spec: {
        ports: [
          { name: 'http', protocol: 'TCP', port: 80, targetPort: { type: 1, intVal: 0, strVal: 'http' }, nodePort: 0, appProtocol: '' },
          { name: '', protocol: '', port: 0, targetPort: { type: 0, intVal: 8443, strVal: '' } }
        ],
        clusterIP: '',
        type: 'ExternalName',
        externalName: 'backend.example.com',
        ipFamilyPolicy: '',
        healthCheckNodePort: 0,
        publishNotReadyAddresses: false
      },
      status: Buffer.from([0x0a, 0x00])
    })
    t.strictSame(decodeKubernetesProtobuf(body), {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'web', namespace: 'team-a', resourceVersion: '42', creationTimestamp: '2026-01-01T00:00:00Z', annotations: { a: 'b' } },
      spec: {
        ports: [
          { name: 'http', protocol: 'TCP', appProtocol: '', port: 80, targetPort: 'http' },
          { port: 0, targetPort: 8443 }
        ],
        type: 'ExternalName',
        externalName: 'backend.example.com',
        ipFamilyPolicy: ''
      }
    })
  })

  t.test('Secret: bytes as base64, stringData as text, immutable false kept', async t => {
    const body = encodeObject('v1', 'Secret', {
      metadata: { name: 'tls' },
      data: { 'tls.crt': Buffer.from('-----BEGIN CERTIFICATE-----\n'), empty: Buffer.alloc(0) },
      stringData: { note: 'x' },
      type: 'kubernetes.io/tls',
      immutable: false
    })
    t.strictSame(decodeKubernetesProtobuf(body), {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'tls' },
      immutable: false,
      data: { 'tls.crt': Buffer.from('-----BEGIN CERTIFICATE-----\n').toString('base64'), empty: '' },
      stringData: { note: 'x' },
      type: 'kubernetes.io/tls'
    })
  })

  t.test('Ingress: the rule value inline, a class set to "" kept, TLS, default backend', async t => {
    const backend = { service: { name: 'web', port: { name: 'http', number: 0 } } }
    const body = encodeObject('networking.k8s.io/v1', 'Ingress', {
      metadata: { name: 'demo', namespace: '' },
      spec: {
        ingressClassName: '',
        defaultBackend: backend,
        tls: [{ hosts: ['a.example.com'], secretName: 'a-tls' }, { hosts: [], secretName: '' }],
        rules: [{ host: '', ingressRuleValue: { http: { paths: [{ path: '', pathType: 'ImplementationSpecific', backend }] } } }, { host: 'b.example.com', ingressRuleValue: {} }]
      }
    })
    t.strictSame(decodeKubernetesProtobuf(body), {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Ingress',
      metadata: { name: 'demo' },
      spec: {
        ingressClassName: '',
        defaultBackend: { service: { name: 'web', port: { name: 'http' } } },
        tls: [{ hosts: ['a.example.com'], secretName: 'a-tls' }, {}],
        rules: [{ http: { paths: [{ pathType: 'ImplementationSpecific', backend: { service: { name: 'web', port: { name: 'http' } } } }] } }, { host: 'b.example.com' }]
      }
    })
  })

  t.test('Endpoints and IngressClass', async t => {
    const endpoints = encodeObject('v1', 'Endpoints', {
      metadata: { name: 'web' },
      subsets: [{ addresses: [{ ip: '127.0.0.1', hostname: '', targetRef: { kind: 'Pod', name: 'web-1', uid: '' } }], notReadyAddresses: [{ ip: '' }], ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] }]
    })
    t.strictSame(decodeKubernetesProtobuf(endpoints), {
      apiVersion: 'v1',
      kind: 'Endpoints',
      metadata: { name: 'web' },
      subsets: [{ addresses: [{ ip: '127.0.0.1', targetRef: { kind: 'Pod', name: 'web-1' } }], notReadyAddresses: [{ ip: '' }], ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] }]
    })
    const ingressClass = encodeObject('networking.k8s.io/v1', 'IngressClass', {
      metadata: { name: 'nginx', labels: { team: 'edge' } },
      spec: { controller: 'k8s.io/ingress-nginx', parameters: { apiGroup: 'k8s.example.com', kind: 'Params', name: 'p', scope: 'Cluster' } }
    })
    t.strictSame(decodeKubernetesProtobuf(ingressClass), {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'IngressClass',
      metadata: { name: 'nginx', labels: { team: 'edge' } },
      spec: { controller: 'k8s.io/ingress-nginx', parameters: { apiGroup: 'k8s.example.com', kind: 'Params', name: 'p', scope: 'Cluster' } }
    })
  })
})

t.test('bodies ingressd cannot read are refused with the kind named', async t => {
  rejects(t, Buffer.from('{"kind":"Secret"}'), 'INGRESSD_ERR_MALFORMED_BODY', /does not start with the Kubernetes protobuf magic/, 'JSON sent as protobuf')
  rejects(t, Buffer.from('k8s\0\x0a\xff', 'latin1'), 'INGRESSD_ERR_MALFORMED_BODY', /envelope .*does not decode/, 'a truncated envelope')
  rejects(t, envelope('v1', 'ConfigMap', Buffer.alloc(0)), 'INGRESSD_ERR_UNSUPPORTED_MEDIA_TYPE', /ConfigMap \(v1\).*application\/json/, 'a kind ingressd does not serve')
  rejects(t, envelope('extensions/v1beta1', 'Ingress', Buffer.alloc(0)), 'INGRESSD_ERR_UNSUPPORTED_MEDIA_TYPE', /Ingress \(extensions\/v1beta1\)/, 'a pre-v1 Ingress')
  rejects(t, envelope('v1', 'Secret', Buffer.from([0x0a, 0x05, 0x0a])), 'INGRESSD_ERR_MALFORMED_BODY', /Secret \(v1\) does not decode/, 'a truncated object')
  rejects(t, envelope('v1', 'Secret', Buffer.alloc(0), { contentEncoding: 'gzip' }), 'INGRESSD_ERR_UNSUPPORTED_MEDIA_TYPE', /Secret \(v1\).*gzip/, 'a compressed object')
  rejects(t, encodeObject('v1', 'Secret', { metadata: { name: 'x', creationTimestamp: { seconds: 9e15 } } }), 'INGRESSD_ERR_MALFORMED_BODY', /Secret \(v1\) does not decode/, 'a time out of range')
})

/** What kubectl sent to the capture server, by request. */
interface Captured {
  contentType: string
  body: Buffer
}

/** A server kubectl can `create` against: discovery for secrets, services and ingresses, every POST recorded and answered 201. */
async function captureServer (t: Test): Promise<{ url: string, posts: Captured[] }> {
  const resources = (groupVersion: string, list: [string, string, string[]?][]): JsonObject => ({
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion,
    resources: list.map(([name, kind, shortNames]) => ({ name, singularName: kind.toLowerCase(), namespaced: true, kind, verbs: ['create', 'delete', 'get', 'list', 'patch', 'update'], ...(shortNames === undefined ? {} : { shortNames }) }))
  })
  const discovery: Record<string, JsonObject> = {
    '/api': { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: '127.0.0.1' }] },
    '/apis': { kind: 'APIGroupList', apiVersion: 'v1', groups: [{ name: 'networking.k8s.io', versions: [{ groupVersion: 'networking.k8s.io/v1', version: 'v1' }], preferredVersion: { groupVersion: 'networking.k8s.io/v1', version: 'v1' } }] },
    '/api/v1': resources('v1', [['secrets', 'Secret'], ['services', 'Service', ['svc']]]),
    '/apis/networking.k8s.io/v1': resources('networking.k8s.io/v1', [['ingresses', 'Ingress', ['ing']]])
  }
  const posts: Captured[] = []
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      const json = (code: number, value: unknown): void => {
        res.writeHead(code, { 'content-type': 'application/json' })
        res.end(JSON.stringify(value))
      }
      if (req.method === 'POST') {
        const contentType = req.headers['content-type'] ?? ''
        posts.push({ contentType, body })
        try {
          return json(201, contentType.startsWith('application/vnd.kubernetes.protobuf') ? decodeKubernetesProtobuf(body) : JSON.parse(body.toString('utf8')))
        } catch (err) {
          return json(400, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'BadRequest', code: 400, message: (err as Error).message })
        }
      }
      const doc = discovery[(req.url ?? '').split('?')[0] ?? '']
      if (doc !== undefined) return json(200, doc)
      json(404, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404, message: 'not found' })
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.close() })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, posts }
}

const binaries = kubectlBinaries()
/** The newest kubectl that sends JSON, and those that send protobuf. */
const jsonKubectl = binaries.findLast(b => Number(b.version.split('.')[1]) <= 31)
const protobufSenders = binaries.filter(b => Number(b.version.split('.')[1]) >= 32)
const NEEDS_KUBECTL = {
  skip: noKubectlReason(binaries) ?? (jsonKubectl === undefined || protobufSenders.length === 0 ? `needs a kubectl that sends JSON (1.31 or older) and one that sends protobuf (1.32 or newer); found ${binaries.map(b => b.version).join(', ')}: skipped` : false)
}

t.test('the real kubectl: protobuf bodies of 1.32+ decode to the JSON of 1.31', NEEDS_KUBECTL, async t => {
  const json = jsonKubectl as KubectlBinary

  const dir = mkdtempSync(join(tmpdir(), 'ingressd-kube-protobuf-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const cert = join(dir, 'tls.crt')
  const key = join(dir, 'tls.key')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '30', '-subj', '/CN=www.example.com', '-addext', 'subjectAltName=DNS:www.example.com'], { stdio: 'ignore' })
  const commands = [
    ['create', 'secret', 'tls', 'my-https', `--cert=${cert}`, `--key=${key}`],
    ['create', 'secret', 'generic', 'gen', '--from-literal=a=b'],
    ['create', 'service', 'clusterip', 'svc1', '--tcp=80:8080'],
    ['create', 'ingress', 'ing1', '--rule=host/path=svc:80']
  ]

  const server = await captureServer(t)
  const sent = async (version: KubectlBinary, args: string[]): Promise<Captured> => {
    const before = server.posts.length
    const result = await kubectlFor(t, version, server.url).run(args)
    t.equal(result.code, 0, `kubectl ${version.version} ${args.slice(0, 3).join(' ')}: exit 0${result.code === 0 ? '' : `: ${result.stderr}`}`)
    t.equal(server.posts.length, before + 1, 'one POST')
    return server.posts[server.posts.length - 1] as Captured
  }
  for (const args of commands) {
    const expected = await sent(json, args)
    t.match(expected.contentType, /^application\/json/, `kubectl ${json.version} sends JSON`)
    const reference = withoutServerFields(JSON.parse(expected.body.toString('utf8')) as JsonObject)
    for (const binary of protobufSenders) {
      const got = await sent(binary, args)
      t.equal(got.contentType, 'application/vnd.kubernetes.protobuf', `kubectl ${binary.version} ${args.slice(0, 3).join(' ')} sends protobuf`)
      const decoded = decodeKubernetesProtobuf(got.body)
      t.strictSame(decoded, reference, `kubectl ${binary.version} ${args.slice(0, 3).join(' ')}: decodes to what kubectl ${json.version} sent`)
      t.doesNotThrow(() => prepareObject(decoded, { namespace: 'default' }), 'and passes validation')
    }
  }
})
