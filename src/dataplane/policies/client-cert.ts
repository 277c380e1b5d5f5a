/**
 * ingress-nginx's client certificates (mutual TLS): `auth-tls-secret` names a Secret whose ca.crt
 * holds the CAs, `auth-tls-verify-client` says whether a certificate is required, `-verify-depth`
 * how many CAs may stand between it and the root, `-pass-certificate-to-upstream`,
 * `-error-page` and `-match-cn` what happens next. As in ingress-nginx the settings are per host
 * (the oldest served ingress naming a CA for the host wins; compile-certificates.ts builds them
 * into the SNI table) and cover every path of the host.
 *
 * The TLS side asks only where it must: the listener does not request certificates, and the
 * SNICallback switches the one handshake whose name needs one to asking (as nginx does with
 * SSL_set_verify in its servername callback), with a context that carries the host's CA, so the
 * certificate request names those CAs and OpenSSL verifies against them alone. The handshake never
 * fails on a certificate: the verdict is read afterwards and answered at the HTTP level, as nginx
 * answers 400 (or the error page), so a browser shows a page rather than a TLS alert.
 *
 * Node only reports a client certificate's verdict (`socket.authorized`) on servers created with
 * requestCert, and has no public call to ask for a certificate in one handshake: two methods of
 * its TLSWrap do both (see tlsWrapOf), tested so that a Node upgrade that drops them fails loudly.
 *
 * A resumed TLS session skips the SNICallback and carries the certificate (and OpenSSL's verdict)
 * of the handshake it came from, which may have been another host's, under another CA, or one
 * that never asked. So a resumed connection is only trusted for a certificate this process
 * verified in a full handshake against the same CA (kept by fingerprint); anything else is
 * refused, never assumed.
 */
import { createHash, X509Certificate } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { TLSSocket } from 'node:tls'
import safeRegex from 'safe-regex2'
import { NGINX_PREFIX } from '../../resources/annotation-prefix.js'
import { issuedBy, isSelfSigned } from '../../resources/tls-material.js'
import { ERROR_CODES } from '../../errors.js'
import { clientAuthFor, type ClientAuth, type ClientCa, type ClientVerifyMode, type SniSource } from '../sni-table.js'
import { parseSecretReference, type AnnotationProblem, type AnnotationReader, type FamilyParse, type PolicyAnswer, type PolicyContext, type PolicyStep, type SecretLookup, type SecretMaterial, type StepResult } from './policy.js'

/** The annotations this family reads (without the prefix). */
export const CLIENT_CERT_KEYS = ['auth-tls-secret', 'auth-tls-verify-client', 'auth-tls-verify-depth', 'auth-tls-pass-certificate-to-upstream', 'auth-tls-error-page', 'auth-tls-match-cn'] as const

/**
 * The request headers that tell an upstream about the client's certificate. The gateway sets
 * them on the hosts with client certificates; a client's own must never reach any upstream.
 */
export const CLIENT_CERT_HEADERS = ['ssl-client-verify', 'ssl-client-subject-dn', 'ssl-client-issuer-dn', 'ssl-client-cert'] as const

/** The key of a Secret that holds the CA bundle. */
export const CA_KEY = 'ca.crt'

export interface ClientCertSpec {
  /** The Secret with ca.crt: always the ingress's own namespace (cross-namespace references are refused). */
  readonly secret: { readonly namespace: string, readonly name: string }
  readonly verify: ClientVerifyMode
  /** Most CA certificates allowed between the client's certificate and its root. */
  readonly depth: number
  readonly passCertificate: boolean
  /** An http(s) URL: a refused certificate gets a 302 there instead of the 400. */
  readonly errorPage?: string
  /** A regular expression (starting "CN=") the certificate's subject DN must match, as nginx's `$ssl_client_s_dn !~`. */
  readonly matchCn?: string
}

const VERIFY_MODES: readonly ClientVerifyMode[] = ['on', 'off', 'optional', 'optional_no_ca']
const DEFAULT_DEPTH = 1
const ERROR_PAGE = /^[\x21-\x7e]+$/

/**
 * Reads the auth-tls annotations. Without auth-tls-secret nothing is enforced (as in
 * ingress-nginx), but the other keys are still checked, so a typo is refused rather than ignored.
 */
export function parseClientCert (read: AnnotationReader, ingressNamespace: string): FamilyParse<ClientCertSpec> {
  const problems: AnnotationProblem[] = []
  const denials: AnnotationProblem[] = []
  const key = (name: string): string => NGINX_PREFIX + name

  let verify: ClientVerifyMode = 'on'
  const verifyValue = read('auth-tls-verify-client')
  if (verifyValue !== undefined) {
    if ((VERIFY_MODES as readonly string[]).includes(verifyValue)) verify = verifyValue as ClientVerifyMode
    else problems.push({ key: key('auth-tls-verify-client'), message: `expected "on", "off", "optional" or "optional_no_ca", got ${JSON.stringify(verifyValue)}` })
  }

  let depth = DEFAULT_DEPTH
  const depthValue = read('auth-tls-verify-depth')
  if (depthValue !== undefined) {
    const n = /^\d+$/.test(depthValue) ? Number(depthValue) : NaN
    // 0 is ingress-nginx's "not set": the default, 1.
    if (Number.isSafeInteger(n)) depth = n === 0 ? DEFAULT_DEPTH : n
    else problems.push({ key: key('auth-tls-verify-depth'), message: `expected a positive integer (how many CA certificates may stand between the client's certificate and its root), got ${JSON.stringify(depthValue)}` })
  }

  let passCertificate = false
  const passValue = read('auth-tls-pass-certificate-to-upstream')
  if (passValue === 'true' || passValue === 'false') passCertificate = passValue === 'true'
  else if (passValue !== undefined) problems.push({ key: key('auth-tls-pass-certificate-to-upstream'), message: `expected "true" or "false", got ${JSON.stringify(passValue)}` })

  const errorPage = read('auth-tls-error-page')
  if (errorPage !== undefined) {
    const problem = errorPageProblem(errorPage)
    if (problem !== undefined) problems.push({ key: key('auth-tls-error-page'), message: `${problem}, got ${JSON.stringify(errorPage)}` })
  }

  const matchCn = read('auth-tls-match-cn')
  if (matchCn !== undefined) {
    const problem = matchCnProblem(matchCn)
    if (problem !== undefined) problems.push({ key: key('auth-tls-match-cn'), message: `${problem}, got ${JSON.stringify(matchCn)}` })
  }

  const secretValue = read('auth-tls-secret')
  if (secretValue === undefined) return { problems, denials }
  const secret = parseSecretReference(`${NGINX_PREFIX}auth-tls-secret`, secretValue, ingressNamespace, 'ca.crt', problems)
  if (secret === undefined || problems.length > 0) return { problems, denials }
  const spec: { -readonly [K in keyof ClientCertSpec]: ClientCertSpec[K] } = { secret: Object.freeze(secret), verify, depth, passCertificate }
  if (errorPage !== undefined) spec.errorPage = errorPage
  if (matchCn !== undefined) spec.matchCn = matchCn
  return { spec: Object.freeze(spec), problems, denials }
}

function errorPageProblem (value: string): string | undefined {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return 'expected an absolute http or https URL (clients whose certificate is refused are redirected there)'
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'expected an http or https URL'
  // Sent as the Location header as written.
  if (!ERROR_PAGE.test(value)) return 'expected a URL without spaces or characters outside printable ASCII (percent-encode them)'
  return undefined
}

function matchCnProblem (value: string): string | undefined {
  if (!value.startsWith('CN=')) return 'expected a regular expression starting with "CN=" (matched against the client certificate\'s subject DN, such as "CN=client,O=Example")'
  try {
    // eslint-disable-next-line no-new
    new RegExp(value)
  } catch (err) {
    return `not a valid regular expression: ${(err as Error).message}`
  }
  if (!safeRegex(value)) return 'the expression could backtrack catastrophically (nested quantifiers); rewrite it without a repeated group that itself repeats'
  return undefined
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g

/** Parses a CA bundle: every CERTIFICATE block of it, or why it cannot verify anything. */
export function parseClientCa (pem: string): { ca: ClientCa } | { problem: string } {
  const blocks = pem.match(PEM_CERTIFICATE) ?? []
  if (blocks.length === 0) return { problem: 'holds no PEM certificate (-----BEGIN CERTIFICATE-----)' }
  const certificates: X509Certificate[] = []
  for (const [i, block] of blocks.entries()) {
    try {
      certificates.push(new X509Certificate(block))
    } catch {
      return { problem: `certificate ${i} is not a valid PEM-encoded X.509 certificate` }
    }
  }
  const joined = blocks.join('\n') + '\n'
  const digest = createHash('sha256').update(joined).digest('hex')
  const notSelfSigned = certificates.filter(c => !isSelfSigned(c)).length
  return { ca: Object.freeze({ digest, pem: joined, certificates: Object.freeze(certificates), notSelfSigned }) }
}

/** Parsed bundles by the Secret material they came from: secret-material.ts keeps an unchanged Secret's material the same object. */
const caByMaterial = new WeakMap<SecretMaterial, { ca: ClientCa } | { problem: string }>()

const DENIED_SUFFIX = 'every request to its hosts answers 503 until it is fixed, rather than going through without the client certificate check'

/**
 * A host's settings from a spec and the snapshot's Secrets. A missing Secret, one without
 * ca.crt, or a ca.crt that holds no usable certificate denies the host (503), never opens it.
 */
export function bindClientAuth (spec: ClientCertSpec, secrets: SecretLookup, ingress: string): ClientAuth {
  const secret = `${spec.secret.namespace}/${spec.secret.name}`
  const base = {
    ingress,
    secret,
    mode: spec.verify,
    depth: spec.depth,
    passCertificate: spec.passCertificate,
    errorPage: spec.errorPage,
    matchCn: spec.matchCn === undefined ? undefined : new RegExp(spec.matchCn)
  }
  const deny = (why: string): ClientAuth => Object.freeze({ ...base, ca: undefined, denied: `auth-tls-secret: Secret ${secret} ${why}; ${DENIED_SUFFIX}` })
  const material = secrets(spec.secret.namespace, spec.secret.name)
  if (material === undefined) return deny('does not exist')
  const pem = material.data[CA_KEY]
  if (pem === undefined) return deny(`has no key "${CA_KEY}" (the PEM CA certificates client certificates are verified against)`)
  let parsed = caByMaterial.get(material)
  if (parsed === undefined) {
    parsed = parseClientCa(pem)
    caByMaterial.set(material, parsed)
  }
  if ('problem' in parsed) return deny(`${CA_KEY} ${parsed.problem}`)
  return Object.freeze({ ...base, ca: parsed.ca, denied: undefined })
}

/** A spec's settings with a reason to deny instead of a CA: annotations a stored ingress carries but that are malformed. */
export function deniedClientAuth (ingress: string, why: string): ClientAuth {
  return Object.freeze({ ingress, secret: '', mode: 'on', depth: DEFAULT_DEPTH, passCertificate: false, errorPage: undefined, matchCn: undefined, ca: undefined, denied: `${why}; ${DENIED_SUFFIX}` })
}

/** What decides how a handshake verifies, so that two settings alike share sessions and verdicts; also what a change of settings is noticed by. */
export function clientAuthSignature (auth: ClientAuth): string {
  return `${auth.mode} ${auth.ca?.digest ?? '-'} ${auth.denied === undefined ? '' : 'denied'}`
}

// --- The TLS side -------------------------------------------------------------------------------

/**
 * The two methods of Node's TLSWrap (`socket._handle`) this module needs; neither is public API.
 * `setVerifyMode(true, false)` switches the handshake in progress to asking for a certificate
 * (SSL_set_verify with SSL_VERIFY_PEER: the handshake completes whatever is sent); `verifyError()`
 * is OpenSSL's verdict on the certificate received (null when it verified), the value Node
 * itself reads for `socket.authorized` on servers created with requestCert.
 */
interface TlsWrapInternals {
  setVerifyMode: (requestCert: boolean, rejectUnauthorized: boolean) => void
  verifyError: () => (Error & { code?: string }) | null
}

/** Node's TLSWrap of a socket; throws, naming the Node version, when the methods relied on are gone. */
export function tlsWrapOf (socket: TLSSocket): TlsWrapInternals {
  const handle = (socket as unknown as { _handle?: Partial<TlsWrapInternals> | null })._handle
  if (handle === undefined || handle === null) throw new Error('the TLS socket has no handle (closed)')
  if (typeof handle.setVerifyMode !== 'function' || typeof handle.verifyError !== 'function') {
    throw new Error(`Node ${process.version} no longer has TLSWrap setVerifyMode()/verifyError(): client certificates cannot be asked for or verified`)
  }
  return handle as TlsWrapInternals
}

/** Why OpenSSL refused a certificate: its code name (Node's err.code) and text (X509_verify_cert_error_string, what nginx puts after FAILED:). */
export interface VerifyFailure {
  readonly code: string
  readonly message: string
}

/** What a client presented in its handshake and what OpenSSL said of it. */
export interface PeerCertificates {
  /** The client's certificate; undefined when it sent none. */
  readonly leaf: X509Certificate | undefined
  /** The other certificates it sent (intermediates), in the order Node chained them. */
  readonly sent: readonly X509Certificate[]
  /** OpenSSL's verdict; undefined when the certificate verified (or none was sent). */
  readonly failure: VerifyFailure | undefined
}

/** Reads the client's certificates and OpenSSL's verdict off a server-side TLS socket (HTTP/2's socket proxy works too). */
export function peerCertificates (socket: TLSSocket): PeerCertificates {
  const peer = socket.getPeerCertificate(true)
  if (peer?.raw === undefined) return { leaf: undefined, sent: [], failure: undefined }
  const leaf = new X509Certificate(peer.raw)
  const sent: X509Certificate[] = []
  const seen = new Set([leaf.fingerprint256])
  for (let next = peer.issuerCertificate; next?.raw !== undefined; next = next.issuerCertificate) {
    const cert = new X509Certificate(next.raw)
    if (seen.has(cert.fingerprint256)) break
    seen.add(cert.fingerprint256)
    sent.push(cert)
  }
  const error = tlsWrapOf(socket).verifyError()
  return { leaf, sent, failure: error === null ? undefined : { code: error.code ?? 'UNKNOWN', message: error.message } }
}

const NEGOTIATION = Symbol('ingressd.clientCertificate')

/** What the handshake of one connection did about client certificates; kept on the socket. */
interface Negotiation {
  /** The settings of the SNI name; undefined for a name without any, or for a resumed session. */
  readonly auth: ClientAuth | undefined
  /** True once the handshake was switched to asking, against auth's CA. */
  requested: boolean
  /** True for a resumed session: no SNICallback ran, the certificate (if any) is the original handshake's. */
  readonly resumed: boolean
  peer?: SettledPeer
}

/** The client's certificate as a connection's requests use it, worked out once per connection. */
interface SettledPeer extends PeerCertificates {
  /** CA certificates between the leaf and the root (for auth-tls-verify-depth); meaningful when it verified. */
  readonly intermediates: number
  /** Earliest notAfter of the certificates sent, in ms. */
  readonly notAfter: number
  subjectDn?: string
  issuerDn?: string
  escapedPem?: string
}

type NegotiatedSocket = TLSSocket & { [NEGOTIATION]?: Negotiation }

/**
 * Called by the SNICallback (`this`, the socket) when the current table has client-certificate
 * settings at all: records what the name wants, and with `ask` switches this handshake to asking
 * for a certificate. The context the callback returns must then carry auth's CA
 * (clientAuthContextFor): the CertificateRequest names those CAs, and OpenSSL verifies against
 * them. Client-initiated renegotiation (TLS 1.2) is refused from here on, so the certificate a
 * connection was judged by cannot change under it. Throws when Node's internals are gone: the
 * record then says nothing was asked, and requests needing a certificate are refused.
 */
export function negotiateClientCertificate (socket: TLSSocket, auth: ClientAuth | undefined, ask: boolean): void {
  const negotiation: Negotiation = { auth, requested: false, resumed: false }
  ;(socket as NegotiatedSocket)[NEGOTIATION] = negotiation
  if (!ask) return
  socket.disableRenegotiation()
  tlsWrapOf(socket).setVerifyMode(true, false)
  negotiation.requested = true
}

/**
 * Called when a handshake completes ('secureConnection'): a handshake that asked for a
 * certificate has its verdict read now, and a certificate that was presented is remembered with
 * it, so that a session resumed from this one can be judged later. A no-op otherwise.
 */
export function settleClientCertificate (socket: TLSSocket): void {
  const negotiation = (socket as NegotiatedSocket)[NEGOTIATION]
  if (negotiation === undefined || !negotiation.requested || negotiation.peer !== undefined) return
  try {
    negotiation.peer = settle(socket, negotiation.auth?.ca)
  } catch {
    // Left unsettled: the first request tries again, and is refused if that fails too.
  }
}

function settle (socket: TLSSocket, ca: ClientCa | undefined): SettledPeer {
  const peer = peerCertificates(socket)
  const { leaf, sent, failure } = peer
  if (leaf === undefined) return { ...peer, intermediates: 0, notAfter: Infinity }
  const intermediates = failure === undefined && ca !== undefined ? intermediatesOf(leaf, sent, ca) : sent.length
  const notAfter = Math.min(...[leaf, ...sent].map(c => Date.parse(c.validTo)))
  if (ca !== undefined) remember(`${ca.digest} ${leaf.fingerprint256}`, { failure, intermediates, notAfter })
  return { ...peer, intermediates, notAfter }
}

/**
 * How many CA certificates stand between a verified leaf and its self-signed root, the chain
 * built the way OpenSSL built it: from what the client sent and the bundle. OpenSSL's own depth
 * limit is not reachable from Node, so auth-tls-verify-depth is checked against this.
 */
function intermediatesOf (leaf: X509Certificate, sent: readonly X509Certificate[], ca: ClientCa): number {
  const bound = sent.length + ca.notSelfSigned
  // Only a self-signed root can issue it directly: no walk needed for the common bundle.
  if (bound === 0) return 0
  const pool = [...sent, ...ca.certificates]
  const trusted = new Set(ca.certificates.filter(isSelfSigned).map(c => c.fingerprint256))
  let current = leaf
  let links = 0
  while (!trusted.has(current.fingerprint256)) {
    const issuer = pool.find(c => c !== current && issuedBy(current, c))
    // OpenSSL found a chain this walk does not: count every certificate that could be in it.
    if (issuer === undefined || links > bound) return bound
    current = issuer
    links++
  }
  return Math.max(0, links - 1)
}

/** A certificate's verdict against one CA bundle, from a full handshake: what a resumed session of it is judged by. */
interface VerifiedCertificate {
  readonly failure: VerifyFailure | undefined
  readonly intermediates: number
  readonly notAfter: number
}

/** Verdicts by `<CA digest> <certificate fingerprint>`, least recently used out. A few hundred bytes each. */
const VERIFIED_LIMIT = 10_000
const verified = new Map<string, VerifiedCertificate>()

function remember (key: string, value: VerifiedCertificate): void {
  if (verified.has(key)) verified.delete(key)
  else if (verified.size >= VERIFIED_LIMIT) {
    const oldest = verified.keys().next()
    if (oldest.done !== true) verified.delete(oldest.value)
  }
  verified.set(key, value)
}

function recall (key: string): VerifiedCertificate | undefined {
  const value = verified.get(key)
  if (value !== undefined) {
    verified.delete(key)
    verified.set(key, value)
  }
  return value
}

const NOT_VERIFIED_HERE: VerifyFailure = Object.freeze({ code: 'SESSION_NOT_VERIFIED', message: 'the TLS session was resumed, and this certificate was not verified against this host\'s CA' })
const EXPIRED: VerifyFailure = Object.freeze({ code: 'CERT_HAS_EXPIRED', message: 'certificate has expired' })
const CHAIN_TOO_LONG: VerifyFailure = Object.freeze({ code: 'CERT_CHAIN_TOO_LONG', message: 'certificate chain too long' })

/** OpenSSL verdicts that auth-tls-verify-client "optional_no_ca" lets through: the issuer is unknown (nginx's ngx_ssl_verify_error_optional). */
const OPTIONAL_NO_CA_ERRORS = new Set(['DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'])

/** The certificate a request is judged by, and what stands against it. */
interface Verdict {
  readonly peer: SettledPeer | undefined
  readonly failure: VerifyFailure | undefined
  /** CA certificates between it and its root, for auth-tls-verify-depth. */
  readonly intermediates: number
}

const NO_CERTIFICATE: Verdict = Object.freeze({ peer: undefined, failure: undefined, intermediates: 0 })

/** The socket a request came over: HTTP/2's proxy of the session's TLS socket forwards everything used here. */
function tlsSocketOf (req: IncomingMessage): TLSSocket {
  return req.socket as TLSSocket
}

/**
 * The connection's certificate as judged for `auth` (a mode other than off, with a CA), or why it
 * cannot be: 'misdirected' when the handshake was made for a name with other settings (the
 * client must open a connection for this host, nginx's 421), 'failed' when the handshake could not
 * ask for one.
 */
function verdictFor (socket: NegotiatedSocket, auth: ClientAuth, ca: ClientCa): Verdict | 'misdirected' | 'failed' {
  let negotiation = socket[NEGOTIATION]
  if (negotiation === undefined) {
    if (!socket.isSessionReused()) {
      // No SNICallback ran: a client without SNI was never asked; one with SNI shook hands
      // before this host had client certificates.
      return typeof socket.servername === 'string' && socket.servername !== '' ? 'misdirected' : NO_CERTIFICATE
    }
    negotiation = { auth: undefined, requested: false, resumed: true }
    socket[NEGOTIATION] = negotiation
    socket.disableRenegotiation()
  }
  if (negotiation.resumed) {
    const peer = negotiation.peer ??= settle(socket, undefined)
    if (peer.leaf === undefined) return NO_CERTIFICATE
    const known = recall(`${ca.digest} ${peer.leaf.fingerprint256}`)
    if (known === undefined) return { peer, failure: NOT_VERIFIED_HERE, intermediates: 0 }
    if (known.failure === undefined && Date.now() > known.notAfter) return { peer, failure: EXPIRED, intermediates: 0 }
    return { peer, failure: known.failure, intermediates: known.intermediates }
  }
  const negotiated = negotiation.auth
  if (negotiated?.ca?.digest !== ca.digest || negotiated.mode === 'off') return 'misdirected'
  if (!negotiation.requested) return 'failed'
  const peer = negotiation.peer ??= settle(socket, ca)
  if (peer.leaf === undefined) return NO_CERTIFICATE
  return { peer, failure: peer.failure, intermediates: peer.intermediates }
}

// --- The request side ---------------------------------------------------------------------------

const DENIED: PolicyAnswer = Object.freeze({ status: 503, code: 'INGRESSD_ERR_ACCESS_DENIED_CONFIG' })
const FORBIDDEN: PolicyAnswer = Object.freeze({ status: 403, code: 'INGRESSD_ERR_AUTH_FORBIDDEN' })
const CLOSE = Object.freeze({ connection: 'close' })
const CLEARED = Object.freeze(Object.fromEntries(CLIENT_CERT_HEADERS.map(h => [h, null])) as Record<(typeof CLIENT_CERT_HEADERS)[number], null>)

/** The 400 (nginx's 495/496), or the error page's 302; the HTTP/1 connection closes after it, as nginx closes it. */
function refuse (auth: ClientAuth, ctx: PolicyContext): PolicyAnswer {
  const http1 = ctx.req.httpVersionMajor === 1 && ctx.req.headers.upgrade === undefined
  if (auth.errorPage !== undefined) {
    const headers: Record<string, string> = { location: auth.errorPage, 'content-type': 'text/plain; charset=utf-8' }
    return { status: 302, headers, body: `302 Found\nlocation: ${auth.errorPage}\n` }
  }
  return http1 ? { status: 400, code: 'INGRESSD_ERR_CLIENT_CERTIFICATE', headers: CLOSE } : { status: 400, code: 'INGRESSD_ERR_CLIENT_CERTIFICATE' }
}

/** nginx's 421 when a request names a host whose client-certificate settings its connection was not made with. */
function misdirected (ctx: PolicyContext): PolicyAnswer {
  const summary = ERROR_CODES.INGRESSD_ERR_CLIENT_CERTIFICATE.summary.replace(/^Data plane: /, '')
  return {
    status: 421,
    headers: { 'content-type': 'text/plain; charset=utf-8' },
    body: `421 Misdirected Request: this connection was not opened for ${ctx.host}, whose client certificate is checked in the TLS handshake; open a new connection to it (with SNI ${ctx.host})\n${summary}\ncode: INGRESSD_ERR_CLIENT_CERTIFICATE\nrequest id: ${ctx.requestId}\n`
  }
}

/**
 * The check for one request under its host's settings: 503 when they are denied, 400 (or the
 * error page's 302) for a certificate missing under "on" or refused, 421 for a connection made
 * for another host's settings, 403 when auth-tls-match-cn does not match the subject DN; else
 * the ssl-client-* headers are set for the upstream (each one the request does not get is removed).
 *
 * Over plain HTTP no certificate can be asked for: ingress-nginx's auth-tls only applies on
 * HTTPS and its ssl-redirect sends such requests there first. A request that was not redirected
 * fails closed under "on" (400) rather than reaching a backend that counts on the check.
 */
export function checkClientCertificate (auth: ClientAuth, ctx: PolicyContext): StepResult {
  if (auth.denied !== undefined || auth.ca === undefined) return DENIED
  let verdict = NO_CERTIFICATE
  if (ctx.proto === 'https' && auth.mode !== 'off') {
    let found
    try {
      found = verdictFor(tlsSocketOf(ctx.req) as NegotiatedSocket, auth, auth.ca)
    } catch {
      // Node's internals are gone or the socket closed mid-way: never let the request through unchecked.
      found = 'failed' as const
    }
    if (found === 'misdirected') return misdirected(ctx)
    if (found === 'failed') return DENIED
    verdict = found
  } else if (ctx.proto !== 'https' && auth.mode === 'on') {
    return refuse(auth, ctx)
  }

  const peer = verdict.peer
  let failure = verdict.failure
  if (peer !== undefined && failure === undefined && verdict.intermediates > auth.depth) failure = CHAIN_TOO_LONG
  if (peer === undefined) {
    if (auth.mode === 'on') return refuse(auth, ctx)
  } else if (failure !== undefined && !(auth.mode === 'optional_no_ca' && OPTIONAL_NO_CA_ERRORS.has(failure.code))) {
    return refuse(auth, ctx)
  }
  const subjectDn = peer === undefined ? undefined : (peer.subjectDn ??= rfc2253((peer.leaf as X509Certificate).subject))
  // As nginx's `if ($ssl_client_s_dn !~ ...)`: no certificate is an empty DN.
  if (auth.matchCn !== undefined && !auth.matchCn.test(subjectDn ?? '')) return FORBIDDEN

  if (ctx.proto !== 'https') {
    // nginx's variables are empty over plain HTTP, and an empty header is not sent.
    ctx.upstreamHeaders = { ...ctx.upstreamHeaders, ...CLEARED }
    return undefined
  }
  const headers: Record<string, string | null> = { ...CLEARED, 'ssl-client-verify': peer === undefined ? 'NONE' : failure === undefined ? 'SUCCESS' : `FAILED:${failure.message}` }
  if (peer !== undefined) {
    const leaf = peer.leaf as X509Certificate
    headers['ssl-client-subject-dn'] = subjectDn as string
    headers['ssl-client-issuer-dn'] = peer.issuerDn ??= rfc2253(leaf.issuer)
    // nginx's $ssl_client_escaped_cert: the PEM, URL-encoded.
    if (auth.passCertificate) headers['ssl-client-cert'] = peer.escapedPem ??= encodeURIComponent(leaf.toString())
  }
  ctx.upstreamHeaders = { ...ctx.upstreamHeaders, ...headers }
  return undefined
}

/**
 * The step the proxy runs for every request on either listener: looks the request's host up in
 * the current SNI table (client certificates are per host, not per route) and checks it there.
 * A table without client-certificate settings costs one property read.
 */
export function clientCertificateStep (sni: SniSource): PolicyStep {
  return (ctx: PolicyContext) => {
    const table = sni.sni
    if (table?.clientAuth === undefined) return undefined
    const auth = clientAuthFor(table, ctx.host)
    return auth === undefined ? undefined : checkClientCertificate(auth, ctx)
  }
}

/**
 * A distinguished name as nginx's `$ssl_client_s_dn` gives it (OpenSSL's RFC 2253 form: the most
 * specific RDN first, ',' between RDNs, '+' between the parts of one, bytes above 0x7e escaped as
 * `\XX`), from Node's form (`X509Certificate#subject`: one RDN per line in certificate order,
 * ' + ' between parts, already escaped as RFC 2253 asks except for those bytes).
 */
export function rfc2253 (nodeName: string): string {
  return nodeName.split('\n').filter(rdn => rdn !== '').reverse()
    .map(rdn => rdn.split(' + ').reverse().join('+')).join(',')
    .replace(/[^\x20-\x7e]/gu, ch => Buffer.from(ch, 'utf8').toString('hex').toUpperCase().replace(/../g, '\\$&'))
}
