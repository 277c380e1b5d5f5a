/**
 * How kubectl changes objects, with the real binaries of every version on the machine against a
 * real gateway: patch (strategic merge, merge, JSON), edit, label, annotate, diff, server-side
 * dry run and field validation; each command's exit code and output, and what is stored and served.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import { startTestGateway } from '../helpers/gateway.js'
import { kubectlBinaries, kubectlFor, minorOf, noKubectlReason } from '../helpers/kubectl.js'
import { startOrigin } from '../helpers/origin.js'

const EXAMPLES = new URL('../../examples/', import.meta.url).pathname
const binaries = kubectlBinaries()
const reason = noKubectlReason(binaries)
if (reason !== undefined) t.test(reason, { skip: reason }, async () => {})

for (const binary of binaries) {
  t.test(`kubectl ${binary.version}: patch, edit, label, annotate, diff, dry run, validation`, async t => {
    const gw = await startTestGateway(t)
    const kubectl = kubectlFor(t, binary, gw.admin)
    const dir = join(kubectl.kubeconfig, '..')
    const k = async (...args: string[]): Promise<{ code: number, stdout: string, stderr: string }> => await kubectl.run(args)
    /** kubectl before 1.27 (Debian's 1.20) validates on the client and words a few lines differently. */
    const modern = minorOf(binary) >= 27
    const get = async (path: string): Promise<any> => JSON.parse((await k('get', 'ingress', 'basic', '-o', `jsonpath={${path}}`)).stdout || 'null')
    const port = async (): Promise<number> => Number((await k('get', 'ingress', 'basic', '-o', 'jsonpath={.spec.rules[0].http.paths[0].backend.service.port.number}')).stdout)
    const origin = await startOrigin(t, 'web', (req, res) => { res.end(`web ${req.url ?? ''}`) })
    writeFileSync(join(dir, 'backends.yaml'), ['service1', 'service2'].map(name => `apiVersion: v1\nkind: Service\nmetadata:\n  name: ${name}\nspec:\n  ports:\n  - name: http\n    port: 80\n---\napiVersion: v1\nkind: Endpoints\nmetadata:\n  name: ${name}\nsubsets:\n- addresses:\n  - ip: 127.0.0.1\n  ports:\n  - name: http\n    port: ${origin.port}\n`).join('---\n'))
    t.equal((await k('apply', '-f', join(dir, 'backends.yaml'))).code, 0)
    t.same(await k('apply', '-f', join(EXAMPLES, 'ingress-basic.v1.yaml')), { code: 0, stdout: 'ingress.networking.k8s.io/basic created\n', stderr: '' })

    // kubectl patch: strategic merge (the default), merge and JSON patch
    t.same(await k('patch', 'ingress', 'basic', '-p', '{"spec":{"rules":[{"host":"www.basic1.com","http":{"paths":[{"path":"/path1","pathType":"Prefix","backend":{"service":{"name":"service1","port":{"number":8080}}}}]}}]}}'), { code: 0, stdout: 'ingress.networking.k8s.io/basic patched\n', stderr: '' })
    t.equal(await port(), 8080, 'the strategic merge patch replaced the (atomic) rules')
    t.same(await k('patch', 'ingress', 'basic', '--type=merge', '-p', '{"metadata":{"annotations":{"owner":"web-team"}}}'), { code: 0, stdout: 'ingress.networking.k8s.io/basic patched\n', stderr: '' })
    t.equal((await k('get', 'ingress', 'basic', '-o', 'jsonpath={.metadata.annotations.owner}')).stdout, 'web-team')
    t.same(await k('patch', 'ingress', 'basic', '--type=json', '-p', '[{"op":"replace","path":"/spec/rules/0/http/paths/0/backend/service/port/number","value":80}]'), { code: 0, stdout: 'ingress.networking.k8s.io/basic patched\n', stderr: '' })
    t.equal(await port(), 80)
    const failed = await k('patch', 'ingress', 'basic', '--type=json', '-p', '[{"op":"test","path":"/metadata/name","value":"other"}]')
    t.equal(failed.code, 1)
    t.match(failed.stderr, modern ? /testing value \/metadata\/name failed/ : /The request is invalid/)
    const unchanged = await k('patch', 'ingress', 'basic', '--type=merge', '-p', '{"metadata":{"annotations":{"owner":"web-team"}}}')
    t.same(unchanged, { code: 0, stdout: 'ingress.networking.k8s.io/basic patched (no change)\n', stderr: '' }, 'a patch that changes nothing')
    const served = await request(`${gw.http}/path1/x`, { headers: { host: 'www.basic1.com' } })
    t.equal(served.statusCode, 200, 'the patched route is served')
    await served.body.text()

    // kubectl label / annotate (and removing them)
    t.same(await k('label', 'ingress', 'basic', 'tier=web'), { code: 0, stdout: 'ingress.networking.k8s.io/basic labeled\n', stderr: '' })
    t.same(await k('label', 'ingress', 'basic', 'tier=db', '--overwrite'), { code: 0, stdout: 'ingress.networking.k8s.io/basic labeled\n', stderr: '' })
    t.same(await get('.metadata.labels'), { tier: 'db' })
    t.same(await k('label', 'ingress', 'basic', 'tier-'), { code: 0, stdout: `ingress.networking.k8s.io/basic ${modern ? 'unlabeled' : 'labeled'}\n`, stderr: '' })
    // kubectl 1.27 and 1.28 print "annotate", newer ones "annotated".
    t.match(await k('annotate', 'ingress', 'basic', 'team=a'), { code: 0, stdout: /^ingress\.networking\.k8s\.io\/basic annotated?\n$/, stderr: '' })
    t.equal((await k('get', 'ingress', 'basic', '-o', 'jsonpath={.metadata.annotations.team}')).stdout, 'a')
    t.match(await k('annotate', 'ingress', 'basic', 'team-'), { code: 0, stdout: /^ingress\.networking\.k8s\.io\/basic annotated?\n$/, stderr: '' })

    // kubectl edit, with an editor that changes the backend port
    writeFileSync(join(dir, 'editor.sh'), '#!/bin/sh\nsed -i \'s/number: 80$/number: 8081/\' "$1"\n', { mode: 0o755 })
    t.same(await kubectl.run(['edit', 'ingress', 'basic'], { env: { KUBE_EDITOR: join(dir, 'editor.sh') } }), { code: 0, stdout: 'ingress.networking.k8s.io/basic edited\n', stderr: '' })
    t.equal(await port(), 8081)

    // Service ports merge by port under a strategic merge patch
    t.same(await k('patch', 'service', 'service1', '-p', '{"spec":{"ports":[{"name":"https","port":443,"targetPort":8443}]}}'), { code: 0, stdout: 'service/service1 patched\n', stderr: '' })
    t.same(JSON.parse((await k('get', 'service', 'service1', '-o', 'jsonpath={.spec.ports[*].port}')).stdout.split(' ').length.toString()), 2, 'port 80 kept, 443 added')

    // kubectl diff, and apply --dry-run=server: validated, nothing stored, nothing served
    t.same(await k('apply', '-f', join(EXAMPLES, 'ingress-basic.v1.yaml')), { code: 0, stdout: 'ingress.networking.k8s.io/basic configured\n', stderr: '' })
    t.same(await k('diff', '-f', join(EXAMPLES, 'ingress-basic.v1.yaml')), { code: 0, stdout: '', stderr: '' }, 'no difference: exit 0')
    writeFileSync(join(dir, 'moved.yaml'), '# moved\n' + (await import('node:fs')).readFileSync(join(EXAMPLES, 'ingress-basic.v1.yaml'), 'utf8').replace('path: /path1', 'path: /moved'))
    const diff = await k('diff', '-f', join(dir, 'moved.yaml'))
    t.equal(diff.code, 1, 'a difference: exit 1')
    t.match(diff.stdout, /^-\s+path: \/path1$/m)
    t.match(diff.stdout, /^\+\s+path: \/moved$/m)
    const version = (await k('get', 'ingress', 'basic', '-o', 'jsonpath={.metadata.resourceVersion}')).stdout
    t.same(await k('apply', '--dry-run=server', '-f', join(dir, 'moved.yaml')), { code: 0, stdout: 'ingress.networking.k8s.io/basic configured (server dry run)\n', stderr: '' })
    t.equal((await k('get', 'ingress', 'basic', '-o', 'jsonpath={.metadata.resourceVersion}')).stdout, version, 'nothing stored')
    const notMoved = await request(`${gw.http}/moved`, { headers: { host: 'www.basic1.com' } })
    t.equal(notMoved.statusCode, 404, 'nothing served')
    await notMoved.body.text()
    writeFileSync(join(dir, 'bad.yaml'), (await import('node:fs')).readFileSync(join(EXAMPLES, 'ingress-basic.v1.yaml'), 'utf8').replace('path: /path1', 'path: path1'))
    const invalid = await k('apply', '--dry-run=server', '-f', join(dir, 'bad.yaml'))
    t.equal(invalid.code, 1, 'a dry run validates')
    t.match(invalid.stderr, /The Ingress "basic" is invalid: spec\.rules\[0\]\.http\.paths\[0\]\.path/)

    // Field validation: Strict (kubectl's default) refuses an unknown field; --validate=false drops it
    writeFileSync(join(dir, 'unknown.yaml'), (await import('node:fs')).readFileSync(join(EXAMPLES, 'ingress-basic.v1.yaml'), 'utf8').replace('spec:\n', 'spec:\n  bogus: 1\n'))
    const strict = await k('apply', '-f', join(dir, 'unknown.yaml'))
    t.equal(strict.code, 1)
    if (modern) {
      t.match(strict.stderr, /Error from server \(BadRequest\): error when applying patch:[\s\S]*strict decoding error: unknown field "spec\.bogus"/)
      t.same(await k('apply', '--validate=false', '-f', join(dir, 'unknown.yaml')), { code: 0, stdout: 'ingress.networking.k8s.io/basic configured\n', stderr: '' }, 'accepted: the last-applied annotation changes, the spec does not')
    } else {
      // kubectl 1.20 validates against our OpenAPI v2 itself, and sends no fieldValidation: then
      // ingressd keeps its own strictness (422), where an API server of that era dropped the field.
      t.match(strict.stderr, /error validating data: ValidationError\(Ingress\.spec\): unknown field "bogus"/)
      const unvalidated = await k('apply', '--validate=false', '-f', join(dir, 'unknown.yaml'))
      t.equal(unvalidated.code, 1)
      t.match(unvalidated.stderr, /The Ingress "basic" is invalid: spec\.bogus: unknown field/)
    }
    t.equal((await k('get', 'ingress', 'basic', '-o', 'jsonpath={.spec.bogus}')).stdout, '', 'the unknown field is dropped')
  })
}
