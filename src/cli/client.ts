/**
 * The admin API client the verbs share: one undici Agent per command, the bearer token on every
 * request, Kubernetes Status replies turned into a typed {@link ApiError}, and a refused or failed
 * connection into a {@link ConnectionError}. Over https:// (INGRESSD_ADMIN_TLS) it verifies the
 * admin API with the CA given by --certificate-authority or INGRESSD_ADMIN_CA (else the system's
 * CAs), or not at all with --insecure-skip-tls-verify or INGRESSD_ADMIN_INSECURE=1.
 */
import { readFileSync } from 'node:fs'
import { Agent, request } from 'undici'

/** The admin API address when neither --server nor INGRESSD_SERVER says otherwise. */
export const DEFAULT_SERVER = 'http://127.0.0.1:8001'

/** One field-level problem from `details.causes[]`. */
export interface StatusCause {
  field?: string
  message?: string
  reason?: string
}

/** The admin API answered with an error: what its Status body said. */
export class ApiError extends Error {
  /** HTTP status. */
  readonly status: number
  /** Kubernetes reason: NotFound, Invalid, Unauthorized... */
  readonly reason: string
  /** ingressd's stable code (`INGRESSD_ERR_INVALID`), when the body was a Status. */
  readonly errorCode: string | undefined
  readonly causes: StatusCause[]
  /** `details` of the Status: the kind and name the error is about. */
  readonly details: { name?: string, kind?: string, group?: string }

  constructor (status: number, reason: string, message: string, opts: { errorCode?: string, causes?: StatusCause[], details?: { name?: string, kind?: string, group?: string } } = {}) {
    super(message)
    this.name = 'ApiError'
    this.status = status
    this.reason = reason
    this.errorCode = opts.errorCode
    this.causes = opts.causes ?? []
    this.details = opts.details ?? {}
  }

  /** The same error with another message (to say which file an /apply error is about). */
  withMessage (message: string): ApiError {
    const opts: ConstructorParameters<typeof ApiError>[3] = { causes: this.causes, details: this.details }
    if (this.errorCode !== undefined) opts.errorCode = this.errorCode
    return new ApiError(this.status, this.reason, message, opts)
  }

  /** Whether the error is a 404 for the object asked for (not for an unknown path). */
  get notFound (): boolean {
    return this.status === 404 && this.reason === 'NotFound' && this.details.name !== undefined
  }
}

/** The admin API could not be reached at all. */
export class ConnectionError extends Error {
  readonly server: string
  constructor (server: string, message: string, cause: unknown) {
    super(message, { cause })
    this.name = 'ConnectionError'
    this.server = server
  }
}

/** A successful reply: the parsed JSON body and any Kubernetes Warning headers. */
export interface ApiReply<T> {
  status: number
  body: T
  warnings: string[]
}

/** Where the client connects and how it authenticates. */
export interface ClientOptions {
  server: string
  token?: string
  /** PEM CA certificate(s) the admin API's certificate must chain to, instead of the system's. */
  ca?: string
  /** Skip verifying the admin API's certificate (--insecure-skip-tls-verify). */
  insecure?: boolean
}

/** The client flags every command shares, as parsed. */
export interface ClientFlags {
  server?: string
  token?: string
  'certificate-authority'?: string
  'insecure-skip-tls-verify'?: boolean
}

/**
 * Where to connect and how, from the flags, then the environment (INGRESSD_SERVER,
 * INGRESSD_ADMIN_TOKEN, INGRESSD_ADMIN_CA, INGRESSD_ADMIN_INSECURE), then the defaults. Answers
 * `{ usage }` for a value the user must correct.
 */
export function clientOptions (flags: ClientFlags, env: Record<string, string | undefined>): ClientOptions | { usage: string } {
  const set = (value: string | undefined): string | undefined => value === undefined || value === '' ? undefined : value
  const serverValue = flags.server ?? set(env.INGRESSD_SERVER) ?? DEFAULT_SERVER
  const server = normaliseServer(serverValue)
  if (server === undefined) return { usage: `--server must be an http:// or https:// URL, not "${serverValue}"` }
  const opts: ClientOptions = { server }
  const token = flags.token ?? env.INGRESSD_ADMIN_TOKEN
  if (token !== undefined) opts.token = token
  if (flags['insecure-skip-tls-verify'] === true || /^(1|true|yes)$/i.test(env.INGRESSD_ADMIN_INSECURE ?? '')) opts.insecure = true
  const caFile = set(flags['certificate-authority']) ?? set(env.INGRESSD_ADMIN_CA)
  if (caFile !== undefined) {
    const name = flags['certificate-authority'] !== undefined ? '--certificate-authority' : 'INGRESSD_ADMIN_CA'
    if (opts.insecure === true) return { usage: `${name} and --insecure-skip-tls-verify (INGRESSD_ADMIN_INSECURE) contradict each other: verify with the CA, or not at all` }
    let pem: string
    try {
      pem = readFileSync(caFile, 'utf8')
    } catch (err) {
      return { usage: `${name}=${caFile} cannot be read (${(err as { code?: string }).code ?? (err as Error).message})` }
    }
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) return { usage: `${name}=${caFile} holds no PEM certificate (-----BEGIN CERTIFICATE-----); fetch the admin API's CA with "ingressd kubeconfig" or from https://HOST:PORT/ca.crt` }
    opts.ca = pem
  }
  return opts
}

/** `299 - "text"` (possibly several, comma-separated) -> the texts. */
function parseWarnings (header: string | string[] | undefined): string[] {
  if (header === undefined) return []
  const values = Array.isArray(header) ? header : [header]
  const out: string[] = []
  for (const value of values) {
    const re = /\d{3}\s+\S+\s+"((?:[^"\\]|\\.)*)"/g
    let m: RegExpExecArray | null
    let found = false
    while ((m = re.exec(value)) !== null) {
      found = true
      out.push((m[1] ?? '').replace(/\\(.)/g, '$1'))
    }
    if (!found && value.trim() !== '') out.push(value.trim())
  }
  return out
}

const CONNECT_HINTS: Record<string, string> = {
  ECONNREFUSED: 'is ingressd serving?',
  ECONNRESET: 'the connection was reset',
  ENOTFOUND: 'the host name does not resolve',
  EAI_AGAIN: 'the host name does not resolve',
  EHOSTUNREACH: 'the host is unreachable',
  ENETUNREACH: 'the network is unreachable',
  ETIMEDOUT: 'the connection timed out',
  UND_ERR_CONNECT_TIMEOUT: 'the connection timed out',
  UND_ERR_HEADERS_TIMEOUT: 'no answer in time',
  UND_ERR_SOCKET: 'the connection failed'
}

/** TLS verification failures: the admin API's certificate is not one this client trusts. */
const UNTRUSTED_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID'
])

/** The hint for a failed connection: what the code means, and what to do when it is about TLS. */
function connectHint (server: string, code: string | undefined, err: Error): string {
  if (code !== undefined && UNTRUSTED_CODES.has(code)) {
    return `its certificate is not trusted: ${code}; pass --certificate-authority FILE or set INGRESSD_ADMIN_CA to the admin API's CA (GET ${server}/ca.crt, whose fingerprint the gateway logs at start-up), or --insecure-skip-tls-verify`
  }
  const hint = code === undefined ? err.message : CONNECT_HINTS[code] ?? `${code}: ${err.message}`
  // A TLS listener hangs up on a plain HTTP request without a word.
  if (server.startsWith('http://') && (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET')) return `${hint}; if the admin API serves HTTPS (INGRESSD_ADMIN_TLS), use --server https://${server.slice(7)}`
  return hint
}

/** The error code of a failed connection, looking through AggregateErrors (IPv4 and IPv6 attempts) and causes. */
function connectCode (err: unknown): string | undefined {
  const seen = new Set<unknown>()
  const visit = (e: unknown): string | undefined => {
    if (typeof e !== 'object' || e === null || seen.has(e)) return undefined
    seen.add(e)
    const { code, errors, cause } = e as { code?: unknown, errors?: unknown, cause?: unknown }
    if (typeof code === 'string' && code in CONNECT_HINTS && code !== 'UND_ERR_SOCKET') return code
    for (const inner of Array.isArray(errors) ? errors : []) {
      const found = visit(inner)
      if (found !== undefined) return found
    }
    return visit(cause) ?? (typeof code === 'string' ? code : undefined)
  }
  return visit(err)
}

/**
 * Checks and normalises a --server value: an http(s) URL, without a trailing slash.
 * Returns undefined when it is not one.
 */
export function normaliseServer (value: string): string | undefined {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return undefined
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined
  return value.replace(/\/+$/, '')
}

/** A client for one command. Call {@link AdminClient.close} when the command is done. */
export class AdminClient {
  readonly server: string
  readonly hasToken: boolean
  readonly #token: string | undefined
  readonly #agent: Agent

  constructor (opts: ClientOptions) {
    this.server = opts.server
    this.#token = opts.token === '' ? undefined : opts.token
    this.hasToken = this.#token !== undefined
    this.#agent = new Agent({ connect: { timeout: 10_000, ...(opts.ca === undefined ? {} : { ca: opts.ca }), ...(opts.insecure === true ? { rejectUnauthorized: false } : {}) } })
  }

  /**
   * Sends one request. JSON bodies are sent as JSON. Resolves with the parsed reply on 2xx; throws
   * ApiError for an error reply and ConnectionError when the server cannot be reached.
   */
  async send<T = unknown> (method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<ApiReply<T>> {
    const headers: Record<string, string> = { accept: 'application/json' }
    if (this.#token !== undefined) headers.authorization = `Bearer ${this.#token}`
    let payload: string | undefined
    if (body !== undefined) {
      payload = JSON.stringify(body)
      headers['content-type'] = 'application/json'
    }
    let res: Awaited<ReturnType<typeof request>>
    let text: string
    try {
      res = await request(`${this.server}${path}`, { method, headers, body: payload, dispatcher: this.#agent })
      text = await res.body.text()
    } catch (err) {
      const hint = connectHint(this.server, connectCode(err), err as Error)
      throw new ConnectionError(this.server, `cannot reach the admin API at ${this.server} (${hint})`, err)
    }
    let parsed: unknown
    try {
      parsed = text === '' ? undefined : JSON.parse(text)
    } catch {
      parsed = undefined
    }
    const warnings = parseWarnings(res.headers.warning)
    if (res.statusCode >= 200 && res.statusCode < 300) {
      if (parsed === undefined && text !== '') throw new ApiError(res.statusCode, 'InternalError', `the server answered ${method} ${path} with a body that is not JSON`)
      return { status: res.statusCode, body: parsed as T, warnings }
    }
    const status = parsed as { kind?: unknown, message?: unknown, reason?: unknown, details?: { errorCode?: unknown, causes?: unknown, name?: unknown, kind?: unknown, group?: unknown } } | undefined
    if (status?.kind === 'Status') {
      const details = status.details ?? {}
      const subject: { name?: string, kind?: string, group?: string } = {}
      if (typeof details.name === 'string') subject.name = details.name
      if (typeof details.kind === 'string') subject.kind = details.kind
      if (typeof details.group === 'string') subject.group = details.group
      const opts: ConstructorParameters<typeof ApiError>[3] = { details: subject }
      if (typeof details.errorCode === 'string') opts.errorCode = details.errorCode
      if (Array.isArray(details.causes)) opts.causes = details.causes as StatusCause[]
      throw new ApiError(res.statusCode, typeof status.reason === 'string' ? status.reason : 'Unknown', typeof status.message === 'string' ? status.message : `HTTP ${res.statusCode}`, opts)
    }
    const firstLine = text.trim().split('\n')[0]?.slice(0, 200) ?? ''
    throw new ApiError(res.statusCode, 'Unknown', `the server answered HTTP ${res.statusCode}${firstLine === '' ? '' : `: ${firstLine}`}`)
  }

  /** GET a path; ApiError on anything but 2xx. */
  async get<T = unknown> (path: string): Promise<ApiReply<T>> {
    return await this.send<T>('GET', path)
  }

  /** GET a path, answering undefined (instead of throwing) when the object does not exist. */
  async find<T = unknown> (path: string): Promise<T | undefined> {
    try {
      return (await this.get<T>(path)).body
    } catch (err) {
      if (err instanceof ApiError && err.notFound) return undefined
      throw err
    }
  }

  /** Closes the connections this client opened. */
  async close (): Promise<void> {
    await this.#agent.close()
  }
}

/**
 * One line for an error, in kubectl's style:
 * `Error from server (Invalid): Ingress.networking.k8s.io "x" is invalid: spec.rules[0].host: ... [INGRESSD_ERR_INVALID]`,
 * `error: cannot reach the admin API at http://127.0.0.1:8001 (is ingressd serving?)`.
 * The first cause's field is always on the line, even when the message does not name it.
 */
export function errorLine (err: unknown, context: { hasToken?: boolean } = {}): string {
  if (err instanceof ConnectionError) return `error: ${oneLine(err.message)}`
  if (err instanceof ApiError) {
    let message = err.message
    // "Unauthorized: the bearer token is wrong" under "(Unauthorized)" says it twice.
    if (message.startsWith(`${err.reason}: `)) message = message.slice(err.reason.length + 2)
    const field = err.causes[0]?.field
    if (field !== undefined && field !== '' && !message.includes(field) && !message.includes(field.replace(/^items\[\d+\]\./, ''))) {
      message += ` (field ${field})`
    }
    if (err.status === 401 && context.hasToken === false) message += ' (pass --token or set INGRESSD_ADMIN_TOKEN)'
    const code = err.errorCode === undefined ? '' : ` [${err.errorCode}]`
    return `Error from server (${err.reason}): ${oneLine(message)}${code}`
  }
  return `error: ${oneLine((err as Error)?.message ?? String(err))}`
}

/** Collapses line breaks so an error stays on one line. */
export function oneLine (text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim()
}
