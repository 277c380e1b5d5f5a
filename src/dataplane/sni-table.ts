/**
 * The SNI table: which certificate the HTTPS listener presents for the name a client asks for in
 * its TLS ClientHello. Plain frozen data built by compile-certificates.ts next to the route table
 * and swapped with it; a lookup is one Map get, or two for a wildcard.
 *
 * Order, as ingress-nginx and Kong choose: the exact name, then a `*.` wildcard covering exactly
 * one more label (`*.foo.com` serves `a.foo.com`, not `a.b.foo.com` nor `foo.com`), then the
 * default certificate.
 *
 * The table holds what was learnt from each certificate (names, validity), not TLS contexts. A
 * context is built from the Secret's PEM on the first handshake that asks for one of its names
 * and kept in a {@link TlsContextCache}, which outlives tables: keyed by the Secret's version, it
 * is reused by every later handshake and every table compiled while the Secret stays the same.
 * Only the default certificate's context is built up front.
 */
import type { X509Certificate } from 'node:crypto'
import type { SecureContext } from 'node:tls'
import type { Logger } from 'pino'
import { createCertificateContext, type CertificateKeyType, type PemPair } from './tls-options.js'

/** One certificate as served: what a status or log says about it, and how to load it. */
export interface ServedCertificate {
  /** `namespace/name` of the Secret, or `(generated)` for the gateway's own default certificate. */
  readonly source: string
  /**
   * Which version of `source` this is (`namespace/name@resourceVersion`): the key of its context in
   * the TlsContextCache. Two certificates with the same version are the same certificate.
   */
  readonly version: string
  readonly subject: string
  /** The names the certificate is for (SAN DNS names, else its CN), lowercase. */
  readonly dnsNames: readonly string[]
  readonly notBefore: string
  readonly notAfter: string
  readonly fingerprintSha256: string
  readonly keyType: CertificateKeyType
  /**
   * The certificate chain and key as PEM, decoded on demand from the snapshot's strings (nothing
   * is kept decoded). A function, so that logging or serialising a certificate never carries the key.
   */
  readonly pem: () => PemPair
}

export interface SniTable {
  /** The store version this table was compiled from. */
  readonly generation: number
  /** Certificates by exact host name (lowercase, no trailing dot). */
  readonly exact: ReadonlyMap<string, ServedCertificate>
  /** Certificates of `*.foo.com` TLS hosts, keyed by the parent domain `foo.com`. */
  readonly wildcards: ReadonlyMap<string, ServedCertificate>
  /** The default certificate: for clients without SNI, and names with no certificate. */
  readonly fallback: ServedCertificate
  /** The default certificate's context, built when the table was (never lazily). */
  readonly fallbackContext: SecureContext
  /** The default certificate's PEM: the listener builds its no-SNI context from it. */
  readonly fallbackPem: Readonly<PemPair>
  /**
   * Changes whenever some name would get a different certificate, or different client-certificate
   * settings, than under the previous table. The listener then renews its session-ticket keys, so
   * no client resumes a session made under the old certificate or settings: every new connection
   * sees the new ones (and is asked for a certificate when its host now wants one).
   */
  readonly certificateEpoch: number
  /** Where the contexts of the other certificates are built and kept; shared by successive tables. */
  readonly contexts: TlsContextCache
  /** Client-certificate settings by host (auth-tls-*); undefined when no host has any, the one check a request then pays. */
  readonly clientAuth?: ClientAuthTable | undefined
}

/** auth-tls-verify-client, as nginx's ssl_verify_client. */
export type ClientVerifyMode = 'on' | 'off' | 'optional' | 'optional_no_ca'

/** A CA bundle (auth-tls-secret's ca.crt) that client certificates are verified against. */
export interface ClientCa {
  /** SHA-256 (hex) of the bundle's certificates: names the bundle in the context and verification caches. */
  readonly digest: string
  /** The bundle's CERTIFICATE blocks, PEM. */
  readonly pem: string
  readonly certificates: readonly X509Certificate[]
  /** How many of them are not self-signed: none, and no client certificate can have a CA of the bundle between it and the root. */
  readonly notSelfSigned: number
}

/**
 * One host's client-certificate settings, from the oldest served ingress that names an
 * auth-tls-secret for it. The handshake asks for a certificate with them (https.ts), the request
 * step answers from them (policies/client-cert.ts).
 */
export interface ClientAuth {
  /** `namespace/name` of the ingress they come from. */
  readonly ingress: string
  /** `namespace/name` of the Secret holding ca.crt. */
  readonly secret: string
  readonly mode: ClientVerifyMode
  /** Most CA certificates allowed between the client's certificate and the trusted root (nginx's ssl_verify_depth). */
  readonly depth: number
  readonly passCertificate: boolean
  /** Where a client whose certificate is missing or refused is redirected (302) instead of the 400. */
  readonly errorPage: string | undefined
  /** auth-tls-match-cn: the client certificate's subject DN must match it, else 403. */
  readonly matchCn: RegExp | undefined
  /** The CA; undefined when the host is denied. */
  readonly ca: ClientCa | undefined
  /** Why every request to the host answers 503 (the CA Secret is missing or unusable, an annotation is malformed); undefined when it is served. */
  readonly denied: string | undefined
}

/** Client-certificate settings by host, looked up the way the route table finds a host's rules. */
export interface ClientAuthTable {
  /**
   * By exact rule host. null marks a served host without client auth, kept only when a wildcard or
   * host-less entry would otherwise answer for it (the exact host's rules win, as in the route table).
   */
  readonly exact: ReadonlyMap<string, ClientAuth | null>
  /** Of `*.foo.com` rule hosts, keyed by `foo.com`; null as in `exact`. */
  readonly wildcards: ReadonlyMap<string, ClientAuth | null>
  /** Of host-less rules (ingress-nginx's default server): names no rule host claims. */
  readonly catchAll: ClientAuth | undefined
}

/**
 * The client-certificate settings for a name (an SNI value or a request's Host), undefined when
 * it has none. Case and one trailing dot are ignored. No SNI (undefined or '') finds the host-less
 * settings, as a client without SNI reaches ingress-nginx's default server.
 */
export function clientAuthFor (table: Pick<SniTable, 'clientAuth'>, name: string | undefined): ClientAuth | undefined {
  const auth = table.clientAuth
  if (auth === undefined) return undefined
  if (name === undefined || name === '') return auth.catchAll
  let host = name.toLowerCase()
  if (host.endsWith('.')) host = host.slice(0, -1)
  const exact = auth.exact.get(host)
  if (exact !== undefined) return exact ?? undefined
  const dot = host.indexOf('.')
  if (dot > 0) {
    const wildcard = auth.wildcards.get(host.slice(dot + 1))
    if (wildcard !== undefined) return wildcard ?? undefined
  }
  return auth.catchAll
}

/** Source of the current SNI table (the reloader); undefined until the first compile. */
export interface SniSource {
  readonly sni: SniTable | undefined
}

/**
 * The certificate to present for `servername` (the SNI value; undefined or '' when the client
 * sent none). Case and one trailing dot are ignored.
 */
export function selectCertificate (table: Pick<SniTable, 'exact' | 'wildcards' | 'fallback'>, servername: string | undefined): ServedCertificate {
  if (servername === undefined || servername === '') return table.fallback
  let name = servername.toLowerCase()
  if (name.endsWith('.')) name = name.slice(0, -1)
  const exact = table.exact.get(name)
  if (exact !== undefined) return exact
  const dot = name.indexOf('.')
  if (dot > 0) {
    const wildcard = table.wildcards.get(name.slice(dot + 1))
    if (wildcard !== undefined) return wildcard
  }
  return table.fallback
}

/**
 * The context to complete a handshake for `servername` with: the chosen certificate's, built now
 * if no handshake has needed it yet. When it cannot be built, the default certificate's (the
 * cache logs why, once per Secret version). Never throws.
 */
export function secureContextFor (table: SniTable, servername: string | undefined): SecureContext {
  const served = selectCertificate(table, servername)
  if (served === table.fallback) return table.fallbackContext
  return table.contexts.get(served) ?? table.fallbackContext
}

/**
 * The context to complete a handshake for `servername` with when its host verifies client
 * certificates against `ca`: the chosen certificate with the CA, so that the certificate request
 * names the CA and the client's certificate is verified against it alone (Node takes the SNI
 * context's CA store and CA list for the connection). The default certificate's when the chosen
 * one cannot be built. Undefined when no context with the CA can be built: the caller must then
 * not ask for a certificate, since the listener's context would verify against other roots.
 */
export function clientAuthContextFor (table: SniTable, servername: string | undefined, ca: ClientCa): SecureContext | undefined {
  const served = selectCertificate(table, servername)
  return table.contexts.get(served, ca) ?? (served === table.fallback ? undefined : table.contexts.get(table.fallback, ca))
}

/** Freezes the parts into an SniTable. The maps must not be changed afterwards. */
export function createSniTable (parts: SniTable): SniTable {
  return Object.freeze({ ...parts, fallbackPem: Object.freeze({ ...parts.fallbackPem }) })
}

/** Between a certificate version and a CA digest in a cache key: neither a Secret name nor a hex digest holds it. */
const CA_SEPARATOR = '\n'
const NO_CAS: ReadonlySet<string> = new Set()

/** How many contexts a cache keeps unless told otherwise. */
export const DEFAULT_CONTEXT_CACHE_SIZE = 1000

export interface TlsContextCacheOptions {
  /** Most contexts kept; the least recently used goes first. Default DEFAULT_CONTEXT_CACHE_SIZE. */
  capacity?: number
  /** Where a certificate that cannot be loaded is reported (a warning, once per Secret version). */
  logger?: Logger | undefined
}

/**
 * The SecureContexts of served certificates, built on the first handshake that needs one and kept
 * by certificate version (`namespace/name@resourceVersion`), least recently used first out. The
 * compiler drops the versions no table serves any more (`retain`), so a changed or deleted
 * Secret's context goes with it. A version whose context could not be built is remembered too, so
 * that later handshakes go straight to the default certificate instead of failing again.
 */
export class TlsContextCache {
  readonly capacity: number
  /** Contexts built so far (a rebuild after an eviction counts again). */
  built = 0
  /** Contexts dropped to stay within `capacity`. */
  evicted = 0
  /** Contexts that could not be built. */
  failed = 0
  readonly #contexts = new Map<string, SecureContext>()
  readonly #failures = new Map<string, string>()
  readonly #logger: Logger | undefined

  constructor (opts: TlsContextCacheOptions = {}) {
    const capacity = opts.capacity ?? DEFAULT_CONTEXT_CACHE_SIZE
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`the TLS context cache needs a capacity of at least 1, not ${capacity}`)
    this.capacity = capacity
    this.#logger = opts.logger
  }

  /** How many contexts are held now. */
  get size (): number {
    return this.#contexts.size
  }

  /** True when the context of this certificate version is held (a handshake has built it). */
  has (served: Pick<ServedCertificate, 'version'> | string): boolean {
    return this.#contexts.has(typeof served === 'string' ? served : served.version)
  }

  /** Why the context of this certificate version could not be built; undefined when it could or was not tried. */
  failure (version: string): string | undefined {
    return this.#failures.get(version)
  }

  /**
   * The context of `served`, built if it is not held; undefined (and a warning) when OpenSSL
   * refuses it. With `ca`, a context that also carries that client-certificate CA, kept apart.
   */
  get (served: ServedCertificate, ca?: ClientCa): SecureContext | undefined {
    const key = ca === undefined ? served.version : `${served.version}${CA_SEPARATOR}${ca.digest}`
    const held = this.#contexts.get(key)
    if (held !== undefined) {
      // Most recently used last: Map iteration order is the eviction order.
      this.#contexts.delete(key)
      this.#contexts.set(key, held)
      return held
    }
    if (this.#failures.has(key)) return undefined
    let context: SecureContext
    try {
      context = createCertificateContext(served.pem(), ca?.pem)
    } catch (err) {
      // OpenSSL's text never quotes key material; only its message is logged, never the PEM.
      const message = (err as Error).message
      this.failed++
      this.#failures.set(key, message)
      if (ca === undefined) this.#logger?.warn({ secret: served.source, problem: message }, 'a TLS Secret could not be loaded into a TLS context; its hosts are served with the default certificate')
      else this.#logger?.warn({ secret: served.source, problem: message }, 'a TLS Secret could not be loaded into a TLS context with a client-certificate CA; requests to its hosts that need a client certificate are refused')
      return undefined
    }
    this.built++
    this.#contexts.set(key, context)
    while (this.#contexts.size > this.capacity) {
      const oldest = this.#contexts.keys().next().value as string
      this.#contexts.delete(oldest)
      this.evicted++
    }
    return context
  }

  /**
   * Drops every context and failure whose version is not in `live` (a Secret changed or went
   * away), and those with a client-certificate CA whose digest is not in `liveCas`.
   */
  retain (live: ReadonlySet<string>, liveCas: ReadonlySet<string> = NO_CAS): void {
    const kept = (key: string): boolean => {
      const at = key.indexOf(CA_SEPARATOR)
      return at === -1 ? live.has(key) : live.has(key.slice(0, at)) && liveCas.has(key.slice(at + 1))
    }
    for (const key of this.#contexts.keys()) if (!kept(key)) this.#contexts.delete(key)
    for (const key of this.#failures.keys()) if (!kept(key)) this.#failures.delete(key)
  }
}
