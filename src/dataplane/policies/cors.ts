/**
 * enable-cors and the cors-* annotations, as ingress-nginx's CORS template renders them: with the
 * default origin `*` every response carries the CORS headers and every OPTIONS is answered 204 by
 * the gateway; with a list of origins only a request whose Origin matches gets them (echoing its
 * Origin), and only its OPTIONS is answered here. All the headers go on every response, preflight
 * or not, and on the gateway's own answers (a 401 keeps them), as ingress-nginx does.
 */
import type { AnnotationProblem, AnnotationReader, FamilyParse, PolicyAnswer, PolicyContext, PolicyStep } from './policy.js'
import { NGINX_PREFIX } from '../../resources/annotation-prefix.js'
import { splitList } from './addresses.js'

export const CORS_KEYS = ['enable-cors', 'cors-allow-origin', 'cors-allow-methods', 'cors-allow-headers', 'cors-expose-headers', 'cors-allow-credentials', 'cors-max-age'] as const

/** ingress-nginx's defaults (internal/ingress/annotations/cors/main.go). */
export const CORS_DEFAULTS = Object.freeze({
  methods: 'GET, PUT, POST, DELETE, PATCH, OPTIONS',
  headers: 'DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization',
  credentials: true,
  maxAge: 1728000
})

export interface CorsSpec {
  /** undefined: any origin (`*`); otherwise the patterns an Origin must match, whole and case-insensitive. */
  readonly origins?: readonly RegExp[]
  readonly methods: string
  readonly headers: string
  readonly exposeHeaders?: string
  readonly credentials: boolean
  readonly maxAge: number
}

const ORIGIN = /^(https?:\/\/(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:\d{1,5})?|\*)$/
const METHODS = /^[A-Za-z]+(\s*,\s*[A-Za-z]+)*$/
const HEADER_LIST = /^[A-Za-z0-9_-]+(\s*,\s*[A-Za-z0-9_-]+)*$/
const EXPOSE_LIST = /^(\*|[A-Za-z0-9_-]+)(\s*,\s*(\*|[A-Za-z0-9_-]+))*$/

/** An origin as written (`https://*.example.com`) as a whole-string, case-insensitive pattern; `*` stands for one DNS label. */
function originPattern (origin: string): RegExp {
  const escaped = origin.replace(/[.+?^${}()|[\]\\/]/g, '\\$&').replace(/\*/g, '[A-Za-z0-9-]+')
  return new RegExp(`^${escaped}$`, 'i')
}

/** Reads the CORS annotations; nothing unless enable-cors is "true". Malformed values are problems (refused on write). */
export function parseCors (read: AnnotationReader): FamilyParse<CorsSpec> {
  const problems: AnnotationProblem[] = []
  const problem = (name: string, message: string): void => { problems.push({ key: NGINX_PREFIX + name, message }) }
  const enabled = read('enable-cors')
  if (enabled !== undefined && enabled !== 'true' && enabled !== 'false') problem('enable-cors', `expected "true" or "false", got ${JSON.stringify(enabled)}`)
  let origins: RegExp[] | undefined
  const originValue = read('cors-allow-origin')
  if (originValue !== undefined) {
    const list = splitList(originValue)
    if (list.length === 0) problem('cors-allow-origin', 'expected "*" or a comma-separated list of origins such as "https://example.com, https://*.example.com", got an empty value')
    for (const o of list) {
      if (!ORIGIN.test(o)) problem('cors-allow-origin', `expected "*" or origins like "https://example.com" or "https://*.example.com" (scheme, host, optional port; no path), got ${JSON.stringify(o)}`)
    }
    if (!list.includes('*')) origins = list.map(originPattern)
  }
  const methods = read('cors-allow-methods')
  if (methods !== undefined && !METHODS.test(methods.trim())) problem('cors-allow-methods', `expected a comma-separated list of methods such as "GET, POST", got ${JSON.stringify(methods)}`)
  const headers = read('cors-allow-headers')
  if (headers !== undefined && !HEADER_LIST.test(headers.trim())) problem('cors-allow-headers', `expected a comma-separated list of header names, got ${JSON.stringify(headers)}`)
  const expose = read('cors-expose-headers')
  if (expose !== undefined && expose.trim() !== '' && !EXPOSE_LIST.test(expose.trim())) problem('cors-expose-headers', `expected a comma-separated list of header names or "*", got ${JSON.stringify(expose)}`)
  const credentials = read('cors-allow-credentials')
  if (credentials !== undefined && credentials !== 'true' && credentials !== 'false') problem('cors-allow-credentials', `expected "true" or "false", got ${JSON.stringify(credentials)}`)
  const maxAge = read('cors-max-age')
  if (maxAge !== undefined && !/^\d{1,9}$/.test(maxAge.trim())) problem('cors-max-age', `expected a whole number of seconds, got ${JSON.stringify(maxAge)}`)
  if (problems.length > 0 || enabled !== 'true') return { problems, denials: [] }
  const spec: { -readonly [K in keyof CorsSpec]: CorsSpec[K] } = {
    methods: methods?.trim() ?? CORS_DEFAULTS.methods,
    headers: headers?.trim() ?? CORS_DEFAULTS.headers,
    credentials: credentials === undefined ? CORS_DEFAULTS.credentials : credentials === 'true',
    maxAge: maxAge === undefined ? CORS_DEFAULTS.maxAge : Number(maxAge.trim())
  }
  if (origins !== undefined) spec.origins = Object.freeze(origins)
  if (expose !== undefined && expose.trim() !== '') spec.exposeHeaders = expose.trim()
  return { spec: Object.freeze(spec), problems, denials: [] }
}

/**
 * The step. It runs first in the chain (ingress-nginx answers preflights in its rewrite phase,
 * before limits and access checks: a browser sends no credentials on a preflight) and leaves the
 * CORS headers in ctx.responseHeaders for whatever answers the request.
 */
export function corsStep (spec: CorsSpec): PolicyStep {
  const common: Record<string, string> = {
    'access-control-allow-methods': spec.methods,
    'access-control-allow-headers': spec.headers,
    'access-control-max-age': String(spec.maxAge)
  }
  if (spec.credentials) common['access-control-allow-credentials'] = 'true'
  if (spec.exposeHeaders !== undefined) common['access-control-expose-headers'] = spec.exposeHeaders
  const any = Object.freeze({ 'access-control-allow-origin': '*', ...common })
  const origins = spec.origins
  const preflight = (headers: Record<string, string>): PolicyAnswer => ({ status: 204, headers: { ...headers, 'content-type': 'text/plain charset=UTF-8' }, body: '' })
  return (ctx: PolicyContext) => {
    let headers: Record<string, string>
    if (origins === undefined) {
      headers = any
    } else {
      const origin = ctx.req.headers.origin
      if (typeof origin !== 'string' || !origins.some(o => o.test(origin))) return undefined
      headers = { 'access-control-allow-origin': origin, vary: 'Origin', ...common }
    }
    ctx.responseHeaders = ctx.responseHeaders === undefined ? { ...headers } : Object.assign(ctx.responseHeaders, headers)
    if (ctx.method === 'OPTIONS') return preflight(headers)
    return undefined
  }
}
