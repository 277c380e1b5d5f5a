/**
 * The Kubernetes API validation rules that every resource shares: names, labels, annotations,
 * DNS names, and turning a TypeBox schema's errors into field-level causes.
 */
import type { TSchema } from 'typebox'
import { Compile } from 'typebox/compile'
import type { Cause } from '../errors.js'

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/

/** Collects causes in field order, so a rejected object reports every problem at once. */
export class CauseList {
  readonly causes: Cause[] = []

  invalid (field: string, value: unknown, detail: string): void {
    this.causes.push({ reason: 'FieldValueInvalid', field, message: `Invalid value: ${JSON.stringify(value)}: ${detail}` })
  }

  required (field: string, detail = 'Required value'): void {
    this.causes.push({ reason: 'FieldValueRequired', field, message: detail === 'Required value' ? detail : `Required value: ${detail}` })
  }

  notSupported (field: string, value: unknown, supported: readonly string[]): void {
    const list = supported.map(s => JSON.stringify(s)).join(', ')
    this.causes.push({ reason: 'FieldValueNotSupported', field, message: `Unsupported value: ${JSON.stringify(value)}: supported values: ${list}` })
  }

  duplicate (field: string, value: unknown): void {
    this.causes.push({ reason: 'FieldValueDuplicate', field, message: `Duplicate value: ${JSON.stringify(value)}` })
  }

  forbidden (field: string, detail: string): void {
    this.causes.push({ reason: 'FieldValueForbidden', field, message: `Forbidden: ${detail}` })
  }

  get empty (): boolean {
    return this.causes.length === 0
  }
}

/** True for a DNS-1123 label: lowercase alphanumerics and '-', at most 63 characters. */
export function isDns1123Label (value: string): boolean {
  return value.length <= 63 && DNS1123_LABEL.test(value)
}

/** True for a DNS-1123 subdomain: dot-separated labels, at most 253 characters. */
export function isDns1123Subdomain (value: string): boolean {
  return value.length > 0 && value.length <= 253 && value.split('.').every(l => l.length > 0 && isDns1123Label(l))
}

/** True for a DNS-1035 label (Service names): starts with a letter. */
export function isDns1035Label (value: string): boolean {
  return value.length <= 63 && DNS1035_LABEL.test(value)
}

/** A Kubernetes qualified name: an optional DNS subdomain prefix and '/', then a name of at most 63 characters. */
export function isQualifiedName (value: string): boolean {
  const slash = value.indexOf('/')
  const prefix = slash === -1 ? '' : value.slice(0, slash)
  const name = slash === -1 ? value : value.slice(slash + 1)
  if (slash !== -1 && !isDns1123Subdomain(prefix)) return false
  return name.length > 0 && name.length <= 63 && QUALIFIED_NAME.test(name)
}

/** Checks metadata.labels and metadata.annotations as the API server does. */
export function validateLabelsAndAnnotations (meta: { labels?: Record<string, string>, annotations?: Record<string, string> }, causes: CauseList): void {
  for (const [key, value] of Object.entries(meta.labels ?? {})) {
    if (!isQualifiedName(key)) causes.invalid(`metadata.labels[${key}]`, key, 'a label key must be a qualified name: an optional DNS subdomain prefix and "/", then at most 63 alphanumerics, "-", "_" or "."')
    else if (value.length > 63 || !LABEL_VALUE.test(value)) causes.invalid(`metadata.labels[${key}]`, value, 'a label value must be at most 63 alphanumerics, "-", "_" or ".", beginning and ending with an alphanumeric')
  }
  let total = 0
  for (const [key, value] of Object.entries(meta.annotations ?? {})) {
    if (!isQualifiedName(key)) causes.invalid(`metadata.annotations[${key}]`, key, 'an annotation key must be a qualified name')
    total += key.length + value.length
  }
  if (total > 256 * 1024) causes.invalid('metadata.annotations', `${total} bytes`, 'annotations may not exceed 262144 bytes in total')
}

/** Validates metadata.name and metadata.namespace for a kind whose names follow `nameRule`. */
export function validateObjectName (meta: { name?: string, namespace?: string }, namespaced: boolean, nameRule: 'subdomain' | 'dns1035', causes: CauseList): void {
  const name = meta.name
  if (name === undefined || name === '') {
    causes.required('metadata.name', 'name or generateName is required')
  } else if (nameRule === 'subdomain' && !isDns1123Subdomain(name)) {
    causes.invalid('metadata.name', name, 'a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \'-\' or \'.\', and must start and end with an alphanumeric character')
  } else if (nameRule === 'dns1035' && !isDns1035Label(name)) {
    causes.invalid('metadata.name', name, 'a DNS-1035 label must consist of lower case alphanumeric characters or \'-\', start with an alphabetic character, and end with an alphanumeric character')
  }
  if (namespaced && meta.namespace !== undefined && !isDns1123Label(meta.namespace)) {
    causes.invalid('metadata.namespace', meta.namespace, 'a lowercase RFC 1123 label must consist of lower case alphanumeric characters or \'-\', and must start and end with an alphanumeric character')
  }
}

/** Converts a JSON pointer (`/spec/rules/0/host`) to Kubernetes field notation (`spec.rules[0].host`). */
export function fieldFromPointer (pointer: string): string {
  let out = ''
  for (const raw of pointer.split('/').slice(1)) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~')
    if (/^\d+$/.test(part)) out += `[${part}]`
    else out += out === '' ? part : `.${part}`
  }
  return out === '' ? '<root>' : out
}

/** A compiled structural check: the schema's errors as Kubernetes causes, one per field. */
export function structuralValidator (schema: TSchema): (value: unknown, prefix?: string) => Cause[] {
  const compiled = Compile(schema)
  return (value, prefix = '') => {
    if (compiled.Check(value)) return []
    // Errors arrive one per schema branch; group them by field so a union reports once.
    const byField = new Map<string, { reason: string, messages: string[], allowed: unknown[] }>()
    for (const error of compiled.Errors(value)) {
      const params = error.params as Record<string, unknown>
      let pointer = error.instancePath
      let reason = 'FieldValueInvalid'
      let message = error.message ?? 'invalid'
      if (error.keyword === 'required' && Array.isArray(params.requiredProperties)) {
        pointer = `${pointer}/${String(params.requiredProperties[0])}`
        reason = 'FieldValueRequired'
        message = 'Required value'
      } else if (error.keyword === 'boolean' && error.schemaPath.endsWith('/additionalProperties')) {
        reason = 'FieldValueNotSupported'
        message = 'unknown field'
      } else if (error.keyword === 'additionalProperties' || error.keyword === 'anyOf') {
        continue
      } else if (error.keyword === 'type') {
        reason = 'FieldValueTypeInvalid'
      } else if (error.keyword === 'const') {
        reason = 'FieldValueNotSupported'
      }
      const field = fieldFromPointer(prefix + pointer)
      const entry = byField.get(field) ?? { reason, messages: [], allowed: [] }
      if (error.keyword === 'const') entry.allowed.push(params.allowedValue)
      else if (!entry.messages.includes(message)) entry.messages.push(message)
      byField.set(field, entry)
    }
    return [...byField].map(([field, e]) => {
      if (e.allowed.length > 0) {
        return { reason: 'FieldValueNotSupported', field, message: `Unsupported value: supported values: ${e.allowed.map(a => JSON.stringify(a)).join(', ')}` }
      }
      return { reason: e.reason, field, message: e.messages.join(' or ') }
    })
  }
}
