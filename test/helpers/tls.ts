/**
 * TLS test helpers: manifests for a backend and a TLS Secret, a bare handshake that reports the
 * certificate the gateway presented, and HTTPS requests (HTTP/1.1 through node:https) that report
 * the certificate and the socket they went over.
 */
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
