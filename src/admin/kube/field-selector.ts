/**
 * Field selectors, as the API server takes them for lists and watches of every kind:
 * `metadata.name` and `metadata.namespace` with `=`, `==` or `!=`, comma-separated (all must
 * hold). Other fields are refused as Kubernetes refuses them, never ignored: a selector that
 * would match everything by accident could make `kubectl delete` touch more than asked.
 */
import { IngressdError } from '../../errors.js'

/** A parsed field selector. */
export interface FieldSelector {
  matches: (meta: { name: string, namespace: string }) => boolean
  /** The one name it pins (`metadata.name=x`), if any: lets a list read one row. */
  name?: string
}

const FIELDS = ['metadata.name', 'metadata.namespace'] as const

/** Parses `raw`; throws INGRESSD_ERR_BAD_REQUEST (Kubernetes' message) for an unsupported field or a malformed term. */
export function parseFieldSelector (raw: string): FieldSelector {
  const terms: { field: typeof FIELDS[number], value: string, equal: boolean }[] = []
  for (const term of raw.split(',').map(s => s.trim()).filter(s => s !== '')) {
    const m = /^([^=!]+?)\s*(==|!=|=)\s*(.*)$/.exec(term)
    if (m === null) throw new IngressdError('INGRESSD_ERR_BAD_REQUEST', `invalid field selector: "${term}": expected field=value, field==value or field!=value`)
    const field = (m[1] ?? '').trim()
    if (!(FIELDS as readonly string[]).includes(field)) {
      const message = `"${field}" is not a known field selector: only ${FIELDS.map(f => `"${f}"`).join(', ')}`
      throw new IngressdError('INGRESSD_ERR_BAD_REQUEST', message, { causes: [{ reason: 'FieldValueNotSupported', field: 'fieldSelector', message }] })
    }
    terms.push({ field: field as typeof FIELDS[number], value: (m[3] ?? '').trim(), equal: m[2] !== '!=' })
  }
  const pinned = terms.find(t => t.field === 'metadata.name' && t.equal)
  return {
    matches: (meta) => terms.every(t => ((t.field === 'metadata.name' ? meta.name : meta.namespace) === t.value) === t.equal),
    ...(pinned === undefined ? {} : { name: pinned.value })
  }
}
