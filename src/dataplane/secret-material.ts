/**
 * Secret values as the data plane's policies read them (htpasswd files and auth maps for basic
 * auth, CA bundles for client certificates, TLS material): a SecretLookup over one snapshot.
 *
 * Cheap by construction. Nothing is decoded until a policy asks for a Secret, and a decoded
 * Secret is kept with its Secret object: the snapshot reader hands an unchanged Secret on as the
 * same object from one snapshot to the next and a changed one as a new object, so a change to
 * one Secret decodes that Secret again and no other. The name index is kept per Secret list,
 * which the reader also keeps while no Secret changes.
 *
 * Only types are imported from the resources, so a data-plane worker does not load TypeBox.
 */
import type { Secret } from '../resources/secret.js'
import type { SecretLookup, SecretMaterial } from './policies/policy.js'

/** What a lookup reads: the snapshot's Secrets (as served) and their write-only parts. */
export interface SecretSnapshot {
  readonly secrets: readonly Secret[]
  /** tls.key of each `kubernetes.io/tls` Secret, by `namespace/name`. */
  readonly privateKeys: ReadonlyMap<string, string>
  /** The write-only values of every Secret of another type, by `namespace/name`: the stored JSON text (key → base64). */
  readonly secretValues: ReadonlyMap<string, string>
}

/** The one type whose write-only column holds a PEM key rather than JSON values. */
const TLS_SECRET_TYPE = 'kubernetes.io/tls'
const TLS_KEY = 'tls.key'

/** True for a `kubernetes.io/tls` Secret, whose write-only part is its private key (SecretSnapshot.privateKeys). */
export function isTlsSecret (secret: { readonly type?: unknown }): boolean {
  return secret.type === TLS_SECRET_TYPE
}

interface Decoded {
  /** The write-only text the material was decoded from: a hand-built snapshot may pair one object with another text. */
  writeOnly: string | undefined
  material: SecretMaterial
}

const decodedBySecret = new WeakMap<Secret, Decoded>()
const indexBySecrets = new WeakMap<readonly Secret[], ReadonlyMap<string, Secret>>()

function idOf (secret: Secret): string {
  return `${secret.metadata?.namespace ?? 'default'}/${secret.metadata?.name ?? ''}`
}

function indexOf (secrets: readonly Secret[]): ReadonlyMap<string, Secret> {
  let index = indexBySecrets.get(secrets)
  if (index === undefined) {
    const byId = new Map<string, Secret>()
    for (const secret of secrets) if (typeof secret?.metadata?.name === 'string') byId.set(idOf(secret), secret)
    index = byId
    indexBySecrets.set(secrets, index)
  }
  return index
}

function text (base64: string): string {
  return Buffer.from(base64, 'base64').toString('utf8')
}

/** Every value of a Secret as text: its public data, then its write-only part (which wins for a key in both). */
function decode (secret: Secret, writeOnly: string | undefined): SecretMaterial {
  const data: Record<string, string> = {}
  for (const [key, value] of Object.entries(secret.data ?? {})) if (typeof value === 'string') data[key] = text(value)
  if (writeOnly !== undefined) {
    if (isTlsSecret(secret)) {
      data[TLS_KEY] = writeOnly
    } else {
      let values: unknown
      try {
        values = JSON.parse(writeOnly)
      } catch {
        // The store writes this column itself; a value it cannot read is left out, never guessed at.
        values = undefined
      }
      if (typeof values === 'object' && values !== null) {
        for (const [key, value] of Object.entries(values)) if (typeof value === 'string') data[key] = text(value)
      }
    }
  }
  return Object.freeze({ type: typeof secret.type === 'string' ? secret.type : '', data: Object.freeze(data) })
}

/**
 * A SecretLookup over `snapshot`: `{ type, data }` with every value decoded to UTF-8 text. A TLS
 * Secret gives tls.crt and ca.crt (when it has one) from its data and tls.key from its private
 * key; any other Secret gives every key of its write-only values. Materials are frozen and shared
 * between lookups and snapshots: never modify one.
 */
export function secretLookup (snapshot: SecretSnapshot): SecretLookup {
  let index: ReadonlyMap<string, Secret> | undefined
  return (namespace, name) => {
    index ??= indexOf(snapshot.secrets)
    const id = `${namespace}/${name}`
    const secret = index.get(id)
    if (secret === undefined) return undefined
    const writeOnly = isTlsSecret(secret) ? snapshot.privateKeys.get(id) : snapshot.secretValues.get(id)
    const cached = decodedBySecret.get(secret)
    if (cached !== undefined && cached.writeOnly === writeOnly) return cached.material
    const material = decode(secret, writeOnly)
    decodedBySecret.set(secret, { writeOnly, material })
    return material
  }
}
