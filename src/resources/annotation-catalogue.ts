/**
 * Every nginx.ingress.kubernetes.io/* key ingress-nginx knows (its annotations-risk table, plus
 * the older spellings manifests still carry), and what ingressd does with each. docs/annotations.md
 * has the same table for users; test/resources/annotation-catalogue.test.ts fails when the two,
 * or this table and the parser's behaviour, disagree.
 *
 * - implemented: parsed, validated on write, and honoured.
 * - no-effect: accepted and validated where it has a form, but it changes nothing in ingressd
 *   (nginx buffer tuning; Node streams bodies) — reported in its own condition, not as ignored.
 * - denying: it restricts access and ingressd cannot do what it asks, so the ingress's paths answer
 *   503 INGRESSD_ERR_ACCESS_DENIED_CONFIG rather than open up (a value that restricts nothing,
 *   such as enable-modsecurity: "false", is harmless and has no effect).
 * - refused: refused on write (snippets of raw nginx configuration).
 * - ignored: not implemented, restricts nothing; stored and listed on the status as ignored.
 */
export type AnnotationState = 'implemented' | 'no-effect' | 'denying' | 'refused' | 'ignored'

const implemented = [
  'rewrite-target', 'use-regex', 'ssl-redirect', 'force-ssl-redirect',
  'proxy-connect-timeout', 'proxy-read-timeout', 'proxy-send-timeout', 'proxy-body-size',
  'whitelist-source-range', 'allowlist-source-range', 'denylist-source-range',
  'auth-type', 'auth-secret', 'auth-secret-type', 'auth-realm',
  'auth-url', 'auth-method', 'auth-signin', 'auth-signin-redirect-param', 'auth-response-headers',
  'auth-request-redirect', 'auth-cache-key', 'auth-cache-duration', 'auth-always-set-cookie',
  'auth-tls-secret', 'auth-tls-verify-client', 'auth-tls-verify-depth', 'auth-tls-pass-certificate-to-upstream',
  'auth-tls-error-page', 'auth-tls-match-cn',
  'limit-rps', 'limit-rpm', 'limit-burst-multiplier', 'limit-connections', 'limit-whitelist', 'limit-allowlist',
  'enable-cors', 'cors-allow-origin', 'cors-allow-methods', 'cors-allow-headers', 'cors-expose-headers',
  'cors-allow-credentials', 'cors-max-age',
  'satisfy',
  'permanent-redirect', 'permanent-redirect-code', 'temporal-redirect', 'temporal-redirect-code', 'app-root',
  'upstream-vhost', 'x-forwarded-prefix', 'backend-protocol',
  'proxy-ssl-secret', 'proxy-ssl-verify', 'proxy-ssl-verify-depth', 'proxy-ssl-name', 'proxy-ssl-server-name',
  'proxy-ssl-protocols', 'proxy-ssl-ciphers',
  'load-balance', 'upstream-hash-by', 'upstream-hash-by-subset', 'upstream-hash-by-subset-size',
  'affinity', 'affinity-mode', 'session-cookie-name', 'session-cookie-path', 'session-cookie-domain',
  'session-cookie-max-age', 'session-cookie-expires', 'session-cookie-samesite',
  'session-cookie-conditional-samesite-none', 'session-cookie-secure', 'session-cookie-change-on-failure',
  'canary', 'canary-weight', 'canary-weight-total', 'canary-by-header', 'canary-by-header-value',
  'canary-by-header-pattern', 'canary-by-cookie', 'affinity-canary-behavior'
]

const noEffect = [
  'client-body-buffer-size', 'proxy-buffering', 'proxy-buffer-size', 'proxy-buffers-number', 'proxy-busy-buffers-size',
  'proxy-max-temp-file-size', 'proxy-request-buffering', 'enable-rewrite-log', 'http2-push-preload',
  'auth-keepalive', 'auth-keepalive-requests', 'auth-keepalive-share-vars', 'auth-keepalive-timeout', 'enable-global-auth',
  'service-upstream'
]

const denying = [
  'enable-modsecurity', 'enable-owasp-core-rules', 'modsecurity-transaction-id', 'auth-proxy-set-headers',
  'global-rate-limit', 'global-rate-limit-window', 'global-rate-limit-key', 'global-rate-limit-ignored-cidrs'
]

const refused = ['configuration-snippet', 'server-snippet', 'auth-snippet', 'modsecurity-snippet', 'stream-snippet']

const ignored = [
  'server-alias', 'connection-proxy-header', 'custom-http-errors',
  'custom-headers', 'default-backend', 'disable-proxy-intercept-errors', 'fastcgi-index', 'fastcgi-params-configmap',
  'enable-access-log', 'mirror-host', 'mirror-request-body', 'mirror-target', 'enable-opentelemetry',
  'opentelemetry-operation-name', 'opentelemetry-trust-incoming-span', 'proxy-cookie-domain', 'proxy-cookie-path',
  'proxy-http-version', 'proxy-next-upstream', 'proxy-next-upstream-timeout', 'proxy-next-upstream-tries',
  'proxy-redirect-from', 'proxy-redirect-to', 'limit-rate',
  'limit-rate-after', 'from-to-www-redirect', 'preserve-trailing-slash', 'ssl-ciphers', 'ssl-prefer-server-ciphers',
  'ssl-passthrough', 'session-cookie-partitioned', 'use-port-in-redirects'
]

function table (): ReadonlyMap<string, AnnotationState> {
  const map = new Map<string, AnnotationState>()
  const add = (keys: string[], state: AnnotationState): void => { for (const k of keys) map.set(k, state) }
  add(ignored, 'ignored')
  add(implemented, 'implemented')
  add(noEffect, 'no-effect')
  add(denying, 'denying')
  add(refused, 'refused')
  return map
}

/** Every known key (without the prefix) and its state. */
export const ANNOTATION_CATALOGUE: ReadonlyMap<string, AnnotationState> = table()

/** A key's state: a key ingress-nginx does not know is ignored too, except snippets, which are always refused. */
export function annotationState (name: string): AnnotationState {
  if (name.endsWith('-snippet')) return 'refused'
  return ANNOTATION_CATALOGUE.get(name) ?? 'ignored'
}
