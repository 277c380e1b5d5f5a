/**
 * JSON patch (RFC 6902), what `kubectl patch --type=json` sends as
 * `Content-Type: application/json-patch+json`: a list of add, remove, replace, move, copy and
 * test operations on JSON pointers, applied in order, all or nothing.
 *
 * Errors are worded as the API server's (evanphx/json-patch, which it applies patches with):
 * `testing value /spec/x failed: test failed`, `replace operation does not apply: doc is missing
 * key: /spec/x: missing value`.
 */
// fast-json-patch is CommonJS whose exports Node cannot list statically (it builds them with
// Object.assign), so only its default export, the whole module object, works under Node's ESM
// loader, tsx and the esbuild bundle alike.
import jsonPatch, { type Operation as PatchOperation } from 'fast-json-patch'
import { IngressdError, type ErrorCode } from '../errors.js'

const OPERATIONS = new Set(['add', 'remove', 'replace', 'move', 'copy', 'test'])

/** The API server's cap (maxJSONPatchOperations): a longer patch is answered 413. */
export const MAX_JSON_PATCH_OPERATIONS = 10000

/**
 * Kubernetes answers every failure to apply a well-formed patch with this sentence (a 422 it
 * builds with NewGenericServerResponse, which drops the detail); ingressd keeps the detail after it.
 */
const REJECTED = 'the server rejected our request due to an error in our request'

/**
 * The code of a failed `test` operation: 422 Invalid, as the Kubernetes API server answers it
 * (it answers every JSON patch that cannot be applied that way).
 */
const TEST_FAILED_CODE: ErrorCode = 'INGRESSD_ERR_INVALID'

interface Operation {
  op: string
  path: string
  from?: string
  value?: unknown
}

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function describe (value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'an array' : isObject(value) ? 'an object' : `a ${typeof value}`
}

function unescape (segment: string): string {
  return segment.replace(/~1/g, '/').replace(/~0/g, '~')
}

/** Whether a JSON pointer resolves in `doc`. */
function resolves (doc: unknown, pointer: string): boolean {
  if (pointer === '') return true
  let node = doc
  for (const raw of pointer.split('/').slice(1)) {
    const key = unescape(raw)
    if (Array.isArray(node)) {
      if (!/^(0|[1-9]\d*)$/.test(key) || Number(key) >= node.length) return false
      node = node[Number(key)]
    } else if (isObject(node) && Object.hasOwn(node, key)) {
      node = node[key]
    } else {
      return false
    }
  }
  return true
}

function parentOf (pointer: string): string {
  return pointer.slice(0, pointer.lastIndexOf('/'))
}

function lastSegment (pointer: string): string {
  return unescape(pointer.slice(pointer.lastIndexOf('/') + 1))
}

function rejected (detail: string, code: ErrorCode = 'INGRESSD_ERR_BAD_REQUEST'): IngressdError {
  return new IngressdError(code, `${REJECTED}: ${detail}`)
}

/** Words a fast-json-patch failure as the API server words the same failure. */
function explain (err: { name: string, operation?: unknown, index?: number }, doc: unknown): IngressdError {
  const op = (isObject(err.operation) ? err.operation : {}) as Partial<Operation>
  const path = typeof op.path === 'string' ? op.path : ''
  const from = typeof op.from === 'string' ? op.from : ''
  const missingParent = !resolves(doc, parentOf(path))
  switch (err.name) {
    case 'TEST_OPERATION_FAILED':
      return rejected(`testing value ${path} failed: test failed`, TEST_FAILED_CODE)
    case 'OPERATION_PATH_UNRESOLVABLE':
      if (op.op === 'remove') {
        return rejected(missingParent
          ? `remove operation does not apply: doc is missing path: "${path}": missing value`
          : `error in remove for path: '${path}': Unable to remove nonexistent key: ${lastSegment(path)}: missing value`)
      }
      if (op.op === 'replace') {
        return rejected(missingParent
          ? `replace operation does not apply: doc is missing path: ${path}: missing value`
          : `replace operation does not apply: doc is missing key: ${path}: missing value`)
      }
      return rejected(`${String(op.op)} operation does not apply: doc is missing path: ${path}: missing value`)
    case 'OPERATION_PATH_CANNOT_ADD':
      return rejected(`add operation does not apply: doc is missing path: "${path}": missing value`)
    case 'OPERATION_FROM_UNRESOLVABLE':
      return rejected(`${String(op.op)} operation does not apply: doc is missing from path: ${from}: missing value`)
    case 'OPERATION_FROM_REQUIRED':
      return rejected(`${String(op.op)} operation, missing from field: missing value`)
    case 'OPERATION_VALUE_REQUIRED':
    case 'OPERATION_VALUE_CANNOT_CONTAIN_UNDEFINED':
      return rejected(`${String(op.op)} operation, missing value field: missing value`)
    case 'OPERATION_PATH_INVALID':
      return rejected(`${String(op.op)} operation failed to decode path: ${JSON.stringify(op.path)} is not a JSON pointer`)
    case 'OPERATION_PATH_ILLEGAL_ARRAY_INDEX':
      return rejected(`error in ${String(op.op)} for path: '${path}': value was not a proper array index: '${lastSegment(path)}'`)
    case 'OPERATION_VALUE_OUT_OF_BOUNDS':
      return rejected(`error in ${String(op.op)} for path: '${path}': Unable to access invalid index: ${lastSegment(path)}: invalid index referenced`)
    default:
      return rejected(`operation ${err.index ?? 0} (${String(op.op)} ${path}) cannot be applied: ${err.name}`)
  }
}

/**
 * Applies a JSON patch to an object as served, as the API server does. Pure: neither argument
 * changes, and the result shares nothing with them.
 * Throws IngressdError: INGRESSD_ERR_BAD_REQUEST when the patch is not a list of RFC 6902
 * operations or an operation cannot be applied (a path that does not exist for remove or
 * replace...), INGRESSD_ERR_CONFLICT when a `test` operation fails, INGRESSD_ERR_BODY_TOO_LARGE
 * past 10000 operations.
 */
export function applyJsonPatch (target: Record<string, unknown>, patch: unknown): Record<string, unknown> {
  if (!Array.isArray(patch)) throw new IngressdError('INGRESSD_ERR_BAD_REQUEST', `json patch: the patch must be a JSON array of operations (RFC 6902), not ${describe(patch)}`)
  if (patch.length > MAX_JSON_PATCH_OPERATIONS) {
    throw new IngressdError('INGRESSD_ERR_BODY_TOO_LARGE', `The allowed maximum operations in a JSON patch is ${MAX_JSON_PATCH_OPERATIONS}, got ${patch.length}`)
  }
  patch.forEach((operation, index) => {
    if (!isObject(operation)) throw new IngressdError('INGRESSD_ERR_BAD_REQUEST', `json patch: operation ${index} must be an object, not ${describe(operation)}`)
    // fast-json-patch also accepts its private `_get`; Kubernetes answers anything else this way.
    if (typeof operation.op !== 'string' || !OPERATIONS.has(operation.op)) throw rejected(`Unexpected kind: ${String(operation.op)}`)
  })
  const doc = structuredClone(target)
  let result: unknown
  try {
    result = jsonPatch.applyPatch(doc, structuredClone(patch) as PatchOperation[], true, true, true).newDocument
  } catch (err) {
    if (err instanceof jsonPatch.JsonPatchError) throw explain(err, err.tree ?? doc)
    // Prototype pollution attempts (`/__proto__/...`) are a TypeError.
    throw rejected(err instanceof Error ? err.message : String(err))
  }
  if (!isObject(result)) throw rejected(`the patched document must be a JSON object, not ${describe(result)}`)
  return result
}
