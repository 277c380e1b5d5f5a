/**
 * Request bodies: JSON or YAML (a JSON document is YAML too), parsed into plain objects with
 * errors that say where the text broke. The admin API is driven by curl as often as by tools,
 * and curl sends `--data-binary @ingress.yaml` as form-urlencoded, so any type that is not
 * explicitly something else is read as YAML. A body that says it is JSON must be JSON.
 */
import type { FastifyInstance } from 'fastify'
import { parseAllDocuments, type Document } from 'yaml'
import { IngressdError } from '../errors.js'
import { decodeKubernetesProtobuf } from './kube/protobuf.js'

/** Server-side apply's patch type (`kubectl apply --server-side`): not implemented, since ingressd keeps no managedFields. */
const UNSUPPORTED_PATCH_TYPES = ['application/apply-patch+yaml']

/** The patch types PATCH takes: all JSON. */
const PATCH_TYPES = ['application/merge-patch+json', 'application/strategic-merge-patch+json', 'application/json-patch+json']

/** Kubernetes' protobuf encoding, which kubectl 1.32 and newer send for `kubectl create` of built-in kinds. */
const PROTOBUF_TYPE = 'application/vnd.kubernetes.protobuf'

function malformed (message: string): IngressdError {
  return new IngressdError('INGRESSD_ERR_MALFORMED_BODY', message)
}

/**
 * A parsed YAML document's value. yaml throws here for an alias with no anchor, and its message
 * quotes the alias name: an unquoted value that begins with '*' (`password: *hunter2`), which may
 * be a secret. So the message is replaced, never passed on to the answer or the log.
 */
function documentValue (doc: Document.Parsed, where: string): unknown {
  try {
    return doc.toJS({ maxAliasCount: 100 })
  } catch (err) {
    const reason = (err as Error).message.startsWith('Excessive alias count')
      ? 'it uses too many aliases'
      : 'an alias (*name) refers to no anchor (&name); quote a value that begins with "*"'
    throw malformed(`${where} is not valid YAML: ${reason}`)
  }
}

/**
 * A body that is valid JSON is read with JSON.parse: the YAML parser builds a full syntax tree
 * first, which for a bundle of thousands of objects costs seconds and hundreds of megabytes.
 * Anything else (YAML, or JSON with an error, which YAML then reports with its position) goes
 * through the YAML parser. Returns undefined when the text is not JSON.
 */
function parseJsonFast (text: string): unknown {
  const first = text.trimStart()[0]
  if (first !== '{' && first !== '[') return undefined
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/** Parses one JSON or YAML object; a stray `---` around it is fine, a second object is not. */
export function parseObjectText (text: string | undefined): unknown {
  if (text === undefined || text.trim() === '') throw malformed('the body is empty: send a JSON or YAML object')
  const json = parseJsonFast(text)
  if (json !== undefined) {
    if (Array.isArray(json)) throw malformed('the body is a list: send one object here, or use POST /apply for a bundle')
    return json
  }
  // All documents first: parsing as one would report a second object as a syntax error.
  const docs = parseAllDocuments(text, { prettyErrors: true, uniqueKeys: true })
  const values: unknown[] = []
  for (const doc of docs) {
    const error = doc.errors[0]
    if (error !== undefined) throw malformed(`the body is not valid JSON or YAML: ${error.message.split('\n')[0] ?? ''}`)
    const value = documentValue(doc, 'the body')
    if (value !== null && value !== undefined) values.push(value)
  }
  if (values.length > 1) throw malformed('the body holds several YAML documents: send one object here, or use POST /apply for a bundle')
  if (values.length === 0) throw malformed('the body holds no object: send a JSON or YAML object')
  return values[0]
}

/** Parses a PATCH body: JSON, an object (merge patches) or an array (JSON patch), with errors that say which. */
export function parsePatchText (text: string | undefined, shape: 'object' | 'array'): unknown {
  if (text === undefined || text.trim() === '') throw malformed('the patch is empty')
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    checkJson(text)
  }
  if (shape === 'array' && !Array.isArray(value)) throw malformed('a JSON patch (application/json-patch+json) is a list of operations: [{"op": "replace", "path": "/spec/...", "value": ...}]')
  if (shape === 'object' && (typeof value !== 'object' || value === null || Array.isArray(value))) throw malformed('a merge patch is a JSON object; for a list of operations use Content-Type: application/json-patch+json')
  return value
}

/**
 * Refuses a body sent as JSON that is not JSON: the YAML parser would take single quotes or a
 * trailing comma. The message gives where it broke, never the text around it (it may be a key).
 */
function checkJson (text: string): void {
  try {
    JSON.parse(text)
  } catch (err) {
    const reason = (err as Error).message
    const at = /at position (\d+)/.exec(reason)
    const ended = reason.includes('end of JSON input')
    let where = ''
    if (at !== null || ended) {
      const before = text.slice(0, at === null ? text.length : Number(at[1]))
      where = `: ${ended ? 'it ends early' : 'unexpected character'} at line ${before.split('\n').length}, column ${before.length - before.lastIndexOf('\n')}`
    }
    throw malformed(`the body is sent as JSON but is not valid JSON${where}`)
  }
}

/** Parses a multi-document YAML stream (or one JSON document) into its documents, skipping empty ones. */
export function parseManifestStream (text: string | undefined): unknown[] {
  if (text === undefined || text.trim() === '') throw malformed('the body is empty: send one or more manifests')
  const json = parseJsonFast(text)
  if (json !== undefined) return json === null ? [] : [json]
  const docs = parseAllDocuments(text, { prettyErrors: true, uniqueKeys: true })
  if (!Array.isArray(docs)) throw malformed('the body is not valid YAML')
  const out: unknown[] = []
  docs.forEach((doc, i) => {
    const error = doc.errors[0]
    if (error !== undefined) throw malformed(`document ${i + 1} is not valid JSON or YAML: ${error.message.split('\n')[0] ?? ''}`)
    const value = documentValue(doc, `document ${i + 1}`)
    if (value !== null && value !== undefined) out.push(value)
  })
  return out
}

/**
 * Installs the admin API's body parsers: bodies arrive as raw text and are parsed by the route,
 * so /apply can read multi-document streams and every route reports errors the same way.
 */
export function registerBodyParsers (app: FastifyInstance): void {
  app.removeAllContentTypeParsers()
  app.addContentTypeParser(UNSUPPORTED_PATCH_TYPES, (_req, _payload, done) => {
    done(new IngressdError('INGRESSD_ERR_UNSUPPORTED_MEDIA_TYPE', `server-side apply is not supported: ingressd keeps no managedFields; use client-side kubectl apply (without --server-side); supported patch types: ${PATCH_TYPES.join(', ')}`), undefined)
  })
  // Decoded to the JSON the route reads, so every write path validates one shape.
  app.addContentTypeParser(PROTOBUF_TYPE, { parseAs: 'buffer' }, (_req, body, done) => {
    try {
      done(null, JSON.stringify(decodeKubernetesProtobuf(body as Buffer)))
    } catch (err) {
      done(err as Error, undefined)
    }
  })
  app.addContentTypeParser(['application/json', ...PATCH_TYPES], { parseAs: 'string' }, (_req, body, done) => {
    try {
      if ((body as string).trim() !== '') checkJson(body as string)
      done(null, body)
    } catch (err) {
      done(err as Error, undefined)
    }
  })
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => {
    done(null, body)
  })
}
