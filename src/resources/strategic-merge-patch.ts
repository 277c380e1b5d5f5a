/**
 * Strategic merge patch: what `kubectl apply` (client-side), `kubectl patch` (its default type)
 * and `kubectl edit` send as `Content-Type: application/strategic-merge-patch+json`.
 *
 * A port of the half of k8s.io/apimachinery/pkg/util/strategicpatch that applies a patch
 * (`mergeMap` and what it calls), with the options the API server applies patches with
 * (MergeParallelList, IgnoreUnmatchedNulls). Objects merge key by key and `null` deletes, as in
 * RFC 7386; lists are replaced whole unless the Go type tags the field `patchStrategy:"merge"`,
 * in which case items are matched by the field's `patchMergeKey` (or, for lists of strings, by
 * value). The directives `$patch`, `$retainKeys`, `$setElementOrder/<list>` and
 * `$deleteFromPrimitiveList/<list>` are consumed and never reach the result.
 *
 * Where Kubernetes would keep a directive in a value it then drops while decoding into a Go
 * struct, this port consumes it at once, so nothing starting with `$` is ever stored.
 */
import { IngressdError } from '../errors.js'
import type { KindName } from './stored.js'

type JsonObject = Record<string, unknown>

/** A list merged item by item: objects matched by `key`, strings (no key) by value. */
interface MergeStrategy {
  key?: string
}

// The patch strategies of the Go types (k8s.io/api and k8s.io/apimachinery), by field path,
// with `[]` for "an item of the list". Every list not named here is atomic: all of Ingress's
// (rules, tls, tls[].hosts, http.paths, in networking.k8s.io/v1 and the v1beta1 versions alike),
// Endpoints' subsets and everything in them, Service clusterIPs and ipFamilies, managedFields.
const OBJECT_META: Readonly<Record<string, MergeStrategy>> = {
  'metadata.ownerReferences': { key: 'uid' },
  'metadata.finalizers': {}
}
// metav1.Condition lists are `patchMergeKey:"type"` wherever Kubernetes has them (ServiceStatus);
// ingressd's own status.conditions on other kinds follow the same convention.
const CONDITIONS: Readonly<Record<string, MergeStrategy>> = { 'status.conditions': { key: 'type' } }

const MERGE_LISTS: Readonly<Record<KindName, Readonly<Record<string, MergeStrategy>>>> = {
  Ingress: { ...OBJECT_META, ...CONDITIONS },
  Service: { ...OBJECT_META, 'spec.ports': { key: 'port' }, ...CONDITIONS },
  Endpoints: OBJECT_META,
  Secret: { ...OBJECT_META, ...CONDITIONS },
  IngressClass: OBJECT_META
}

const PATCH = '$patch'
const RETAIN_KEYS = '$retainKeys'
const SET_ELEMENT_ORDER = '$setElementOrder'
const DELETE_FROM_PRIMITIVE_LIST = '$deleteFromPrimitiveList'

/** Where the merge is: `key` finds the field's strategy (`spec.ports[]`), `field` names it in errors (`spec.ports[1]`). */
interface Where {
  key: string
  field: string
}

const ROOT: Where = { key: '', field: '' }

function child (at: Where, name: string): Where {
  return { key: at.key === '' ? name : `${at.key}.${name}`, field: at.field === '' ? name : `${at.field}.${name}` }
}

function itemOf (at: Where, index: number): Where {
  return { key: `${at.key}[]`, field: `${at.field}[${index}]` }
}

function isObject (value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function has (object: JsonObject, key: string): boolean {
  return Object.hasOwn(object, key)
}

// Own properties only, read and written as data: a patch's `__proto__` key (a valid Secret data
// key) is a field like any other, never the prototype.
function own (object: JsonObject, key: string): unknown {
  return Object.hasOwn(object, key) ? object[key] : undefined
}

function setOwn (object: JsonObject, key: string, value: unknown): void {
  Object.defineProperty(object, key, { value, writable: true, enumerable: true, configurable: true })
}

function invalid (at: Where, detail: string): IngressdError {
  const where = at.field === '' ? 'the top level' : at.field
  return new IngressdError('INGRESSD_ERR_BAD_REQUEST', `strategic merge patch: ${detail} (at ${where})`)
}

function badPatchType (directive: unknown, container: 'map' | 'list', at: Where): IngressdError {
  return invalid(at, `unknown patch type: ${JSON.stringify(directive)} in ${container}: $patch takes "replace" or "delete"`)
}

/** The field a `$setElementOrder/<name>` or `$deleteFromPrimitiveList/<name>` directive is about. */
function directiveTarget (key: string, prefix: string, at: Where): string {
  const slash = key.indexOf('/')
  if (slash === -1 || key.slice(0, slash) !== prefix || slash === key.length - 1) {
    throw invalid(at, prefix === SET_ELEMENT_ORDER ? `invalid patch format of setElementOrder list: ${key}` : `invalid patch format of primitive list: ${key}`)
  }
  return key.slice(slash + 1)
}

/** The JSON type a list's items share; Kubernetes refuses lists of lists and lists of mixed types. */
function elementKind (items: readonly unknown[], at: Where): string | undefined {
  let kind: string | undefined
  for (const item of items) {
    const k = item === null ? 'null' : Array.isArray(item) ? 'array' : typeof item
    if (k === 'array') throw invalid(at, 'lists of lists are not supported')
    if (kind !== undefined && k !== kind) throw invalid(at, 'list element types are not identical')
    kind = k
  }
  return kind
}

/**
 * The applier for one kind: the field strategies are fixed, the rest is the recursion of
 * Kubernetes' mergeMap and mergeSlice over a private copy of the target.
 */
class StrategicMerge {
  constructor (private readonly lists: Readonly<Record<string, MergeStrategy>>) {}

  private strategy (at: Where): MergeStrategy | undefined {
    return Object.hasOwn(this.lists, at.key) ? this.lists[at.key] : undefined
  }

  /** Merges `patch` into `original`, which is a private copy and changes in place. */
  mergeMap (original: JsonObject, patch: JsonObject, at: Where): JsonObject {
    if (has(patch, PATCH)) {
      const directive = patch[PATCH]
      if (directive === 'replace') return this.mergeMap({}, withoutKey(patch, PATCH), at)
      if (directive === 'delete') return {}
      throw badPatchType(directive, 'map', at)
    }
    const rest: JsonObject = { ...patch }
    this.retainKeys(original, rest, at)
    this.orderLists(original, rest, at)
    for (const [rawKey, patchValue] of Object.entries(rest)) {
      let key = rawKey
      let deleteList = false
      if (rawKey.startsWith(DELETE_FROM_PRIMITIVE_LIST)) {
        key = directiveTarget(rawKey, DELETE_FROM_PRIMITIVE_LIST, at)
        deleteList = true
        if (!Array.isArray(patchValue)) throw invalid(child(at, key), `invalid patch format of primitive list: ${rawKey} must be a list`)
      } else if (rawKey.startsWith('$')) {
        throw invalid(child(at, rawKey), `unknown directive ${rawKey}: a strategic merge patch knows $patch, $retainKeys, $setElementOrder/<list> and $deleteFromPrimitiveList/<list>`)
      }
      const field = child(at, key)
      if (patchValue === null) {
        delete original[key]
        continue
      }
      const current = own(original, key)
      if (current === undefined || jsonType(current) !== jsonType(patchValue)) {
        if (!deleteList) this.setFresh(original, key, patchValue, field)
        continue
      }
      if (isObject(current)) setOwn(original, key, this.mergeMap(current, patchValue as JsonObject, field))
      else if (Array.isArray(current)) setOwn(original, key, this.mergeListField(current, patchValue as unknown[], field, deleteList))
      else setOwn(original, key, patchValue)
    }
    return original
  }

  /** A patch value with nothing to merge into: its directives consumed, its nulls dropped; undefined when it deletes itself. */
  fresh (value: unknown, at: Where): unknown {
    if (Array.isArray(value)) {
      const out: unknown[] = []
      value.forEach((item, i) => {
        const v = this.fresh(item, itemOf(at, i))
        if (v !== undefined) out.push(v)
      })
      return out
    }
    if (!isObject(value)) return value
    if (has(value, PATCH)) {
      const directive = value[PATCH]
      if (directive === 'delete') return undefined
      if (directive !== 'replace') throw badPatchType(directive, 'map', at)
      return this.mergeMap({}, withoutKey(value, PATCH), at)
    }
    return this.mergeMap({}, value, at)
  }

  private setFresh (target: JsonObject, key: string, value: unknown, at: Where): void {
    const v = this.fresh(value, at)
    if (v === undefined) delete target[key]
    else setOwn(target, key, v)
  }

  /** `$retainKeys`: the patch may only set the listed keys, and the original keeps only those. */
  private retainKeys (original: JsonObject, patch: JsonObject, at: Where): void {
    if (!has(patch, RETAIN_KEYS)) return
    const list = patch[RETAIN_KEYS]
    delete patch[RETAIN_KEYS]
    if (!Array.isArray(list)) throw invalid(at, 'invalid patch format of retainKeys: $retainKeys must be a list')
    const keep = new Set(list)
    for (const [key, value] of Object.entries(patch)) {
      if (value === null || key.startsWith(DELETE_FROM_PRIMITIVE_LIST) || key.startsWith(SET_ELEMENT_ORDER)) continue
      if (!keep.has(key)) throw invalid(at, `invalid patch format of retainKeys: ${key} is set but not in $retainKeys`)
    }
    for (const key of Object.keys(original)) if (!keep.has(key)) delete original[key]
  }

  /**
   * `$setElementOrder/<list>`: merges the list it names (if the patch has it) and puts the result
   * in the given order, server-only items keeping their place relative to it (mergePatchIntoOriginal).
   * On an atomic list the order has no meaning: the list is replaced as sent.
   */
  private orderLists (original: JsonObject, patch: JsonObject, at: Where): void {
    for (const directive of Object.keys(patch)) {
      if (!directive.startsWith(SET_ELEMENT_ORDER)) continue
      const order = patch[directive]
      delete patch[directive]
      const name = directiveTarget(directive, SET_ELEMENT_ORDER, at)
      const field = child(at, name)
      if (!Array.isArray(order)) throw invalid(field, `invalid patch format of setElementOrder list: ${directive} must be a list`)
      const strategy = this.strategy(field)
      if (strategy === undefined) continue
      const current = own(original, name)
      const sent = own(patch, name)
      if (current !== undefined && !Array.isArray(current)) throw invalid(field, `invalid patch format of setElementOrder list: ${name} is not a list`)
      if (has(patch, name) && !Array.isArray(sent)) throw invalid(field, `invalid patch format of setElementOrder list: ${name} must be a list alongside ${directive}`)
      const currentList = current as unknown[] | undefined
      const sentList = sent as unknown[] | undefined
      validateOrder(sentList ?? [], order, strategy.key, field)
      let merged: unknown[]
      if (currentList !== undefined && sentList !== undefined) merged = this.mergeListField(currentList, sentList, field, false)
      else if (sentList !== undefined) merged = this.fresh(sentList, field) as unknown[]
      else if (currentList !== undefined) merged = currentList
      else continue
      delete patch[name]
      const kind = elementKind([...(currentList ?? []), ...(sentList ?? [])], field)
      if (kind === undefined) {
        setOwn(original, name, merged)
        continue
      }
      const [inOrder, serverOnly] = partition(merged, order, strategy.key, kind, field)
      setOwn(original, name, normalizeElementOrder(inOrder, serverOnly, order, currentList ?? [], strategy.key, kind, field))
    }
  }

  private mergeListField (current: unknown[], patch: unknown[], at: Where, deleteList: boolean): unknown[] {
    const strategy = this.strategy(at)
    // A deletion list removes values whatever the field's strategy (as Kubernetes does since 1.26).
    if (strategy === undefined && !deleteList) return this.fresh(patch, at) as unknown[]
    return this.mergeList(current, patch, strategy?.key, at, deleteList)
  }

  /** Kubernetes' mergeSlice: merge by key (or value), then order patch items as sent among the server's. */
  private mergeList (original: unknown[], patch: unknown[], mergeKey: string | undefined, at: Where, deleteList: boolean): unknown[] {
    if (original.length === 0 && patch.length === 0) return original
    const kind = elementKind([...original, ...patch], at) as string
    if (kind !== 'object') {
      if (mergeKey !== undefined) throw invalid(at, `the items of this list must be objects with the merge key "${mergeKey}"`)
      if (deleteList) return original.filter(v => !patch.includes(v))
      const merged = [...new Set([...original, ...patch])]
      const [inPatch, serverOnly] = partition(merged, patch, undefined, kind, at)
      return normalizeElementOrder(inPatch, serverOnly, patch, original, undefined, kind, at)
    }
    if (deleteList) throw invalid(at, 'invalid patch format of primitive list: $deleteFromPrimitiveList takes a list of strings')
    if (mergeKey === undefined) throw invalid(at, 'cannot merge lists without merge key')
    const [remaining, plain] = this.listDirectives(original, patch, mergeKey, at)
    const merged = [...remaining]
    plain.forEach(([item, index]) => {
      if (!has(item, mergeKey)) throw invalid(itemOf(at, index), `map does not contain declared merge key: ${mergeKey}`)
      const found = merged.findIndex(o => isObject(o) && has(o, mergeKey) && o[mergeKey] === item[mergeKey])
      if (found === -1) merged.push(this.fresh(item, itemOf(at, index)))
      else merged[found] = this.mergeMap(merged[found] as JsonObject, item, itemOf(at, index))
    })
    const plainItems = plain.map(([item]) => item)
    const [inPatch, serverOnly] = partition(merged, plainItems, mergeKey, kind, at)
    return normalizeElementOrder(inPatch, serverOnly, plainItems, remaining, mergeKey, kind, at)
  }

  /**
   * Items carrying `$patch` (mergeSliceWithSpecialElements): `delete` removes the original items
   * with that key, `replace` makes the list exactly the patch's other items. Returns the original
   * items left and the patch's plain items, with their indexes in the patch.
   */
  private listDirectives (original: unknown[], patch: unknown[], mergeKey: string, at: Where): [unknown[], [JsonObject, number][]] {
    let remaining = original
    const plain: [JsonObject, number][] = []
    let replace = false
    patch.forEach((v, index) => {
      const item = v as JsonObject
      if (!has(item, PATCH)) {
        plain.push([item, index])
        return
      }
      const directive = item[PATCH]
      if (directive === 'delete') {
        if (!has(item, mergeKey)) throw invalid(itemOf(at, index), `map does not contain declared merge key: ${mergeKey}`)
        remaining = remaining.filter(o => !(isObject(o) && has(o, mergeKey) && o[mergeKey] === item[mergeKey]))
      } else if (directive === 'replace') {
        replace = true
      } else if (directive === 'merge') {
        throw invalid(itemOf(at, index), 'merging lists cannot yet be specified in the patch')
      } else {
        throw badPatchType(directive, 'list', itemOf(at, index))
      }
    })
    if (replace) return [plain.map(([item, index]) => this.fresh(item, itemOf(at, index))), []]
    return [remaining, plain]
  }
}

function withoutKey (object: JsonObject, key: string): JsonObject {
  const { [key]: _omitted, ...rest } = object
  return rest
}

function jsonType (value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value
}

/** The identity of a list item: its merge key's value for objects, itself for strings and numbers. */
function identity (item: unknown, mergeKey: string | undefined): unknown {
  if (mergeKey === undefined) return item
  return isObject(item) ? item[mergeKey] : undefined
}

function requireMergeKey (items: readonly unknown[], mergeKey: string, at: Where): void {
  for (const item of items) {
    if (!isObject(item) || !has(item, mergeKey)) throw invalid(at, `map: ${JSON.stringify(item)} does not contain declared merge key: ${mergeKey}`)
  }
}

/** Splits `items` into those whose identity appears in `by` and the rest (partition*ByPresentInList). */
function partition (items: readonly unknown[], by: readonly unknown[], mergeKey: string | undefined, kind: string, at: Where): [unknown[], unknown[]] {
  if (kind === 'object' && mergeKey !== undefined) {
    requireMergeKey(items, mergeKey, at)
    if (!by.every(isObject)) throw invalid(at, 'the items of a $setElementOrder list of objects must be objects holding the merge key')
  }
  const present = new Set(by.map(v => identity(v, mergeKey)))
  const inBy: unknown[] = []
  const rest: unknown[] = []
  for (const item of items) (present.has(identity(item, mergeKey)) ? inBy : rest).push(item)
  return [inBy, rest]
}

/**
 * Checks that the patch list's items appear in the `$setElementOrder` list in the same relative
 * order (validatePatchWithSetOrderList); deletions are not part of the order.
 */
function validateOrder (patchList: readonly unknown[], order: readonly unknown[], mergeKey: string | undefined, at: Where): void {
  if (order.length === 0 || patchList.length === 0) return
  const items = mergeKey === undefined ? patchList : patchList.filter(v => !(isObject(v) && v[PATCH] === 'delete'))
  let p = 0
  let s = 0
  while (p < items.length && s < order.length) {
    const item = items[p]
    if (isObject(item) && has(item, PATCH)) {
      p++
      continue
    }
    if (mergeKey !== undefined) {
      if (!isObject(item) || !has(item, mergeKey)) throw invalid(at, `map: ${JSON.stringify(item)} does not contain declared merge key: ${mergeKey}`)
      requireMergeKey([order[s]], mergeKey, at)
    }
    if (identity(item, mergeKey) === identity(order[s], mergeKey)) p++
    s++
  }
  if (p < items.length) throw invalid(at, `the order in the patch list ${JSON.stringify(patchList)} doesn't match the $setElementOrder list ${JSON.stringify(order)}`)
}

/** Sorts `items` by where their identity sits in `order`; those not in it keep their relative order, last. */
function sortByOrder (items: readonly unknown[], order: readonly unknown[], mergeKey: string | undefined, kind: string, at: Where): unknown[] {
  let sortable = [...items]
  let deletions: unknown[] = []
  if (kind === 'object' && mergeKey !== undefined) {
    requireMergeKey(items, mergeKey, at)
    requireMergeKey(order, mergeKey, at)
    deletions = sortable.filter(v => isObject(v) && v[PATCH] === 'delete')
    sortable = sortable.filter(v => !(isObject(v) && v[PATCH] === 'delete'))
  }
  const ids = order.map(v => identity(v, mergeKey))
  const rank = (v: unknown): number => {
    const i = ids.indexOf(identity(v, mergeKey))
    return i === -1 ? Infinity : i
  }
  return [...sortable.map((v, i) => ({ v, r: rank(v), i })).sort((a, b) => (a.r === b.r ? a.i - b.i : a.r < b.r ? -1 : 1)).map(e => e.v), ...deletions]
}

/**
 * Kubernetes' normalizeElementOrder: patch items in the patch's order, server-only items in the
 * server's, interleaved so that a server-only item goes before a patch item only when the live
 * list had it first. Items new to the list therefore come before the server-only items after
 * them, which is why kubectl sends `$setElementOrder` alongside.
 */
function normalizeElementOrder (patchItems: readonly unknown[], serverOnly: readonly unknown[], patchOrder: readonly unknown[], serverOrder: readonly unknown[], mergeKey: string | undefined, kind: string, at: Where): unknown[] {
  const left = sortByOrder(serverOnly, serverOrder, mergeKey, kind, at)
  const right = sortByOrder(patchItems, patchOrder, mergeKey, kind, at)
  const serverIds = serverOrder.map(v => identity(v, mergeKey))
  const out: unknown[] = []
  let i = 0
  let j = 0
  while (i < left.length || j < right.length) {
    if (j >= right.length) out.push(left[i++])
    else if (i >= left.length) out.push(right[j++])
    else {
      const li = serverIds.indexOf(identity(left[i], mergeKey))
      const ri = serverIds.indexOf(identity(right[j], mergeKey))
      if (li >= 0 && ri >= 0 && li < ri) out.push(left[i++])
      else out.push(right[j++])
    }
  }
  return out
}

/**
 * Applies a strategic merge patch to an object as served in any of its API versions (the whole
 * JSON: apiVersion, kind, metadata, spec...), as the API server does. Pure: neither argument
 * changes, and the result shares nothing with them.
 * Throws IngressdError INGRESSD_ERR_BAD_REQUEST, naming the field, when the patch is not a JSON
 * object or holds a directive Kubernetes refuses (`$patch: bogus`, `$patch: merge` on a map...).
 */
export function applyStrategicMergePatch (kind: KindName, target: Record<string, unknown>, patch: unknown): Record<string, unknown> {
  if (!isObject(patch)) {
    throw new IngressdError('INGRESSD_ERR_BAD_REQUEST', `strategic merge patch: the patch must be a JSON object, not ${Array.isArray(patch) ? 'an array' : patch === null ? 'null' : `a ${typeof patch}`}`)
  }
  return new StrategicMerge(MERGE_LISTS[kind]).mergeMap(structuredClone(target), patch, ROOT)
}
