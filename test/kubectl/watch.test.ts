/**
 * `kubectl get ingress --watch` with the real binaries of every version on the machine: each
 * change is printed as it is made, whether through kubectl, the REST API or the `ingressd`
 * command line; a watch resumes from a resourceVersion, and one too old gets 410 Expired as
 * Kubernetes sends it. The newest version also sits through an idle minute.
 */
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import t from 'tap'
import { startTestGateway } from '../helpers/gateway.js'
import { kubectlBinaries, kubectlFor, noKubectlReason } from '../helpers/kubectl.js'
import { client } from '../cli/run.js'

const EXAMPLES = new URL('../../examples/', import.meta.url).pathname
const binaries = kubectlBinaries()
const reason = noKubectlReason(binaries)
if (reason !== undefined) t.test(reason, { skip: reason }, async () => {})

/** A running `kubectl get ... --watch`: its lines so far, and a wait for the next ones. */
function watchProcess (path: string, args: string[], env: Record<string, string>): { lines: string[], waitFor: (n: number, timeoutMs?: number) => Promise<string[]>, stop: () => void } {
  const child = spawn(path, args, { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: string[] = []
  let partial = ''
  let stderr = ''
  const waiters: (() => void)[] = []
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n')
    partial = parts.pop() ?? ''
    lines.push(...parts)
    for (const w of waiters.splice(0)) w()
  })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString('utf8') })
  const waitFor = async (n: number, timeoutMs = 10_000): Promise<string[]> => {
    const deadline = Date.now() + timeoutMs
    while (lines.length < n) {
      if (Date.now() > deadline) throw new Error(`waited ${timeoutMs} ms for ${n} lines; got ${JSON.stringify(lines)}; stderr: ${stderr}`)
      await new Promise<void>(resolve => { waiters.push(resolve); setTimeout(resolve, 100) })
    }
    return lines.slice(0, n)
  }
  return { lines, waitFor, stop: () => child.kill() }
}

const ROW = (name: string): RegExp => new RegExp(`^${name} +<none> +\\S+ +\\S* +80(, 443)? +\\d+s$`)

binaries.forEach((binary, i) => {
  const newest = i === binaries.length - 1
  t.test(`kubectl ${binary.version}: get ingress --watch`, async t => {
    const gw = await startTestGateway(t)
    const kubectl = kubectlFor(t, binary, gw.admin)
    const dir = join(kubectl.kubeconfig, '..')
    const ingressd = client(gw.admin)
    t.equal((await kubectl.run(['apply', '-f', join(EXAMPLES, 'ingress-basic.v1.yaml')])).code, 0)

    const watch = watchProcess(binary.path, ['get', 'ingress', '--watch'], { KUBECONFIG: kubectl.kubeconfig, KUBECACHEDIR: join(dir, 'cache'), HOME: dir })
    t.teardown(watch.stop)
    const [header, first] = await watch.waitFor(2)
    t.match(header, /^NAME +CLASS +HOSTS +ADDRESS +PORTS +AGE$/)
    t.match(first, ROW('basic'))

    // Through kubectl:
    t.equal((await kubectl.run(['apply', '-f', join(EXAMPLES, 'ingress-ssl.v1.yaml')])).code, 0)
    t.match((await watch.waitFor(3))[2], ROW('basic-ssl'), 'a create through kubectl is printed')
    // Through the REST API:
    const patched = await gw.api('PATCH', '/apis/networking.k8s.io/v1/namespaces/default/ingresses/basic', JSON.stringify({ metadata: { labels: { via: 'rest' } } }), { 'content-type': 'application/merge-patch+json' })
    t.equal(patched.status, 200)
    t.match((await watch.waitFor(4))[3], ROW('basic'), 'a change through the REST API is printed')

    if (newest) {
      // An idle minute: nothing may cut the stream (no request or socket timeout applies to a watch).
      await new Promise(resolve => setTimeout(resolve, 61_000))
      t.equal(watch.lines.length, 4, 'nothing printed while idle')
    }
    // Through the ingressd command line:
    t.equal((await ingressd('delete', 'ingress', 'basic-ssl')).code, 0)
    t.match((await watch.waitFor(5))[4], ROW('basic-ssl'), 'a delete through the ingressd command line is printed')
    watch.stop()

    // A watch resumes from a resourceVersion: only the later changes.
    const version = String(JSON.parse((await kubectl.run(['get', '--raw', '/apis/networking.k8s.io/v1/namespaces/default/ingresses'])).stdout).metadata.resourceVersion)
    t.match(version, /^\d+$/, 'the list\'s resourceVersion')
    t.equal((await kubectl.run(['patch', 'ingress', 'basic', '--type=merge', '-p', '{"metadata":{"labels":{"step":"after"}},"spec":{"ingressClassName":"nginx"}}'])).code, 0)
    const resumed = await kubectl.run(['get', '--raw', `/apis/networking.k8s.io/v1/namespaces/default/ingresses?watch=true&resourceVersion=${version}&timeoutSeconds=1`])
    t.equal(resumed.code, 0, resumed.stderr)
    const events = resumed.stdout.trim().split('\n').map(line => JSON.parse(line) as { type: string, object: { metadata: { name: string, labels?: Record<string, string> } } })
    t.same(events.map(e => [e.type, e.object.metadata.name, e.object.metadata.labels?.step]), [['MODIFIED', 'basic', 'after']], 'only the change after the resourceVersion')

    // One too old: 410 Expired, as an ERROR event in a 200 stream, as the API server sends it.
    const db = new Database(gw.db)
    db.prepare('UPDATE store_state SET resource_version = resource_version + 200000 WHERE id = 1').run()
    db.close()
    const expired = await kubectl.run(['get', '--raw', '/apis/networking.k8s.io/v1/namespaces/default/ingresses?watch=true&resourceVersion=1&timeoutSeconds=1'])
    const event = JSON.parse(expired.stdout.trim().split('\n')[0] ?? '{}') as { type: string, object: { code: number, reason: string, message: string } }
    t.equal(event.type, 'ERROR')
    t.equal(event.object.code, 410)
    t.equal(event.object.reason, 'Expired')
    t.match(event.object.message, /^too old resource version: 1 \(\d+\)$/)
  })
})
