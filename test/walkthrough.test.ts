/**
 * The README's walkthrough of the seed tutorial, step by step, against a real gateway: the same
 * files from examples/, the same ingressd commands, and the requests the README makes with curl.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect as tlsConnect, type PeerCertificate } from 'node:tls'
import { connect as netConnect } from 'node:net'
import t from 'tap'
import { request } from 'undici'
import { startTestGateway } from './helpers/gateway.js'
import { startOrigin } from './helpers/origin.js'
import { client } from './cli/run.js'
import { generateSelfSigned } from '../src/resources/tls-material.js'

const EXAMPLES = new URL('../examples/', import.meta.url).pathname

/** One HTTPS request over a fresh TLS connection, as `curl -k --resolve host:port:127.0.0.1` makes it. */
function httpsGet (port: number, servername: string, path: string): Promise<{ status: number, body: string, cert: PeerCertificate, hsts?: string }> {
  return new Promise((resolve, reject) => {
    const sock = tlsConnect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () => {
      const cert = sock.getPeerCertificate()
      sock.write(`GET ${path} HTTP/1.1\r\nHost: ${servername}:${port}\r\nConnection: close\r\n\r\n`)
      const chunks: Buffer[] = []
      sock.on('data', c => chunks.push(c))
      sock.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        const [head = '', body = ''] = text.split('\r\n\r\n')
        resolve({ status: Number(head.split(' ')[1]), body, cert, hsts: /strict-transport-security: (.+)/i.exec(head)?.[1] })
      })
    })
    sock.on('error', reject)
  })
}

t.test('the seed walkthrough, HTTP half then HTTPS half', async t => {
  const gw = await startTestGateway(t)
  const ingressd = client(gw.admin)
  const nginx = await startOrigin(t, 'nginx', (_req, res) => { res.writeHead(200, { 'content-type': 'text/html', 'content-length': 27 }); res.end('<h1>Welcome to nginx!</h1>\n') })
  const dir = mkdtempSync(join(tmpdir(), 'ingressd-walkthrough-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))

  // $ ingressd apply -f examples/ingress-basic.yaml
  t.same(await ingressd('apply', '-f', join(EXAMPLES, 'ingress-basic.yaml')), { code: 0, stdout: 'ingress.extensions/basic created\n', stderr: '' })
  // With no backend yet, the route exists and answers 503.
  const early = await request(`${gw.http}/path1`, { headers: { host: 'www.basic1.com' } })
  t.equal(early.statusCode, 503)
  await early.body.text()

  // $ ingressd expose service1 --to 127.0.0.1:PORT   (kubectl expose deploy deployment-nginx --name service1)
  t.same(await ingressd('expose', 'service1', '--to', `127.0.0.1:${nginx.port}`), { code: 0, stdout: 'service/service1 exposed\n', stderr: '' })
  t.equal((await ingressd('expose', 'service2', '--to', `127.0.0.1:${nginx.port}`)).code, 0)

  // $ curl -H 'Host: www.basic1.com' localhost:8080/path1
  const page = await request(`${gw.http}/path1`, { headers: { host: 'www.basic1.com' } })
  t.equal(page.statusCode, 200)
  t.equal(await page.body.text(), '<h1>Welcome to nginx!</h1>\n')
  t.equal(nginx.seen.at(-1)?.url, '/', 'rewrite-target: / sends the backend /')
  // $ curl localhost:8080   -> the default backend's 404
  const missing = await request(`${gw.http}/`)
  t.equal(missing.statusCode, 404)
  await missing.body.text()

  // $ ingressd describe ingress basic
  const described = await ingressd('describe', 'ingress', 'basic')
  t.match(described.stdout, new RegExp(`/path1 +service1:80 \\(127\\.0\\.0\\.1:${nginx.port}\\)`))

  // $ openssl req -x509 -nodes -days 365 -newkey rsa:2048 -keyout tls.key -out tls.crt -subj "/CN=my-ssl"
  const first = await generateSelfSigned({ commonName: 'my-ssl', keyType: 'rsa', days: 365 })
  writeFileSync(join(dir, 'tls.crt'), first.cert)
  writeFileSync(join(dir, 'tls.key'), first.key)
  // $ ingressd create secret tls my-https --key tls.key --cert tls.crt
  t.same(await ingressd('create', 'secret', 'tls', 'my-https', '--key', join(dir, 'tls.key'), '--cert', join(dir, 'tls.crt')), { code: 0, stdout: 'secret/my-https created\n', stderr: '' })
  const secret = await ingressd('describe', 'secret', 'my-https')
  t.match(secret.stdout, `tls.key:  ${readFileSync(join(dir, 'tls.key')).length} bytes`)
  t.notMatch(secret.stdout, 'PRIVATE KEY')
  // $ ingressd apply -f examples/ingress-ssl.yaml ; ingressd expose s1 --to ...
  t.same(await ingressd('apply', '-f', join(EXAMPLES, 'ingress-ssl.yaml')), { code: 0, stdout: 'ingress.extensions/basic-ssl created\n', stderr: '' })
  t.equal((await ingressd('expose', 's1', '--to', `127.0.0.1:${nginx.port}`)).code, 0)

  // $ curl -vk --resolve www.basic-ssl.com:8443:127.0.0.1 https://www.basic-ssl.com:8443/
  const port = gw.gateway.addresses.https.port
  const secure = await httpsGet(port, 'www.basic-ssl.com', '/')
  t.equal(secure.status, 200)
  t.equal(secure.body, '<h1>Welcome to nginx!</h1>\n')
  t.equal(secure.cert.subject.CN, 'my-ssl', 'the certificate from the secret')
  t.equal(secure.hsts, 'max-age=15724800; includeSubDomains')
  // $ curl -I http://www.basic-ssl.com:8080/  -> 308 to https
  const redirect = await request(`${gw.http}/x?y=1`, { headers: { host: 'www.basic-ssl.com' } })
  t.equal(redirect.statusCode, 308)
  t.equal(redirect.headers.location, `https://www.basic-ssl.com:${port}/x?y=1`)
  await redirect.body.text()
  // $ curl -vk https://www.basic-ssl.com:8080/  -> curl: (35) ... wrong version number
  const wrongPort = await new Promise<string>((resolve) => {
    const sock = tlsConnect({ host: '127.0.0.1', port: gw.httpPort, servername: 'www.basic-ssl.com', rejectUnauthorized: false })
    sock.on('error', err => resolve((err as NodeJS.ErrnoException).code ?? err.message))
    sock.on('secureConnect', () => resolve('connected'))
  })
  t.match(wrongPort, /WRONG_VERSION_NUMBER|ECONNRESET|packet length too long/i, 'TLS to the HTTP port fails cleanly')
  // Plain HTTP to the HTTPS port is refused too, and the gateway is unharmed.
  const plainToTls = await new Promise<string>(resolve => {
    const sock = netConnect(port, '127.0.0.1', () => sock.write('GET / HTTP/1.1\r\nHost: www.basic-ssl.com\r\n\r\n'))
    let got = ''
    sock.on('data', d => { got += d.toString('latin1') })
    sock.on('close', () => resolve(got))
    sock.on('error', () => resolve(got))
  })
  t.notMatch(plainToTls, 'Welcome to nginx')

  // Renewing the certificate is one PUT (here: ingressd apply of the new secret); no restart.
  const renewed = await generateSelfSigned({ commonName: 'my-ssl-renewed', dnsNames: ['www.basic-ssl.com'], keyType: 'rsa', days: 365 })
  const put = await gw.api('PUT', '/api/v1/namespaces/default/secrets/my-https', { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'my-https' }, type: 'kubernetes.io/tls', stringData: { 'tls.crt': renewed.cert, 'tls.key': renewed.key } })
  t.equal(put.status, 200)
  const after = await httpsGet(port, 'www.basic-ssl.com', '/')
  t.equal(after.cert.subject.CN, 'my-ssl-renewed', 'the next connection gets the renewed certificate')
  t.equal(after.status, 200)
})
