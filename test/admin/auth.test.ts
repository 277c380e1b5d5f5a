import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Client, request } from 'undici'
import { runCli, startChildGateway } from '../helpers/child-gateway.js'
import { startTestGateway } from '../helpers/gateway.js'

const TOKEN = 'the-real-admin-token-5f1c9e'
const WRONG = 'a-guessed-token-9d7a3b21'
const ING = '/apis/networking.k8s.io/v1/namespaces/default/ingresses'

const ingress = {
  apiVersion: 'networking.k8s.io/v1',
  kind: 'Ingress',
  metadata: { name: 'guarded' },
  spec: { defaultBackend: { service: { name: 'web', port: { number: 80 } } } }
}

/** A request with exactly these headers (the test gateway's helper would add the token). */
async function raw (base: string, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<{ status: number, body: any, text: string }> {
  const res = await request(`${base}${path}`, { method: method as 'GET', headers, body })
  const text = await res.body.text()
  let parsed: unknown
  try { parsed = JSON.parse(text) } catch { parsed = undefined }
  return { status: res.statusCode, body: parsed, text }
}

/** GET with the path sent byte for byte (a URL would resolve the dot segments first). */
async function rawPath (base: string, path: string): Promise<{ status: number, text: string }> {
  const client = new Client(base)
  try {
    const res = await client.request({ method: 'GET', path })
    return { status: res.statusCode, text: await res.body.text() }
  } finally {
    await client.close()
  }
}

function tempDir (t: { teardown: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'ingressd-auth-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

t.test('with INGRESSD_ADMIN_TOKEN set, the admin API wants the bearer token', async t => {
  const gw = await startTestGateway(t, { INGRESSD_ADMIN_TOKEN: TOKEN, INGRESSD_LOG_LEVEL: 'debug' })
  const refusals: Array<[string, Record<string, string>, RegExp]> = [
    ['no Authorization header', {}, /send Authorization: Bearer/],
    ['an empty Authorization header', { authorization: '' }, /Unauthorized/],
    ['a wrong token', { authorization: `Bearer ${WRONG}` }, /token is wrong/],
    ['the right token under another scheme', { authorization: `Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}` }, /token is wrong/],
    ['the right token without the scheme', { authorization: TOKEN }, /token is wrong/],
    ['the right token with a suffix', { authorization: `Bearer ${TOKEN}x` }, /token is wrong/]
  ]
  for (const [what, headers, message] of refusals) {
    await t.test(what, async t => {
      for (const [method, path, body] of [['GET', ING], ['POST', ING, JSON.stringify(ingress)], ['GET', '/api/v1/secrets'], ['POST', '/apply', JSON.stringify(ingress)]] as const) {
        const res = await raw(gw.admin, method, path, { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, body)
        t.equal(res.status, 401, `${method} ${path}`)
        t.match(res.body, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Unauthorized', code: 401, details: { errorCode: 'INGRESSD_ERR_UNAUTHORIZED' } })
        t.match(res.body.message, message)
        t.notMatch(res.text, TOKEN, 'the answer does not quote the real token')
      }
    })
  }

  const listed = await raw(gw.admin, 'GET', ING, { authorization: `Bearer ${TOKEN}` })
  t.equal(listed.status, 200, 'the right token is let in')
  t.equal(listed.body.kind, 'IngressList')
  t.same(listed.body.items, [], 'no refused POST stored anything')
  const created = await raw(gw.admin, 'POST', ING, { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, JSON.stringify(ingress))
  t.equal(created.status, 201)

  for (const path of ['/healthz', '/readyz', '/openapi.json', '/docs', '/docs/', '/docs/json', '/docs/static/swagger-ui.css']) {
    const res = await raw(gw.admin, 'GET', path)
    t.equal(res.status, 200, `${path} needs no token`)
  }
  // Paths that only start like a public one are not public.
  for (const path of ['/healthz/../apis/networking.k8s.io/v1/ingresses', '/openapi.json/../api/v1/secrets', '/docs/../api/v1/secrets', '/docs/%2e%2e/api/v1/secrets', '/docsx']) {
    const res = await rawPath(gw.admin, path)
    t.not(res.status, 200, `${path} is not served without a token`)
    t.notMatch(res.text, /"kind":"(Ingress|Secret)List"/, `${path} does not list objects`)
  }

  const refused = gw.logs.filter(l => l.includes('admin request refused'))
  t.ok(refused.length >= refusals.length, `each refusal is logged (${refused.length} lines)`)
  t.ok(refused.some(l => l.includes('"reason":"missing"')) && refused.some(l => l.includes('"reason":"mismatch"')), 'the log says why')
  const all = gw.logs.join('\n')
  for (const secret of [TOKEN, WRONG, Buffer.from(`admin:${TOKEN}`).toString('base64')]) {
    t.notOk(all.includes(secret), `no log line contains ${secret === WRONG ? 'the token sent' : 'the real token'}`)
  }
})

t.test('the CLI refuses a non-loopback admin address without a token', async t => {
  const dir = tempDir(t)
  const run = runCli(['serve', '--admin-addr', '0.0.0.0:0', '--http-addr', '127.0.0.1:0', '--https-addr', '127.0.0.1:0', '--db', join(dir, 'ingressd.db')])
  const { code } = await run.exited
  t.equal(code, 2)
  t.match(run.stderr(), /INGRESSD_ADMIN_ADDR=0\.0\.0\.0:0 is not a loopback address/)
  t.match(run.stderr(), /set a token \(at least 16 characters\)/)
  t.match(run.stderr(), /INGRESSD_ERR_CONFIG/)

  const viaEnv = runCli(['serve'], { INGRESSD_ADMIN_ADDR: '0.0.0.0:0', INGRESSD_HTTP_ADDR: '127.0.0.1:0', INGRESSD_HTTPS_ADDR: '127.0.0.1:0', INGRESSD_DB: join(dir, 'ingressd.db') })
  t.equal((await viaEnv.exited).code, 2, 'the same from the environment')
  t.match(viaEnv.stderr(), /not a loopback address/)

  const short = 'short-token'
  const tooShort = runCli(['serve', '--admin-addr', '0.0.0.0:0', '--admin-token', short, '--db', join(dir, 'ingressd.db')])
  t.equal((await tooShort.exited).code, 2, 'a short token is refused')
  t.match(tooShort.stderr(), /at least 16 characters/)
  t.notMatch(tooShort.stderr(), short, 'the refused token is not printed')
})

t.test('with a token, a non-loopback admin address is served and the token is not logged', async t => {
  const dir = tempDir(t)
  const gw = await startChildGateway({ INGRESSD_ADMIN_TOKEN: TOKEN, INGRESSD_ADMIN_ADDR: '0.0.0.0:0', INGRESSD_HTTP_ADDR: '127.0.0.1:0', INGRESSD_HTTPS_ADDR: '127.0.0.1:0', INGRESSD_DB: join(dir, 'ingressd.db') })
  t.teardown(() => { if (gw.child.exitCode === null) gw.child.kill('SIGKILL') })
  t.equal(gw.started.auth, 'bearer token')
  const port = String(gw.started.admin).split(':').pop()
  const base = `http://127.0.0.1:${port ?? ''}`
  t.equal((await raw(base, 'GET', ING)).status, 401)
  t.equal((await raw(base, 'GET', ING, { authorization: `Bearer ${WRONG}` })).status, 401)
  t.equal((await raw(base, 'GET', ING, { authorization: `Bearer ${TOKEN}` })).status, 200)
  gw.child.kill('SIGTERM')
  const { code } = await gw.exited
  t.equal(code, 0, 'SIGTERM stops it cleanly')
  const out = gw.lines.join('\n') + gw.stderr()
  t.match(out, /admin request refused/)
  t.notOk(out.includes(TOKEN), 'the output never contains the real token')
  t.notOk(out.includes(WRONG), 'the output never contains the token sent')
})
