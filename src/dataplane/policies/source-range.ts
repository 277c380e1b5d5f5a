/**
 * whitelist-source-range (alias allowlist-source-range) and denylist-source-range: who may
 * reach an ingress's paths, by client address. As ingress-nginx renders it: the denylist is
 * checked first, then the allowlist, and anything else is refused with 403.
 */
import type { AnnotationProblem, AnnotationReader, FamilyParse, PolicyAnswer, PolicyContext, PolicyStep } from './policy.js'
import { inRanges, parseRanges, rangeProblem, splitList, type AddressRanges } from './addresses.js'
import { NGINX_PREFIX } from '../../resources/annotation-prefix.js'

export const SOURCE_RANGE_KEYS = ['whitelist-source-range', 'allowlist-source-range', 'denylist-source-range'] as const

export interface SourceRangeSpec {
  /** Addresses allowed; undefined: no allowlist (everyone not denied). */
  readonly allow?: AddressRanges
  readonly deny?: AddressRanges
}

function parseList (read: AnnotationReader, name: string, problems: AnnotationProblem[]): string[] | undefined {
  const value = read(name)
  if (value === undefined) return undefined
  const entries = splitList(value)
  const key = NGINX_PREFIX + name
  if (entries.length === 0) {
    problems.push({ key, message: 'expected a comma-separated list of IP addresses or CIDR ranges, got an empty value' })
    return undefined
  }
  for (const entry of entries) {
    const problem = rangeProblem(entry)
    if (problem !== undefined) problems.push({ key, message: `expected a comma-separated list of IP addresses or CIDR ranges: ${problem}` })
  }
  return entries
}

/** Reads the source-range annotations; a malformed entry is a problem (refused on write). Both allowlist spellings are merged. */
export function parseSourceRange (read: AnnotationReader): FamilyParse<SourceRangeSpec> {
  const problems: AnnotationProblem[] = []
  const allowed = [...(parseList(read, 'whitelist-source-range', problems) ?? []), ...(parseList(read, 'allowlist-source-range', problems) ?? [])]
  const denied = parseList(read, 'denylist-source-range', problems)
  if (problems.length > 0) return { problems, denials: [] }
  if (allowed.length === 0 && denied === undefined) return { problems, denials: [] }
  const spec: { allow?: AddressRanges, deny?: AddressRanges } = {}
  if (allowed.length > 0) spec.allow = parseRanges(allowed)
  if (denied !== undefined) spec.deny = parseRanges(denied)
  return { spec: Object.freeze(spec), problems, denials: [] }
}

const FORBIDDEN: PolicyAnswer = Object.freeze({ status: 403, code: 'INGRESSD_ERR_SOURCE_FORBIDDEN' })

/** The step: 403 for a denied client or one outside the allowlist. */
export function sourceRangeStep (spec: SourceRangeSpec): PolicyStep {
  const { allow, deny } = spec
  return (ctx: PolicyContext) => {
    if (deny !== undefined && inRanges(deny, ctx.client)) return FORBIDDEN
    if (allow !== undefined && !inRanges(allow, ctx.client)) return FORBIDDEN
    return undefined
  }
}
