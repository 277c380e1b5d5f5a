/**
 * The shipped program is the esbuild bundle `npm run build` writes to dist/bundle/ (what
 * `npm start` and the Docker image run); every other test runs src/ under tsx. This one builds
 * the bundle and runs it as users do: a primary and two workers, a proxied request, the admin
 * plane's Swagger UI and OpenAPI document, a client verb, and an orderly stop.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { request } from 'undici'
import { alive, runCli, startChildGateway } from '../helpers/child-gateway.js'
import { startOrigin } from '../helpers/origin.js'
import { serviceManifests } from '../helpers/backends.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

t.test('the bundle serves: workers proxy, the admin plane documents itself, the CLI talks to it, SIGTERM stops all', async t => {
  // Without tap's coverage hooks in NODE_OPTIONS, which would instrument tsc and esbuild too.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS' && k !== 'NODE_V8_COVERAGE'))
  const build = spawnSync('npm', ['run', 'build'], { cwd: ROOT, env, encoding: 'utf8', timeout: 150_000 })
  t.equal(build.status, 0, 'npm run build', build.status === 0 ? {} : { stderr: build.stderr, stdout: build.stdout })
  const dir = mkdtempSync(join(tmpdir(), 'ingressd-bundle-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const echo = await startOrigin(t, 'echo')
  const gw = await startChildGateway({ INGRESSD_WORKERS: '2', INGRESSD_DB: join(dir, 'db.sqlite'), INGRESSD_ADMIN_ADDR: '127.0.0.1:0', INGRESSD_HTTP_ADDR: '127.0.0.1:0', INGRESSD_HTTPS_ADDR: '127.0.0.1:0', INGRESSD_SHUTDOWN_GRACE: '5s' }, [], { bundle: true })
  const workers = gw.started.workers as number[]
  t.teardown(() => {
    if (gw.child.exitCode === null) gw.child.kill('SIGKILL')
    for (const pid of workers) if (alive(pid)) process.kill(pid, 'SIGKILL')
  })
  t.equal(workers.length, 2, 'two workers serve')

  const ingress = { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'web' }, spec: { rules: [{ host: 'web.example.com', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'echo', port: { number: 8080 } } } }] } }] } }
  const applied = await request(`${gw.admin}/apply`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify([...serviceManifests('echo', [echo]), ingress]) })
  t.equal(applied.statusCode, 200, 'the manifests are applied')
  await applied.body.dump()
  const proxied = await request(`http://${String(gw.started.http)}/hello`, { headers: { host: 'web.example.com' } })
  t.equal(proxied.statusCode, 200)
  t.match(await proxied.body.json(), { server: 'echo', url: '/hello', headers: { host: 'web.example.com' } }, 'the origin answered through the gateway')

  const docs = await request(`${gw.admin}/docs/`)
  t.equal(docs.statusCode, 200)
  t.match(String(docs.headers['content-type']), /text\/html/)
  t.match(await docs.body.text(), /swagger/i, 'Swagger UI')
  const ui = await request(`${gw.admin}/docs/static/swagger-ui-bundle.js`)
  t.equal(ui.statusCode, 200, 'Swagger UI\'s static files (loaded from node_modules)')
  await ui.body.dump()
  const spec = await request(`${gw.admin}/openapi.json`)
  t.same(await spec.body.json(), JSON.parse(readFileSync(join(ROOT, 'openapi/openapi.json'), 'utf8')), 'the OpenAPI document is the committed one')

  const got = runCli(['get', 'ingresses', '--server', gw.admin], {}, { bundle: true })
  const { code } = await got.exited
  t.equal(code, 0, got.stderr())
  t.match(got.lines.join('\n'), /web\s+.*web\.example\.com/, 'the client verb lists the ingress')

  gw.child.kill('SIGTERM')
  t.equal((await gw.exited).code, 0, 'the primary exits 0')
  await new Promise(resolve => setTimeout(resolve, 200))
  t.same(workers.filter(alive), [], 'no worker outlives it')
})
