/**
 * Server-side field validation (`?fieldValidation=Strict|Warn|Ignore`): the fields of an object
 * that its input schema does not declare, reported as the API server's strict decoder
 * (sigs.k8s.io/json) reports them, or dropped as its ordinary decoder drops them.
 *
 * kubectl sends `fieldValidation=Strict` by default and `Ignore` with `--validate=false`. The
 * schemas are the TypeBox input schemas of src/resources: an object closed with
 * `additionalProperties: false` (or `unevaluatedProperties: false`) declares its fields; one left
 * open, `additionalProperties: true` or Type.Unknown() accepts anything below it; a record
 * (`patternProperties`) accepts any key that matches.
 */
import type { TSchema } from 'typebox'

/** A JSON Schema node as TypeBox emits it. */
type Schema = Record<string, unknown>

/** The strict decoder keeps at most this many errors (sigs.k8s.io/json); the message lists no more. */
const STRICT_ERROR_LIMIT = 100

/** How deep a chain of `$ref`s is followed before it is taken for a cycle. */
const REF_DEPTH = 32

/** An open schema: what an unresolvable reference stands for. */
const ANYTHING: Schema = {}

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Every schema a `$ref` may name: the `$id`s and `$defs` found in the schemas given. */
function collectReferences (schemas: readonly unknown[]): Map<string, Schema> {
  const refs = new Map<string, Schema>()
  const seen = new Set<unknown>()
  const visit = (node: unknown): void => {
    if (typeof node !== 'object' || node === null || seen.has(node)) return
    seen.add(node)
    if (Array.isArray(node)) {
      node.forEach(visit)
      return
    }
    const schema = node as Schema
    if (typeof schema.$id === 'string') refs.set(schema.$id, schema)
    if (isObject(schema.$defs)) {
      for (const [name, def] of Object.entries(schema.$defs)) {
        if (!isObject(def)) continue
        refs.set(name, def)
        refs.set(`#/$defs/${name}`, def)
      }
    }
    Object.values(schema).forEach(visit)
  }
  schemas.forEach(visit)
  return refs
}

/** A `patternProperties` key as a RegExp: JSON Schema's dialect is ECMAScript's, with Unicode when that parses. */
function compilePattern (source: string): RegExp {
  try {
    return new RegExp(source, 'u')
  } catch {
    return new RegExp(source)
  }
}

/** The JSON type of a value, in JSON Schema's words. */
function typeOf (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'array'
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number'
  return typeof value
}

/** Whether a schema's `type` (if it has one) admits the value's JSON type. */
function admitsType (schema: Schema, value: unknown): boolean {
  const type = schema.type
  if (type === undefined) return true
  const types = Array.isArray(type) ? type : [type]
  const actual = typeOf(value)
  return types.includes(actual) || (actual === 'integer' && types.includes('number'))
}

/** The walk of one value against one schema, collecting unknown fields and building the pruned copy. */
class FieldWalk {
  constructor (private readonly refs: Map<string, Schema>) {}

  /** Follows `$ref`s to the schema they name; an unresolvable reference accepts anything. */
  private resolve (schema: Schema): Schema {
    let node = schema
    for (let depth = 0; typeof node.$ref === 'string'; depth++) {
      if (depth === REF_DEPTH) return ANYTHING
      const ref = node.$ref.endsWith('#') ? node.$ref.slice(0, -1) : node.$ref
      const target = this.refs.get(ref) ?? this.refs.get(node.$ref)
      if (target === undefined) return ANYTHING
      node = target
    }
    return node
  }

  /** Returns `value` without its unknown fields, pushing each one's path onto `found`. */
  walk (rawSchema: Schema, value: unknown, path: string, found: string[]): unknown {
    const schema = this.resolve(rawSchema)
    const branches = Array.isArray(schema.anyOf) ? schema.anyOf : Array.isArray(schema.oneOf) ? schema.oneOf : undefined
    if (branches !== undefined) {
      const branch = this.pickBranch(branches.filter(isObject), value, path)
      return branch === undefined ? structuredClone(value) : this.walk(branch, value, path, found)
    }
    if (Array.isArray(schema.allOf)) return this.walk(mergeAllOf([schema, ...schema.allOf.filter(isObject).map(s => this.resolve(s))]), value, path, found)
    if (!admitsType(schema, value)) return structuredClone(value) // the type check reports it
    if (isObject(value)) return this.walkObject(schema, value, path, found)
    if (Array.isArray(value)) return this.walkArray(schema, value, path, found)
    return value
  }

  private walkObject (schema: Schema, value: Record<string, unknown>, path: string, found: string[]): Record<string, unknown> {
    const properties = isObject(schema.properties) ? schema.properties : {}
    const patterns = isObject(schema.patternProperties)
      ? Object.entries(schema.patternProperties).filter((e): e is [string, Schema] => isObject(e[1])).map(([source, s]) => [compilePattern(source), s] as const)
      : []
    const additional = schema.additionalProperties
    const closed = additional === false || schema.unevaluatedProperties === false
    const out: Record<string, unknown> = {}
    for (const [key, child] of Object.entries(value)) {
      const childPath = `${path}.${key}`
      const declared = properties[key]
      const pattern = patterns.find(([re]) => re.test(key))
      let kept: unknown
      if (Object.hasOwn(properties, key)) kept = isObject(declared) ? this.walk(declared, child, childPath, found) : structuredClone(child)
      else if (pattern !== undefined) kept = this.walk(pattern[1], child, childPath, found)
      else if (isObject(additional)) kept = this.walk(additional, child, childPath, found)
      else if (closed) {
        found.push(childPath)
        continue
      } else kept = structuredClone(child)
      // As data: a `__proto__` key is a field, never the copy's prototype.
      Object.defineProperty(out, key, { value: kept, writable: true, enumerable: true, configurable: true })
    }
    return out
  }

  private walkArray (schema: Schema, value: unknown[], path: string, found: string[]): unknown[] {
    const prefix = Array.isArray(schema.prefixItems) ? schema.prefixItems : Array.isArray(schema.items) ? schema.items : []
    const items = isObject(schema.items) ? schema.items : isObject(schema.additionalItems) ? schema.additionalItems : undefined
    return value.map((item, i) => {
      const itemSchema = i < prefix.length && isObject(prefix[i]) ? prefix[i] as Schema : items
      return itemSchema === undefined ? structuredClone(item) : this.walk(itemSchema, item, `${path}[${i}]`, found)
    })
  }

  /**
   * The branch of a union the value fits best: of those whose type admits it, the one that leaves
   * the fewest unknown fields, then the fewest `const` properties contradicted (a discriminator
   * such as apiVersion), then the fewest required properties missing; the first on a tie.
   */
  private pickBranch (branches: Schema[], value: unknown, path: string): Schema | undefined {
    const candidates = branches.map(b => this.resolve(b)).filter(b => b.anyOf !== undefined || b.oneOf !== undefined || b.allOf !== undefined || admitsType(b, value))
    if (candidates.length <= 1) return candidates[0]
    let best: Schema | undefined
    let bestScore: number[] = []
    for (const candidate of candidates) {
      const unknown: string[] = []
      this.walk(candidate, value, path, unknown)
      const score = [unknown.length, ...objectFit(candidate, value)]
      if (best === undefined || compareScores(score, bestScore) < 0) {
        best = candidate
        bestScore = score
      }
    }
    return best
  }
}

/** How badly an object misses a schema's shape: [const properties contradicted, required properties missing]. */
function objectFit (schema: Schema, value: unknown): [number, number] {
  if (!isObject(value)) return [0, 0]
  const properties = isObject(schema.properties) ? schema.properties : {}
  let contradicted = 0
  for (const [key, declared] of Object.entries(properties)) {
    if (isObject(declared) && Object.hasOwn(declared, 'const') && Object.hasOwn(value, key) && value[key] !== declared.const) contradicted++
  }
  const required = Array.isArray(schema.required) ? schema.required : []
  return [contradicted, required.filter(key => typeof key === 'string' && !Object.hasOwn(value, key)).length]
}

function compareScores (a: number[], b: number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0)
    if (d !== 0) return d
  }
  return 0
}

/** An intersection (the schema holding `allOf`, then its parts) seen as one object: every part's properties; closed when any part is. */
function mergeAllOf (parts: Schema[]): Schema {
  const properties: Record<string, unknown> = {}
  const patternProperties: Record<string, unknown> = {}
  let closed = false
  for (const part of parts) {
    if (isObject(part.properties)) Object.assign(properties, part.properties)
    if (isObject(part.patternProperties)) Object.assign(patternProperties, part.patternProperties)
    if (part.additionalProperties === false || part.unevaluatedProperties === false) closed = true
  }
  return { properties, patternProperties, ...(closed ? { additionalProperties: false } : {}) }
}

/**
 * The fields of `value` that `schema` does not declare, as Kubernetes-style paths from the top of
 * the object: `.spec.rules[0].http.foo`, `.metadata.bogus`, `.foo`; in document order.
 * `references` are schemas that `$ref`s may name by `$id` besides those inside `schema`.
 */
export function findUnknownFields (schema: TSchema, value: unknown, references: readonly TSchema[] = []): string[] {
  const found: string[] = []
  new FieldWalk(collectReferences([schema, ...references])).walk(schema as Schema, value, '', found)
  return found
}

/**
 * A deep copy of `value` without the fields `schema` does not declare: what the API server keeps
 * of an object sent with `fieldValidation=Ignore` (or `Warn`).
 */
export function pruneUnknownFields (schema: TSchema, value: unknown, references: readonly TSchema[] = []): unknown {
  return new FieldWalk(collectReferences([schema, ...references])).walk(schema as Schema, value, '', [])
}

/** Go's strconv.Quote for the strings a field path holds, as the strict decoder quotes them. */
function goQuote (text: string): string {
  let out = '"'
  for (const ch of text) {
    const code = ch.codePointAt(0) as number
    if (ch === '"' || ch === '\\') out += `\\${ch}`
    else if (ch === '\n') out += '\\n'
    else if (ch === '\t') out += '\\t'
    else if (ch === '\r') out += '\\r'
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, '0')}`
    else out += ch
  }
  return `${out}"`
}

/** One strict decoding error: `unknown field "spec.foo"` (the path without its leading dot). */
function unknownFieldError (field: string): string {
  return `unknown field ${goQuote(field.startsWith('.') ? field.slice(1) : field)}`
}

/**
 * The message the API server answers (400 BadRequest) for an object with unknown fields under
 * `fieldValidation=Strict`, and kubectl prints after "Error from server (BadRequest): ":
 * `Ingress in version "v1" cannot be handled as a Ingress: strict decoding error: unknown field "spec.foo", unknown field "metadata.bogus"`.
 * `version` is the version without its group (`v1beta1`); an apiVersion (`extensions/v1beta1`) is cut to it.
 */
export function strictDecodingMessage (kind: string, version: string, unknown: readonly string[]): string {
  const bare = version.slice(version.lastIndexOf('/') + 1)
  const errors = unknown.slice(0, STRICT_ERROR_LIMIT).map(unknownFieldError).join(', ')
  return `${kind} in version ${goQuote(bare)} cannot be handled as a ${kind}: strict decoding error: ${errors}`
}

/**
 * The warnings the API server adds (one `Warning:` header each, printed by kubectl as
 * `Warning: unknown field "spec.foo"`) for an object with unknown fields under `fieldValidation=Warn`.
 */
export function unknownFieldWarnings (unknown: readonly string[]): string[] {
  return unknown.slice(0, STRICT_ERROR_LIMIT).map(unknownFieldError)
}
