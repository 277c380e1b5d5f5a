/**
 * nginx variable templates (`https://$host/oauth2/start?rd=$escaped_request_uri`): the values
 * ingress-nginx annotations may interpolate. A template is parsed once, when a route is compiled,
 * into literal text and variable readers, each reader already specialized to its variable (the
 * header, argument or cookie name lowercased up front), so rendering per request is a loop over a
 * few parts. A variable ingressd does not know is refused when the template is compiled, where
 * nginx would refuse to load its configuration.
 *
 * Values are nginx's, as ingress-nginx's template defines them; where ingressd differs, the reader
 * says why. `$best_http_host` and `$pass_access_scheme` read X-Forwarded-Host / X-Forwarded-Proto
 * only when the caller says the peer is a trusted proxy (ingress-nginx's use-forwarded-headers).
 */
import type { IncomingMessage } from 'node:http'
import type { PolicyContext } from './policy.js'

/** What a template reads of a request: the fields of a policy context. */
export type VariableRequest = Pick<PolicyContext, 'req' | 'method' | 'host' | 'path' | 'query' | 'proto' | 'client' | 'requestId'>

type Reader = (r: VariableRequest, trustedPeer: boolean) => string

/** One variable of a template, its reader bound. */
export interface VariablePart {
  /** The variable's name as nginx knows it, lowercase, without `$`. */
  readonly name: string
  readonly read: Reader
  /** A plausible value, to check at compile time that what the template makes is well formed. */
  readonly sample: string
}

/** A compiled template: literal text and variables in order. */
export interface NginxTemplate {
  /** The text as written in the annotation. */
  readonly source: string
  readonly parts: ReadonlyArray<string | VariablePart>
  /** The whole value when the template has no variable: rendering is free. */
  readonly constant?: string
}

/** The fixed variables, by name. Prefixed families (`$http_`, `$arg_`, `$cookie_`) are in PREFIXED. */
const FIXED: Readonly<Record<string, { read: Reader, sample: string }>> = {
  host: { read: r => r.host, sample: 'app.example.com' },
  http_host: { read: r => httpHost(r.req), sample: 'app.example.com' },
  best_http_host: { read: bestHttpHost, sample: 'app.example.com' },
  scheme: { read: r => r.proto, sample: 'https' },
  pass_access_scheme: { read: passAccessScheme, sample: 'https' },
  request_uri: { read: r => requestUri(r.req), sample: '/sample/path?a=1' },
  escaped_request_uri: { read: r => escapeRequestUri(requestUri(r.req)), sample: '%2Fsample%2Fpath%3Fa%3D1' },
  // $uri is the path as routed: nginx decodes %XX in it and, after rewrite-target, holds the
  // rewritten path; ingressd keeps the escapes (safe to put in a URL or a header) and the path
  // before any rewrite.
  uri: { read: r => r.path, sample: '/sample/path' },
  args: { read: r => r.query.slice(1), sample: 'a=1' },
  query_string: { read: r => r.query.slice(1), sample: 'a=1' },
  remote_addr: { read: r => r.client, sample: '192.0.2.1' },
  request_method: { read: r => r.method, sample: 'GET' },
  server_port: { read: r => String(r.req.socket.localPort ?? ''), sample: '443' },
  request_id: { read: r => r.requestId, sample: '0123456789abcdef0123456789abcdef' }
}

const PREFIXED: ReadonlyArray<readonly [string, (suffix: string) => Reader, string]> = [
  ['http_', headerReader, 'sample'],
  ['arg_', argReader, 'sample'],
  ['cookie_', cookieReader, 'sample']
]

/** The variables a template may use, for messages and documentation. */
export const SUPPORTED_VARIABLES: readonly string[] = Object.freeze([...Object.keys(FIXED).map(n => `$${n}`), '$http_NAME', '$arg_NAME', '$cookie_NAME'])

/** The Host field as sent (with its port): `:authority` under HTTP/2. */
function httpHost (req: IncomingMessage): string {
  const authority = req.headers[':authority']
  if (typeof authority === 'string' && authority !== '') return authority
  return req.headers.host ?? ''
}

function firstValue (value: string | string[] | undefined): string | undefined {
  const v = Array.isArray(value) ? value[0] : value
  if (v === undefined) return undefined
  const first = v.split(',')[0]?.trim()
  return first === undefined || first === '' ? undefined : first
}

/** ingress-nginx's `map $http_x_forwarded_host $best_http_host`, X-Forwarded-Host honoured only from a trusted proxy; an empty Host falls back to `$host`. */
function bestHttpHost (r: VariableRequest, trustedPeer: boolean): string {
  const forwarded = trustedPeer ? firstValue(r.req.headers['x-forwarded-host']) : undefined
  if (forwarded !== undefined) return forwarded
  const own = httpHost(r.req)
  return own === '' ? r.host : own
}

/** ingress-nginx's `$pass_access_scheme`: X-Forwarded-Proto from a trusted proxy, else the listener's scheme. */
function passAccessScheme (r: VariableRequest, trustedPeer: boolean): string {
  const forwarded = trustedPeer ? firstValue(r.req.headers['x-forwarded-proto']) : undefined
  return forwarded === undefined ? r.proto : forwarded.toLowerCase()
}

/**
 * `$request_uri`: the request target as the client sent it, path and query, before any
 * normalization. An absolute-form target (`GET http://host/p`) gives its path, as nginx's does.
 */
export function requestUri (req: IncomingMessage): string {
  const url = req.url ?? '/'
  if (url.startsWith('/') || url === '*') return url
  const scheme = url.indexOf('://')
  if (scheme === -1) return url
  const slash = url.indexOf('/', scheme + 3)
  const question = url.indexOf('?', scheme + 3)
  if (slash === -1 && question === -1) return '/'
  if (slash === -1 || (question !== -1 && question < slash)) return `/${url.slice(question)}`
  return url.slice(slash)
}

/** `$http_x_foo` reads header X-Foo; several fields of one name come joined, as nginx joins them. */
function headerReader (suffix: string): Reader {
  const name = suffix.replace(/_/g, '-')
  return r => {
    const value = r.req.headers[name]
    if (value === undefined) return ''
    return Array.isArray(value) ? value.join(', ') : value
  }
}

/** `$arg_name`: the raw (still escaped) value of the first `name=` argument, the name matched without case as nginx's ngx_http_arg does. */
function argReader (name: string): Reader {
  return r => {
    const query = r.query
    if (query.length < 2) return ''
    let start = 1
    while (start < query.length) {
      let end = query.indexOf('&', start)
      if (end === -1) end = query.length
      const eq = start + name.length
      if (eq < end && query.charCodeAt(eq) === 0x3d && query.slice(start, eq).toLowerCase() === name) return query.slice(eq + 1, end)
      start = end + 1
    }
    return ''
  }
}

/** `$cookie_name`: the value of the first cookie of that name (matched without case, as nginx does), as sent. */
function cookieReader (name: string): Reader {
  return r => {
    const header = r.req.headers.cookie
    if (header === undefined) return ''
    for (const pair of header.split(';')) {
      const eq = pair.indexOf('=')
      if (eq === -1) continue
      if (pair.slice(0, eq).trim().toLowerCase() === name) return pair.slice(eq + 1).trim()
    }
    return ''
  }
}

/**
 * Which characters `set_escape_uri` (the set-misc module ingress-nginx uses to make
 * `$escaped_request_uri`) percent-encodes: controls, space, `"#%&+/:;<=>?[\]^{}`, DEL and every
 * byte above ASCII. What stays is letters, digits and ``!$'()*,-.@_`|~``, so a request URI
 * `/?a=b&c=d` becomes `%2F%3Fa%3Db%26c%3Dd`, as ingress-nginx's e2e tests expect.
 */
const ESCAPED = (() => {
  const table = new Uint8Array(128)
  for (let c = 0; c <= 0x20; c++) table[c] = 1
  table[0x7f] = 1
  for (const ch of '"#%&+/:;<=>?[\\]^{}') table[ch.charCodeAt(0)] = 1
  return table
})()

const HEX = '0123456789ABCDEF'

function percent (byte: number): string {
  return `%${HEX[byte >> 4] as string}${HEX[byte & 0xf] as string}`
}

/** `$escaped_request_uri`: `value` encoded as nginx's set_escape_uri encodes it (see ESCAPED), bytes above ASCII as their UTF-8. */
export function escapeRequestUri (value: string): string {
  let out = ''
  let from = 0
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i)
    if (c < 0x80 && ESCAPED[c] === 0) continue
    out += value.slice(from, i)
    if (c < 0x80) out += percent(c)
    else {
      // A surrogate pair is one character: both halves go through one UTF-8 encoding.
      const end = c >= 0xd800 && c <= 0xdbff && i + 1 < value.length ? i + 2 : i + 1
      for (const byte of Buffer.from(value.slice(i, end), 'utf8')) out += percent(byte)
      i = end - 1
    }
    from = i + 1
  }
  return from === 0 ? value : out + value.slice(from)
}

/** The reader for a variable name (lowercase), or undefined when ingressd does not know it. */
function variable (name: string): VariablePart | undefined {
  const fixed = Object.hasOwn(FIXED, name) ? FIXED[name] : undefined
  if (fixed !== undefined) return Object.freeze({ name, read: fixed.read, sample: fixed.sample })
  for (const [prefix, make, sample] of PREFIXED) {
    if (name.startsWith(prefix) && name.length > prefix.length) return Object.freeze({ name, read: make(name.slice(prefix.length)), sample })
  }
  return undefined
}

const NAME_CHAR = /[A-Za-z0-9_]/

/**
 * Parses a template as nginx parses a value with variables: `$name` takes the longest run of
 * letters, digits and `_`; `${name}` ends at its brace, so text may follow a variable directly.
 * Names are matched without case, as nginx's are. Returns the error in words a user can act on
 * (an unknown variable, a lone `$`, an unclosed brace).
 */
export function compileTemplate (source: string): { template: NginxTemplate } | { error: string } {
  const parts: Array<string | VariablePart> = []
  let literal = ''
  let i = 0
  while (i < source.length) {
    const dollar = source.indexOf('$', i)
    if (dollar === -1) {
      literal += source.slice(i)
      break
    }
    literal += source.slice(i, dollar)
    let name: string
    if (source[dollar + 1] === '{') {
      const close = source.indexOf('}', dollar + 2)
      if (close === -1) return { error: `the variable at "${source.slice(dollar, dollar + 20)}" has no closing "}"` }
      name = source.slice(dollar + 2, close)
      if (name === '' || !/^[A-Za-z0-9_]+$/.test(name)) return { error: `"\${${name}}" is not a variable name (letters, digits and "_")` }
      i = close + 1
    } else {
      let end = dollar + 1
      while (end < source.length && NAME_CHAR.test(source[end] as string)) end++
      name = source.slice(dollar + 1, end)
      if (name === '') return { error: 'a "$" must start a variable name such as $host (nginx has no escape for a literal "$")' }
      i = end
    }
    const part = variable(name.toLowerCase())
    if (part === undefined) return { error: `unknown nginx variable "$${name}"; ingressd supports ${SUPPORTED_VARIABLES.join(', ')}` }
    if (literal !== '') parts.push(literal)
    literal = ''
    parts.push(part)
  }
  if (literal !== '') parts.push(literal)
  const template: { -readonly [K in keyof NginxTemplate]: NginxTemplate[K] } = { source, parts: Object.freeze(parts) }
  if (parts.every(p => typeof p === 'string')) template.constant = parts.join('')
  return { template: Object.freeze(template) }
}

/** The template's value for one request. `trustedPeer`: the connection's peer is a trusted proxy, whose X-Forwarded-Host/-Proto count. */
export function renderTemplate (template: NginxTemplate, r: VariableRequest, trustedPeer = false): string {
  if (template.constant !== undefined) return template.constant
  let out = ''
  for (const part of template.parts) out += typeof part === 'string' ? part : part.read(r, trustedPeer)
  return out
}

/** The template with each variable replaced by a plausible value: what compile-time checks parse (is it still a URL?). */
export function sampleTemplate (template: NginxTemplate): string {
  let out = ''
  for (const part of template.parts) out += typeof part === 'string' ? part : part.sample
  return out
}
