/**
 * htpasswd files as nginx's auth_basic_user_file reads them: `user:hash` lines, and every hash
 * format that `htpasswd` and `openssl passwd` write. bcrypt comes from bcryptjs (its algorithm is
 * too long and subtle to write again); MD5-crypt (Poul-Henning Kamp's, and Apache's `$apr1$`
 * variant) and SHA-crypt (Ulrich Drepper's `$5$`/`$6$`) are short, fully specified and implemented
 * here on node:crypto's digests. Legacy DES crypt is refused: 56-bit keys, 8-character passwords.
 *
 * Nothing here throws on a hostile input: a hash that cannot be used is reported by hashProblem
 * and never matches.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import bcrypt from 'bcryptjs'

/**
 * Longer passwords never match. SHA-crypt hashes the password about 3 times per round and its
 * length squared once, so without a bound a 12 KiB Authorization header buys seconds of CPU
 * (the reason Django capped passwords at 4096 bytes, CVE-2013-1443).
 */
export const MAX_PASSWORD_BYTES = 1024

/**
 * The highest bcrypt cost accepted: one verification in bcryptjs takes about 1 s at 14 and doubles
 * with each step, on the event loop. `htpasswd -B` defaults to 5 and allows up to 17.
 */
export const MAX_BCRYPT_COST = 14

/**
 * The most SHA-crypt rounds accepted (the spec allows 999,999,999: minutes of CPU per request).
 * 1,000,000 (about 2 s per verification here) still takes passlib's defaults (535,000 for `$5$`,
 * 656,000 for `$6$`).
 */
export const MAX_SHA_CRYPT_ROUNDS = 1_000_000

const SHA_CRYPT_DEFAULT_ROUNDS = 5000
const SHA_CRYPT_MIN_ROUNDS = 1000

/** crypt(3)'s base-64 alphabet (not RFC 4648's: it starts with `./` and digits). */
const ITOA64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'

const BCRYPT = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/
const MD5_CRYPT = /^\$(1|apr1)\$([^$]{0,8})\$([./0-9A-Za-z]{22})$/
const SHA_CRYPT = /^\$([56])\$(?:rounds=(\d{1,10})\$)?([^$]{0,16})\$([./0-9A-Za-z]+)$/
const DES_CRYPT = /^[./0-9A-Za-z]{13}$/
const STD_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

const SUPPORTED = 'supported are $2y$/$2a$/$2b$ (bcrypt), $apr1$, $1$, $5$, $6$, {SHA}, {SSHA} and {PLAIN}'

/** Formats people meet in the wild (mkpasswd on Debian defaults to yescrypt), named so the message says what to replace. */
const UNSUPPORTED: ReadonlyArray<readonly [string, string]> = [
  ['$y$', 'yescrypt ($y$)'],
  ['$gy$', 'gost-yescrypt ($gy$)'],
  ['$7$', 'scrypt ($7$)'],
  ['$argon2', 'Argon2 ($argon2...$)'],
  ['$sha1$', 'NetBSD SHA1-crypt ($sha1$)'],
  ['$md5', 'Sun MD5-crypt ($md5$)'],
  ['$3$', 'NT-hash ($3$)'],
  ['{SHA256}', '{SHA256}'],
  ['{SHA512}', '{SHA512}'],
  ['{SSHA256}', '{SSHA256}'],
  ['{SSHA512}', '{SSHA512}'],
  ['{MD5}', '{MD5}'],
  ['{SMD5}', '{SMD5}'],
  ['{CRYPT}', '{CRYPT}']
]

/** A hash read once, checked, ready to verify passwords; or why it cannot be used. */
export type CompiledHash =
  | { readonly ok: true, readonly kind: HashKind, readonly verify: (password: string) => boolean }
  | { readonly ok: false, readonly problem: string }

/** The hash families, with what makes two hashes cost the same to verify (bcrypt cost, SHA-crypt rounds). */
export type HashKind = `bcrypt:${number}` | 'apr1' | 'md5-crypt' | `sha256-crypt:${number}` | `sha512-crypt:${number}` | 'sha' | 'ssha' | 'plain'

/**
 * Reads a hash once: its format, parameters and salt, so that a bound policy verifies each
 * request without parsing again. Never throws.
 */
export function compileHash (hash: string): CompiledHash {
  if (hash.startsWith('$2')) return compileBcrypt(hash)
  if (hash.startsWith('$apr1$') || hash.startsWith('$1$')) return compileMd5Crypt(hash)
  if (hash.startsWith('$5$') || hash.startsWith('$6$')) return compileShaCrypt(hash)
  if (hash.startsWith('{SHA}')) return compileSha(hash.slice(5))
  if (hash.startsWith('{SSHA}')) return compileSsha(hash.slice(6))
  if (hash.startsWith('{PLAIN}')) return compilePlain(hash.slice(7))
  if (DES_CRYPT.test(hash)) {
    return bad('legacy DES crypt is not supported (it uses only the first 8 characters of a password); re-create the entry with "htpasswd -B" (bcrypt) or "htpasswd -m" (apr1)')
  }
  if (hash === '') return bad('the hash is empty')
  // Only a fixed name is quoted: an unknown value may be a plain-text password.
  for (const [prefix, name] of UNSUPPORTED) if (hash.startsWith(prefix)) return bad(`${name} hashes are not supported; ${SUPPORTED}`)
  return bad(`unknown hash format; ${SUPPORTED}; a plain-text password needs the {PLAIN} prefix` + (/\s/.test(hash) ? ' (the value contains whitespace)' : ''))
}

/**
 * A hash of the same kind and cost as one a policy holds, for a password nobody knows: verifying
 * an unknown user's password against it takes as long as for a known user, so the answer's
 * timing does not tell which users exist.
 */
export function dummyHash (kind: HashKind): string {
  const colon = kind.indexOf(':')
  const family = colon === -1 ? kind : kind.slice(0, colon)
  const cost = colon === -1 ? 0 : Number(kind.slice(colon + 1))
  switch (family) {
    case 'bcrypt': return `$2b$${String(cost).padStart(2, '0')}$${randomCryptChars(53)}`
    case 'apr1': return `$apr1$${randomCryptChars(8)}$${randomCryptChars(22)}`
    case 'md5-crypt': return `$1$${randomCryptChars(8)}$${randomCryptChars(22)}`
    case 'sha256-crypt': return `$5$rounds=${cost}$${randomCryptChars(16)}$${randomCryptChars(43)}`
    case 'sha512-crypt': return `$6$rounds=${cost}$${randomCryptChars(16)}$${randomCryptChars(86)}`
    case 'sha': return `{SHA}${randomBytes(20).toString('base64')}`
    case 'ssha': return `{SSHA}${randomBytes(28).toString('base64')}`
    default: return `{PLAIN}${randomBytes(24).toString('base64')}`
  }
}

function randomCryptChars (count: number): string {
  let out = ''
  for (const byte of randomBytes(count)) out += ITOA64[byte & 0x3f]
  return out
}

/** True when `password` matches `hash` in any supported format; false for a wrong password and for a hash that hashProblem rejects. */
export function verifyPassword (hash: string, password: string): boolean {
  const compiled = compileHash(hash)
  return compiled.ok && compiled.verify(password)
}

/** Why a hash cannot be used (unknown format, DES crypt, a malformed or too costly bcrypt or SHA-crypt hash), or undefined when it can. */
export function hashProblem (hash: string): string | undefined {
  const compiled = compileHash(hash)
  return compiled.ok ? undefined : compiled.problem
}

/** What parsing an htpasswd file (or an auth-map Secret) gives: the usable users and one line per problem, never quoting a hash. */
export interface HtpasswdParse {
  users: Map<string, string>
  problems: string[]
}

/**
 * Parses an htpasswd file. Blank lines and `#` comments are skipped, CRLF is tolerated. As in
 * nginx, the hash ends at the next `:` (later fields are ignored). A malformed line, an unusable
 * hash or a user listed twice is a problem naming the line number and the user; a user listed
 * twice keeps the first entry as nginx does, but is reported since appending a line is a common
 * way to "change" a password that leaves the old one valid.
 */
export function parseHtpasswd (text: string): HtpasswdParse {
  const users = new Map<string, string>()
  const firstLine = new Map<string, number>()
  const problems: string[] = []
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const number = i + 1
    let line = lines[i] as string
    if (line.endsWith('\r')) line = line.slice(0, -1)
    const trimmed = line.trim()
    if (trimmed === '' || trimmed.startsWith('#')) continue
    const colon = line.indexOf(':')
    // The line is not echoed: without a colon it may well be a bare hash.
    if (colon === -1) {
      problems.push(`line ${number}: expected "user:hash"`)
      continue
    }
    if (colon === 0) {
      problems.push(`line ${number}: the user name is empty`)
      continue
    }
    const user = line.slice(0, colon)
    const end = line.indexOf(':', colon + 1)
    const hash = line.slice(colon + 1, end === -1 ? undefined : end)
    const problem = hashProblem(hash)
    const first = firstLine.get(user)
    if (problem !== undefined) {
      problems.push(`line ${number} (user ${JSON.stringify(user)}): ${problem}`)
    } else if (first !== undefined) {
      problems.push(`line ${number} (user ${JSON.stringify(user)}): the user is already on line ${first}; nginx would use only the first entry`)
    } else {
      users.set(user, hash)
    }
    if (first === undefined) firstLine.set(user, number)
  }
  return { users, problems }
}

/**
 * Parses ingress-nginx's `auth-map` Secret: each key is a user, its value the hash. ingress-nginx
 * writes `key:value\n` lines into an htpasswd file, so one trailing newline is harmless and the
 * hash ends at a `:` as in parseHtpasswd; a value with a line break inside would have added lines
 * to that file, and is a problem here.
 */
export function parseAuthMap (data: Readonly<Record<string, string>>): HtpasswdParse {
  const users = new Map<string, string>()
  const problems: string[] = []
  for (const user of Object.keys(data).sort()) {
    let value = data[user] as string
    if (value.endsWith('\n')) value = value.slice(0, value.endsWith('\r\n') ? -2 : -1)
    const label = `user ${JSON.stringify(user)}`
    if (user.includes(':')) {
      problems.push(`${label}: a user name cannot contain ":"`)
      continue
    }
    if (value.includes('\n') || value.includes('\r')) {
      problems.push(`${label}: the value spans several lines; expected one hash`)
      continue
    }
    const colon = value.indexOf(':')
    const hash = colon === -1 ? value : value.slice(0, colon)
    const problem = hashProblem(hash)
    if (problem !== undefined) problems.push(`${label}: ${problem}`)
    else users.set(user, hash)
  }
  return { users, problems }
}

function bad (problem: string): CompiledHash {
  return { ok: false, problem }
}

function ok (kind: HashKind, verify: (password: string) => boolean): CompiledHash {
  return { ok: true, kind, verify }
}

/** Compares equal-length byte strings in constant time; a length mismatch is decided on the lengths alone. */
function sameBytes (a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b)
}

function passwordBytes (password: string): Buffer | undefined {
  const bytes = Buffer.from(password, 'utf8')
  return bytes.length > MAX_PASSWORD_BYTES ? undefined : bytes
}

function compileBcrypt (hash: string): CompiledHash {
  const match = BCRYPT.exec(hash)
  if (match === null) return bad('malformed bcrypt hash: expected $2y$, $2a$ or $2b$, a two-digit cost, "$" and 53 characters of [./A-Za-z0-9]')
  const cost = Number(match[1])
  if (cost < 4) return bad(`bcrypt cost ${cost} is below the minimum of 4`)
  if (cost > MAX_BCRYPT_COST) return bad(`bcrypt cost ${cost} is above the ${MAX_BCRYPT_COST} ingressd accepts (each verification would block the gateway for seconds); re-create the entry with "htpasswd -B -C ${MAX_BCRYPT_COST}" or lower`)
  const settings = hash.slice(0, 29)
  const expected = Buffer.from(hash, 'latin1')
  return ok(`bcrypt:${cost}`, password => {
    if (passwordBytes(password) === undefined) return false
    // bcryptjs hashes with the stored settings; its own compareSync compares strings in JS, so the final comparison is ours.
    return sameBytes(Buffer.from(bcrypt.hashSync(password, settings), 'latin1'), expected)
  })
}

function compileMd5Crypt (hash: string): CompiledHash {
  const match = MD5_CRYPT.exec(hash)
  if (match === null) return bad('malformed MD5-crypt hash: expected $apr1$ or $1$, a salt of at most 8 characters, "$" and 22 characters of [./0-9A-Za-z]')
  const magic = Buffer.from(`$${match[1] as string}$`, 'latin1')
  const salt = Buffer.from(match[2] as string, 'utf8')
  const expected = Buffer.from(match[3] as string, 'latin1')
  return ok(match[1] === 'apr1' ? 'apr1' : 'md5-crypt', password => {
    const bytes = passwordBytes(password)
    return bytes !== undefined && sameBytes(md5Crypt(bytes, magic, salt), expected)
  })
}

function compileShaCrypt (hash: string): CompiledHash {
  const match = SHA_CRYPT.exec(hash)
  const sha512 = hash[1] === '6'
  const encodedLength = sha512 ? 86 : 43
  if (match === null || (match[4] as string).length !== encodedLength) {
    return bad(`malformed SHA-crypt hash: expected $${sha512 ? 6 : 5}$, an optional "rounds=N$", a salt of at most 16 characters, "$" and ${encodedLength} characters of [./0-9A-Za-z]`)
  }
  let rounds = SHA_CRYPT_DEFAULT_ROUNDS
  if (match[2] !== undefined) {
    rounds = Number(match[2])
    if (rounds > MAX_SHA_CRYPT_ROUNDS) return bad(`rounds=${rounds} is above the ${MAX_SHA_CRYPT_ROUNDS} ingressd accepts (each verification would block the gateway for seconds)`)
    // The spec raises a lower count to its minimum rather than refusing it.
    if (rounds < SHA_CRYPT_MIN_ROUNDS) rounds = SHA_CRYPT_MIN_ROUNDS
  }
  const algorithm = sha512 ? 'sha512' : 'sha256'
  const salt = Buffer.from(match[3] as string, 'utf8')
  const expected = Buffer.from(match[4] as string, 'latin1')
  return ok(`${sha512 ? 'sha512' : 'sha256'}-crypt:${rounds}`, password => {
    const bytes = passwordBytes(password)
    return bytes !== undefined && sameBytes(shaCrypt(algorithm, bytes, salt, rounds), expected)
  })
}

function compileSha (encoded: string): CompiledHash {
  const digest = STD_BASE64.test(encoded) ? Buffer.from(encoded, 'base64') : undefined
  if (digest?.length !== 20) return bad('malformed {SHA} hash: expected the base64 of a 20-byte SHA-1 digest')
  return ok('sha', password => {
    const bytes = passwordBytes(password)
    return bytes !== undefined && sameBytes(createHash('sha1').update(bytes).digest(), digest)
  })
}

function compileSsha (encoded: string): CompiledHash {
  const decoded = STD_BASE64.test(encoded) ? Buffer.from(encoded, 'base64') : undefined
  if (decoded === undefined || decoded.length <= 20) return bad('malformed {SSHA} hash: expected the base64 of a 20-byte SHA-1 digest followed by a salt')
  const digest = decoded.subarray(0, 20)
  const salt = decoded.subarray(20)
  return ok('ssha', password => {
    const bytes = passwordBytes(password)
    return bytes !== undefined && sameBytes(createHash('sha1').update(bytes).update(salt).digest(), digest)
  })
}

function compilePlain (stored: string): CompiledHash {
  if (stored === '') return bad('{PLAIN} with an empty password')
  // Both sides are digested first so that the comparison does not reveal the stored length.
  const expected = createHash('sha256').update(stored, 'utf8').digest()
  return ok('plain', password => {
    const bytes = passwordBytes(password)
    return bytes !== undefined && sameBytes(createHash('sha256').update(bytes).digest(), expected)
  })
}

/** Writes `count` characters of crypt's base-64 for a 24-bit group, least significant 6 bits first. */
function to64 (out: number[], value: number, count: number): void {
  for (let i = 0; i < count; i++) {
    out.push(ITOA64.charCodeAt(value & 0x3f))
    value >>>= 6
  }
}

/** MD5-crypt as in Poul-Henning Kamp's FreeBSD crypt-md5.c; Apache's apr1 differs only in the magic string. */
function md5Crypt (password: Buffer, magic: Buffer, salt: Buffer): Buffer {
  const alternate = createHash('md5').update(password).update(salt).update(password).digest()
  const context = createHash('md5').update(password).update(magic).update(salt)
  for (let left = password.length; left > 0; left -= 16) context.update(alternate.subarray(0, Math.min(left, 16)))
  // Kamp's "weird" step: one NUL for each set bit of the length, the password's first byte for each clear one.
  const nul = Buffer.alloc(1)
  const first = password.subarray(0, 1)
  for (let bits = password.length; bits > 0; bits >>>= 1) context.update((bits & 1) !== 0 ? nul : first)
  let final = context.digest()
  for (let i = 0; i < 1000; i++) {
    const round = createHash('md5')
    round.update((i & 1) !== 0 ? password : final)
    if (i % 3 !== 0) round.update(salt)
    if (i % 7 !== 0) round.update(password)
    round.update((i & 1) !== 0 ? final : password)
    final = round.digest()
  }
  const out: number[] = []
  to64(out, (final[0]! << 16) | (final[6]! << 8) | final[12]!, 4)
  to64(out, (final[1]! << 16) | (final[7]! << 8) | final[13]!, 4)
  to64(out, (final[2]! << 16) | (final[8]! << 8) | final[14]!, 4)
  to64(out, (final[3]! << 16) | (final[9]! << 8) | final[15]!, 4)
  to64(out, (final[4]! << 16) | (final[10]! << 8) | final[5]!, 4)
  to64(out, final[11]!, 2)
  return Buffer.from(out)
}

/** The byte order in which SHA-crypt encodes its final digest: triples, most significant first (Drepper's spec, step 22). */
const SHA256_ORDER = [
  [0, 10, 20], [21, 1, 11], [12, 22, 2], [3, 13, 23], [24, 4, 14], [15, 25, 5], [6, 16, 26], [27, 7, 17], [18, 28, 8], [9, 19, 29]
] as const
const SHA512_ORDER = [
  [0, 21, 42], [22, 43, 1], [44, 2, 23], [3, 24, 45], [25, 46, 4], [47, 5, 26], [6, 27, 48], [28, 49, 7], [50, 8, 29], [9, 30, 51], [31, 52, 10],
  [53, 11, 32], [12, 33, 54], [34, 55, 13], [56, 14, 35], [15, 36, 57], [37, 58, 16], [59, 17, 38], [18, 39, 60], [40, 61, 19], [62, 20, 41]
] as const

/** Repeats `block` to exactly `length` bytes (the spec's P and S sequences, and step 11's B run). */
function repeatTo (block: Buffer, length: number): Buffer {
  const out = Buffer.allocUnsafe(length)
  for (let at = 0; at < length; at += block.length) block.copy(out, at, 0, Math.min(block.length, length - at))
  return out
}

/** SHA-crypt as in Ulrich Drepper's specification (glibc's sha256-crypt.c / sha512-crypt.c); returns the encoded digest without salt or rounds. */
function shaCrypt (algorithm: 'sha256' | 'sha512', password: Buffer, salt: Buffer, rounds: number): Buffer {
  const size = algorithm === 'sha512' ? 64 : 32
  const b = createHash(algorithm).update(password).update(salt).update(password).digest()
  const a = createHash(algorithm).update(password).update(salt).update(repeatTo(b, password.length))
  for (let bits = password.length; bits > 0; bits >>>= 1) a.update((bits & 1) !== 0 ? b : password)
  const aDigest = a.digest()
  const dp = createHash(algorithm)
  for (let i = 0; i < password.length; i++) dp.update(password)
  const p = repeatTo(dp.digest(), password.length)
  const ds = createHash(algorithm)
  for (let i = 0; i < 16 + aDigest[0]!; i++) ds.update(salt)
  const s = repeatTo(ds.digest(), salt.length)
  let c = aDigest
  for (let i = 0; i < rounds; i++) {
    const round = createHash(algorithm)
    round.update((i & 1) !== 0 ? p : c)
    if (i % 3 !== 0) round.update(s)
    if (i % 7 !== 0) round.update(p)
    round.update((i & 1) !== 0 ? c : p)
    c = round.digest()
  }
  const out: number[] = []
  for (const [x, y, z] of size === 64 ? SHA512_ORDER : SHA256_ORDER) to64(out, (c[x]! << 16) | (c[y]! << 8) | c[z]!, 4)
  if (size === 64) to64(out, c[63]!, 2)
  else to64(out, (c[31]! << 8) | c[30]!, 3)
  return Buffer.from(out)
}
