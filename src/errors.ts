/**
 * Every error ingressd raises across a module boundary, each with a stable code.
 *
 * Admin API errors are answered in the Kubernetes `Status` shape so any Kubernetes
 * client understands them: `reason` is the Kubernetes reason (NotFound, Invalid...),
 * `code` the HTTP status, and `details.errorCode` our stable, searchable code.
 * docs/errors.md lists every code; a test fails when the two drift apart.
 */

/** Kubernetes StatusReason values we answer with. */
export type StatusReason =
  | 'BadRequest'
  | 'Unauthorized'
  | 'Forbidden'
  | 'NotFound'
  | 'MethodNotAllowed'
  | 'AlreadyExists'
  | 'Conflict'
  | 'Invalid'
  | 'RequestEntityTooLarge'
  | 'UnsupportedMediaType'
  | 'InternalError'
  | 'ServiceUnavailable'
  | 'Timeout'
  | 'Expired'

/** One field-level problem, as Kubernetes reports it in `details.causes[]`. */
export interface Cause {
  /** Kubernetes cause type: FieldValueInvalid, FieldValueRequired, FieldValueNotSupported, FieldValueDuplicate, FieldValueTypeInvalid... */
  reason: string
  message: string
  /** Field path in Kubernetes notation: `spec.rules[0].http.paths[1].path`. */
  field: string
}

interface ErrorDefinition {
  status: number
  reason: StatusReason
  /** One line for docs/errors.md. */
  summary: string
}

/**
 * The catalogue of error codes. Adding a code here means documenting it in docs/errors.md.
 */
export const ERROR_CODES = {
  INGRESSD_ERR_BAD_REQUEST: { status: 400, reason: 'BadRequest', summary: 'The request is malformed: a body that is not JSON or YAML, or a query parameter of the wrong form.' },
  INGRESSD_ERR_MALFORMED_BODY: { status: 400, reason: 'BadRequest', summary: 'The body could not be parsed as JSON or YAML; the message gives the line and column.' },
  INGRESSD_ERR_UNKNOWN_KIND: { status: 400, reason: 'BadRequest', summary: 'The object\'s apiVersion and kind are not a resource ingressd serves, or they do not match the path it was sent to.' },
  INGRESSD_ERR_NAMESPACE_MISMATCH: { status: 400, reason: 'BadRequest', summary: 'metadata.namespace (or metadata.name) in the body differs from the one in the path.' },
  INGRESSD_ERR_INVALID: { status: 422, reason: 'Invalid', summary: 'The object breaks a validation rule; details.causes names each field.' },
  INGRESSD_ERR_TLS_INVALID: { status: 422, reason: 'Invalid', summary: 'A kubernetes.io/tls Secret\'s certificate or key is unusable: unparseable, mismatched, an unsupported key type or a broken chain.' },
  INGRESSD_ERR_UNAUTHORIZED: { status: 401, reason: 'Unauthorized', summary: 'The admin token is missing or wrong.' },
  INGRESSD_ERR_FORBIDDEN: { status: 403, reason: 'Forbidden', summary: 'A cross-origin request (a web page driving the admin API), or, without a token, a Host that is not a loopback name (DNS rebinding).' },
  INGRESSD_ERR_NOT_FOUND: { status: 404, reason: 'NotFound', summary: 'No object of that kind, namespace and name, or no such path.' },
  INGRESSD_ERR_METHOD_NOT_ALLOWED: { status: 405, reason: 'MethodNotAllowed', summary: 'The path exists but does not take that method.' },
  INGRESSD_ERR_ALREADY_EXISTS: { status: 409, reason: 'AlreadyExists', summary: 'A create named an object that already exists.' },
  INGRESSD_ERR_CONFLICT: { status: 409, reason: 'Conflict', summary: 'metadata.resourceVersion is stale: the object changed since it was read. Read it again and retry.' },
  INGRESSD_ERR_EXPIRED: { status: 410, reason: 'Expired', summary: 'A watch asked to resume from a resourceVersion older than the store keeps changes for: list again and watch from the list\'s resourceVersion (kubectl does this itself).' },
  INGRESSD_ERR_BODY_TOO_LARGE: { status: 413, reason: 'RequestEntityTooLarge', summary: 'The body is larger than the admin body limit (INGRESSD_ADMIN_BODY_LIMIT).' },
  INGRESSD_ERR_UNSUPPORTED_MEDIA_TYPE: { status: 415, reason: 'UnsupportedMediaType', summary: 'The Content-Type is not one the path takes: JSON, YAML or Kubernetes protobuf for writes; merge, strategic merge or JSON patch for PATCH.' },
  INGRESSD_ERR_STORE_BUSY: { status: 503, reason: 'ServiceUnavailable', summary: 'The store stayed locked by another writer past the busy timeout; retry.' },
  INGRESSD_ERR_STORE_UNAVAILABLE: { status: 503, reason: 'ServiceUnavailable', summary: 'Cluster mode: PostgreSQL (INGRESSD_POSTGRES_URL) cannot be reached, or did not answer in time; the write was not made (or, when the connection broke while committing, reaches every node if PostgreSQL did commit it). Every node keeps serving its last configuration; retry.' },
  INGRESSD_ERR_INTERNAL: { status: 500, reason: 'InternalError', summary: 'A bug: the request failed in a way ingressd does not expect. The log has the details.' },
  INGRESSD_ERR_NO_ROUTE: { status: 404, reason: 'NotFound', summary: 'Data plane: no ingress rule matches the request\'s host and path, and no default backend is set (the built-in default backend answers).' },
  INGRESSD_ERR_BAD_HOST: { status: 400, reason: 'BadRequest', summary: 'Data plane: the Host header is missing, repeated, not a valid host name, or differs from an absolute-form target\'s authority.' },
  INGRESSD_ERR_BAD_PATH: { status: 400, reason: 'BadRequest', summary: 'Data plane: the request target is not an absolute path, its dot segments climb above the root, or it has a %00 or a malformed % escape.' },
  INGRESSD_ERR_BAD_FRAMING: { status: 400, reason: 'BadRequest', summary: 'Data plane: the request\'s framing is ambiguous (Transfer-Encoding on HTTP/1.0); the connection is closed.' },
  INGRESSD_ERR_MALFORMED_REQUEST: { status: 400, reason: 'BadRequest', summary: 'Data plane: Node\'s HTTP/1 parser rejected the request (an invalid method, header name or value, chunk, or Content-Length); the connection is closed.' },
  INGRESSD_ERR_REQUEST_TIMEOUT: { status: 408, reason: 'Timeout', summary: 'Data plane: the request line and headers did not arrive within INGRESSD_CLIENT_HEADER_TIMEOUT; the connection is closed.' },
  INGRESSD_ERR_URI_TOO_LONG: { status: 414, reason: 'BadRequest', summary: 'Data plane: the request target is longer than INGRESSD_MAX_URI_LENGTH.' },
  INGRESSD_ERR_HEADERS_TOO_LARGE: { status: 431, reason: 'BadRequest', summary: 'Data plane: the request has more header fields than INGRESSD_MAX_HEADERS, or its request line and headers are larger than INGRESSD_MAX_HEADER_SIZE.' },
  INGRESSD_ERR_PROXY_BODY_TOO_LARGE: { status: 413, reason: 'RequestEntityTooLarge', summary: 'Data plane: the request body is larger than the proxy-body-size annotation or INGRESSD_PROXY_BODY_SIZE allows.' },
  INGRESSD_ERR_NO_ENDPOINTS: { status: 503, reason: 'ServiceUnavailable', summary: 'Data plane: the backend service does not exist, lacks the port, or has no ready endpoints.' },
  INGRESSD_ERR_UPSTREAM_UNREACHABLE: { status: 502, reason: 'ServiceUnavailable', summary: 'Data plane: the upstream refused the connection or its name did not resolve.' },
  INGRESSD_ERR_UPSTREAM_RESET: { status: 502, reason: 'ServiceUnavailable', summary: 'Data plane: the upstream closed or reset the connection before a complete response.' },
  INGRESSD_ERR_UPSTREAM_BAD_RESPONSE: { status: 502, reason: 'ServiceUnavailable', summary: 'Data plane: the upstream answered with something that is not valid HTTP.' },
  INGRESSD_ERR_UPSTREAM_TIMEOUT: { status: 504, reason: 'Timeout', summary: 'Data plane: the upstream did not connect or answer within the proxy timeouts.' },
  INGRESSD_ERR_BACKEND_PROTOCOL_UNSUPPORTED: { status: 502, reason: 'ServiceUnavailable', summary: 'Data plane: the route\'s backend-protocol is one ingressd accepts but does not speak (FCGI, AJP); nothing is sent to the upstream. The ingress status lists it.' },
  INGRESSD_ERR_UPSTREAM_TLS_SECRET: { status: 502, reason: 'ServiceUnavailable', summary: 'Data plane: the route\'s proxy-ssl-secret does not exist, or holds neither ca.crt nor tls.crt with tls.key, or they cannot be loaded; nothing is sent to the upstream.' },
  INGRESSD_ERR_ACCESS_DENIED_CONFIG: { status: 503, reason: 'ServiceUnavailable', summary: 'Data plane: an access-control annotation on the route cannot be honoured (a missing or malformed secret, an unsupported value): its paths are denied until it is fixed; the ingress status says which annotation and why (ingress-nginx\'s "location denied").' },
  INGRESSD_ERR_SOURCE_FORBIDDEN: { status: 403, reason: 'Forbidden', summary: 'Data plane: the client address is not allowed by the route\'s whitelist-source-range, is in its denylist-source-range, or is in INGRESSD_DENYLIST_SOURCE_RANGE.' },
  INGRESSD_ERR_AUTH_REQUIRED: { status: 401, reason: 'Unauthorized', summary: 'Data plane: the route needs credentials (basic auth, or an external auth service answered 401) and none valid were sent.' },
  INGRESSD_ERR_AUTH_FORBIDDEN: { status: 403, reason: 'Forbidden', summary: 'Data plane: the route\'s external auth service answered 403, or the client certificate\'s CN does not match auth-tls-match-cn.' },
  INGRESSD_ERR_AUTH_SERVICE: { status: 500, reason: 'InternalError', summary: 'Data plane: the route\'s external auth service (auth-url) failed: an answer other than 2xx, 401 or 403, a timeout or a connection failure. The request is not let through.' },
  INGRESSD_ERR_CLIENT_CERTIFICATE: { status: 400, reason: 'BadRequest', summary: 'Data plane: the host requires a client certificate (auth-tls-verify-client) and none was sent, or it did not verify against auth-tls-secret\'s CA.' },
  INGRESSD_ERR_RATE_LIMITED: { status: 503, reason: 'ServiceUnavailable', summary: 'Data plane: the client passed the route\'s limit-rps, limit-rpm or limit-connections (503 as ingress-nginx answers, or INGRESSD_LIMIT_REQ_STATUS_CODE).' },
  INGRESSD_ERR_AMBIGUOUS_PATH: { status: 400, reason: 'BadRequest', summary: 'Data plane: the path holds an encoded slash or backslash (%2F, %5C, \\) that a decoding backend would route under another rule than the gateway: refused so that no path-scoped policy can be bypassed.' },
  INGRESSD_ERR_CONFIG: { status: 0, reason: 'BadRequest', summary: 'Start-up configuration (flags or environment) is invalid; the process exits with the message.' },
  INGRESSD_ERR_MIGRATION: { status: 0, reason: 'InternalError', summary: 'A schema migration failed; the store is left at the last version that applied.' }
} as const satisfies Record<string, ErrorDefinition>

export type ErrorCode = keyof typeof ERROR_CODES

/** What `details` carries besides causes: the object the error is about. */
export interface ErrorSubject {
  name?: string
  group?: string
  kind?: string
}

/**
 * The one error class of the project. Everything that crosses a module boundary is an IngressdError,
 * so the admin plane can answer it as a Status and the CLI can print it.
 */
export class IngressdError extends Error {
  readonly code: ErrorCode
  readonly status: number
  readonly reason: StatusReason
  readonly causes: Cause[]
  readonly subject: ErrorSubject

  constructor (code: ErrorCode, message: string, opts: { causes?: Cause[], subject?: ErrorSubject, cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = 'IngressdError'
    this.code = code
    this.status = ERROR_CODES[code].status
    this.reason = ERROR_CODES[code].reason
    this.causes = opts.causes ?? []
    this.subject = opts.subject ?? {}
  }
}

/** Kubernetes `Status` object for a failed request. */
export interface StatusBody {
  kind: 'Status'
  apiVersion: 'v1'
  metadata: Record<string, never>
  status: 'Failure'
  message: string
  reason: StatusReason
  details: ErrorSubject & { causes?: Cause[], errorCode: ErrorCode }
  code: number
}

/** Renders an error as the Kubernetes Status body the admin API answers with. */
export function toStatus (err: IngressdError): StatusBody {
  const details: StatusBody['details'] = { ...err.subject, errorCode: err.code }
  if (err.causes.length > 0) details.causes = err.causes
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: err.message,
    reason: err.reason,
    details,
    code: err.status
  }
}

/** Builds the Invalid error Kubernetes answers for a rejected object, its message listing each cause. */
export function invalidObject (kind: string, group: string, name: string, causes: Cause[], code: ErrorCode = 'INGRESSD_ERR_INVALID'): IngressdError {
  const qualified = group === '' ? kind : `${kind}.${group}`
  const list = causes.map(c => `${c.field}: ${c.message}`).join(', ')
  return new IngressdError(code, `${qualified} "${name}" is invalid: ${list}`, { causes, subject: { name, group, kind } })
}
