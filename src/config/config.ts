/**
 * Configuration: every setting with its default, read from flags and then the environment,
 * validated once at start-up with a message that names the setting, and frozen.
 * docs/configuration.md documents each entry of SETTINGS; a test keeps the two in step.
 */
import { isIP } from 'node:net'
import { availableParallelism } from 'node:os'
import { IngressdError } from '../errors.js'

/** A host and port to listen on. */
export interface ListenAddress {
  host: string
  port: number
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'

export interface Config {
  adminAddr: ListenAddress
  httpAddr: ListenAddress
  httpsAddr: ListenAddress
  db: string
  adminToken: string | undefined
  logLevel: LogLevel
  adminBodyLimit: number
  ingressClasses: string[]
  publishAddress: string | undefined
  trustedProxies: string[]
  proxyConnectTimeoutMs: number
  proxyReadTimeoutMs: number
  proxySendTimeoutMs: number
  /** `namespace/name` of the Secret served when no certificate matches; undefined: the generated one. */
  defaultCertificate: string | undefined
  tlsHandshakeTimeoutMs: number
  /** Port put in HTTP-to-HTTPS redirects; undefined: the HTTPS listener's. */
  httpsRedirectPort: number | undefined
  /** Strict-Transport-Security value on HTTPS responses; undefined: none. */
  hsts: string | undefined
  shutdownGraceMs: number
  /** Largest proxied request body in bytes (413 beyond); 0: unlimited. Per ingress: proxy-body-size. */
  proxyBodySize: number
  /** Largest request line plus headers in bytes (Node's maxHeaderSize; 431 beyond). */
  maxHeaderSize: number
  /** Longest request target in bytes (414 beyond). */
  maxUriLength: number
  /** Most header fields in one request (431 beyond). */
  maxHeaders: number
  /** Longest a client may take to send the request line and headers (408 beyond). */
  clientHeaderTimeoutMs: number
  /** How long an idle keep-alive client connection stays open. */
  keepAliveTimeoutMs: number
  /** Most client connections open at once on each data-plane listener; 0: no cap. */
  maxConnections: number
  /** Data-plane processes (node:cluster); 1: the admin and data planes share one process. */
  workers: number
  upstreamMaxFails: number
  upstreamFailTimeoutMs: number
  proxyNextUpstreamTries: number
  /** How a route without load-balance, upstream-hash-by or affinity annotations picks its endpoint. */
  loadBalance: 'round_robin' | 'ewma'
  /** Status answered over a route's limit-rps, limit-rpm or limit-connections. */
  limitReqStatusCode: number
  adminAllowedHosts: string[]
  /** Client addresses and CIDRs refused on every route (403), whatever the ingresses say. */
  denylistSourceRange: string[]
  /** Cluster mode: PostgreSQL is the source of truth and INGRESSD_DB the node's mirror of it. */
  postgresUrl: string | undefined
  /** This node's name in cluster mode; undefined: the host name and the admin port. */
  nodeName: string | undefined
  /** The admin API over HTTPS: off, auto (a CA kept in the store issues its certificate) or file. */
  adminTls: AdminTlsMode
  /** PEM certificate chain of the admin API with adminTls `file`. */
  adminTlsCert: string | undefined
  /** PEM private key of the admin API with adminTls `file`. */
  adminTlsKey: string | undefined
}

export type AdminTlsMode = 'off' | 'auto' | 'file'

const ADMIN_TLS_MODES: readonly AdminTlsMode[] = ['off', 'auto', 'file']

interface Setting<K extends keyof Config> {
  key: K
  env: string
  flag: string
  default: string
  description: string
  parse: (raw: string, name: string) => Config[K]
}

function bad (name: string, raw: string, expected: string): never {
  throw new IngressdError('INGRESSD_ERR_CONFIG', `${name}=${JSON.stringify(raw)} is invalid: ${expected}`)
}

/** Parses `host:port`, `[v6]:port` or `:port` (all interfaces). Port 0 picks a free port. */
export function parseListenAddress (raw: string, name: string): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(raw.trim())
  if (m === null) bad(name, raw, 'expected HOST:PORT, [IPv6]:PORT or :PORT')
  const host = m[1] ?? (m[2] === '' || m[2] === undefined ? '0.0.0.0' : m[2])
  const port = Number(m[3])
  if (port > 65535) bad(name, raw, 'the port must be between 0 and 65535')
  return { host, port }
}

function parseDuration (raw: string, name: string): number {
  const m = /^(\d+)(ms|s|m)?$/.exec(raw.trim())
  if (m === null) bad(name, raw, 'expected a duration such as 500ms, 5s, 2m or a number of seconds')
  const n = Number(m[1])
  return m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000
}

function parseSize (raw: string, name: string): number {
  const m = /^(\d+)([kKmMgG]i?[bB]?)?$/.exec(raw.trim())
  if (m === null) bad(name, raw, 'expected a size such as 10m, 512k or a number of bytes')
  const unit = (m[2] ?? '').charAt(0).toLowerCase()
  const factor = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1
  return Number(m[1]) * factor
}

function parseCount (raw: string, name: string): number {
  if (!/^\d{1,9}$/.test(raw.trim())) bad(name, raw, 'expected a whole number')
  return Number(raw.trim())
}

function parseCidrList (raw: string, name: string): string[] {
  const list = raw.split(',').map(s => s.trim()).filter(s => s !== '')
  for (const cidr of list) {
    const [ip, bits] = cidr.split('/')
    const family = isIP(ip ?? '')
    const max = family === 6 ? 128 : 32
    if (family === 0 || (bits !== undefined && (!/^\d+$/.test(bits) || Number(bits) > max))) bad(name, raw, `"${cidr}" is not an IP address or CIDR range`)
  }
  return list
}

/** A postgres:// or postgresql:// URL; the error never repeats the password. */
function parsePostgresUrl (raw: string, name: string): string | undefined {
  if (raw.trim() === '') return undefined
  let url: URL
  try {
    url = new URL(raw.trim())
  } catch {
    bad(name, '<redacted>', 'expected a PostgreSQL URL such as postgres://user:password@host:5432/database')
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') bad(name, '<redacted>', `expected a postgres:// or postgresql:// URL, not ${url.protocol}//`)
  if (url.hostname === '' && !/host=/.test(url.search)) bad(name, '<redacted>', 'the URL names no host')
  if (url.pathname === '' || url.pathname === '/') bad(name, '<redacted>', 'the URL names no database (postgres://user:password@host:5432/DATABASE)')
  return raw.trim()
}

function parseSecretReference (raw: string, name: string): string | undefined {
  if (raw.trim() === '') return undefined
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(raw.trim())) bad(name, raw, 'expected NAMESPACE/NAME of a kubernetes.io/tls Secret')
  return raw.trim()
}

function parseOptionalPort (raw: string, name: string): number | undefined {
  if (raw.trim() === '') return undefined
  const port = /^\d{1,5}$/.test(raw.trim()) ? Number(raw.trim()) : 0
  if (port < 1 || port > 65535) bad(name, raw, 'expected a port between 1 and 65535')
  return port
}

function parseHsts (raw: string, name: string): string | undefined {
  if (raw.trim() === 'off') return undefined
  if (!/^max-age=\d+(\s*;\s*[A-Za-z][A-Za-z0-9-]*(=[A-Za-z0-9-]+)?)*$/i.test(raw.trim())) bad(name, raw, 'expected a Strict-Transport-Security value such as "max-age=15724800; includeSubDomains", or off')
  return raw.trim()
}

function parseWorkers (raw: string, name: string): number {
  if (raw.trim() === 'auto') return Math.max(1, availableParallelism())
  if (!/^\d{1,4}$/.test(raw.trim()) || Number(raw.trim()) < 1) bad(name, raw, 'expected a positive whole number of processes, or auto (one per core)')
  return Number(raw.trim())
}

const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

/** Every setting: its environment variable, flag, default and meaning. */
export const SETTINGS: readonly Setting<keyof Config>[] = [
  { key: 'adminAddr', env: 'INGRESSD_ADMIN_ADDR', flag: 'admin-addr', default: '127.0.0.1:8001', description: 'Address of the admin API. Without INGRESSD_ADMIN_TOKEN it may only be a loopback address.', parse: parseListenAddress },
  { key: 'httpAddr', env: 'INGRESSD_HTTP_ADDR', flag: 'http-addr', default: '0.0.0.0:8080', description: 'Address of the HTTP data plane.', parse: parseListenAddress },
  { key: 'httpsAddr', env: 'INGRESSD_HTTPS_ADDR', flag: 'https-addr', default: '0.0.0.0:8443', description: 'Address of the HTTPS data plane.', parse: parseListenAddress },
  { key: 'db', env: 'INGRESSD_DB', flag: 'db', default: './data/ingressd.db', description: 'Path of the SQLite store; its folder is created when missing.', parse: (raw, name) => raw.trim() === '' ? bad(name, raw, 'expected a file path') : raw },
  { key: 'adminToken', env: 'INGRESSD_ADMIN_TOKEN', flag: 'admin-token', default: '', description: 'Bearer token every admin request must carry (except /healthz and /readyz). Unset: no token, loopback only.', parse: (raw, name) => raw === '' ? undefined : raw.length < 16 ? bad(name, '<redacted>', 'a token must be at least 16 characters') : raw },
  { key: 'logLevel', env: 'INGRESSD_LOG_LEVEL', flag: 'log-level', default: 'info', description: `Log level: ${LOG_LEVELS.join(', ')}.`, parse: (raw, name) => (LOG_LEVELS as readonly string[]).includes(raw) ? raw as LogLevel : bad(name, raw, `expected one of ${LOG_LEVELS.join(', ')}`) },
  { key: 'adminBodyLimit', env: 'INGRESSD_ADMIN_BODY_LIMIT', flag: 'admin-body-limit', default: '10m', description: 'Largest admin request body (413 beyond).', parse: parseSize },
  { key: 'ingressClasses', env: 'INGRESSD_INGRESS_CLASSES', flag: 'ingress-classes', default: 'ingressd,nginx', description: 'Ingress classes served, comma-separated. Ingresses with no class are always served.', parse: (raw, name) => { const l = raw.split(',').map(s => s.trim()).filter(s => s !== ''); return l.length === 0 ? bad(name, raw, 'expected at least one class name') : l } },
  { key: 'publishAddress', env: 'INGRESSD_PUBLISH_ADDRESS', flag: 'publish-address', default: '', description: 'IP or host name shown in status.loadBalancer.ingress of served ingresses. Default: the HTTP listener\'s address.', parse: raw => raw === '' ? undefined : raw },
  { key: 'trustedProxies', env: 'INGRESSD_TRUSTED_PROXIES', flag: 'trusted-proxies', default: '', description: 'CIDRs of proxies in front of ingressd whose X-Forwarded-* headers are kept and appended to.', parse: parseCidrList },
  { key: 'proxyConnectTimeoutMs', env: 'INGRESSD_PROXY_CONNECT_TIMEOUT', flag: 'proxy-connect-timeout', default: '5s', description: 'Upstream connect timeout (504 beyond); per ingress: nginx.ingress.kubernetes.io/proxy-connect-timeout.', parse: parseDuration },
  { key: 'proxyReadTimeoutMs', env: 'INGRESSD_PROXY_READ_TIMEOUT', flag: 'proxy-read-timeout', default: '60s', description: 'Longest wait for the upstream\'s response headers or between two reads of its body (504).', parse: parseDuration },
  { key: 'proxySendTimeoutMs', env: 'INGRESSD_PROXY_SEND_TIMEOUT', flag: 'proxy-send-timeout', default: '60s', description: 'Longest wait between two writes of the request body to the upstream.', parse: parseDuration },
  { key: 'defaultCertificate', env: 'INGRESSD_DEFAULT_CERT', flag: 'default-cert', default: '', description: 'NAMESPACE/NAME of the TLS Secret served to clients without SNI and for names no ingress has a certificate for. Unset: a self-signed "Kubernetes Ingress Controller Fake Certificate" generated once and kept in the store.', parse: parseSecretReference },
  { key: 'tlsHandshakeTimeoutMs', env: 'INGRESSD_TLS_HANDSHAKE_TIMEOUT', flag: 'tls-handshake-timeout', default: '10s', description: 'Longest a client may take to complete the TLS handshake on the HTTPS listener.', parse: parseDuration },
  { key: 'httpsRedirectPort', env: 'INGRESSD_HTTPS_REDIRECT_PORT', flag: 'https-redirect-port', default: '', description: 'Port written in HTTP-to-HTTPS redirects (omitted when 443). Unset: the HTTPS listener\'s port; set it when a port mapping (docker 443:8443) puts the listener elsewhere.', parse: parseOptionalPort },
  { key: 'hsts', env: 'INGRESSD_HSTS', flag: 'hsts', default: 'max-age=15724800; includeSubDomains', description: 'Strict-Transport-Security header on every HTTPS response, or off.', parse: parseHsts },
  { key: 'shutdownGraceMs', env: 'INGRESSD_SHUTDOWN_GRACE', flag: 'shutdown-grace', default: '30s', description: 'On SIGTERM or SIGINT: how long requests in flight may take to finish before their connections are cut (admin API requests: at most 5 s, before the data plane drains).', parse: parseDuration },
  { key: 'proxyBodySize', env: 'INGRESSD_PROXY_BODY_SIZE', flag: 'proxy-body-size', default: '1m', description: 'Largest proxied request body (413 before the upstream is contacted, or as soon as a streamed body crosses it); 0: unlimited. Per ingress: nginx.ingress.kubernetes.io/proxy-body-size.', parse: parseSize },
  { key: 'maxHeaderSize', env: 'INGRESSD_MAX_HEADER_SIZE', flag: 'max-header-size', default: '16k', description: 'Largest request line plus headers (431 beyond).', parse: parseSize },
  { key: 'maxUriLength', env: 'INGRESSD_MAX_URI_LENGTH', flag: 'max-uri-length', default: '8k', description: 'Longest request target (414 beyond).', parse: parseSize },
  { key: 'maxHeaders', env: 'INGRESSD_MAX_HEADERS', flag: 'max-headers', default: '100', description: 'Most header fields in one request (431 beyond).', parse: parseCount },
  { key: 'clientHeaderTimeoutMs', env: 'INGRESSD_CLIENT_HEADER_TIMEOUT', flag: 'client-header-timeout', default: '60s', description: 'Longest a client may take to send the request line and headers, counted from the first byte (408 beyond).', parse: parseDuration },
  { key: 'keepAliveTimeoutMs', env: 'INGRESSD_KEEPALIVE_TIMEOUT', flag: 'keepalive-timeout', default: '75s', description: 'How long an idle keep-alive client connection stays open.', parse: parseDuration },
  { key: 'maxConnections', env: 'INGRESSD_MAX_CONNECTIONS', flag: 'max-connections', default: '0', description: 'Most client connections open at once on each data-plane listener; connections beyond are closed at once. 0: no cap.', parse: parseCount },
  { key: 'workers', env: 'INGRESSD_WORKERS', flag: 'workers', default: 'auto', description: 'Data-plane processes sharing the HTTP and HTTPS ports (node:cluster), each following the store; auto: one per core (os.availableParallelism()); 1: one process for everything.', parse: parseWorkers },
  { key: 'upstreamMaxFails', env: 'INGRESSD_UPSTREAM_MAX_FAILS', flag: 'upstream-max-fails', default: '3', description: 'Passive health (nginx max_fails): an endpoint that fails this many times in a row is taken out of rotation for INGRESSD_UPSTREAM_FAIL_TIMEOUT, then tried again. 0 turns it off.', parse: (raw, name) => /^\d{1,4}$/.test(raw) ? Number(raw) : bad(name, raw, 'expected a whole number (0 turns passive health off)') },
  { key: 'upstreamFailTimeoutMs', env: 'INGRESSD_UPSTREAM_FAIL_TIMEOUT', flag: 'upstream-fail-timeout', default: '10s', description: 'How long a failing endpoint stays out of rotation (nginx fail_timeout).', parse: parseDuration },
  { key: 'proxyNextUpstreamTries', env: 'INGRESSD_PROXY_NEXT_UPSTREAM_TRIES', flag: 'proxy-next-upstream-tries', default: '3', description: 'Tries per request across endpoints when one cannot be reached (ingress-nginx proxy-next-upstream-tries). Only requests without a body are retried: idempotent ones after a connection failure, reset or connect timeout, others only when the connection was never made. 1 turns retries off.', parse: (raw, name) => /^[1-9]\d?$/.test(raw) ? Number(raw) : bad(name, raw, 'expected a whole number from 1 to 99') },
  { key: 'loadBalance', env: 'INGRESSD_LOAD_BALANCE', flag: 'load-balance', default: 'round_robin', description: 'How a route picks its endpoint when its ingress has no load-balance, upstream-hash-by or affinity annotation (ingress-nginx\'s load-balance ConfigMap key): round_robin, or ewma (of two endpoints picked at random, the one with the lower response-time average, decayed over 10 s).', parse: (raw, name) => raw.trim() === 'round_robin' || raw.trim() === 'ewma' ? raw.trim() as 'round_robin' | 'ewma' : bad(name, raw, 'expected round_robin or ewma') },
  { key: 'limitReqStatusCode', env: 'INGRESSD_LIMIT_REQ_STATUS_CODE', flag: 'limit-req-status-code', default: '503', description: 'Status answered to a client over a route\'s limit-rps, limit-rpm or limit-connections (ingress-nginx\'s limit-req-status-code and limit-conn-status-code), from 400 to 599; 429 is the usual alternative.', parse: (raw, name) => /^[45]\d\d$/.test(raw.trim()) ? Number(raw.trim()) : bad(name, raw, 'expected an HTTP status from 400 to 599') },
  { key: 'denylistSourceRange', env: 'INGRESSD_DENYLIST_SOURCE_RANGE', flag: 'denylist-source-range', default: '', description: 'Client IP addresses and CIDRs refused with 403 on every route, before any ingress rule (ingress-nginx\'s global denylist-source-range). The client address is the peer, or taken from X-Forwarded-For / X-Real-IP when the peer is in INGRESSD_TRUSTED_PROXIES.', parse: parseCidrList },
  { key: 'postgresUrl', env: 'INGRESSD_POSTGRES_URL', flag: 'postgres-url', default: '', description: 'Cluster mode: the PostgreSQL (15 or newer) every node shares, as postgres://user:password@host:5432/database. INGRESSD_DB is then this node\'s mirror of it, which keeps it serving (and restarting) while PostgreSQL is away. Unset: the SQLite file is the store.', parse: parsePostgresUrl },
  { key: 'nodeName', env: 'INGRESSD_NODE_NAME', flag: 'node-name', default: '', description: 'Cluster mode: this node\'s name in GET /apis/ingressd.io/v1/nodes. Unset: the host name and the admin port, so that several nodes on one host stay distinct.', parse: raw => raw.trim() === '' ? undefined : raw.trim() },
  { key: 'adminTls', env: 'INGRESSD_ADMIN_TLS', flag: 'admin-tls', default: 'off', description: 'Serve the admin API over HTTPS, which kubectl needs to send a token: off; auto, a certificate issued by a CA generated once and kept in the store (GET /ca.crt serves the CA; `ingressd kubeconfig` embeds it), covering the admin address, localhost, 127.0.0.1, ::1, the host name and INGRESSD_ADMIN_ALLOWED_HOSTS, renewed at start-up 30 days before it ends or when those names change; file, INGRESSD_ADMIN_TLS_CERT and INGRESSD_ADMIN_TLS_KEY.', parse: (raw, name) => (ADMIN_TLS_MODES as readonly string[]).includes(raw.trim()) ? raw.trim() as AdminTlsMode : bad(name, raw, `expected one of ${ADMIN_TLS_MODES.join(', ')}`) },
  { key: 'adminTlsCert', env: 'INGRESSD_ADMIN_TLS_CERT', flag: 'admin-tls-cert', default: '', description: 'With INGRESSD_ADMIN_TLS=file: path of the admin API\'s PEM certificate chain, leaf first; the last certificate of a chain (or a self-signed leaf) is served at GET /ca.crt.', parse: raw => raw.trim() === '' ? undefined : raw.trim() },
  { key: 'adminTlsKey', env: 'INGRESSD_ADMIN_TLS_KEY', flag: 'admin-tls-key', default: '', description: 'With INGRESSD_ADMIN_TLS=file: path of the PEM private key of INGRESSD_ADMIN_TLS_CERT\'s leaf.', parse: raw => raw.trim() === '' ? undefined : raw.trim() },
  { key: 'adminAllowedHosts', env: 'INGRESSD_ADMIN_ALLOWED_HOSTS', flag: 'admin-allowed-hosts', default: '', description: 'Without INGRESSD_ADMIN_TOKEN the admin API answers only requests whose Host is a loopback name (localhost, 127.0.0.1, ::1), against DNS rebinding; extra host names to accept, comma-separated.', parse: raw => raw.split(',').map(s => s.trim().toLowerCase()).filter(s => s !== '') }
]

/** True for addresses only this machine can reach. */
export function isLoopback (host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host)
}

/**
 * Builds the configuration from flags (`--admin-addr=...` or `--admin-addr ...`), then the
 * environment, then defaults. Throws INGRESSD_ERR_CONFIG naming the setting on a bad value.
 */
export function loadConfig (flags: Record<string, string | undefined> = {}, env: NodeJS.ProcessEnv = process.env): Readonly<Config> {
  const out: Record<string, unknown> = {}
  const names: Partial<Record<keyof Config, string>> = {}
  for (const s of SETTINGS) {
    const fromFlag = flags[s.flag]
    const raw = fromFlag ?? env[s.env] ?? s.default
    names[s.key] = fromFlag !== undefined ? `--${s.flag}` : s.env
    out[s.key] = s.parse(raw, fromFlag !== undefined ? `--${s.flag}` : env[s.env] !== undefined ? s.env : `${s.env} (default)`)
  }
  const config = out as unknown as Config
  if (config.adminToken === undefined && !isLoopback(config.adminAddr.host)) {
    throw new IngressdError('INGRESSD_ERR_CONFIG', `INGRESSD_ADMIN_ADDR=${config.adminAddr.host}:${config.adminAddr.port} is not a loopback address, and INGRESSD_ADMIN_TOKEN is not set: set a token (at least 16 characters) before exposing the admin API beyond this machine`)
  }
  checkAdminTlsFiles(config, names)
  return Object.freeze(config)
}

/** INGRESSD_ADMIN_TLS=file needs both files; with off or auto, naming either is a mistake said aloud rather than ignored. */
function checkAdminTlsFiles (config: Config, names: Partial<Record<keyof Config, string>>): void {
  const mode = names.adminTls ?? 'INGRESSD_ADMIN_TLS'
  for (const key of ['adminTlsCert', 'adminTlsKey'] as const) {
    const name = names[key] ?? key
    if (config.adminTls === 'file' && config[key] === undefined) {
      throw new IngressdError('INGRESSD_ERR_CONFIG', `${name} is not set: ${mode}=file serves the admin API with the PEM ${key === 'adminTlsCert' ? 'certificate chain' : 'private key'} at the path ${name} gives`)
    }
    if (config.adminTls !== 'file' && config[key] !== undefined) {
      throw new IngressdError('INGRESSD_ERR_CONFIG', `${name} is set but ${mode} is ${config.adminTls}: set ${mode}=file to serve the admin API with that certificate, or unset ${name}`)
    }
  }
}
