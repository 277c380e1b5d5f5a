/**
 * ingress-nginx's basic auth (`auth-type: basic`, `auth-secret`, `auth-secret-type`,
 * `auth-realm`): the users come from a Secret holding an htpasswd file (`auth-file`, key `auth`)
 * or one hash per key (`auth-map`). As in ingress-nginx, the Authorization header never reaches
 * the backend, and a missing or broken Secret denies the paths (503) rather than opening them.
 */
import { isUtf8 } from 'node:buffer'
import { createHmac, randomBytes } from 'node:crypto'
import { NGINX_PREFIX } from '../../resources/annotation-prefix.js'
import { parseSecretReference, type AnnotationProblem, type AnnotationReader, type FamilyParse, type PolicyAnswer, type PolicyContext, type PolicyStep, type SecretLookup } from './policy.js'
import { compileHash, dummyHash, MAX_PASSWORD_BYTES, parseAuthMap, parseHtpasswd, type HashKind } from './htpasswd.js'

/** The annotations this family reads (without the prefix); auth-type only as far as `basic` and `digest` go. */
export const BASIC_AUTH_KEYS = ['auth-type', 'auth-secret', 'auth-secret-type', 'auth-realm'] as const

export interface BasicAuthSpec {
  /** The Secret with the users: always the ingress's own namespace (cross-namespace references are refused). */
  secret: { namespace: string, name: string }
  /** auth-file: key `auth` holds an htpasswd file; auth-map: each key is a user, its value the hash. */
  secretType: 'auth-file' | 'auth-map'
  /** Sent in `WWW-Authenticate: Basic realm="..."`. */
  realm: string
}

/** Why a request was refused, for the caller's log line. */
export type BasicAuthFailure = 'missing' | 'malformed' | 'unknown-user' | 'wrong-password'

/** What bindBasicAuth takes besides the spec and the secrets. */
export interface BasicAuthOptions {
  /** Called on each refusal with the user name the client sent ('' when there is none); never given the password. */
  onFailure?: (user: string, reason: BasicAuthFailure) => void
}

/** The realm without auth-realm: ingress-nginx renders `auth_basic ""`, so clients see `Basic realm=""`. */
export const DEFAULT_REALM = ''

const DENIED = 'the paths of this ingress are denied (503) rather than served unprotected'

/**
 * Printable ASCII other than `"` and `\`: the realm is sent as a quoted-string, where those two
 * would end or escape it, and Node refuses to send a header value with characters beyond Latin-1.
 */
const REALM = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/

/** Reads the basic-auth annotations. Without auth-type nothing else is read (ingress-nginx ignores a lone auth-secret). */
export function parseBasicAuth (read: AnnotationReader, ingressNamespace: string): FamilyParse<BasicAuthSpec> {
  const problems: AnnotationProblem[] = []
  const denials: AnnotationProblem[] = []
  const type = read('auth-type')
  if (type === undefined) return { problems, denials }
  if (type === 'digest') {
    denials.push({ key: `${NGINX_PREFIX}auth-type`, message: `auth-type "digest" (HTTP digest authentication, an nginx module in ingress-nginx) is not implemented by ingressd; ${DENIED}. Use "basic" over HTTPS, or auth-url` })
  } else if (type !== 'basic') {
    const hint = type.trim().toLowerCase() === 'basic' || type.trim().toLowerCase() === 'digest' ? ' (the value is case-sensitive, without spaces)' : ''
    problems.push({ key: `${NGINX_PREFIX}auth-type`, message: `expected "basic" (ingress-nginx also has "digest", which ingressd does not implement), got ${JSON.stringify(type)}${hint}` })
  }
  const secret = secretOf(read('auth-secret'), ingressNamespace, type, problems)

  let secretType: BasicAuthSpec['secretType'] = 'auth-file'
  const typeValue = read('auth-secret-type')
  if (typeValue === 'auth-file' || typeValue === 'auth-map') secretType = typeValue
  else if (typeValue !== undefined) problems.push({ key: `${NGINX_PREFIX}auth-secret-type`, message: `expected "auth-file" (an htpasswd file under the key "auth") or "auth-map" (one key per user), got ${JSON.stringify(typeValue)}` })

  let realm = DEFAULT_REALM
  const realmValue = read('auth-realm')
  if (realmValue !== undefined && realmValue !== '') {
    if (REALM.test(realmValue)) realm = realmValue
    else problems.push({ key: `${NGINX_PREFIX}auth-realm`, message: `expected printable ASCII without '"' or '\\' (the realm is sent quoted in WWW-Authenticate), got ${JSON.stringify(realmValue)}` })
  }

  if (type !== 'basic' || secret === undefined || problems.length > 0) return { problems, denials }
  return { spec: Object.freeze({ secret: Object.freeze(secret), secretType, realm }), problems, denials }
}

function secretOf (value: string | undefined, ingressNamespace: string, type: string, problems: AnnotationProblem[]): BasicAuthSpec['secret'] | undefined {
  const key = `${NGINX_PREFIX}auth-secret`
  if (value === undefined || value.trim() === '') {
    problems.push({ key, message: `required with auth-type ${JSON.stringify(type)}: the name of the Secret holding the users, "name" or "namespace/name"${value === undefined ? '' : ', got an empty value'}` })
    return undefined
  }
  return parseSecretReference(key, value, ingressNamespace, 'the users', problems)
}

/**
 * Successful verifications, shared by every bound policy: bcrypt and SHA-crypt are slow on
 * purpose (bcrypt cost 10 is about 70 ms here, on the event loop), and a browser sends the same
 * credentials with every request. Keys are an HMAC under a per-process key of the user, the
 * password and the hash, so the cache holds nothing that reveals a password, and a changed hash
 * or a removed user (looked up first) is never let in by an old entry. Failures are not cached.
 */
const CACHE_LIMIT = 1000
const verified = new Map<string, true>()
const CACHE_KEY = randomBytes(32)

function cacheKey (user: string, password: string, hash: string): string {
  // Length prefixes keep ("a:b", "c") and ("a", "b:c") apart.
  return createHmac('sha256', CACHE_KEY).update(`${user.length}:${user}${password.length}:${password}${hash}`, 'utf8').digest('base64')
}

function remember (key: string): void {
  if (verified.size >= CACHE_LIMIT) {
    const oldest = verified.keys().next()
    if (oldest.done !== true) verified.delete(oldest.value)
  }
  verified.set(key, true)
}

interface UserEntry {
  readonly hash: string
  readonly verify: (password: string) => boolean
}

/**
 * Binds a spec to its Secret: a step answering 401 with the realm unless the request carries the
 * credentials of a user of the Secret, or a denial (the paths answer 503) when the Secret is
 * missing, lacks its key, has a line that cannot be used, or has no user. A denial names the
 * Secret and the problem, never a hash.
 */
export function bindBasicAuth (spec: BasicAuthSpec, secrets: SecretLookup, options: BasicAuthOptions = {}): { step: PolicyStep } | { denial: string } {
  const { namespace, name } = spec.secret
  const label = `Secret ${namespace}/${name}`
  const secret = secrets(namespace, name)
  if (secret === undefined) return { denial: `basic auth: ${label} does not exist; ${DENIED}` }

  let parsed
  if (spec.secretType === 'auth-file') {
    if (!Object.hasOwn(secret.data, 'auth')) {
      const hint = secret.type === 'kubernetes.io/basic-auth' ? ' (its username and password keys are not read: put an htpasswd file under "auth", or use auth-secret-type "auth-map")' : ''
      return { denial: `basic auth: ${label} has no key "auth" holding an htpasswd file${hint}; ${DENIED}` }
    }
    parsed = parseHtpasswd(secret.data.auth as string)
  } else {
    parsed = parseAuthMap(secret.data)
  }
  const where = spec.secretType === 'auth-file' ? `${label}, key "auth"` : `${label} (auth-map)`
  if (parsed.problems.length > 0) return { denial: `basic auth: ${where}: ${parsed.problems.join('; ')}; ${DENIED}` }
  if (parsed.users.size === 0) return { denial: `basic auth: ${where} has no user; ${DENIED}` }

  const users = new Map<string, UserEntry>()
  const kinds = new Map<HashKind, number>()
  for (const [user, hash] of parsed.users) {
    const compiled = compileHash(hash)
    // parseHtpasswd and parseAuthMap keep only hashes that compile.
    if (!compiled.ok) return { denial: `basic auth: ${where} (user ${JSON.stringify(user)}): ${compiled.problem}; ${DENIED}` }
    users.set(user, { hash, verify: compiled.verify })
    kinds.set(compiled.kind, (kinds.get(compiled.kind) ?? 0) + 1)
  }
  const dummy = compileHash(dummyHash(mostCommon(kinds)))
  const verifyDummy = dummy.ok ? dummy.verify : () => false

  const headers = Object.freeze({ 'www-authenticate': `Basic realm="${spec.realm}"` })
  const challenge: PolicyAnswer = Object.freeze({ status: 401, code: 'INGRESSD_ERR_AUTH_REQUIRED', headers })
  const onFailure = options.onFailure

  const step: PolicyStep = (ctx: PolicyContext) => {
    const credentials = readCredentials(ctx.req)
    if (credentials.reason !== undefined) {
      onFailure?.(credentials.user, credentials.reason)
      return challenge
    }
    const { user, password } = credentials
    const entry = users.get(user)
    if (entry === undefined) {
      // Costs what a known user's check costs, so the timing does not tell which users exist.
      verifyDummy(password)
      onFailure?.(user, 'unknown-user')
      return challenge
    }
    const key = cacheKey(user, password, entry.hash)
    if (verified.delete(key)) {
      // Re-inserted to mark it most recently used.
      verified.set(key, true)
    } else if (entry.verify(password)) {
      remember(key)
    } else {
      onFailure?.(user, 'wrong-password')
      return challenge
    }
    ctx.upstreamHeaders = { ...ctx.upstreamHeaders, authorization: null }
    return undefined
  }
  return { step }
}

function mostCommon (kinds: ReadonlyMap<HashKind, number>): HashKind {
  let best: HashKind = 'plain'
  let count = 0
  for (const [kind, n] of kinds) {
    if (n > count) {
      best = kind
      count = n
    }
  }
  return best
}

type Credentials =
  | { reason: undefined, user: string, password: string }
  | { reason: BasicAuthFailure, user: string }

const MISSING: Credentials = Object.freeze({ reason: 'missing', user: '' })
const MALFORMED: Credentials = Object.freeze({ reason: 'malformed', user: '' })

/** RFC 4648 base64; padding optional as nginx's decoder has it, a lone trailing character not. */
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/

/** 'b', 'a', 's', 'i', 'c' as lowercase char codes. */
const BASIC = [0x62, 0x61, 0x73, 0x69, 0x63] as const

function isBlank (code: number): boolean {
  return code === 0x20 || code === 0x09
}

/** Reads `Authorization: Basic <base64(user:password)>`: the scheme in any case, blanks around the token tolerated. */
function readCredentials (req: PolicyContext['req']): Credentials {
  // Typed as a string, but a headers object built by hand (or by another server) may carry a list.
  let value = req.headers.authorization as string | string[] | undefined
  if (value === undefined) return MISSING
  if (typeof value !== 'string') {
    if (value.length !== 1) return value.length === 0 ? MISSING : MALFORMED
    value = value[0] as string
  }
  // Node keeps only the first of repeated Authorization headers; a second one is refused rather than ignored.
  const raw = req.rawHeaders as readonly string[] | undefined
  if (raw !== undefined && countAuthorization(raw) > 1) return MALFORMED

  let start = 0
  let end = value.length
  while (start < end && isBlank(value.charCodeAt(start))) start++
  while (end > start && isBlank(value.charCodeAt(end - 1))) end--
  if (end - start < BASIC.length + 2) return MALFORMED
  for (let i = 0; i < BASIC.length; i++) {
    if ((value.charCodeAt(start + i) | 0x20) !== BASIC[i]) return MALFORMED
  }
  start += BASIC.length
  if (!isBlank(value.charCodeAt(start))) return MALFORMED
  while (start < end && isBlank(value.charCodeAt(start))) start++
  const token = value.slice(start, end)
  const padding = token.endsWith('==') ? 2 : token.endsWith('=') ? 1 : 0
  if (!BASE64.test(token) || (token.length - padding) % 4 === 1 || (padding > 0 && token.length % 4 !== 0)) return MALFORMED

  const decoded = Buffer.from(token, 'base64')
  // A password in another charset would be silently mangled by decoding; refused instead.
  if (!isUtf8(decoded)) return MALFORMED
  const text = decoded.toString('utf8')
  const colon = text.indexOf(':')
  if (colon === -1) return MALFORMED
  const user = text.slice(0, colon)
  if (user === '') return MALFORMED
  if (decoded.length - Buffer.byteLength(user) - 1 > MAX_PASSWORD_BYTES) return { reason: 'malformed', user }
  return { reason: undefined, user, password: text.slice(colon + 1) }
}

function countAuthorization (raw: readonly string[]): number {
  let count = 0
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string
    if (name.length === 13 && name.toLowerCase() === 'authorization') count++
  }
  return count
}
