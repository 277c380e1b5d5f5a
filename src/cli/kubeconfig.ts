/**
 * `ingressd kubeconfig`: prints a kubeconfig with which the real kubectl drives a running
 * gateway's admin API. kubectl sends a bearer token only over HTTPS, so the admin API serves TLS
 * (INGRESSD_ADMIN_TLS) and the kubeconfig carries the CA that verifies it: the file given with
 * --certificate-authority (or INGRESSD_ADMIN_CA), else the one the admin API publishes at
 * GET /ca.crt. That one is fetched without verification (there is nothing to verify it with yet),
 * so its fingerprint is printed to compare with the gateway's start-up line, and the certificate
 * the admin API presents is checked to chain to it.
 */
import { X509Certificate } from 'node:crypto'
import { request as httpsRequest } from 'node:https'
import { isIP } from 'node:net'
import type { PeerCertificate, TLSSocket } from 'node:tls'
import { parseArgs } from 'node:util'
import { stringify } from 'yaml'
import { issuedBy } from '../resources/tls-material.js'
import { clientOptions, DEFAULT_SERVER, type ClientFlags } from './client.js'
import type { CliIo } from './verbs.js'

export const KUBECONFIG_USAGE = `Print a kubeconfig (YAML) with which kubectl drives this gateway's admin API.

Usage: ingressd kubeconfig [--server URL] [--token TOKEN] [--name NAME]
                           [--certificate-authority FILE | --insecure-skip-tls-verify]

  --server URL                  the admin API as kubectl will reach it (env INGRESSD_SERVER, default ${DEFAULT_SERVER});
                                kubectl sends the token only to an https:// server (INGRESSD_ADMIN_TLS)
  --token TOKEN                 the admin bearer token (env INGRESSD_ADMIN_TOKEN)
  --name NAME                   the cluster, user and context name (default ingressd)
  --certificate-authority FILE  the CA to embed (env INGRESSD_ADMIN_CA); default: the one the admin
                                API serves at /ca.crt, fetched without verification: compare the
                                fingerprint printed with the one in the gateway's start-up line
  --insecure-skip-tls-verify    make kubectl skip verifying the admin API's certificate

Example:
  (umask 077; ingressd kubeconfig --server https://127.0.0.1:8001 --token "$TOKEN" > ingressd.kubeconfig)
  KUBECONFIG=ingressd.kubeconfig kubectl get ingresses
`

/** What the admin API answered at /ca.crt, and the certificate chain it presented (leaf first). */
interface FetchedCa {
  status: number
  body: string
  presented: X509Certificate[]
}

/** GET /ca.crt without verifying the server (the CA is what verification needs). */
async function fetchCa (server: string, host: string): Promise<FetchedCa> {
  const url = new URL('/ca.crt', `${server}/`)
  return await new Promise((resolve, reject) => {
    const req = httpsRequest(url, {
      rejectUnauthorized: false,
      agent: false,
      ...(isIP(host) === 0 ? { servername: host } : {}),
      timeout: 10_000
    }, res => {
      const presented = chainOf((res.socket as TLSSocket).getPeerCertificate(true))
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { if (body.length < 1_000_000) body += chunk })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, presented }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')))
    req.on('error', reject)
    req.end()
  })
}

/** The presented certificates, leaf first, up to the first self-issued one. */
function chainOf (peer: PeerCertificate & { issuerCertificate?: PeerCertificate }): X509Certificate[] {
  const chain: X509Certificate[] = []
  let cert: (PeerCertificate & { issuerCertificate?: PeerCertificate }) | undefined = peer
  while (cert?.raw !== undefined && chain.length < 10) {
    const x509 = new X509Certificate(cert.raw)
    if (chain.some(c => c.fingerprint256 === x509.fingerprint256)) break
    chain.push(x509)
    cert = cert.issuerCertificate
  }
  return chain
}

/** Why kubectl would refuse `presented` with `ca` for `host`, or undefined when it accepts it. */
export function verificationProblem (presented: X509Certificate[], ca: X509Certificate, host: string): string | undefined {
  const leaf = presented[0]
  if (leaf === undefined) return 'the admin API presented no certificate'
  // As Go's verifier does, any certificate of the CA file is a trust anchor, intermediate or root.
  const anchored = presented.some(cert => cert.fingerprint256 === ca.fingerprint256 || issuedBy(cert, ca))
  if (!anchored) return `the CA (${ca.fingerprint256}) did not issue the certificate the admin API presents (${leaf.subject.replace(/\n/g, ', ')}, issued by ${leaf.issuer.replace(/\n/g, ', ')})`
  const covered = isIP(host) !== 0 ? leaf.checkIP(host) : leaf.checkHost(host)
  if (covered === undefined) return `the admin API's certificate does not name ${host} (it names ${leaf.subjectAltName ?? 'nothing'}); add the name to INGRESSD_ADMIN_ALLOWED_HOSTS and restart the gateway, or use a --server it names`
  return undefined
}

/** The kubeconfig document, as kubectl's own `config view --raw` lays it out. */
export function kubeconfigDocument (opts: { name: string, server: string, token?: string, caPem?: string, insecure?: boolean }): Record<string, unknown> {
  const cluster: Record<string, unknown> = { server: opts.server }
  if (opts.caPem !== undefined) cluster['certificate-authority-data'] = Buffer.from(opts.caPem, 'utf8').toString('base64')
  if (opts.insecure === true) cluster['insecure-skip-tls-verify'] = true
  return {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: opts.name, cluster }],
    // Without a token (an admin API on loopback without one), a user name alone: given no
    // credentials at all, kubectl stops to prompt for a user name and password. The admin API
    // ignores the Basic header it then sends (with a token set, it answers 401 as to no token).
    users: [{ name: opts.name, user: opts.token === undefined ? { username: opts.name } : { token: opts.token } }],
    contexts: [{ name: opts.name, context: { cluster: opts.name, user: opts.name, namespace: 'default' } }],
    'current-context': opts.name,
    preferences: {}
  }
}

/** Runs `ingressd kubeconfig`; returns the exit code (1 on any error, as the client verbs). */
export async function runKubeconfig (argv: string[], io: CliIo): Promise<number> {
  const fail = (message: string, usage = false): number => {
    io.stderr.write(`error: ${message}\n${usage ? 'See \'ingressd kubeconfig --help\' for usage.\n' : ''}`)
    return 1
  }
  let values: ClientFlags & { name?: string, help?: boolean }
  try {
    values = parseArgs({
      args: argv,
      options: { server: { type: 'string' }, token: { type: 'string' }, name: { type: 'string' }, 'certificate-authority': { type: 'string' }, 'insecure-skip-tls-verify': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
      strict: true
    }).values
  } catch (err) {
    if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true) return fail((err as Error).message.split('\n')[0] ?? '', true)
    throw err
  }
  if (values.help === true) {
    io.stdout.write(KUBECONFIG_USAGE)
    return 0
  }
  const name = values.name ?? 'ingressd'
  if (!/^[A-Za-z0-9][-A-Za-z0-9_.@]*$/.test(name)) return fail(`--name must be letters, digits, '-', '_', '.' or '@', not "${name}"`, true)
  const connection = clientOptions(values, io.env)
  if ('usage' in connection) return fail(connection.usage, true)
  const { server, insecure } = connection
  const token = connection.token === '' ? undefined : connection.token
  let caPem = connection.ca
  if (server.startsWith('http://')) {
    if (token !== undefined) io.stderr.write('Warning: kubectl sends no token to an http:// server; serve the admin API over HTTPS (INGRESSD_ADMIN_TLS=auto) and pass --server https://...\n')
    caPem = undefined
  } else if (insecure !== true && caPem === undefined) {
    const host = new URL(server).hostname.replace(/^\[(.*)\]$/, '$1')
    let fetched: FetchedCa
    try {
      fetched = await fetchCa(server, host)
    } catch (err) {
      return fail(`cannot reach the admin API at ${server} (${(err as { code?: string }).code ?? (err as Error).message})`)
    }
    if (fetched.status === 404) {
      io.stderr.write(`Note: ${server} publishes no CA at /ca.crt (its certificate comes from INGRESSD_ADMIN_TLS_CERT without its issuer): the kubeconfig trusts the system's CAs; if a private CA issued the certificate, pass --certificate-authority FILE\n`)
    } else if (fetched.status !== 200 || !fetched.body.includes('-----BEGIN CERTIFICATE-----')) {
      return fail(`${server}/ca.crt answered HTTP ${fetched.status} without a PEM certificate; is this an ingressd admin API with INGRESSD_ADMIN_TLS on?`)
    } else {
      const ca = new X509Certificate(fetched.body)
      const problem = verificationProblem(fetched.presented, ca, host)
      if (problem !== undefined) return fail(`kubectl would not trust ${server}: ${problem}`)
      caPem = fetched.body
      io.stderr.write(`Fetched the admin API's CA from ${server}/ca.crt without verifying it (nothing to verify it with yet).\nCA SHA-256 fingerprint: ${ca.fingerprint256}\nCompare it with "adminCa" in the gateway's start-up log line before you use this kubeconfig.\n`)
    }
  }
  const document = kubeconfigDocument({ name, server, ...(token === undefined ? {} : { token }), ...(caPem === undefined ? {} : { caPem }), ...(insecure === true ? { insecure } : {}) })
  io.stdout.write(stringify(document, { indentSeq: false, lineWidth: 0 }))
  return 0
}
