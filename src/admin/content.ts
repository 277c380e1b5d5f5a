/**
 * Request bodies: JSON or YAML (a JSON document is YAML too), parsed into plain objects with
 * errors that say where the text broke. The admin API is driven by curl as often as by tools,
 * and curl sends `--data-binary @ingress.yaml` as form-urlencoded, so any type that is not
 * explicitly something else is read as YAML.
 */
import type { FastifyInstance } from 'fastify'
import { parseAllDocuments, parseDocument } from 'yaml'
import { IngressdError } from '../errors.js'

/** Patch types Kubernetes clients send that ingressd does not implement (only merge patch is). */
const UNSUPPORTED_PATCH_TYPES = ['application/strategic-merge-patch+json', 'application/json-patch+json', 'application/apply-patch+yaml']

function malformed (message: string): IngressdError {
  return new IngressdError('INGRESSD_ERR_MALFORMED_BODY', message)
}

/** Parses one JSON or YAML document. */
export function parseObjectText (text: string): unknown {
  if (text.trim() === '') throw malformed('the body is empty: send a JSON or YAML object')
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true })
  const error = doc.errors[0]
  if (error !== undefined) throw malformed(`the body is not valid JSON or YAML: ${error.message.split('\n')[0] ?? ''}`)
  if (parseAllDocuments(text).length > 1) throw malformed('the body holds several YAML documents: send one object here, or use POST /apply for a bundle')
  return doc.toJS({ maxAliasCount: 100 })
}

/** Parses a multi-document YAML stream (or one JSON document) into its documents, skipping empty ones. */
export function parseManifestStream (text: string): unknown[] {
  if (text.trim() === '') throw malformed('the body is empty: send one or more manifests')
  const docs = parseAllDocuments(text, { prettyErrors: true, uniqueKeys: true })
  if (!Array.isArray(docs)) throw malformed('the body is not valid YAML')
  const out: unknown[] = []
  docs.forEach((doc, i) => {
    const error = doc.errors[0]
    if (error !== undefined) throw malformed(`document ${i + 1} is not valid JSON or YAML: ${error.message.split('\n')[0] ?? ''}`)
    const value = doc.toJS({ maxAliasCount: 100 })
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
    done(new IngressdError('INGRESSD_ERR_UNSUPPORTED_MEDIA_TYPE', `this patch type is not supported: use Content-Type: application/merge-patch+json (kubectl patch --type merge), or PUT the whole object; supported patch types: ${['application/merge-patch+json'].join(', ')}`), undefined)
  })
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => {
    done(null, body)
  })
}
