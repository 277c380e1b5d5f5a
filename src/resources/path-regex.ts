/**
 * Regular-expression paths, as ingress-nginx turns them into `location ~* ^<path>` blocks.
 *
 * Users' expressions run on the request hot path with a backtracking engine, so each one is
 * checked on write by safe-regex2 (star height > 1, the classic source of catastrophic
 * backtracking) and refused when it could blow up.
 */
import safeRegex from 'safe-regex2'

/** The annotations that switch an ingress's paths to regular expressions. */
export const USE_REGEX_ANNOTATION = 'nginx.ingress.kubernetes.io/use-regex'
export const REWRITE_TARGET_ANNOTATION = 'nginx.ingress.kubernetes.io/rewrite-target'

/** True when ingress-nginx would treat this ingress's paths as regular expressions. */
export function usesRegexPaths (annotations: Record<string, string> | undefined): boolean {
  if (annotations === undefined) return false
  if (annotations[USE_REGEX_ANNOTATION] === 'true') return true
  const target = annotations[REWRITE_TARGET_ANNOTATION]
  return target !== undefined && /\$\d/.test(target)
}

/** The reason a user's path expression is refused, or undefined when it is usable. */
export function regexPathProblem (path: string): string | undefined {
  try {
    // eslint-disable-next-line no-new
    new RegExp(path, 'i')
  } catch (err) {
    return `not a valid regular expression: ${(err as Error).message}`
  }
  if (!safeRegex(path)) return 'the expression could backtrack catastrophically (nested quantifiers); rewrite it without a repeated group that itself repeats'
  return undefined
}

/** Compiles a path expression as nginx's `~* ^path`: case-insensitive, anchored at the start. */
export function compilePathRegex (path: string): RegExp {
  return new RegExp(`^(?:${path})`, 'i')
}
