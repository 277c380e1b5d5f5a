/**
 * The seed tutorial's kubectl commands, verbatim, with the real kubectl binaries of every version
 * on the machine (1.27 to 1.33) against a real gateway: each command's exit code and output as
 * kubectl prints them, and the traffic the gateway then serves.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect as tlsConnect } from 'node:tls'
import t from 'tap'
import { request } from 'undici'
import { generateSelfSigned } from '../../src/resources/tls-material.js'
import { startTestGateway } from '../helpers/gateway.js'
import { kubectlBinaries, kubectlFor, noKubectlReason } from '../helpers/kubectl.js'
import { startOrigin } from '../helpers/origin.js'

const EXAMPLES = new URL('../../examples/', import.meta.url).pathname
const binaries = kubectlBinaries()

/** An HTTPS GET over a fresh connection, as `curl -k --resolve host:port:127.0.0.1` makes it. */
function httpsGet (port: number, servername: string, path: string): Promise<{ status: number, body: string, subject: string }> {
  return new Promise((resolve, reject) => {
    const sock = tlsConnect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () => {
      const subject = sock.getPeerCertificate().subject?.CN ?? ''
      sock.write(`GET ${path} HTTP/1.1\r\nHost: ${servername}\r\nConnection: close\r\n\r\n`)
      const chunks: Buffer[] = []
      sock.on('data', c => chunks.push(c))
      sock.on('end', () => {
        const [head = '', body = ''] = Buffer.concat(chunks).toString('utf8').split('\r\n\r\n')
        resolve({ status: Number(head.split(' ')[1]), body, subject: String(subject) })
      })
    })
    sock.on('error', reject)
  })
}

const reason = noKubectlReason(binaries)
if (reason !== undefined) t.test(reason, { skip: reason }, async () => {})

for (const binary of binaries) {
  t.test(`kubectl ${binary.version}: the tutorial, verbatim`, async t => {
    const gw = await startTestGateway(t)
    const kubectl = kubectlFor(t, binary, gw.admin)
    const origin = await startOrigin(t, 'nginx', (_req, res) => { res.writeHead(200, { 'content-type': 'text/html' }); res.end('<h1>Welcome to nginx!</h1>\n') })
    const dir = join(kubectl.kubeconfig, '..')
    const k = async (...args: string[]): Promise<{ code: number, stdout: string, stderr: string }> => await kubectl.run(args)

    // $ kubectl api-resources: discovery lists what ingressd serves, with kubectl's short names
    const resources = await k('api-resources')
    t.equal(resources.code, 0, resources.stderr)
    t.match(resources.stdout, /^ingresses +ing +networking\.k8s\.io\/v1 +true +Ingress$/m)
    t.match(resources.stdout, /^services +svc +v1 +true +Service$/m)
    t.match(resources.stdout, /^secrets +v1 +true +Secret$/m)

    // $ kubectl apply -f ingress-basic.yaml   (the tutorial's extensions/v1beta1 file)
    t.same(await k('apply', '-f', join(EXAMPLES, 'ingress-basic.yaml')), { code: 0, stdout: 'ingress.extensions/basic created\n', stderr: '' }, 'apply creates')
    t.same(await k('apply', '-f', join(EXAMPLES, 'ingress-basic.yaml')), { code: 0, stdout: 'ingress.extensions/basic unchanged\n', stderr: '' }, 'apply again: unchanged')
    const edited = readFileSync(join(EXAMPLES, 'ingress-basic.yaml'), 'utf8').replace('servicePort: 80\n', 'servicePort: 8080\n')
    writeFileSync(join(dir, 'ingress-basic.yaml'), edited)
    t.same(await k('apply', '-f', join(dir, 'ingress-basic.yaml')), { code: 0, stdout: 'ingress.extensions/basic configured\n', stderr: '' }, 'apply an edit: configured')
    const read = JSON.parse((await k('get', 'ingress', 'basic', '-o', 'json')).stdout)
    t.equal(read.spec.rules[0].http.paths[0].backend.service.port.number, 8080, 'the edit is stored')
    t.same(await k('apply', '-f', join(EXAMPLES, 'ingress-basic.yaml')), { code: 0, stdout: 'ingress.extensions/basic configured\n', stderr: '' }, 'apply the original back')

    // The backends: Services and Endpoints from a manifest, as `kubectl expose` would have made them.
    const backends = ['service1', 'service2', 's1'].map(name => `apiVersion: v1\nkind: Service\nmetadata:\n  name: ${name}\nspec:\n  ports:\n  - port: 80\n    targetPort: ${origin.port}\n---\napiVersion: v1\nkind: Endpoints\nmetadata:\n  name: ${name}\nsubsets:\n- addresses:\n  - ip: 127.0.0.1\n  ports:\n  - port: ${origin.port}\n`).join('---\n')
    writeFileSync(join(dir, 'backends.yaml'), backends)
    const applied = await k('apply', '-f', join(dir, 'backends.yaml'))
    t.equal(applied.code, 0, applied.stderr)
    t.equal(applied.stdout, 'service/service1 created\nendpoints/service1 created\nservice/service2 created\nendpoints/service2 created\nservice/s1 created\nendpoints/s1 created\n')

    // $ curl -H 'Host: www.basic1.com' localhost/path1
    const page = await request(`${gw.http}/path1`, { headers: { host: 'www.basic1.com' } })
    t.equal(page.statusCode, 200)
    t.equal(await page.body.text(), '<h1>Welcome to nginx!</h1>\n')

    // $ kubectl describe ingress basic
    const described = await k('describe', 'ingress', 'basic')
    t.equal(described.code, 0, described.stderr)
    t.match(described.stdout, /^Name: +basic$/m)
    t.match(described.stdout, /^Namespace: +default$/m)
    t.match(described.stdout, /Host +Path +Backends/)
    t.match(described.stdout, /^ {2}www\.basic1\.com *$/m)
    t.match(described.stdout, new RegExp(`/path1 +service1:80 \\(127\\.0\\.0\\.1:${origin.port}\\)`))
    t.match(described.stdout, new RegExp(`/path2 +service2:80 \\(127\\.0\\.0\\.1:${origin.port}\\)`))
    t.match(described.stdout, /^ {2}www\.basic2\.com *$/m)

    // $ kubectl get ingress / ing, and the output formats
    const table = await k('get', 'ingress')
    t.equal(table.code, 0, table.stderr)
    t.match(table.stdout, /^NAME +CLASS +HOSTS +ADDRESS +PORTS +AGE\nbasic +<none> +www\.basic1\.com,www\.basic2\.com +127\.0\.0\.1 +80 +\d+s\n$/)
    t.same((await k('get', 'ing')).stdout.split('\n')[0], table.stdout.split('\n')[0], 'the short name ing')
    const yaml = await k('get', 'ingress', 'basic', '-o', 'yaml')
    t.match(yaml.stdout, /^apiVersion: networking\.k8s\.io\/v1\nkind: Ingress\n/)
    t.match(yaml.stdout, /name: service1/)
    const all = await k('get', 'ingress', '-A')
    t.match(all.stdout, /^NAMESPACE +NAME +CLASS +HOSTS +ADDRESS +PORTS +AGE\ndefault +basic +/)
    t.match((await k('get', 'ingress', '-o', 'wide')).stdout, /^NAME +CLASS +HOSTS +ADDRESS +PORTS +AGE\n/)
    t.match((await k('get', 'ingress', '-n', 'other')).stderr, /No resources found in other namespace\./)
    t.same(await k('label', 'ingress', 'basic', 'tier=web'), { code: 0, stdout: 'ingress.networking.k8s.io/basic labeled\n', stderr: '' })
    t.match((await k('get', 'ingress', '-l', 'tier=web')).stdout, /\nbasic +/)
    t.match((await k('get', 'ingress', '-l', 'tier=db')).stderr, /No resources found in default namespace\./)
    t.match((await k('get', 'ingress', '--field-selector', 'metadata.name=basic')).stdout, /\nbasic +/)
    t.match((await k('get', 'ingress', '--field-selector', 'metadata.name=other')).stderr, /No resources found/)

    // $ openssl req -x509 ... ; kubectl create secret tls my-https --key tls.key --cert tls.crt
    const material = await generateSelfSigned({ commonName: 'my-ssl', keyType: 'rsa', days: 365 })
    writeFileSync(join(dir, 'tls.crt'), material.cert)
    writeFileSync(join(dir, 'tls.key'), material.key)
    t.same(await k('create', 'secret', 'tls', 'my-https', '--key', join(dir, 'tls.key'), '--cert', join(dir, 'tls.crt')), { code: 0, stdout: 'secret/my-https created\n', stderr: '' })
    // $ kubectl describe secret my-https
    const secret = await k('describe', 'secret', 'my-https')
    t.equal(secret.code, 0, secret.stderr)
    t.match(secret.stdout, /^Type: +kubernetes\.io\/tls$/m)
    t.match(secret.stdout, new RegExp(`^tls\\.crt: +${Buffer.byteLength(material.cert)} bytes$`, 'm'))
    t.match(secret.stdout, new RegExp(`^tls\\.key: +${Buffer.byteLength(material.key)} bytes$`, 'm'))
    for (const args of [['describe', 'secret', 'my-https'], ['get', 'secret', 'my-https', '-o', 'yaml'], ['get', 'secret', 'my-https', '-o', 'json'], ['get', 'secrets']]) {
      const out = await k(...args)
      t.notMatch(out.stdout + out.stderr, /PRIVATE KEY|LS0tLS1CRUdJTiBQUklWQVRF/, `kubectl ${args.join(' ')}: the key never comes back`)
    }
    t.match((await k('get', 'secrets')).stdout, /^NAME +TYPE +DATA +AGE\nmy-https +kubernetes\.io\/tls +2 +/)
    // kubectl apply copies a manifest into its last-applied annotation: never a Secret's values.
    writeFileSync(join(dir, 'auth.yaml'), 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: basic-auth\ntype: Opaque\nstringData:\n  auth: "admin:$apr1$Uq2SO7rY$bA8RGoVd10bKxNuNbrPUV/"\n')
    t.same(await k('apply', '-f', join(dir, 'auth.yaml')), { code: 0, stdout: 'secret/basic-auth created\n', stderr: '' })
    for (const args of [['get', 'secret', 'basic-auth', '-o', 'yaml'], ['describe', 'secret', 'basic-auth']]) {
      const out = await k(...args)
      t.notMatch(out.stdout, /apr1|YWRtaW46JGFwcjE/, `kubectl ${args.join(' ')}: the value never comes back`)
    }
    t.match((await k('describe', 'secret', 'basic-auth')).stdout, /^auth: +43 bytes$/m)

    // $ kubectl apply -f ingress-ssl.yaml, then HTTPS through the gateway
    t.same(await k('apply', '-f', join(EXAMPLES, 'ingress-ssl.yaml')), { code: 0, stdout: 'ingress.extensions/basic-ssl created\n', stderr: '' })
    const secure = await httpsGet(gw.httpsPort, 'www.basic-ssl.com', '/')
    t.equal(secure.status, 200)
    t.equal(secure.subject, 'my-ssl', 'the secret\'s certificate is served')

    // $ kubectl get svc / endpoints; kubectl create service clusterip
    t.match((await k('get', 'svc')).stdout, /^NAME +TYPE +CLUSTER-IP +EXTERNAL-IP +PORT\(S\) +AGE\n(.*\n)*service1 +ClusterIP +/)
    t.match((await k('get', 'endpoints')).stdout, new RegExp(`^NAME +ENDPOINTS +AGE\n(.*\n)*service1 +127\\.0\\.0\\.1:${origin.port} +`))
    t.same(await k('create', 'service', 'clusterip', 'web', '--tcp=80:8080'), { code: 0, stdout: 'service/web created\n', stderr: '' })
    writeFileSync(join(dir, 'web-endpoints.yaml'), 'apiVersion: v1\nkind: Endpoints\nmetadata:\n  name: web\nsubsets:\n- addresses:\n  - ip: 127.0.0.1\n  ports:\n  - name: 80-8080\n    port: 8080\n')
    t.same(await k('apply', '-f', join(dir, 'web-endpoints.yaml')), { code: 0, stdout: 'endpoints/web created\n', stderr: '' })
    t.match((await k('get', 'svc', 'web')).stdout, /\nweb +ClusterIP +.* +80\/TCP +/)

    // $ kubectl delete ingress basic (later reads 404); kubectl delete -f FILE
    t.same(await k('delete', 'ingress', 'basic'), { code: 0, stdout: 'ingress.networking.k8s.io "basic" deleted\n', stderr: '' })
    const gone = await k('get', 'ingress', 'basic')
    t.equal(gone.code, 1)
    t.match(gone.stderr, /Error from server \(NotFound\): ingresses\.networking\.k8s\.io "basic" not found/)
    t.same(await k('delete', '-f', join(EXAMPLES, 'ingress-ssl.yaml')), { code: 0, stdout: 'ingress.extensions "basic-ssl" deleted\n', stderr: '' })
    const after = await request(`${gw.http}/path1`, { headers: { host: 'www.basic1.com' } })
    t.equal(after.statusCode, 404, 'the deleted ingress is no longer served')
    await after.body.text()
  })
}
