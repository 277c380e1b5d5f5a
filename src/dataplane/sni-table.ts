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
   * Changes whenever some name would get a different certificate than under the previous table.
   * The listener then renews its session-ticket keys, so no client resumes a session made under
   * the old certificate: every new connection sees the new one.
   */
  readonly certificateEpoch: number
  /** Where the contexts of the other certificates are built and kept; shared by successive tables. */
  readonly contexts: TlsContextCache
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

/** Freezes the parts into an SniTable. The maps must not be changed afterwards. */
export function createSniTable (parts: SniTable): SniTable {
  return Object.freeze({ ...parts, fallbackPem: Object.freeze({ ...parts.fallbackPem }) })
}

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

  /** The context of `served`, built if it is not held; undefined (and a warning) when OpenSSL refuses it. */
  get (served: ServedCertificate): SecureContext | undefined {
    const key = served.version
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
      context = createCertificateContext(served.pem())
    } catch (err) {
      // OpenSSL's text never quotes key material; only its message is logged, never the PEM.
      const message = (err as Error).message
      this.failed++
      this.#failures.set(key, message)
      this.#logger?.warn({ secret: served.source, problem: message }, 'a TLS Secret could not be loaded into a TLS context; its hosts are served with the default certificate')
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

  /** Drops every context and failure whose version is not in `live` (a Secret changed or went away). */
  retain (live: ReadonlySet<string>): void {
    for (const key of this.#contexts.keys()) if (!live.has(key)) this.#contexts.delete(key)
    for (const key of this.#failures.keys()) if (!live.has(key)) this.#failures.delete(key)
  }
}
