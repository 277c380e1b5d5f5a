/**
 * The admin API over HTTPS (INGRESSD_ADMIN_TLS). kubectl (client-go) sends a bearer token only
 * over HTTPS, so a gateway that kubectl drives needs it.
 *
 * - `auto`: a CA is generated on the first start and kept in the store (gateway_state, like the
 *   data plane's default certificate), so restarts keep it and every kubeconfig made from it stays
 *   good. It issues the admin listener's certificate, which names every way a client may reach the
 *   admin API: the listen address, localhost, 127.0.0.1, ::1, the host name and
 *   INGRESSD_ADMIN_ALLOWED_HOSTS. That certificate is kept too, and issued again at start-up when
 *   it nears its end (30 days), when those names change, or when the CA was renewed.
 * - `file`: INGRESSD_ADMIN_TLS_CERT and INGRESSD_ADMIN_TLS_KEY, checked at start-up with the same
 *   checks as a TLS Secret's; a bad pair stops start-up naming the setting at fault.
 *
 * The CA's certificate is public: GET /ca.crt serves it without a token (as Kubernetes'
 * kube-root-ca.crt ConfigMap is readable by all), and `ingressd kubeconfig` embeds it. No private
 * key ever leaves the store and the listener: none is logged, returned or printed.
 */
import { X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { hostname as machineHostname, networkInterfaces } from 'node:os'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { Config } from '../config/config.js'
import { IngressdError } from '../errors.js'
import { StatusSchema } from '../resources/meta.js'
import { generateSelfSigned, inspectTlsMaterial, isSelfSigned, issuedBy, RENEW_BEFORE_MS, stillServable } from '../resources/tls-material.js'
import type { GatewayState } from '../store/gateway-state.js'
import { ref } from './resource-routes.js'

/** What the admin listener serves over TLS, and the CA its clients verify it with. */
export interface AdminTls {
  mode: 'auto' | 'file'
  /** Fastify's `https` option: the certificate chain (leaf first) and its key. Never logged. */
  serverOptions: { cert: string, key: string, minVersion: 'TLSv1.2' }
  /** PEM certificate of the CA that clients trust, served at GET /ca.crt; undefined when not known. */
  caPem: string | undefined
  /** SHA-256 fingerprint of caPem (colon-separated hex), as the start-up line shows it. */
  caFingerprint: string | undefined
  /** What a log line that includes this object shows: never the key. */
  toJSON: () => { mode: AdminTls['mode'], caFingerprint: string | undefined }
}

/** The names a serving certificate covers: SAN DNS names and IP addresses, each sorted. */
export interface AdminCertificateNames {
  dns: string[]
  ip: string[]
}

interface PemPair { cert: string, key: string }
interface StoredServing extends PemPair { names: AdminCertificateNames }

const CA_KEY = 'admin-tls-ca'
const SERVING_KEY = 'admin-tls-serving'
const ADMIN_CA_CN = 'ingressd admin CA'
const SERVING_CN = 'ingressd admin API'
const CA_DAYS = 3650
/** Serving certificates stay within the 825 days macOS and iOS accept from a CA a user added. */
const SERVING_DAYS = 825
const DNS_NAME = /^[a-z0-9]([-a-z0-9_]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9_]*[a-z0-9])?)*$/

/**
 * The admin listener's TLS as INGRESSD_ADMIN_TLS asks for it: undefined when off; with `auto`,
 * the store's CA and a serving certificate it issued (both generated when missing or due); with
 * `file`, the configured pair. Runs before any listener opens, so a bad file stops start-up with
 * INGRESSD_ERR_CONFIG naming the setting.
 */
export async function resolveAdminTls (config: Readonly<Config>, state: GatewayState, logger?: Logger): Promise<AdminTls | undefined> {
  const log = logger?.child({ component: 'admin' })
  if (config.adminTls === 'off') return undefined
  if (config.adminTls === 'file') return loadAdminTlsFiles(config.adminTlsCert ?? '', config.adminTlsKey ?? '', new Date(), log)
  return await ensureAdminCertificate(state, adminCertificateNames(config, machineHostname(), networkInterfaces()), new Date(), log)
}

/** The admin TLS made from a serving pair and the CA to publish, with a toJSON that leaves the key out of any log line. */
function adminTls (mode: AdminTls['mode'], serving: PemPair, caPem: string | undefined): AdminTls {
  const caFingerprint = caPem === undefined ? undefined : new X509Certificate(caPem).fingerprint256
  return {
    mode,
    serverOptions: { cert: serving.cert, key: serving.key, minVersion: 'TLSv1.2' },
    caPem,
    caFingerprint,
    toJSON: () => ({ mode, caFingerprint })
  }
}

/**
 * The names the `auto` certificate covers: localhost, 127.0.0.1 and ::1 always; the admin listen
 * address (every interface's address when it listens on all of them); the host name; and
 * INGRESSD_ADMIN_ALLOWED_HOSTS. Sorted and without repeats, so only a real change renews.
 */
export function adminCertificateNames (config: Pick<Config, 'adminAddr' | 'adminAllowedHosts'>, host: string, interfaces: ReturnType<typeof networkInterfaces>): AdminCertificateNames {
  const dns = new Set(['localhost'])
  const ip = new Set(['127.0.0.1', '::1'])
  const add = (name: string): void => {
    const bare = name.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '')
    if (isIP(bare) !== 0) ip.add(canonicalIp(bare))
    else if (DNS_NAME.test(bare)) dns.add(bare)
  }
  const listen = config.adminAddr.host
  if (listen === '0.0.0.0' || listen === '::') {
    for (const nic of Object.values(interfaces).flat()) {
      // Link-local IPv6 addresses need a zone, which no URL a client uses can carry.
      if (nic !== undefined && !(nic.family === 'IPv6' && /^fe80:/i.test(nic.address))) add(nic.address)
    }
  } else {
    add(listen)
  }
  add(host)
  for (const name of config.adminAllowedHosts) add(name)
  return { dns: [...dns].sort(), ip: [...ip].sort() }
}

/** An IPv6 address written the one way URLs write it (`::1`, not `0:0:0:0:0:0:0:1`); IPv4 as given. */
function canonicalIp (address: string): string {
  return isIP(address) === 6 ? new URL(`http://[${address}]/`).hostname.slice(1, -1) : address
}

function sameNames (a: AdminCertificateNames | undefined, b: AdminCertificateNames): boolean {
  return a !== undefined && JSON.stringify({ dns: a.dns, ip: a.ip }) === JSON.stringify({ dns: b.dns, ip: b.ip })
}

/** The store's CA (generated when missing or due) and the serving certificate it issued for `names`. */
export async function ensureAdminCertificate (state: GatewayState, names: AdminCertificateNames, now = new Date(), logger?: Logger): Promise<AdminTls> {
  // EC P-256, as the default certificate: generated in milliseconds, taken by every client.
  const ca = await state.ensure(CA_KEY, (pem: PemPair | undefined): pem is PemPair => stillServable(pem, now) && certificateOf(pem.cert)?.ca === true, async () => {
    const fresh = await generateSelfSigned({ commonName: ADMIN_CA_CN, isCA: true, keyType: 'ec', days: CA_DAYS, notBefore: now })
    logger?.info({ fingerprint: new X509Certificate(fresh.cert).fingerprint256 }, 'admin TLS: generated a CA, kept in the store')
    return fresh
  })
  const caCert = new X509Certificate(ca.cert)
  const current = (stored: StoredServing | undefined): stored is StoredServing => {
    if (stored === undefined || !sameNames(stored.names, names) || !stillServable(stored, now)) return false
    const cert = certificateOf(stored.cert)
    return cert !== undefined && issuedBy(cert, caCert)
  }
  const serving = await state.ensure(SERVING_KEY, current, async () => {
    // Never beyond the CA: the two are then renewed together at the start-up before the CA's end.
    const notAfter = new Date(Math.min(now.getTime() + SERVING_DAYS * 86_400_000, Date.parse(caCert.validTo)))
    const pem = await generateSelfSigned({ commonName: SERVING_CN, keyType: 'ec', dnsNames: names.dns, ipAddresses: names.ip, notBefore: now, notAfter, issuer: ca })
    logger?.info({ dnsNames: names.dns, ipAddresses: names.ip, notAfter: notAfter.toISOString() }, 'admin TLS: issued the admin API\'s certificate')
    return { ...pem, names }
  })
  return adminTls('auto', { cert: serving.cert, key: serving.key }, ca.cert)
}

function certificateOf (pem: string): X509Certificate | undefined {
  try {
    return new X509Certificate(pem)
  } catch {
    return undefined
  }
}

/**
 * INGRESSD_ADMIN_TLS=file: reads and checks the pair. The CA published is the chain's last
 * certificate (the issuer furthest up that the file holds), or the leaf when it is self-signed;
 * none when the file holds a lone leaf from an issuer it does not include.
 */
export function loadAdminTlsFiles (certPath: string, keyPath: string, now = new Date(), logger?: Logger): AdminTls {
  const cert = readSetting('INGRESSD_ADMIN_TLS_CERT', certPath)
  const key = readSetting('INGRESSD_ADMIN_TLS_KEY', keyPath)
  const inspection = inspectTlsMaterial(cert, key, now)
  if (!inspection.ok) {
    const problem = inspection.problems[0]
    const [name, path] = problem?.field === 'tls.key' ? ['INGRESSD_ADMIN_TLS_KEY', keyPath] : ['INGRESSD_ADMIN_TLS_CERT', certPath]
    // The checks speak of a Secret's tls.crt and tls.key; here they are the two files.
    const message = inspection.problems.map(p => p.message.replace(/tls\.crt/g, 'the certificate file').replace(/tls\.key/g, 'the key file')).join(' ')
    throw new IngressdError('INGRESSD_ERR_CONFIG', `${name}=${path} cannot serve the admin API: ${message}`)
  }
  const { info } = inspection
  if (Date.parse(info.notAfter) - now.getTime() < RENEW_BEFORE_MS) {
    logger?.warn({ notAfter: info.notAfter, subject: info.subject }, `admin TLS: the certificate in INGRESSD_ADMIN_TLS_CERT ${info.expired ? 'has expired' : 'expires within 30 days'}`)
  }
  const chain = [...cert.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)].map(m => new X509Certificate(m[0]))
  const top = chain[chain.length - 1] as X509Certificate
  const ca = chain.length > 1 || isSelfSigned(top) ? top.toString() : undefined
  return adminTls('file', { cert, key }, ca)
}

function readSetting (name: string, path: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch (err) {
    const code = (err as { code?: string }).code ?? (err as Error).message
    throw new IngressdError('INGRESSD_ERR_CONFIG', `${name}=${path} cannot be read (${code}): it must be the path of a PEM file readable by the gateway`)
  }
}

/**
 * GET /ca.crt: the PEM certificate of the CA the admin API's certificate chains to, open to all
 * (it is public, and a client needs it before it can trust anything the API says); 404 when the
 * admin API serves plain HTTP or a certificate whose CA it does not know. app.ts lists the path
 * among those that need no token.
 */
export function registerAdminCaRoute (app: FastifyInstance, caPem: string | undefined): void {
  app.get('/ca.crt', {
    schema: {
      tags: ['Admin TLS'],
      operationId: 'getAdminCa',
      summary: 'The PEM certificate of the CA the admin API\'s certificate chains to (INGRESSD_ADMIN_TLS); `ingressd kubeconfig` embeds it',
      security: [],
      response: {
        200: { description: 'The CA\'s certificate, PEM', content: { 'text/plain': { schema: { type: 'string' } } } },
        404: { description: 'No CA: the admin API serves plain HTTP, or a certificate file without its issuer', content: { 'application/json': { schema: ref(StatusSchema) } } }
      }
    }
  }, async (_req, reply) => {
    if (caPem === undefined) {
      throw new IngressdError('INGRESSD_ERR_NOT_FOUND', 'the admin API publishes no CA: INGRESSD_ADMIN_TLS is off, or INGRESSD_ADMIN_TLS_CERT holds a lone certificate from an issuer it does not include')
    }
    return reply.type('text/plain; charset=utf-8').send(caPem)
  })
}
