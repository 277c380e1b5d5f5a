/**
 * CORS, source ranges and the chain compiler as pure parts: parse tables, steps called with plain
 * request data, and the compiler's binding, reuse and fail-closed answers.
 */
import t from 'tap'
import type { IncomingMessage } from 'node:http'
import { corsStep, parseCors } from '../../../src/dataplane/policies/cors.js'
import { parseSourceRange, sourceRangeStep } from '../../../src/dataplane/policies/source-range.js'
import { PolicyCompiler, runSteps } from '../../../src/dataplane/policies/chain.js'
import { parseAccessAnnotations } from '../../../src/dataplane/policies/access.js'
import { createLocalLimiter } from '../../../src/dataplane/policies/rate-limit.js'
import { ExternalAuthClient } from '../../../src/dataplane/policies/external-auth.js'
import type { PolicyContext, SecretMaterial } from '../../../src/dataplane/policies/policy.js'
import type { IngressReport } from '../../../src/dataplane/compile.js'

const reader = (values: Record<string, string>) => (name: string): string | undefined => values[name]

function ctx (over: { method?: string, headers?: Record<string, string>, client?: string } = {}): PolicyContext {
  return { req: { headers: over.headers ?? {} } as unknown as IncomingMessage, method: over.method ?? 'GET', host: 'a.example.com', path: '/', query: '', proto: 'http', client: over.client ?? '127.0.0.1', requestId: 'r' }
}

t.test('parseCors: off unless enable-cors is "true"; defaults; problems name the key', async t => {
  t.equal(parseCors(reader({})).spec, undefined)
  t.equal(parseCors(reader({ 'enable-cors': 'false', 'cors-allow-origin': 'https://a.com' })).spec, undefined)
  const spec = parseCors(reader({ 'enable-cors': 'true' })).spec
  t.same({ ...spec }, { methods: 'GET, PUT, POST, DELETE, PATCH, OPTIONS', headers: 'DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization', credentials: true, maxAge: 1728000 })
  const bad: Array<[Record<string, string>, string]> = [
    [{ 'enable-cors': 'yes' }, 'enable-cors'],
    [{ 'enable-cors': 'true', 'cors-allow-origin': 'example.com' }, 'cors-allow-origin'],
    [{ 'enable-cors': 'true', 'cors-allow-origin': 'https://*.*.example.com' }, 'cors-allow-origin'],
    [{ 'enable-cors': 'true', 'cors-allow-methods': 'GET;DROP' }, 'cors-allow-methods'],
    [{ 'enable-cors': 'true', 'cors-allow-headers': 'X-A, X B' }, 'cors-allow-headers'],
    [{ 'enable-cors': 'true', 'cors-allow-credentials': '1' }, 'cors-allow-credentials'],
    [{ 'enable-cors': 'true', 'cors-max-age': '-1' }, 'cors-max-age']
  ]
  for (const [values, key] of bad) t.same(parseCors(reader(values)).problems.map(p => p.key), [`nginx.ingress.kubernetes.io/${key}`], key)
})

t.test('corsStep: preflights answered, headers left for the response, origins matched whole', async t => {
  const step = corsStep(parseCors(reader({ 'enable-cors': 'true', 'cors-allow-origin': 'https://app.example.com, https://*.example.org' })).spec as NonNullable<ReturnType<typeof parseCors>['spec']>)
  const c1 = ctx({ headers: { origin: 'https://x.example.org' } })
  t.equal(step(c1), undefined)
  t.equal(c1.responseHeaders?.['access-control-allow-origin'], 'https://x.example.org')
  const pre = ctx({ method: 'OPTIONS', headers: { origin: 'https://app.example.com' } })
  t.equal((step(pre) as { status: number }).status, 204)
  for (const o of ['https://app.example.com.evil.com', 'https://evil.com/https://app.example.com', 'https://a.b.example.org']) {
    const c = ctx({ headers: { origin: o } })
    t.equal(step(c), undefined)
    t.equal(c.responseHeaders, undefined, `${o}: no headers`)
  }
})

t.test('source ranges: deny before allow; problems for every bad entry', async t => {
  const parsed = parseSourceRange(reader({ 'whitelist-source-range': '10.0.0.0/8', 'denylist-source-range': '10.6.0.0/16' }))
  const step = sourceRangeStep(parsed.spec as NonNullable<typeof parsed.spec>)
  t.equal(step(ctx({ client: '10.1.1.1' })), undefined)
  t.equal((step(ctx({ client: '10.6.1.1' })) as { status: number }).status, 403)
  t.equal((step(ctx({ client: '11.1.1.1' })) as { status: number }).status, 403)
  t.equal(parseSourceRange(reader({ 'whitelist-source-range': '10.0.0.0/8, x, 1.2.3.4/40' })).problems.length, 2)
})

t.test('the chain compiler: binds once, rebinds when a secret changes, denies what it cannot bind', async t => {
  const auth = new ExternalAuthClient()
  t.teardown(() => auth.close())
  const compiler = new PolicyCompiler({ limiter: createLocalLimiter(), limitStatus: 503, externalAuth: auth })
  const parse = (values: Record<string, string>): NonNullable<IngressReport['access']> => parseAccessAnnotations(reader(values), 'default', 'default/x').spec as NonNullable<IngressReport['access']>
  const report = (name: string, access: NonNullable<IngressReport['access']>): IngressReport => ({ namespace: 'default', name, served: true, conflicts: [], annotationProblems: [], ignoredAnnotations: [], noEffectAnnotations: [], accessDenials: [...access.denials], access, backendProblems: [], pathProblems: [] })
  const basic = parse({ 'auth-type': 'basic', 'auth-secret': 'users' })
  const denied = parse({ 'enable-modsecurity': 'true' })
  const open = parse({ 'enable-cors': 'true' })
  const store: { users?: SecretMaterial } = {}
  const secrets = (_ns: string, name: string): SecretMaterial | undefined => name === 'users' ? store.users : undefined
  const reports = [report('basic', basic), report('denied', denied), report('open', open)]

  let out = compiler.compile(reports, secrets)
  t.match(out.problems.get('default/basic')?.[0]?.message, 'does not exist', 'a missing secret denies')
  t.same((await runSteps(out.table.get(basic)?.steps ?? [], ctx())), { status: 503, code: 'INGRESSD_ERR_ACCESS_DENIED_CONFIG' })
  t.same((await runSteps(out.table.get(denied)?.steps ?? [], ctx())), { status: 503, code: 'INGRESSD_ERR_ACCESS_DENIED_CONFIG' }, 'a denial denies')
  t.equal(await runSteps(out.table.get(open)?.steps ?? [], ctx()), undefined)
  const openChain = out.table.get(open)

  store.users = Object.freeze({ type: 'Opaque', data: Object.freeze({ auth: 'admin:$apr1$abcdefgh$M2T3erDstkD7SsE2QQnfH0\n' }) })
  out = compiler.compile(reports, secrets)
  t.equal(out.problems.get('default/basic'), undefined, 'the secret arrived')
  t.equal((await runSteps(out.table.get(basic)?.steps ?? [], ctx()))?.status, 401)
  t.equal(out.table.get(open), openChain, 'an unchanged spec keeps its chain')
  const basicChain = out.table.get(basic)
  out = compiler.compile(reports, secrets)
  t.equal(out.table.get(basic), basicChain, 'and so does one whose secret did not change')
  t.equal(compiler.compile([report('open', open)], secrets).table.get(basic), undefined, 'a spec no ingress has any more is dropped')
})
