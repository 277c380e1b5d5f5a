/**
 * TLS test helpers: manifests for a backend and a TLS Secret, a bare handshake that reports the
 * certificate the gateway presented, and HTTPS requests (HTTP/1.1 through node:https) that report
 * the certificate and the socket they went over.
 */
import { spawn } from 'node:child_process'
import { request as httpsRequest, type Agent } from 'node:https'
import { connect, type ConnectionOptions, type PeerCertificate, type TLSSocket } from 'node:tls'
import type { Origin } from './origin.js'

/** A Service `name` (port 80) whose Endpoints are the origins on 127.0.0.1. */
export function backend (name: string, origins: Origin[], namespace = 'default'): unknown[] {
  return [
    { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace }, spec: { ports: [{ name: 'http', port: 80, targetPort: 'http' }] } },
    { apiVersion: 'v1', kind: 'Endpoints', metadata: { name, namespace }, subsets: origins.map(o => ({ addresses: [{ ip: '127.0.0.1' }], ports: [{ name: 'http', port: o.port }] })) }
  ]
}

/** A kubernetes.io/tls Secret holding `pem`. */
export function tlsSecret (name: string, pem: { cert: string, key: string }, namespace = 'default'): Record<string, unknown> {
  return { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace }, type: 'kubernetes.io/tls', stringData: { 'tls.crt': pem.cert, 'tls.key': pem.key } }
}

/** What a client saw of the gateway's certificate. */
export interface SeenCertificate {
  cn: string | undefined
  fingerprint: string
  alpn: string | false | null
  protocol: string | null
}

function seen (socket: TLSSocket): SeenCertificate {
  const cert: PeerCertificate = socket.getPeerCertificate()
  const cn = cert.subject?.CN
  return { cn: Array.isArray(cn) ? cn.join(',') : cn, fingerprint: cert.fingerprint256, alpn: socket.alpnProtocol, protocol: socket.getProtocol() }
}

/**
 * One TLS handshake with the HTTPS listener; resolves with what the client saw, or rejects with
 * the client's error. `servername` undefined or '' sends no SNI.
 */
export async function handshake (port: number, servername?: string, opts: ConnectionOptions = {}): Promise<SeenCertificate> {
  return await new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['h2', 'http/1.1'], ...opts, servername: servername ?? '' }, () => {
      const result = seen(socket)
      socket.end()
      resolve(result)
    })
    socket.on('error', reject)
  })
}

export interface HttpsAnswer {
  status: number
  headers: Record<string, string | string[] | undefined>
  text: string
  json: any
  certificate: SeenCertificate
  socket: TLSSocket
  /** True when the request went over a kept-alive connection opened before. */
  reused: boolean
}

/**
 * An HTTP/1.1 request over TLS: SNI `servername` ('' for none), Host `host`. Pass a keep-alive
 * agent to keep the connection open between requests.
 */
export async function httpsGet (port: number, opts: { servername: string, host: string, path?: string, method?: string, headers?: Record<string, string>, agent?: Agent }): Promise<HttpsAnswer> {
  return await new Promise((resolve, reject) => {
    const req = httpsRequest({
      host: '127.0.0.1',
      port,
      method: opts.method ?? 'GET',
      path: opts.path ?? '/',
      servername: opts.servername,
      rejectUnauthorized: false,
      headers: { host: opts.host, ...opts.headers },
      ...(opts.agent === undefined ? { agent: false } : { agent: opts.agent })
    }, res => {
      // Read now: a keep-alive agent takes the socket back once the body has been read.
      const socket = res.socket as TLSSocket
      const certificate = seen(socket)
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let json: any
        try { json = JSON.parse(text) } catch {}
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json, certificate, socket, reused: req.reusedSocket })
      })
    })
    req.on('error', reject)
    req.end()
  })
}

/** A certificate and its PKCS#8 key, PEM. */
export interface IssuedCertificate {
  cert: string
  key: string
}

/**
 * Issues an EC P-256 certificate: `subject` as written in RFC 4514 form, most general first as it
 * is encoded ('C=US, O=Example, CN=client'); signed by `issuer`, else self-signed. A CA
 * (`ca: true`) can sign others; a leaf is for client authentication, and with `names` for server
 * authentication too, naming them (DNS names and IPv4 addresses) as subjectAltName.
 */
export async function issueCertificate (opts: { subject: string, issuer?: IssuedCertificate, ca?: boolean, names?: string[], notBefore?: Date, notAfter?: Date }): Promise<IssuedCertificate> {
  const x509 = await import('@peculiar/x509')
  const { webcrypto, createPrivateKey, KeyObject, randomBytes } = await import('node:crypto')
  const subtle = webcrypto.subtle
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256' }
  const keys = await subtle.generateKey(algorithm, true, ['sign', 'verify'])
  const issuerCert = opts.issuer === undefined ? undefined : new x509.X509Certificate(opts.issuer.cert)
  const signingKey = opts.issuer === undefined
    ? keys.privateKey
    : await subtle.importKey('pkcs8', createPrivateKey(opts.issuer.key).export({ type: 'pkcs8', format: 'der' }), algorithm, false, ['sign'])
  const extensions: InstanceType<typeof x509.Extension>[] = opts.ca === true
    ? [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true)]
    : [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension(opts.names === undefined ? [x509.ExtendedKeyUsage.clientAuth] : [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        ...(opts.names === undefined ? [] : [new x509.SubjectAlternativeNameExtension(opts.names.map(n => /^[\d.]+$/.test(n) ? { type: 'ip' as const, value: n } : { type: 'dns' as const, value: n }))])
      ]
  extensions.push(await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, webcrypto))
  if (issuerCert !== undefined) extensions.push(await x509.AuthorityKeyIdentifierExtension.create(issuerCert.publicKey, false, webcrypto))
  const notBefore = opts.notBefore ?? new Date(Date.now() - 60_000)
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomBytes(8).toString('hex').replace(/^[89a-f]/, '1'),
    subject: opts.subject,
    issuer: issuerCert?.subject ?? opts.subject,
    notBefore,
    notAfter: opts.notAfter ?? new Date(notBefore.getTime() + 30 * 86_400_000),
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    publicKey: keys.publicKey,
    signingKey,
    extensions
  }, webcrypto)
  return { cert: cert.toString('pem') + '\n', key: KeyObject.from(keys.privateKey).export({ type: 'pkcs8', format: 'pem' }) as string }
}

/** An Opaque Secret holding a CA bundle under ca.crt, as `kubectl create secret generic --from-file=ca.crt` makes it. */
export function caSecret (name: string, caPem: string, namespace = 'default'): Record<string, unknown> {
  return { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace }, type: 'Opaque', stringData: { 'ca.crt': caPem } }
}

export interface MtlsAnswer {
  status: number
  headers: Record<string, string | string[] | undefined>
  text: string
  json: any
  /** The TLS session, to resume a later connection with. */
  session: Buffer | undefined
  reused: boolean
}

/**
 * One HTTP/1.1 request over a new TLS connection, presenting the client certificate in `tls`
 * (cert, key) when given, resuming `tls.session` when given. Resolves with the session the
 * connection ended with, for the next one to resume.
 */
export async function mtlsGet (port: number, opts: { servername: string, host: string, path?: string, headers?: Record<string, string>, tls?: ConnectionOptions }): Promise<MtlsAnswer> {
  return await new Promise((resolve, reject) => {
    let session: Buffer | undefined
    const socket = connect({ host: '127.0.0.1', port, servername: opts.servername, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'], ...opts.tls })
    socket.on('session', (s: Buffer) => { session = s })
    socket.on('error', reject)
    socket.once('secureConnect', () => {
      const req = httpsRequest({ createConnection: () => socket, host: '127.0.0.1', port, path: opts.path ?? '/', headers: { host: opts.host, connection: 'close', ...opts.headers } }, res => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8')
          let json: any
          try { json = JSON.parse(text) } catch {}
          const reused = socket.isSessionReused()
          // TLS 1.3 tickets arrive after the handshake: wait for the close so the last one is kept.
          const done = (): void => resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json, session, reused })
          if (socket.destroyed) done()
          else socket.once('close', done)
        })
      })
      req.on('error', reject)
      req.end()
    })
  })
}

/** One HTTP/2 request over a new session, presenting the client certificate in `tls` when given. */
export async function mtlsH2Get (port: number, opts: { servername: string, host: string, path?: string, headers?: Record<string, string>, tls?: ConnectionOptions }): Promise<{ status: number, headers: Record<string, unknown>, text: string, json: any }> {
  const { connect: h2connect } = await import('node:http2')
  const client = h2connect(`https://127.0.0.1:${port}`, { servername: opts.servername, rejectUnauthorized: false, ...opts.tls })
  try {
    return await new Promise((resolve, reject) => {
      client.on('error', reject)
      const stream = client.request({ ':method': 'GET', ':path': opts.path ?? '/', ':authority': opts.host, ...opts.headers })
      let headers: Record<string, unknown> = {}
      let text = ''
      stream.on('response', h => { headers = h })
      stream.setEncoding('utf8')
      stream.on('data', (c: string) => { text += c })
      stream.on('end', () => {
        let json: any
        try { json = JSON.parse(text) } catch {}
        resolve({ status: Number(headers[':status']), headers, text, json })
      })
      stream.on('error', reject)
    })
  } finally {
    client.close()
  }
}

/** `openssl s_client -msg` against a TLS listener: the handshake messages as text, and the CA names of a CertificateRequest. */
export async function sClient (port: number, servername: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', servername, '-msg'], { stdio: ['pipe', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (c: Buffer) => { out += c.toString() })
    child.stderr.on('data', (c: Buffer) => { out += c.toString() })
    child.on('error', reject)
    child.on('close', () => resolve(out))
    child.stdin.end()
  })
}
