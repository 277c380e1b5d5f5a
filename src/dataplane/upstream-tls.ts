/**
 * TLS to the upstream (backend-protocol HTTPS, GRPCS, and AUTO_HTTP from an HTTPS client): the
 * proxy-ssl-* annotations as ingress-nginx reads them (annotations/proxyssl), compiled once per
 * ingress into the options of a node:tls connection.
 *
 * Defaults are ingress-nginx's: the upstream's certificate is not verified (proxy-ssl-verify
 * "off") and no SNI is sent (proxy-ssl-server-name "off"). With verification on, the chain is
 * checked against the system's roots and the name against proxy-ssl-name (default: the Host sent
 * upstream, nginx's $proxy_host), to verify-depth intermediate certificates.
 */
import { checkServerIdentity, createSecureContext, type ConnectionOptions, type PeerCertificate, type SecureVersion } from 'node:tls'
import { Agent, buildConnector } from 'undici'
import { NGINX_PREFIX } from '../resources/annotation-prefix.js'
import { parseSecretReference, type AnnotationProblem, type AnnotationReader, type SecretLookup, type SecretMaterial } from './policies/policy.js'

export interface UpstreamTlsSpec {
  /** proxy-ssl-verify "on". */
  readonly verify: boolean
  /** proxy-ssl-verify-depth: intermediate certificates allowed in the chain (nginx: 1). */
  readonly verifyDepth: number
  /** proxy-ssl-name: the name verified and sent as SNI; undefined: the Host sent upstream. */
  readonly name?: string
  /** proxy-ssl-server-name "on": send SNI. */
  readonly serverName: boolean
  /** proxy-ssl-protocols, as the lowest and highest version. */
  readonly minVersion?: SecureVersion
  readonly maxVersion?: SecureVersion
  /** proxy-ssl-secret: a Secret of the ingress's namespace with ca.crt (verification) and/or tls.crt and tls.key (a client certificate). */
  readonly secret?: { readonly namespace: string, readonly name: string }
  /** proxy-ssl-ciphers: an OpenSSL cipher list (TLS 1.2 and below). */
  readonly ciphers?: string
  /** A stable key naming these settings, for connection pools. */
  readonly key: string
}

const PROTOCOLS: Record<string, SecureVersion> = { TLSv1: 'TLSv1', 'TLSv1.1': 'TLSv1.1', 'TLSv1.2': 'TLSv1.2', 'TLSv1.3': 'TLSv1.3' }
const ORDER: readonly SecureVersion[] = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3']
const HOST_NAME = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/i

/** The default: no verification, no SNI, Node's protocol versions. */
export const DEFAULT_UPSTREAM_TLS: UpstreamTlsSpec = Object.freeze({ verify: false, verifyDepth: 1, serverName: false, key: 'off' })

/** Parses the proxy-ssl-* keys (not proxy-ssl-secret); undefined when none is set. */
export function parseUpstreamTls (read: AnnotationReader, namespace: string): { spec?: UpstreamTlsSpec, problems: AnnotationProblem[] } {
  const problems: AnnotationProblem[] = []
  const secretValue = read('proxy-ssl-secret')
  const secret = secretValue === undefined ? undefined : parseSecretReference(`${NGINX_PREFIX}proxy-ssl-secret`, secretValue, namespace, 'ca.crt, and tls.crt with tls.key for a client certificate', problems)
  const onOff = (name: string): boolean | undefined => {
    const value = read(name)
    if (value === undefined) return undefined
    if (value === 'on' || value === 'off') return value === 'on'
    problems.push({ key: NGINX_PREFIX + name, message: `expected "on" or "off", got ${JSON.stringify(value)}` })
    return undefined
  }
  const verify = onOff('proxy-ssl-verify')
  const serverName = onOff('proxy-ssl-server-name')
  let verifyDepth: number | undefined
  const depth = read('proxy-ssl-verify-depth')
  if (depth !== undefined) {
    if (/^\d{1,2}$/.test(depth) && Number(depth) >= 1) verifyDepth = Number(depth)
    else problems.push({ key: `${NGINX_PREFIX}proxy-ssl-verify-depth`, message: `expected a whole number from 1 to 99, got ${JSON.stringify(depth)}` })
  }
  let name: string | undefined
  const nameValue = read('proxy-ssl-name')
  if (nameValue !== undefined && nameValue !== '') {
    if (HOST_NAME.test(nameValue)) name = nameValue.toLowerCase()
    else problems.push({ key: `${NGINX_PREFIX}proxy-ssl-name`, message: `expected a host name, got ${JSON.stringify(nameValue)}` })
  }
  let minVersion: SecureVersion | undefined
  let maxVersion: SecureVersion | undefined
  const protocols = read('proxy-ssl-protocols')
  if (protocols !== undefined) {
    const names = protocols.trim().split(/\s+/).filter(p => p !== '')
    const versions = names.map(p => PROTOCOLS[p])
    if (names.length === 0 || versions.some(v => v === undefined)) {
      problems.push({ key: `${NGINX_PREFIX}proxy-ssl-protocols`, message: `expected protocol names separated by spaces, each of TLSv1, TLSv1.1, TLSv1.2, TLSv1.3, got ${JSON.stringify(protocols)}` })
    } else {
      const sorted = (versions as SecureVersion[]).sort((a, b) => ORDER.indexOf(a) - ORDER.indexOf(b))
      minVersion = sorted[0]
      maxVersion = sorted[sorted.length - 1]
    }
  }
  let ciphers: string | undefined
  const cipherList = read('proxy-ssl-ciphers')
  if (cipherList !== undefined && cipherList !== '') {
    try {
      createSecureContext({ ciphers: cipherList })
      ciphers = cipherList
    } catch {
      problems.push({ key: `${NGINX_PREFIX}proxy-ssl-ciphers`, message: `expected an OpenSSL cipher list, like "ECDHE-RSA-AES128-GCM-SHA256:HIGH:!aNULL", got ${JSON.stringify(cipherList)}` })
    }
  }
  if (problems.length > 0 || (verify === undefined && serverName === undefined && verifyDepth === undefined && name === undefined && minVersion === undefined && ciphers === undefined && secret === undefined)) return { problems }
  const spec = {
    verify: verify ?? false,
    verifyDepth: verifyDepth ?? 1,
    serverName: serverName ?? false,
    ...(name === undefined ? {} : { name }),
    ...(minVersion === undefined ? {} : { minVersion, maxVersion }),
    ...(ciphers === undefined ? {} : { ciphers }),
    ...(secret === undefined ? {} : { secret })
  }
  return { spec: Object.freeze({ ...spec, key: JSON.stringify(spec) }), problems }
}

/** Counts the certificates above the leaf in a verified chain (issuerCertificate links; a self-signed root links to itself). */
function chainDepth (cert: PeerCertificate & { issuerCertificate?: PeerCertificate }): number {
  let depth = 0
  let current = cert
  while (current.issuerCertificate !== undefined && current.issuerCertificate !== current && depth < 100) {
    current = current.issuerCertificate
    depth++
  }
  return depth
}

/**
 * The node:tls options for one upstream connection. `host` is the Host sent upstream (nginx's
 * $proxy_host), the name checked and sent when proxy-ssl-name does not say otherwise.
 */
export function upstreamTlsOptions (spec: UpstreamTlsSpec, host: string, material?: SecretMaterial): ConnectionOptions {
  const name = spec.name ?? host
  const options: ConnectionOptions = { rejectUnauthorized: spec.verify }
  // As ingress-nginx reads the Secret: ca.crt verifies the upstream (with proxy-ssl-verify on), tls.crt and tls.key are the client certificate.
  const ca = material?.data['ca.crt']
  if (ca !== undefined && ca !== '') options.ca = ca
  const cert = material?.data['tls.crt']
  const key = material?.data['tls.key']
  if (cert !== undefined && cert !== '' && key !== undefined && key !== '') {
    options.cert = cert
    options.key = key
  }
  // An IP address is never sent as SNI (RFC 6066 3).
  if (spec.serverName && !/^[\d.]+$|:/.test(name)) options.servername = name
  if (spec.minVersion !== undefined) options.minVersion = spec.minVersion
  if (spec.maxVersion !== undefined) options.maxVersion = spec.maxVersion
  if (spec.ciphers !== undefined) options.ciphers = spec.ciphers
  if (spec.verify) {
    const depth = spec.verifyDepth
    options.checkServerIdentity = (_hostname, cert) => {
      const wrong = checkServerIdentity(name, cert)
      if (wrong !== undefined) return wrong
      // OpenSSL's verify depth (nginx's proxy_ssl_verify_depth): the certificates above the leaf, the root included.
      if (chainDepth(cert) > depth) return Object.assign(new Error(`the upstream's certificate chain is longer than proxy-ssl-verify-depth ${depth}`), { code: 'ERR_TLS_CERT_CHAIN_TOO_LONG' })
      return undefined
    }
  }
  return options
}

/** One upstream TLS setting as connections use it: the node:tls options and a key naming them. */
export interface BoundUpstreamTls {
  readonly key: string
  readonly options: ConnectionOptions
}

/**
 * What the proxy keeps for TLS to upstreams: the options built per route settings, upstream name
 * and Secret version (a Secret's decoded values are one object until it changes), and an undici
 * Agent per connect timeout and options, so HTTPS upstreams keep warm connections like plain ones.
 */
export class UpstreamTlsConnections {
  readonly #bound = new Map<string, BoundUpstreamTls>()
  readonly #agents = new Map<string, Agent>()
  readonly #materialIds = new WeakMap<SecretMaterial, number>()
  /** The version (material id) in use per Secret `namespace/name`: a newer one retires the older one's options and agents. */
  readonly #currentVersion = new Map<string, number>()
  #materials = 0

  /** `secrets` reads the Secrets of the table in use (the reloader's). */
  constructor (private readonly secrets: () => SecretLookup | undefined) {}

  /**
   * The TLS options for a route's upstream, `host` being the Host sent upstream; undefined when
   * proxy-ssl-secret names a Secret that is missing, holds neither ca.crt nor tls.crt with
   * tls.key, or does not load: such a route must not be proxied without the TLS it asks for.
   */
  settingsFor (spec: UpstreamTlsSpec | undefined, host: string | string[] | undefined): BoundUpstreamTls | undefined {
    spec ??= DEFAULT_UPSTREAM_TLS
    const name = spec.name ?? String(host ?? '').replace(/:\d+$/, '')
    let key = spec.serverName || spec.verify ? `${spec.key} ${name}` : spec.key
    let material: SecretMaterial | undefined
    if (spec.secret !== undefined) {
      material = this.secrets()?.(spec.secret.namespace, spec.secret.name)
      const data = material?.data
      if (material === undefined || data === undefined || ((data['ca.crt'] ?? '') === '' && ((data['tls.crt'] ?? '') === '' || (data['tls.key'] ?? '') === ''))) return undefined
      let id = this.#materialIds.get(material)
      if (id === undefined) this.#materialIds.set(material, id = ++this.#materials)
      const ref = `${spec.secret.namespace}/${spec.secret.name}`
      const previous = this.#currentVersion.get(ref)
      if (previous !== id) {
        this.#currentVersion.set(ref, id)
        // A rotated Secret: its older version's options and warm connections go, so a Secret that
        // changes every day does not leave an Agent behind each time.
        if (previous !== undefined) this.#retire(previous)
      }
      key += ` #${id}`
    }
    let bound = this.#bound.get(key)
    if (bound === undefined) {
      const options = upstreamTlsOptions(spec, name, material)
      try {
        // Checked once here rather than failing every connection: a PEM that does not load is the Secret's fault.
        createSecureContext(options)
      } catch {
        return undefined
      }
      bound = Object.freeze({ key, options })
      this.#bound.set(key, bound)
    }
    return bound
  }

  /** The undici Agent for HTTPS upstreams with these settings. */
  agentFor (connectTimeoutMs: number, tls: BoundUpstreamTls): Agent {
    const key = `${connectTimeoutMs} ${tls.key}`
    let agent = this.#agents.get(key)
    if (agent === undefined) {
      // undici would send the Host header as SNI; proxy-ssl-server-name decides instead (off: none).
      const connector = buildConnector({ timeout: connectTimeoutMs, ...tls.options } as buildConnector.BuildOptions)
      const servername = tls.options.servername
      // keepAliveTimeout as the plain agents have it (proxy.ts).
      agent = new Agent({ connect: (opts, callback) => connector({ ...opts, servername }, callback), keepAliveTimeout: 4000, keepAliveMaxTimeout: 4000 })
      this.#agents.set(key, agent)
    }
    return agent
  }

  /** How many Agents are open (for tests: rotations must not accumulate them). */
  get agentCount (): number {
    return this.#agents.size
  }

  /** Drops the options and closes the Agents built from one Secret version (requests in flight finish first). */
  #retire (id: number): void {
    const suffix = ` #${id}`
    for (const key of [...this.#bound.keys()]) if (key.endsWith(suffix)) this.#bound.delete(key)
    for (const [key, agent] of [...this.#agents]) {
      if (!key.endsWith(suffix)) continue
      this.#agents.delete(key)
      agent.close().catch(() => {})
    }
  }

  async close (): Promise<void> {
    await Promise.all([...this.#agents.values()].map(async a => await a.close()))
    this.#agents.clear()
  }
}
