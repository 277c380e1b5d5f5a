/**
 * Reading manifests for `apply -f` and `delete -f`: files, directories (every .yaml, .yml and
 * .json file in them, sorted by name), `-` for stdin and http(s) URLs, parsed into objects with
 * the source each came from, so errors can name the file as kubectl does.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { Agent, interceptors, request } from 'undici'
import { parseAllDocuments } from 'yaml'

/** One object of a manifest and where it was read from (`ingress.yaml`, `STDIN`, a URL). */
export interface Manifest {
  doc: Record<string, unknown>
  source: string
}

/** Reading or parsing a manifest failed; the message is ready to print after `error: `. */
export class ManifestError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'ManifestError'
  }
}

const MANIFEST_FILE = /\.(ya?ml|json)$/i

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Arrays and `*List` objects give their items, as the API's /apply does. */
function flatten (value: unknown, out: unknown[]): void {
  if (Array.isArray(value)) {
    for (const item of value) flatten(item, out)
  } else if (isRecord(value) && typeof value.kind === 'string' && value.kind.endsWith('List') && Array.isArray(value.items)) {
    for (const item of value.items) flatten(item, out)
  } else {
    out.push(value)
  }
}

/** Parses the text of one source: JSON for .json files, multi-document YAML (JSON included) otherwise. */
export function parseManifests (text: string, source: string): Manifest[] {
  const values: unknown[] = []
  if (/\.json$/i.test(source)) {
    try {
      values.push(JSON.parse(text))
    } catch (err) {
      throw new ManifestError(`error parsing ${source}: ${(err as Error).message}`)
    }
  } else {
    parseAllDocuments(text, { uniqueKeys: true }).forEach((doc, i) => {
      const problem = doc.errors[0]
      if (problem !== undefined) throw new ManifestError(`error parsing ${source}: document ${i + 1}: ${(problem.message.split('\n')[0] ?? '').replace(/:$/, '')}`)
      values.push(doc.toJS({ maxAliasCount: 100 }))
    })
  }
  const objects: unknown[] = []
  for (const value of values) if (value !== null && value !== undefined) flatten(value, objects)
  return objects.map((doc, i) => {
    if (!isRecord(doc)) throw new ManifestError(`error parsing ${source}: object ${i + 1} is not a mapping (a manifest is an object with apiVersion, kind and metadata)`)
    return { doc, source }
  })
}

/** Reads all of a stream as UTF-8 text. */
export async function readText (stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk)
  return Buffer.concat(chunks).toString('utf8')
}

async function readUrl (url: string): Promise<string> {
  const agent = new Agent()
  try {
    const res = await request(url, { method: 'GET', dispatcher: agent.compose(interceptors.redirect({ maxRedirections: 5 })) })
    const text = await res.body.text()
    if (res.statusCode !== 200) throw new ManifestError(`unable to read URL "${url}", server reported status code ${res.statusCode}`)
    return text
  } catch (err) {
    if (err instanceof ManifestError) throw err
    throw new ManifestError(`unable to read URL "${url}": ${(err as Error).message}`)
  } finally {
    await agent.close()
  }
}

/** Every manifest file of a directory (not its subdirectories), sorted by name. */
function directoryFiles (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter(entry => entry.isFile() && MANIFEST_FILE.test(entry.name))
    .map(entry => entry.name)
    .sort()
    .map(name => join(dir, name))
}

function readFile (path: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch (err) {
    throw new ManifestError(`cannot read "${path}": ${(err as Error).message}`)
  }
}

/**
 * Reads every `-f` argument in order: `-` is stdin (read once), a URL is fetched, a directory
 * gives its manifest files. Throws ManifestError for a missing path or unparseable text.
 */
export async function readManifests (paths: string[], stdin: NodeJS.ReadableStream): Promise<Manifest[]> {
  const out: Manifest[] = []
  let stdinRead = false
  for (const path of paths) {
    if (path === '-') {
      if (stdinRead) throw new ManifestError('-f - can only be given once: stdin is read once')
      stdinRead = true
      out.push(...parseManifests(await readText(stdin), 'STDIN'))
      continue
    }
    if (/^https?:\/\//i.test(path)) {
      out.push(...parseManifests(await readUrl(path), path))
      continue
    }
    let isDirectory: boolean
    try {
      isDirectory = statSync(path).isDirectory()
    } catch {
      throw new ManifestError(`the path "${path}" does not exist`)
    }
    if (isDirectory) {
      for (const file of directoryFiles(path)) out.push(...parseManifests(readFile(file), file))
    } else {
      out.push(...parseManifests(readFile(path), path))
    }
  }
  return out
}
