/**
 * Kubernetes label selectors, as `?labelSelector=` takes them:
 * `app=web`, `tier!=cache`, `env in (prod,staging)`, `env notin (dev)`, `release`, `!canary`.
 */
import { IngressdError } from '../errors.js'

type Requirement =
  | { op: 'in', key: string, values: Set<string> }
  | { op: 'notin', key: string, values: Set<string> }
  | { op: 'exists' | '!exists', key: string }

/** A parsed selector: matches(labels) is true when every requirement holds. */
export interface LabelSelector {
  matches: (labels: Record<string, string> | undefined) => boolean
}

const KEY = '[A-Za-z0-9][-A-Za-z0-9_./]*'
const VALUE = '[-A-Za-z0-9_.]*'

/** Splits on commas that are not inside parentheses. */
function splitTerms (raw: string): string[] {
  const terms: string[] = []
  let depth = 0
  let current = ''
  for (const ch of raw) {
    if (ch === '(') depth++
    if (ch === ')') depth--
    if (ch === ',' && depth === 0) {
      terms.push(current)
      current = ''
    } else current += ch
  }
  terms.push(current)
  return terms.map(t => t.trim()).filter(t => t !== '')
}

/** Parses a selector; throws BadRequest naming the term it cannot read. */
export function parseLabelSelector (raw: string): LabelSelector {
  const requirements: Requirement[] = []
  for (const term of splitTerms(raw)) {
    let m: RegExpExecArray | null
    if ((m = new RegExp(`^(${KEY})\\s*(==|=|!=)\\s*(${VALUE})$`).exec(term)) !== null) {
      const [, key, op, value] = m as unknown as [string, string, string, string]
      requirements.push({ op: op === '!=' ? 'notin' : 'in', key, values: new Set([value]) })
    } else if ((m = new RegExp(`^(${KEY})\\s+(in|notin)\\s*\\(([^)]*)\\)$`).exec(term)) !== null) {
      const [, key, op, list] = m as unknown as [string, string, 'in' | 'notin', string]
      requirements.push({ op, key, values: new Set(list.split(',').map(v => v.trim())) })
    } else if ((m = new RegExp(`^(!?)\\s*(${KEY})$`).exec(term)) !== null) {
      requirements.push({ op: m[1] === '!' ? '!exists' : 'exists', key: m[2] as string })
    } else {
      throw new IngressdError('INGRESSD_ERR_BAD_REQUEST', `labelSelector: unable to parse requirement "${term}"`, { causes: [{ reason: 'FieldValueInvalid', field: 'labelSelector', message: `unable to parse requirement "${term}"` }] })
    }
  }
  return {
    matches (labels) {
      return requirements.every(r => {
        const has = labels !== undefined && Object.hasOwn(labels, r.key)
        switch (r.op) {
          case 'exists': return has
          case '!exists': return !has
          case 'in': return has && r.values.has(labels[r.key] as string)
          case 'notin': return !has || !r.values.has(labels[r.key] as string)
        }
        return false
      })
    }
  }
}
