/**
 * JSON merge patch (RFC 7386), what `kubectl patch --type merge` and
 * `Content-Type: application/merge-patch+json` send.
 */

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Applies `patch` to `target` without modifying either: null deletes, objects merge, the rest replaces. */
export function applyMergePatch (target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return patch
  const out: Record<string, unknown> = isObject(target) ? { ...target } : {}
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key]
    else out[key] = applyMergePatch(out[key], value)
  }
  return out
}
