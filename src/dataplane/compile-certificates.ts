/**
 * Compiles the SNI table from the same store snapshot as the route table: every served ingress's
 * `spec.tls[]` hosts mapped to the `kubernetes.io/tls` Secret it names (same namespace), plus the
 * default certificate. It also says, per ingress and per Secret, what is wrong with what is
 * served: a Secret that is missing, a certificate that has expired or does not cover a host.
 * Those are served anyway (as ingress-nginx serves them) and reported, never refused.
 *
 * Each Secret version is checked once (certificate and key parsed, key-pair and chain checked,
 * names and validity read) and what serving needs is kept while its resourceVersion stays the same,
 * so a reload costs Map lookups, not parsing. No TLS context is built here, except the default
 * certificate's: the SNICallback builds a certificate's context on the first handshake that asks
 * for one of its names, in a TlsContextCache that this compiler owns, keyed by Secret version and
 * bounded, so contexts outlive recompiles and are dropped when their Secret changes or goes.
 *
 * The same pass gives each host its client-certificate settings (auth-tls-*, see
 * policies/client-cert.ts): they are per host in ingress-nginx, and the handshake needs them.
 */
import type { SecureContext } from 'node:tls'
import type { Logger } from 'pino'
import { IngressdError } from '../errors.js'
import { NGINX_PREFIX } from '../resources/annotation-prefix.js'
import type { Condition } from '../resources/meta.js'
import type { Ingress } from '../resources/ingress.js'
import type { Secret } from '../resources/secret.js'
import { CERT_KEY, certificateCovers, checkTlsMaterial, type ServingInfo } from '../resources/tls-material.js'
import { ageOf, type IngressReport } from './compile.js'
import { bindClientAuth, clientAuthSignature, deniedClientAuth, parseClientCert } from './policies/client-cert.js'
import type { SecretLookup } from './policies/policy.js'
import { secretLookup } from './secret-material.js'
import { createSniTable, TlsContextCache, type ClientAuth, type ClientAuthTable, type ServedCertificate, type SniTable } from './sni-table.js'
import { createCertificateContext, type PemPair } from './tls-options.js'

/** What the certificates are compiled from: read in the same transaction as the route snapshot. */
export interface TlsSnapshot {
  ingresses: Ingress[]
  secrets: Secret[]
  /** Private keys by `namespace/name` (ObjectStore.privateKeys()). */
  privateKeys: ReadonlyMap<string, string>
  /** The write-only values of Secrets of other types (an Opaque Secret's ca.crt), as secret-material.ts reads them. */
  secretValues?: ReadonlyMap<string, string>
}

export type CertificateProblemReason = 'SecretNotFound' | 'SecretUnusable' | 'CertificateExpired' | 'CertificateNotYetValid' | 'HostNotCovered' | 'HostClaimedByOlderIngress' |
  'ClientCASecretNotFound' | 'ClientCAUnusable' | 'ClientAuthInvalid' | 'ClientAuthClaimedByOlderIngress'

/** One thing wrong with the certificate an ingress's TLS host is served with. */
export interface CertificateProblem {
  /** The TLS host concerned ('' when the problem is the Secret's, whatever the host). */
  host: string
  /** `namespace/name` of the Secret. */
  secret: string
  reason: CertificateProblemReason
  message: string
}

export interface CertificateCompileResult {
  table: SniTable
  /** Problems per ingress, by `namespace/name`; ingresses without problems are absent. */
  ingressProblems: ReadonlyMap<string, readonly CertificateProblem[]>
  /** The status the data plane reports for every Secret in the snapshot. */
  secretStatuses: { namespace: string, name: string, uid: string | undefined, status: Record<string, unknown> }[]
}

export interface CertificateCompilerOptions {
  /** `namespace/name` of the Secret to serve by default (INGRESSD_DEFAULT_CERT). */
  defaultSecret?: string | undefined
  /** The gateway's generated default certificate, used when `defaultSecret` is unset or unusable. */
  generated: PemPair
  logger?: Logger
  /** The clock expiry is judged by. */
  now?: () => Date
  /** Most TLS contexts kept at once (least recently used out); default DEFAULT_CONTEXT_CACHE_SIZE (1,000). */
  contextCacheSize?: number
}

/** Where the generated default certificate comes from, in statuses and logs. */
export const GENERATED_SOURCE = '(generated)'

/** A Secret version's certificate as checked (no context), or why it cannot be served. */
type Built = { ok: true, served: ServedCertificate } | { ok: false, message: string }

interface CacheEntry {
  resourceVersion: string
  built: Built
}

/** What a status says when OpenSSL would not load a certificate that otherwise checked out. */
const OPENSSL_REFUSED = 'OpenSSL refused the certificate or key'

/** What one Secret is used for in one compile, for its status. */
interface SecretUse {
  hosts: Set<string>
  uncovered: string[]
}

/** Route-compile reasons for which an ingress takes no part in serving, TLS included. */
const NOT_TAKING_PART = new Set(['IngressClassNotServed', 'Invalid'])

const NO_VALUES: ReadonlyMap<string, string> = new Map()
const AUTH_TLS_SECRET = `${NGINX_PREFIX}auth-tls-secret`

/** A served ingress, with what orders it: the oldest wins a host. */
interface Candidate { ing: Ingress, id: string, age: number }

function byAge (a: Candidate, b: Candidate): number {
  return a.age - b.age || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
}

/** The rule hosts of an ingress, normalized; '' for a host-less rule. */
function ruleHosts (ing: Ingress): Set<string> {
  const hosts = new Set<string>()
  for (const rule of Array.isArray(ing?.spec?.rules) ? ing.spec.rules : []) hosts.add(normalizeTlsHost(rule?.host))
  return hosts
}

/** True when two settings would answer every request alike. */
function sameClientAuth (a: ClientAuth, b: ClientAuth): boolean {
  return clientAuthSignature(a) === clientAuthSignature(b) && a.depth === b.depth && a.passCertificate === b.passCertificate &&
    a.errorPage === b.errorPage && a.matchCn?.source === b.matchCn?.source && a.denied === b.denied
}

/** Each host's settings as the handshake uses them, to tell whether a new table changed any. */
function clientAuthSignatures (table: ClientAuthTable | undefined): Map<string, string> {
  const out = new Map<string, string>()
  if (table === undefined) return out
  for (const [host, auth] of table.exact) if (auth !== null) out.set(`=${host}`, clientAuthSignature(auth))
  for (const [host, auth] of table.wildcards) if (auth !== null) out.set(`*${host}`, clientAuthSignature(auth))
  if (table.catchAll !== undefined) out.set('', clientAuthSignature(table.catchAll))
  return out
}

function sameSignatures (a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>): boolean {
  if (a.size !== b.size) return false
  for (const [key, signature] of a) if (b.get(key) !== signature) return false
  return true
}

/** What the client-certificate compile gives the SNI table and the statuses. */
interface ClientAuthCompile {
  table: ClientAuthTable | undefined
  /** By ingress `namespace/name`. */
  problems: Map<string, CertificateProblem[]>
  /** By Secret `namespace/name`: the hosts it is the CA of, or why it cannot be. */
  secretUses: Map<string, { hosts: string[], denied: string | undefined }>
}

function normalizeTlsHost (host: unknown): string {
  if (typeof host !== 'string') return ''
  const lower = host.trim().toLowerCase()
  return lower.endsWith('.') ? lower.slice(0, -1) : lower
}

function idOf (ing: Ingress): string {
  const ns = typeof ing?.metadata?.namespace === 'string' && ing.metadata.namespace !== '' ? ing.metadata.namespace : 'default'
  return `${ns}/${typeof ing?.metadata?.name === 'string' ? ing.metadata.name : ''}`
}

function describe (served: ServedCertificate): string {
  return `${served.source} (${served.subject === '' ? 'no subject' : served.subject})`
}

/** The served form of a checked certificate; `pem` decodes the strings it closes over when a context is built. */
function servedFrom (source: string, version: string, info: ServingInfo, pem: () => PemPair): ServedCertificate {
  return Object.freeze({
    source,
    version,
    subject: info.subject,
    dnsNames: Object.freeze([...info.dnsNames]),
    notBefore: info.notBefore,
    notAfter: info.notAfter,
    fingerprintSha256: info.fingerprintSha256,
    keyType: info.keyType,
    pem
  })
}

/** True when both maps send every name to the same certificate (contexts are reused, so identity compares). */
function sameCertificates (a: ReadonlyMap<string, ServedCertificate>, b: ReadonlyMap<string, ServedCertificate>): boolean {
  if (a.size !== b.size) return false
  for (const [name, served] of a) if (b.get(name) !== served) return false
  return true
}

/** The condition an ingress's status carries when its TLS hosts are not served as written. */
export function certificatesCondition (problems: readonly CertificateProblem[], generation: number): Condition {
  const reasons = new Set(problems.map(p => p.reason))
  const reason = reasons.size === 1 ? [...reasons][0] as string : 'CertificateProblems'
  return { type: 'CertificatesValid', status: 'False', reason, message: problems.map(p => p.message).join('; '), observedGeneration: generation }
}

/** Compiles SNI tables, keeping each Secret version's check, and its context once a handshake built it, across compiles. */
export class CertificateCompiler {
  #cache = new Map<string, CacheEntry>()
  readonly #generated: ServedCertificate
  readonly #generatedPem: PemPair
  readonly #generatedContext: SecureContext
  readonly #opts: CertificateCompilerOptions
  readonly #contexts: TlsContextCache
  /** The configured default certificate's PEM and context (built eagerly), for the version they were built from. */
  #defaultContext: { version: string, pem: PemPair, context: SecureContext } | undefined
  #lastDefaultWarning: string | undefined
  #previous: Pick<SniTable, 'exact' | 'wildcards' | 'fallback'> | undefined
  #previousClientAuth = new Map<string, string>()
  #epoch = 0
  #eagerBuilt = 0

  constructor (opts: CertificateCompilerOptions) {
    this.#opts = opts
    this.#generatedPem = Object.freeze({ ...opts.generated })
    const check = checkTlsMaterial(opts.generated.cert, opts.generated.key)
    if (!check.ok) throw new IngressdError('INGRESSD_ERR_INTERNAL', `the generated default certificate is unusable: ${check.problems.map(p => p.reason).join(', ')}`)
    const generatedPem = this.#generatedPem
    this.#generated = servedFrom(GENERATED_SOURCE, GENERATED_SOURCE, check.info, () => generatedPem)
    this.#generatedContext = createCertificateContext(generatedPem)
    this.#eagerBuilt++
    this.#contexts = new TlsContextCache({ capacity: opts.contextCacheSize, logger: opts.logger })
  }

  /** How many SecureContexts this compiler and its handshakes have built: for tests, metrics and the benchmark. */
  get contextsBuilt (): number {
    return this.#eagerBuilt + this.#contexts.built
  }

  /** The contexts built by handshakes, shared by every table this compiler makes. */
  get contexts (): TlsContextCache {
    return this.#contexts
  }

  /**
   * Compiles the SNI table for a snapshot. `reports` are the route compile's reports, one per
   * ingress in snapshot order: ingresses whose class is not served do not take part.
   */
  compile (snapshot: TlsSnapshot, reports: readonly IngressReport[], generation: number): CertificateCompileResult {
    const now = (this.#opts.now ?? (() => new Date()))().getTime()
    const secrets = new Map<string, Secret>()
    for (const secret of snapshot.secrets ?? []) {
      if (typeof secret?.metadata?.name !== 'string') continue
      secrets.set(`${secret.metadata.namespace ?? 'default'}/${secret.metadata.name}`, secret)
    }
    const nextCache = new Map<string, CacheEntry>()
    /** The certificate of a Secret, built or taken from the cache; undefined when there is no such Secret. */
    const certificateOf = (id: string): Built | undefined => {
      const already = nextCache.get(id)
      if (already !== undefined) return already.built
      const secret = secrets.get(id)
      if (secret === undefined) return undefined
      const resourceVersion = secret.metadata.resourceVersion ?? ''
      const cached = this.#cache.get(id)
      let entry = cached !== undefined && cached.resourceVersion === resourceVersion ? cached : { resourceVersion, built: this.#check(id, resourceVersion, secret, snapshot.privateKeys.get(id)) }
      // A handshake found that OpenSSL will not load it: from now on it is reported and not served.
      if (entry.built.ok && this.#contexts.failure(entry.built.served.version) !== undefined) entry = { resourceVersion, built: { ok: false, message: OPENSSL_REFUSED } }
      nextCache.set(id, entry)
      return entry.built
    }

    // The default certificate: the configured Secret when it is usable, else the generated one.
    // Its context is built now, not by a handshake: clients without SNI need it at once.
    let fallback = this.#generated
    let fallbackPem = this.#generatedPem
    let fallbackContext = this.#generatedContext
    const configured = this.#opts.defaultSecret
    if (configured !== undefined) {
      let built = certificateOf(configured)
      if (built?.ok === true) {
        const served = built.served
        try {
          if (this.#defaultContext?.version !== served.version) {
            const pem = served.pem()
            this.#defaultContext = { version: served.version, pem, context: createCertificateContext(pem) }
            this.#eagerBuilt++
          }
          fallback = served
          fallbackPem = this.#defaultContext.pem
          fallbackContext = this.#defaultContext.context
        } catch (err) {
          this.#opts.logger?.warn({ secret: configured, err: { message: (err as Error).message } }, 'a TLS Secret could not be loaded into a TLS context')
          built = { ok: false, message: OPENSSL_REFUSED }
          nextCache.set(configured, { resourceVersion: secrets.get(configured)?.metadata.resourceVersion ?? '', built })
        }
      }
      if (fallback === this.#generated) this.#defaultContext = undefined
      const warning = built === undefined ? 'not found' : built.ok ? undefined : built.message
      if (warning !== this.#lastDefaultWarning) {
        this.#lastDefaultWarning = warning
        if (warning !== undefined) this.#opts.logger?.warn({ secret: configured, problem: warning }, 'INGRESSD_DEFAULT_CERT names a Secret that cannot be served; the generated default certificate is served instead')
      }
    }

    // Served ingresses, oldest first: the oldest ingress naming a host with a usable Secret wins it.
    const ingresses = Array.isArray(snapshot.ingresses) ? snapshot.ingresses : []
    const candidates: { ing: Ingress, id: string, age: number }[] = []
    ingresses.forEach((ing, i) => {
      if (NOT_TAKING_PART.has(reports[i]?.reason ?? '')) return
      if (!Array.isArray(ing?.spec?.tls) || ing.spec.tls.length === 0) return
      candidates.push({ ing, id: idOf(ing), age: ageOf(ing) })
    })
    candidates.sort((a, b) => a.age - b.age || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))

    const exact = new Map<string, ServedCertificate>()
    const wildcards = new Map<string, ServedCertificate>()
    const owners = new Map<string, string>()
    const ingressProblems = new Map<string, CertificateProblem[]>()
    const uses = new Map<string, SecretUse>()
    for (const { ing, id } of candidates) {
      const namespace = id.slice(0, id.indexOf('/'))
      const problems: CertificateProblem[] = []
      const reportedSecrets = new Set<string>()
      for (const entry of ing.spec?.tls ?? []) {
        const secretName = typeof entry?.secretName === 'string' ? entry.secretName : ''
        const hosts = (Array.isArray(entry?.hosts) ? entry.hosts : []).map(normalizeTlsHost).filter(h => h !== '')
        // No secretName: the hosts are served with the default certificate, as in ingress-nginx.
        if (secretName === '' || hosts.length === 0) continue
        const secretId = `${namespace}/${secretName}`
        const built = certificateOf(secretId)
        if (built === undefined || !built.ok) {
          if (!reportedSecrets.has(secretId)) {
            reportedSecrets.add(secretId)
            problems.push(built === undefined
              ? { host: '', secret: secretId, reason: 'SecretNotFound', message: `secret ${secretId} not found: ${hosts.join(', ')} served with the default certificate` }
              : { host: '', secret: secretId, reason: 'SecretUnusable', message: `secret ${secretId} cannot be served (${built.message}): ${hosts.join(', ')} served with the default certificate` })
          }
          continue
        }
        const served = built.served
        if (!reportedSecrets.has(secretId)) {
          reportedSecrets.add(secretId)
          if (Date.parse(served.notAfter) < now) problems.push({ host: '', secret: secretId, reason: 'CertificateExpired', message: `the certificate of secret ${secretId} expired at ${served.notAfter}; it is served anyway` })
          else if (Date.parse(served.notBefore) > now) problems.push({ host: '', secret: secretId, reason: 'CertificateNotYetValid', message: `the certificate of secret ${secretId} is not valid before ${served.notBefore}; it is served anyway` })
        }
        for (const host of hosts) {
          const wildcard = host.startsWith('*.')
          const map = wildcard ? wildcards : exact
          const key = wildcard ? host.slice(2) : host
          const current = map.get(key)
          if (current === undefined) {
            map.set(key, served)
            owners.set(host, id)
          } else if (current !== served) {
            problems.push({ host, secret: secretId, reason: 'HostClaimedByOlderIngress', message: `${host}: ingress ${owners.get(host) ?? '?'} already serves ${describe(current)} for this host; secret ${secretId} is not used for it` })
            continue
          }
          let use = uses.get(secretId)
          if (use === undefined) {
            use = { hosts: new Set(), uncovered: [] }
            uses.set(secretId, use)
          }
          use.hosts.add(host)
          if (!certificateCovers(served, host)) {
            const names = served.dnsNames.length === 0 ? 'no host names' : served.dnsNames.join(', ')
            problems.push({ host, secret: secretId, reason: 'HostNotCovered', message: `the certificate of secret ${secretId} (${served.subject}) does not cover ${host} (it names ${names}); it is served for it anyway` })
            use.uncovered.push(`${host} (ingress ${id})`)
          }
        }
      }
      if (problems.length > 0) ingressProblems.set(id, problems)
    }
    const lookup = secretLookup({ secrets: snapshot.secrets ?? [], privateKeys: snapshot.privateKeys, secretValues: snapshot.secretValues ?? NO_VALUES })
    const clientAuth = compileClientAuth(ingresses, reports, lookup)
    for (const [id, problems] of clientAuth.problems) ingressProblems.set(id, [...(ingressProblems.get(id) ?? []), ...problems])
    this.#cache = nextCache
    // Contexts of Secret versions no longer served (changed, deleted or unused) go, and so do
    // those made with a client-certificate CA no host verifies against any more.
    const live = new Set<string>([fallback.version])
    for (const { built } of nextCache.values()) if (built.ok) live.add(built.served.version)
    const liveCas = new Set<string>()
    const keepCa = (auth: ClientAuth | null | undefined): void => { if (auth?.ca !== undefined) liveCas.add(auth.ca.digest) }
    clientAuth.table?.exact.forEach(keepCa)
    clientAuth.table?.wildcards.forEach(keepCa)
    keepCa(clientAuth.table?.catchAll)
    this.#contexts.retain(live, liveCas)

    const secretStatuses: CertificateCompileResult['secretStatuses'] = []
    for (const [id, secret] of secrets) {
      const conditions: Condition[] = []
      const use = uses.get(id)
      if (use !== undefined) {
        conditions.push(use.uncovered.length === 0
          ? { type: 'HostsCovered', status: 'True', reason: 'AllHostsCovered', message: `the certificate covers every TLS host it is served for: ${[...use.hosts].join(', ')}` }
          : { type: 'HostsCovered', status: 'False', reason: 'HostNotCovered', message: `the certificate does not cover ${use.uncovered.join(', ')}; it is served for those hosts anyway` })
      }
      if (id === configured && fallback.source === id) {
        conditions.push({ type: 'DefaultCertificate', status: 'True', reason: 'Configured', message: 'served to clients without SNI and for host names no ingress has a certificate for (INGRESSD_DEFAULT_CERT)' })
      }
      const caUse = clientAuth.secretUses.get(id)
      if (caUse !== undefined) {
        const hosts = caUse.hosts.map(h => h === '' ? '(hosts without a rule of their own)' : h).join(', ')
        conditions.push(caUse.denied === undefined
          ? { type: 'ClientCertificateAuthority', status: 'True', reason: 'InUse', message: `client certificates are verified against its ca.crt for: ${hosts}` }
          : { type: 'ClientCertificateAuthority', status: 'False', reason: 'Unusable', message: `${caUse.denied} (hosts: ${hosts})` })
      }
      secretStatuses.push({ namespace: id.slice(0, id.indexOf('/')), name: secret.metadata.name, uid: secret.metadata.uid, status: { conditions } })
    }

    const previous = this.#previous
    const clientAuthSigned = clientAuthSignatures(clientAuth.table)
    if (previous === undefined || previous.fallback !== fallback || !sameCertificates(previous.exact, exact) || !sameCertificates(previous.wildcards, wildcards) || !sameSignatures(this.#previousClientAuth, clientAuthSigned)) this.#epoch++
    this.#previous = { exact, wildcards, fallback }
    this.#previousClientAuth = clientAuthSigned
    const table = createSniTable({ generation, exact, wildcards, fallback, fallbackContext, fallbackPem, certificateEpoch: this.#epoch, contexts: this.#contexts, clientAuth: clientAuth.table })
    return { table, ingressProblems, secretStatuses }
  }

  /**
   * Checks a Secret version's material and keeps what serving needs; never throws. The PEM is not
   * kept decoded: the certificate is decoded again from the Secret's base64 (the same string the
   * snapshot holds) when a handshake builds its context.
   */
  #check (id: string, resourceVersion: string, secret: Secret, key: string | undefined): Built {
    const certB64 = secret.data?.[CERT_KEY]
    if (typeof certB64 !== 'string' || certB64 === '' || key === undefined || key === '') return { ok: false, message: 'it holds no tls.crt or no tls.key' }
    const check = checkTlsMaterial(Buffer.from(certB64, 'base64').toString('utf8'), key)
    if (!check.ok) return { ok: false, message: check.problems.map(p => p.reason).join(', ') }
    return { ok: true, served: servedFrom(id, `${id}@${resourceVersion}`, check.info, () => ({ cert: Buffer.from(certB64, 'base64').toString('utf8'), key })) }
  }
}

/**
 * The client-certificate settings of every host (auth-tls-*), as ingress-nginx gives them to its
 * servers: per rule host, from the oldest served ingress naming an auth-tls-secret, for all the
 * paths of the host whichever ingress they come from. An ingress whose settings cannot be honoured
 * (its Secret is missing, has no usable ca.crt, or an annotation is malformed) still claims its
 * hosts, and they are denied: a host meant to check certificates never goes unchecked.
 */
function compileClientAuth (ingresses: readonly Ingress[], reports: readonly IngressReport[], secrets: SecretLookup): ClientAuthCompile {
  const out: ClientAuthCompile = { table: undefined, problems: new Map(), secretUses: new Map() }
  const candidates: Candidate[] = []
  ingresses.forEach((ing, i) => {
    if (NOT_TAKING_PART.has(reports[i]?.reason ?? '')) return
    if (typeof ing?.metadata?.annotations?.[AUTH_TLS_SECRET] !== 'string') return
    candidates.push({ ing, id: idOf(ing), age: ageOf(ing) })
  })
  if (candidates.length === 0) return out
  candidates.sort(byAge)

  const claims = new Map<string, { auth: ClientAuth, owner: string }>()
  for (const { ing, id } of candidates) {
    const namespace = id.slice(0, id.indexOf('/'))
    const annotations = ing.metadata.annotations as Record<string, unknown>
    const parsed = parseClientCert(name => {
      const value = annotations[NGINX_PREFIX + name]
      return typeof value === 'string' ? value : undefined
    }, namespace)
    const auth = parsed.spec === undefined
      ? deniedClientAuth(id, parsed.problems.map(p => `${p.key}: ${p.message}`).join('; '))
      : bindClientAuth(parsed.spec, secrets, id)
    const problems: CertificateProblem[] = []
    const won: string[] = []
    for (const host of ruleHosts(ing)) {
      const claim = claims.get(host)
      if (claim === undefined) {
        claims.set(host, { auth, owner: id })
        won.push(host)
      } else if (!sameClientAuth(claim.auth, auth)) {
        const name = host === '' ? 'the host-less rules' : host
        problems.push({ host, secret: auth.secret, reason: 'ClientAuthClaimedByOlderIngress', message: `${name}: ingress ${claim.owner} already sets the client-certificate settings (auth-tls-*) of this host; those of this ingress are not used for it` })
      }
    }
    if (won.length > 0 && auth.secret !== '') {
      const use = out.secretUses.get(auth.secret) ?? { hosts: [], denied: auth.denied }
      use.hosts.push(...won)
      out.secretUses.set(auth.secret, use)
    }
    if (won.length > 0 && auth.denied !== undefined) {
      const reason = parsed.spec === undefined
        ? 'ClientAuthInvalid'
        : secrets(parsed.spec.secret.namespace, parsed.spec.secret.name) === undefined ? 'ClientCASecretNotFound' : 'ClientCAUnusable'
      const hosts = won.map(h => h === '' ? '(host-less rules)' : h).join(', ')
      problems.unshift({ host: '', secret: auth.secret, reason, message: `${hosts}: ${auth.denied}` })
    }
    if (problems.length > 0) out.problems.set(id, problems)
  }

  const exact = new Map<string, ClientAuth | null>()
  const wildcards = new Map<string, ClientAuth | null>()
  let catchAll: ClientAuth | undefined
  for (const [host, { auth }] of claims) {
    if (host === '') catchAll = auth
    else if (host.startsWith('*.')) wildcards.set(host.slice(2), auth)
    else exact.set(host, auth)
  }
  // A wildcard or host-less entry must not answer for a served host that has rules of its own.
  if (wildcards.size > 0 || catchAll !== undefined) {
    ingresses.forEach((ing, i) => {
      if (NOT_TAKING_PART.has(reports[i]?.reason ?? '')) return
      for (const host of ruleHosts(ing)) {
        if (host === '') continue
        if (host.startsWith('*.')) {
          if (!wildcards.has(host.slice(2))) wildcards.set(host.slice(2), null)
        } else if (!exact.has(host)) exact.set(host, null)
      }
    })
  }
  out.table = Object.freeze({ exact, wildcards, catchAll })
  return out
}
