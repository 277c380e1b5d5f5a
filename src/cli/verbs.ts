/**
 * The client verbs of the `ingressd` command, modelled on kubectl so that a kubectl tutorial
 * translates one for one: apply, get, describe, delete, create secret tls, expose. They talk to a
 * running gateway's admin API (--server, --token) and print what kubectl prints.
 *
 * Every verb writes through {@link CliIo}, so tests can run them in-process and read the output.
 * Exit codes: 0 on success, 1 on any error (usage, API, connection), as kubectl.
 */
import { readFileSync } from 'node:fs'
import { basename } from 'node:path'
import { isIP } from 'node:net'
import { parseArgs } from 'node:util'
import { stringify } from 'yaml'
import { AdminClient, ApiError, clientOptions, ConnectionError, DEFAULT_SERVER, errorLine, type ClientFlags } from './client.js'
import { describeObject } from './describe.js'
import { collectionPath, itemPath, kindNamesHelp, kindOfManifest, qualifiedKind, resolveKind, type ClientKind } from './kinds.js'
import { ManifestError, readManifests, type Manifest } from './manifests.js'
import { printerFor, type ObjectView } from './printers.js'
import { formatTable } from './table.js'

/** Where output goes: process.stdout and process.stderr, or a buffer in tests. */
export interface Writer {
  write: (chunk: string) => unknown
}

/** The streams and environment a client verb runs with. */
export interface CliIo {
  stdout: Writer
  stderr: Writer
  /** Read by `apply -f -` and `delete -f -`. */
  stdin: NodeJS.ReadableStream
  /** INGRESSD_SERVER, INGRESSD_ADMIN_TOKEN, INGRESSD_ADMIN_CA and INGRESSD_ADMIN_INSECURE are read from here. */
  env: Record<string, string | undefined>
  /** The clock AGE is computed against; the real one by default. */
  now?: () => Date
}

/** The process's own streams and environment. */
export function processIo (): CliIo {
  return { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env }
}

export const CLIENT_VERBS = ['apply', 'get', 'describe', 'delete', 'create', 'expose'] as const
export type ClientVerb = typeof CLIENT_VERBS[number]

/** Whether `word` is one of the client verbs. */
export function isClientVerb (word: string | undefined): word is ClientVerb {
  return (CLIENT_VERBS as readonly string[]).includes(word ?? '')
}

const CLIENT_FLAGS_HELP = `Client flags (every client command):
  --server URL           the admin API (env INGRESSD_SERVER, default ${DEFAULT_SERVER})
  --token TOKEN          the admin bearer token (env INGRESSD_ADMIN_TOKEN)
  --certificate-authority FILE
                         the CA an https:// admin API is verified with (env INGRESSD_ADMIN_CA)
  --insecure-skip-tls-verify
                         do not verify an https:// admin API (env INGRESSD_ADMIN_INSECURE=1)
  -n, --namespace NS     the namespace (default "default")
  -A, --all-namespaces   every namespace (get, describe, delete --all)
  -h, --help             this text
`

/** The client commands as the top-level usage lists them. */
export const CLIENT_USAGE = `Client commands (talk to a running gateway's admin API, the kubectl way):
  apply      create or update objects from files, a directory or stdin, all or nothing
  get        list objects as a table, or print them as YAML or JSON
  describe   show an ingress's rules and endpoints, a secret's certificate, a service's ports
  delete     delete objects by kind and name, or those a manifest names
  create     create a secret: create secret tls NAME --cert FILE --key FILE, create secret generic NAME --from-file=auth
  expose     create a Service (and its Endpoints) sending to HOST:PORT

${CLIENT_FLAGS_HELP}
Run "ingressd <command> --help" for a command's usage.
`

/** The usage text of each verb, printed by `ingressd VERB --help`. */
export const VERB_USAGE: Record<ClientVerb, string> = {
  apply: `Create or update objects from manifests in one transaction: every object is stored, or none is.

Usage: ingressd apply -f FILE|DIR|URL|- [-f ...] [-n NS]

  -f, --filename   a manifest (multi-document YAML, JSON, a List), a directory (its .yaml, .yml
                   and .json files, sorted by name), an http(s) URL, or - for stdin; repeatable
  -n, --namespace  the namespace of objects that name none (default "default")

Prints one line per object, as kubectl does: "ingress.extensions/basic created",
"service/service1 unchanged".

Examples:
  ingressd apply -f ingress-basic.yaml
  ingressd apply -f manifests/
  cat ingress.yaml | ingressd apply -f -

${CLIENT_FLAGS_HELP}`,
  get: `List objects as kubectl's tables, or print them as the API returns them.

Usage: ingressd get KIND[,KIND...] [NAME...] [-o wide|yaml|json|name] [-l SELECTOR] [-n NS | -A]
       ingressd get KIND/NAME [KIND/NAME...] [-o ...]

  KIND             ${kindNamesHelp()}
  -o, --output     wide: more columns; yaml or json: the object (a List for several); name: kind/name
  -l, --selector   a label selector: app=web,tier!=cache
  -A               every namespace, with a NAMESPACE column

Examples:
  ingressd get ing
  ingressd get svc service1 -o yaml
  ingressd get ingress,svc -A

${CLIENT_FLAGS_HELP}`,
  describe: `Show objects in detail, as kubectl describe: an ingress's rules with the endpoints each
backend resolves to, its TLS and conditions; a secret's data sizes and certificate (never the key).

Usage: ingressd describe KIND [NAME...] [-l SELECTOR] [-n NS | -A]
       ingressd describe KIND/NAME

  KIND             ${kindNamesHelp()}
  Without NAME, every object of the kind is described.

Examples:
  ingressd describe ingress basic
  ingressd describe secret my-https

${CLIENT_FLAGS_HELP}`,
  delete: `Delete objects by kind and name, every object of a kind, or the objects manifests name.

Usage: ingressd delete KIND NAME [NAME...] [-n NS]
       ingressd delete KIND/NAME [KIND/NAME...]
       ingressd delete KIND --all [-n NS | -A]
       ingressd delete -f FILE|DIR|URL|- [-f ...]

  KIND                ${kindNamesHelp()}
  --all               every object of the kind in the namespace (or everywhere with -A)
  -f, --filename      the objects named in manifests, as for apply
  --ignore-not-found  an object that does not exist is not an error

Prints kubectl's lines: ingress.networking.k8s.io "basic" deleted, service "service1" deleted.

${CLIENT_FLAGS_HELP}`,
  create: `Create a Secret: a kubernetes.io/tls one from a PEM certificate (chain) and its private
key, or a generic (Opaque) one from files and literals, as kubectl does. The private key and
every generic value are write-only: no read of the Secret returns them (reads show sizes).

Usage: ingressd create secret tls NAME --cert FILE --key FILE [-n NS]
       ingressd create secret generic NAME [--from-file=[KEY=]PATH]... [--from-literal=KEY=VALUE]... [--type TYPE] [-n NS]

  --cert          PEM certificate chain, leaf first (tls.crt)
  --key           PEM private key of the leaf certificate (tls.key)
  --from-file     a file's content under KEY (default: the file's base name)
  --from-literal  a value under KEY
  --type          the Secret's type (default Opaque)

Prints "secret/NAME created". For other objects use "ingressd apply -f".

Examples:
  ingressd create secret tls my-https --key tls.key --cert tls.crt
  htpasswd -c auth admin && ingressd create secret generic basic-auth --from-file=auth

${CLIENT_FLAGS_HELP}`,
  expose: `Create or update a Service that sends to HOST:PORT, in place of kubectl expose (ingressd has no
pods): for an IP address, a Service and Endpoints of the same name; for a DNS name, a Service of
type ExternalName. Either way one transaction.

Usage: ingressd expose NAME --to HOST[:PORT] [--port PORT] [--target-port PORT] [-n NS]
       ingressd expose TYPE NAME --name SERVICE --to HOST[:PORT] ...

  --to           where traffic goes: 127.0.0.1:9000, [::1]:9000, backend.example.com:443
  --port         the Service port ingresses name (default 80)
  --target-port  the port on HOST when --to gives none (default: --port)
  --name         the Service's name (default NAME); in kubectl's TYPE NAME form, TYPE is ignored

Prints "service/NAME exposed".

Examples:
  ingressd expose service1 --to 127.0.0.1:9000
  ingressd expose deploy deployment-nginx --name service1 --to 127.0.0.1:9000

${CLIENT_FLAGS_HELP}`
}

/** A mistake in how the command was called: printed with a pointer to --help. */
class UsageError extends Error {}

/** A failure on the client's side (a file that cannot be read...): printed as `error: ...`. */
class CliError extends Error {}

const GLOBAL_OPTIONS = {
  server: { type: 'string' },
  token: { type: 'string' },
  'certificate-authority': { type: 'string' },
  'insecure-skip-tls-verify': { type: 'boolean' },
  namespace: { type: 'string', short: 'n' },
  'all-namespaces': { type: 'boolean', short: 'A' },
  help: { type: 'boolean', short: 'h' }
} as const

type OptionSpec = Record<string, { type: 'string' | 'boolean', short?: string, multiple?: boolean }>

const FILENAME = { filename: { type: 'string', short: 'f', multiple: true } } as const
const VERB_OPTIONS: Record<ClientVerb, OptionSpec> = {
  apply: { ...FILENAME },
  get: { output: { type: 'string', short: 'o' }, selector: { type: 'string', short: 'l' } },
  describe: { selector: { type: 'string', short: 'l' } },
  delete: { ...FILENAME, all: { type: 'boolean' }, 'ignore-not-found': { type: 'boolean' } },
  create: { cert: { type: 'string' }, key: { type: 'string' }, 'from-file': { type: 'string', multiple: true }, 'from-literal': { type: 'string', multiple: true }, type: { type: 'string' } },
  expose: { to: { type: 'string' }, port: { type: 'string' }, 'target-port': { type: 'string' }, name: { type: 'string' } }
}

/** Flag values of one invocation. */
class Flags {
  constructor (private readonly values: Record<string, string | boolean | (string | boolean)[] | undefined>) {}

  str (name: string): string | undefined {
    const v = this.values[name]
    return typeof v === 'string' ? v : undefined
  }

  bool (name: string): boolean {
    return this.values[name] === true
  }

  list (name: string): string[] {
    const v = this.values[name]
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []
  }
}

/** What a verb runs with. */
interface Context {
  io: CliIo
  client: AdminClient
  namespace: string
  /** -n was given: apply refuses objects of another namespace, as kubectl does. */
  namespaceGiven: boolean
  allNamespaces: boolean
  args: string[]
  flags: Flags
  now: Date
}

/** One kind and the names asked for (none: all of them). */
interface Target {
  kind: ClientKind
  names: string[]
}

function kindOrUsage (name: string): ClientKind {
  const kind = resolveKind(name)
  if (kind === undefined) throw new UsageError(`the server doesn't have a resource type "${name}" (ingressd serves ${kindNamesHelp()})`)
  return kind
}

/** `KIND[,KIND] [NAME...]` or `KIND/NAME...`, as kubectl reads them. */
function parseTargets (args: string[], verb: ClientVerb): Target[] {
  const first = args[0]
  if (first === undefined) throw new UsageError(`you must specify the type of resource to ${verb}: ${kindNamesHelp()}`)
  const targets: Target[] = []
  const targetOf = (kind: ClientKind): Target => {
    let target = targets.find(t => t.kind === kind)
    if (target === undefined) {
      target = { kind, names: [] }
      targets.push(target)
    }
    return target
  }
  if (first.includes('/')) {
    for (const arg of args) {
      const slash = arg.indexOf('/')
      if (slash <= 0 || slash === arg.length - 1) throw new UsageError(`arguments in resource/name form must have a single resource and name: "${arg}"`)
      targetOf(kindOrUsage(arg.slice(0, slash))).names.push(arg.slice(slash + 1))
    }
    return targets
  }
  const names = args.slice(1)
  const mixed = names.find(n => n.includes('/'))
  if (mixed !== undefined) throw new UsageError(`there is no need to specify a resource type as a separate argument when passing arguments in resource/name form: "${mixed}"`)
  for (const name of first.split(',').filter(n => n !== '')) targetOf(kindOrUsage(name)).names.push(...names)
  if (targets.length === 0) throw new UsageError(`you must specify the type of resource to ${verb}: ${kindNamesHelp()}`)
  return targets
}

function printWarnings (ctx: Context, warnings: string[]): void {
  for (const w of warnings) ctx.io.stderr.write(`Warning: ${w}\n`)
}

function noResources (ctx: Context, targets: Target[]): string {
  return ctx.allNamespaces || targets.every(t => !t.kind.namespaced) ? 'No resources found' : `No resources found in ${ctx.namespace} namespace.`
}

/** `?labelSelector=...` when -l was given. */
function selectorQuery (ctx: Context): string {
  const selector = ctx.flags.str('selector')
  return selector === undefined || selector === '' ? '' : `?labelSelector=${encodeURIComponent(selector)}`
}

/** Reads the objects of the targets: by name (a missing one is reported and skipped) or by list. */
async function fetchTargets (ctx: Context, targets: Target[]): Promise<{ results: { kind: ClientKind, objects: ObjectView[] }[], failed: boolean }> {
  let failed = false
  const results: { kind: ClientKind, objects: ObjectView[] }[] = []
  for (const target of targets) {
    const objects: ObjectView[] = []
    if (target.names.length > 0) {
      for (const name of target.names) {
        try {
          objects.push((await ctx.client.get<ObjectView>(itemPath(target.kind, ctx.namespace, name))).body)
        } catch (err) {
          if (!(err instanceof ApiError) || err.status !== 404) throw err
          ctx.io.stderr.write(`${errorLine(err)}\n`)
          failed = true
        }
      }
    } else {
      const path = collectionPath(target.kind, ctx.allNamespaces ? undefined : ctx.namespace) + selectorQuery(ctx)
      objects.push(...((await ctx.client.get<{ items?: ObjectView[] }>(path)).body.items ?? []))
    }
    results.push({ kind: target.kind, objects })
  }
  return { results, failed }
}

/** YAML as kubectl prints it: sequences not indented under their key, no folding. */
function toYaml (value: unknown): string {
  return stringify(value, { indentSeq: false, lineWidth: 0 })
}

const OUTPUTS = ['wide', 'yaml', 'json', 'name']

async function get (ctx: Context): Promise<number> {
  const output = ctx.flags.str('output')
  if (output !== undefined && !OUTPUTS.includes(output)) throw new UsageError(`unable to match a printer suitable for the output format "${output}", allowed formats are: ${[...OUTPUTS].sort().join(',')}`)
  const targets = parseTargets(ctx.args, 'get')
  const named = targets.some(t => t.names.length > 0)
  if (named && ctx.allNamespaces) throw new UsageError('a resource cannot be retrieved by name across all namespaces')
  const { results, failed } = await fetchTargets(ctx, targets)
  const all = results.flatMap(r => r.objects)
  const code = failed ? 1 : 0

  if (output === 'yaml' || output === 'json') {
    const single = targets.length === 1 && targets[0]?.names.length === 1
    if (single && all.length === 0) return code
    const doc = single ? all[0] : { apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: '' }, items: all }
    ctx.io.stdout.write(output === 'json' ? `${JSON.stringify(doc, null, 4)}\n` : toYaml(doc))
    return code
  }
  if (all.length === 0) {
    if (!named) ctx.io.stderr.write(`${noResources(ctx, targets)}\n`)
    return code
  }
  if (output === 'name') {
    for (const r of results) for (const o of r.objects) ctx.io.stdout.write(`${qualifiedKind(r.kind)}/${o.metadata?.name ?? ''}\n`)
    return code
  }
  const wide = output === 'wide'
  // Like kubectl: names carry their kind when several kinds are listed together.
  const qualify = results.length > 1
  const tables: string[] = []
  for (const { kind, objects } of results) {
    if (objects.length === 0) continue
    const printer = printerFor(kind)
    const withNamespace = ctx.allNamespaces && kind.namespaced
    const headers = [...(withNamespace ? ['NAMESPACE'] : []), ...printer.headers(wide)]
    const rows = objects.map(o => {
      const row = printer.row(o, wide, ctx.now)
      if (qualify) row[0] = `${qualifiedKind(kind)}/${row[0] ?? ''}`
      return [...(withNamespace ? [o.metadata?.namespace ?? ''] : []), ...row]
    })
    tables.push(formatTable(headers, rows))
  }
  ctx.io.stdout.write(tables.join('\n'))
  return code
}

async function describe (ctx: Context): Promise<number> {
  const targets = parseTargets(ctx.args, 'describe')
  const named = targets.some(t => t.names.length > 0)
  if (named && ctx.allNamespaces) throw new UsageError('a resource cannot be retrieved by name across all namespaces')
  const { results, failed } = await fetchTargets(ctx, targets)
  const texts: string[] = []
  for (const { kind, objects } of results) {
    for (const obj of objects) texts.push(await describeObject(ctx.client, kind, obj))
  }
  if (texts.length === 0 && !named) ctx.io.stderr.write(`${noResources(ctx, targets)}\n`)
  // kubectl separates descriptions with two blank lines.
  ctx.io.stdout.write(texts.join('\n\n'))
  return failed ? 1 : 0
}

/** Maps an /apply error to the manifest it is about: `error when applying "ingress.yaml": ...`. */
function locateApplyError (err: ApiError, manifests: Manifest[]): ApiError {
  const fromField = /^items\[(\d+)\]/.exec(err.causes[0]?.field ?? '')
  const fromMessage = /^object (\d+)\b/.exec(err.message)
  const index = fromField !== null ? Number(fromField[1]) : fromMessage !== null ? Number(fromMessage[1]) - 1 : undefined
  const manifest = index === undefined ? undefined : manifests[index]
  if (manifest === undefined) return err
  return err.withMessage(`error when applying "${manifest.source}": ${err.message.replace(/^object \d+(?: \([^)]*\))?: /, '')}`)
}

function manifestNamespace (doc: Record<string, unknown>): string | undefined {
  const ns = (doc.metadata as { namespace?: unknown } | undefined)?.namespace
  return typeof ns === 'string' && ns !== '' ? ns : undefined
}

async function apply (ctx: Context): Promise<number> {
  const files = ctx.flags.list('filename')
  if (files.length === 0) throw new UsageError('must specify -f FILE, -f DIR or -f - (stdin)')
  if (ctx.args.length > 0) throw new UsageError(`unexpected argument "${ctx.args[0] ?? ''}": name manifests with -f`)
  const manifests = await readManifests(files, ctx.io.stdin)
  if (manifests.length === 0) throw new CliError('no objects passed to apply')
  if (ctx.namespaceGiven) {
    for (const m of manifests) {
      const ns = manifestNamespace(m.doc)
      if (ns !== undefined && ns !== ctx.namespace) throw new CliError(`the namespace from the provided object "${ns}" does not match the namespace "${ctx.namespace}". You must pass '--namespace=${ns}' to perform this operation.`)
    }
  }
  // status is the server's to set; it is dropped, as the API server ignores it on writes.
  const body = manifests.map(({ doc }) => {
    const { status: _status, ...rest } = doc
    return rest
  })
  let reply
  try {
    reply = await ctx.client.send<{ summary?: string[] }>('POST', `/apply?namespace=${encodeURIComponent(ctx.namespace)}`, body)
  } catch (err) {
    throw err instanceof ApiError ? locateApplyError(err, manifests) : err
  }
  printWarnings(ctx, reply.warnings)
  for (const line of reply.body.summary ?? []) ctx.io.stdout.write(`${line}\n`)
  return 0
}

/** Deletes one object; true when it went (or was absent and --ignore-not-found allows that). */
async function deleteOne (ctx: Context, kind: ClientKind, namespace: string, name: string, apiVersion = kind.apiVersion): Promise<boolean> {
  try {
    const reply = await ctx.client.send('DELETE', itemPath(kind, namespace, name, apiVersion))
    printWarnings(ctx, reply.warnings)
    ctx.io.stdout.write(`${qualifiedKind(kind, apiVersion)} "${name}" deleted\n`)
    return true
  } catch (err) {
    if (!(err instanceof ApiError)) throw err
    if (err.status === 404 && ctx.flags.bool('ignore-not-found')) return true
    ctx.io.stderr.write(`${errorLine(err, { hasToken: ctx.client.hasToken })}\n`)
    return false
  }
}

async function del (ctx: Context): Promise<number> {
  const files = ctx.flags.list('filename')
  let ok = true
  if (files.length > 0) {
    if (ctx.args.length > 0) throw new UsageError('resource names cannot be given with -f')
    for (const { doc, source } of await readManifests(files, ctx.io.stdin)) {
      const kind = kindOfManifest(doc.apiVersion, doc.kind)
      const name = (doc.metadata as { name?: unknown } | undefined)?.name
      if (kind === undefined || typeof name !== 'string' || name === '') {
        ctx.io.stderr.write(`error: ${source}: ${kind === undefined ? `ingressd does not serve kind "${String(doc.kind)}" in version "${String(doc.apiVersion)}"` : 'an object without metadata.name'}\n`)
        ok = false
        continue
      }
      ok = await deleteOne(ctx, kind, manifestNamespace(doc) ?? ctx.namespace, name, doc.apiVersion as string) && ok
    }
    return ok ? 0 : 1
  }
  const targets = parseTargets(ctx.args, 'delete')
  const all = ctx.flags.bool('all')
  for (const target of targets) {
    if (all) {
      if (target.names.length > 0) throw new UsageError('names cannot be given with --all')
      const path = collectionPath(target.kind, ctx.allNamespaces ? undefined : ctx.namespace) + selectorQuery(ctx)
      const items = (await ctx.client.get<{ items?: ObjectView[] }>(path)).body.items ?? []
      if (items.length === 0) ctx.io.stderr.write(`${noResources(ctx, [target])}\n`)
      for (const item of items) ok = await deleteOne(ctx, target.kind, item.metadata?.namespace ?? ctx.namespace, item.metadata?.name ?? '') && ok
    } else {
      if (target.names.length === 0) throw new UsageError('resource(s) were provided, but no name was specified: give NAME, --all or -f')
      if (ctx.allNamespaces) throw new UsageError('a resource cannot be deleted by name across all namespaces')
      for (const name of target.names) ok = await deleteOne(ctx, target.kind, ctx.namespace, name) && ok
    }
  }
  return ok ? 0 : 1
}

function readInput (flag: string, path: string): Buffer {
  try {
    return readFileSync(path)
  } catch (err) {
    throw new CliError(`${flag}: cannot read "${path}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
}

/**
 * `create secret generic NAME --from-file=[KEY=]PATH --from-literal=KEY=VALUE [--type TYPE]`, as
 * kubectl builds it: a file's key is its base name unless given. The values are write-only once
 * stored (reads show sizes).
 */
async function createGeneric (ctx: Context, name: string): Promise<number> {
  const data: Record<string, string> = {}
  const add = (key: string, value: Buffer, flag: string): void => {
    if (!/^[-._a-zA-Z0-9]+$/.test(key)) throw new UsageError(`${flag}: "${key}" is not a valid secret key: use letters, digits, '-', '_' or '.'`)
    if (Object.hasOwn(data, key)) throw new UsageError(`${flag}: cannot add key "${key}", another key by that name already exists`)
    data[key] = value.toString('base64')
  }
  for (const spec of ctx.flags.list('from-file')) {
    const eq = spec.indexOf('=')
    const path = eq === -1 ? spec : spec.slice(eq + 1)
    add(eq === -1 ? basename(path) : spec.slice(0, eq), readInput('--from-file', path), '--from-file')
  }
  for (const spec of ctx.flags.list('from-literal')) {
    const eq = spec.indexOf('=')
    if (eq <= 0) throw new UsageError(`--from-literal must be KEY=VALUE, not "${spec}"`)
    add(spec.slice(0, eq), Buffer.from(spec.slice(eq + 1), 'utf8'), '--from-literal')
  }
  const body = { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: ctx.namespace }, type: ctx.flags.str('type') ?? 'Opaque', data }
  const reply = await ctx.client.send('POST', collectionPath(kindOrUsage('secret'), ctx.namespace), body)
  printWarnings(ctx, reply.warnings)
  ctx.io.stdout.write(`secret/${name} created\n`)
  return 0
}

async function create (ctx: Context): Promise<number> {
  const [what, type, name, ...rest] = ctx.args
  if (what === undefined) throw new UsageError('you must specify what to create: ingressd creates secrets (create secret tls NAME --cert FILE --key FILE, create secret generic NAME --from-file=auth); apply -f creates anything')
  if (what !== 'secret') throw new UsageError(`ingressd cannot create "${what}" here: use "ingressd apply -f" for other objects`)
  if (type !== 'tls' && type !== 'generic') throw new UsageError(`ingressd creates secrets of type tls or generic: create secret tls NAME --cert FILE --key FILE, or create secret generic NAME --from-file=[KEY=]PATH --from-literal=KEY=VALUE${type === undefined ? '' : ` (not "${type}")`}`)
  if (name === undefined || name === '') throw new UsageError(`NAME is required: create secret ${type} NAME ...`)
  if (rest.length > 0) throw new UsageError(`unexpected argument "${rest[0] ?? ''}"`)
  if (type === 'generic') return await createGeneric(ctx, name)
  if (rest.length > 0) throw new UsageError(`unexpected argument "${rest[0] ?? ''}"`)
  const certPath = ctx.flags.str('cert')
  const keyPath = ctx.flags.str('key')
  if (certPath === undefined || keyPath === undefined) throw new UsageError('--cert and --key are both required')
  const cert = readInput('--cert', certPath)
  const key = readInput('--key', keyPath)
  const secretKind = kindOrUsage('secret')
  const body = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace: ctx.namespace },
    type: 'kubernetes.io/tls',
    data: { 'tls.crt': cert.toString('base64'), 'tls.key': key.toString('base64') }
  }
  const reply = await ctx.client.send('POST', collectionPath(secretKind, ctx.namespace), body)
  printWarnings(ctx, reply.warnings)
  ctx.io.stdout.write(`secret/${name} created\n`)
  return 0
}

function parsePort (value: string, flag: string): number {
  const port = /^\d+$/.test(value) ? Number(value) : NaN
  if (!(port >= 1 && port <= 65535)) throw new UsageError(`${flag} must be a port number from 1 to 65535, not "${value}"`)
  return port
}

/** `127.0.0.1:9000`, `[::1]:9000`, `::1`, `backend.example.com:443`, `backend.example.com`. */
function parseHostPort (value: string): { host: string, port?: number } {
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(value)
  let host: string
  let port: string | undefined
  if (bracketed !== null) {
    host = bracketed[1] ?? ''
    port = bracketed[2]
  } else if (isIP(value) === 6) {
    host = value
  } else {
    const colon = value.lastIndexOf(':')
    host = colon === -1 ? value : value.slice(0, colon)
    port = colon === -1 ? undefined : value.slice(colon + 1)
  }
  if (host === '' || (bracketed !== null && isIP(host) !== 6)) throw new UsageError(`--to must be HOST:PORT, e.g. 127.0.0.1:8080 or backend.example.com:443, not "${value}"`)
  return port === undefined ? { host } : { host, port: parsePort(port, '--to\'s port') }
}

async function expose (ctx: Context): Promise<number> {
  if (ctx.args.length > 2) throw new UsageError(`unexpected argument "${ctx.args[2] ?? ''}"`)
  // `expose deploy web --name service1`: kubectl's TYPE NAME; ingressd has no workloads to read.
  const name = ctx.flags.str('name') ?? ctx.args[ctx.args.length - 1]
  if (name === undefined || name === '') throw new UsageError('NAME is required: expose NAME --to HOST:PORT')
  const to = ctx.flags.str('to')
  if (to === undefined) throw new UsageError('--to HOST:PORT is required: where the service sends traffic (ingressd has no pods to find)')
  const target = parseHostPort(to)
  const port = parsePort(ctx.flags.str('port') ?? '80', '--port')
  const targetPortFlag = ctx.flags.str('target-port')
  const flagTarget = targetPortFlag === undefined ? undefined : parsePort(targetPortFlag, '--target-port')
  if (target.port !== undefined && flagTarget !== undefined && target.port !== flagTarget) throw new UsageError(`--to says port ${target.port} but --target-port says ${flagTarget}`)
  const targetPort = target.port ?? flagTarget ?? port
  const metadata = { name, namespace: ctx.namespace }
  const objects: Record<string, unknown>[] = []
  if (isIP(target.host) !== 0) {
    objects.push({ apiVersion: 'v1', kind: 'Service', metadata, spec: { type: 'ClusterIP', ports: [{ port, targetPort, protocol: 'TCP' }] } })
    objects.push({ apiVersion: 'v1', kind: 'Endpoints', metadata, subsets: [{ addresses: [{ ip: target.host }], ports: [{ port: targetPort, protocol: 'TCP' }] }] })
  } else {
    objects.push({ apiVersion: 'v1', kind: 'Service', metadata, spec: { type: 'ExternalName', externalName: target.host.toLowerCase(), ports: [{ port, targetPort, protocol: 'TCP' }] } })
  }
  const reply = await ctx.client.send('POST', `/apply?namespace=${encodeURIComponent(ctx.namespace)}`, objects)
  printWarnings(ctx, reply.warnings)
  ctx.io.stdout.write(`service/${name} exposed\n`)
  return 0
}

const VERBS: Record<ClientVerb, (ctx: Context) => Promise<number>> = { apply, get, describe, delete: del, create, expose }

/** node:util parseArgs errors, in kubectl's words. */
function parseArgsMessage (err: Error & { code?: string }): string {
  const option = /'([^']+)'/.exec(err.message)?.[1]
  if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && option !== undefined) return `unknown flag: ${option}`
  // "argument missing", or "ambiguous" when the next word is another flag.
  if (err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && option !== undefined) return `flag needs an argument: ${option.split(',')[0] ?? option}`
  return err.message.split('\n')[0] ?? err.message
}

/** Runs one client verb with its arguments (flags in any position); returns the exit code. */
export async function runClient (verb: ClientVerb, argv: string[], io: CliIo = processIo()): Promise<number> {
  const usageError = (message: string): number => {
    io.stderr.write(`error: ${message}\nSee 'ingressd ${verb} --help' for usage.\n`)
    return 1
  }
  let parsed: ReturnType<typeof parseArgs>
  try {
    parsed = parseArgs({ args: argv, options: { ...GLOBAL_OPTIONS, ...VERB_OPTIONS[verb] }, allowPositionals: true, strict: true })
  } catch (err) {
    if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true) return usageError(parseArgsMessage(err as Error))
    throw err
  }
  const flags = new Flags(parsed.values)
  if (flags.bool('help')) {
    io.stdout.write(VERB_USAGE[verb])
    return 0
  }
  const connection = clientOptions(parsed.values as ClientFlags, io.env)
  if ('usage' in connection) return usageError(connection.usage)
  const namespace = flags.str('namespace')
  if (namespace === '') return usageError('--namespace cannot be empty')
  const client = new AdminClient(connection)
  const ctx: Context = {
    io,
    client,
    namespace: namespace ?? 'default',
    namespaceGiven: namespace !== undefined,
    allNamespaces: flags.bool('all-namespaces'),
    args: parsed.positionals,
    flags,
    now: io.now?.() ?? new Date()
  }
  try {
    return await VERBS[verb](ctx)
  } catch (err) {
    if (err instanceof UsageError) return usageError(err.message)
    if (err instanceof CliError || err instanceof ManifestError) {
      io.stderr.write(`error: ${err.message}\n`)
      return 1
    }
    if (err instanceof ApiError || err instanceof ConnectionError) {
      io.stderr.write(`${errorLine(err, { hasToken: client.hasToken })}\n`)
      return 1
    }
    throw err
  } finally {
    await client.close()
  }
}

const VALUE_FLAGS = new Set(['--server', '--token', '--certificate-authority', '-n', '--namespace'])
const BOOLEAN_FLAGS = new Set(['-A', '--all-namespaces', '--insecure-skip-tls-verify'])

/**
 * Finds a client verb in a command line, allowing client flags before it as kubectl does
 * (`ingressd -n team get ing`). Returns the verb and every other argument; `{ unknown }` when
 * client flags come before a word that is no verb; undefined when the line is not a client one.
 */
export function findClientCommand (argv: string[]): { verb: ClientVerb, args: string[] } | { unknown: string } | undefined {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    if (VALUE_FLAGS.has(arg)) {
      i++
      continue
    }
    if (BOOLEAN_FLAGS.has(arg) || /^--(server|token|namespace|certificate-authority)=/.test(arg) || /^-n./.test(arg)) continue
    if (isClientVerb(arg)) return { verb: arg, args: [...argv.slice(0, i), ...argv.slice(i + 1)] }
    return i === 0 || arg.startsWith('-') ? undefined : { unknown: arg }
  }
  return undefined
}
