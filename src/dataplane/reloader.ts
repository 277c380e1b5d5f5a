/**
 * The reloader: follows the store's resourceVersion, compiles a complete new route table from
 * what the store holds, off to the side, and swaps one reference. Bursts of commits coalesce
 * into one compile; a compile that fails leaves the last good table serving.
 *
 * The compile is incremental (RouteCompiler): the snapshot reader keeps unchanged objects the
 * same objects, so a change recompiles only the hosts it touches, and only the statuses of
 * ingresses whose report changed are rendered and written.
 *
 * It compiles from the store, never from in-process events alone, so several data-plane
 * processes can each follow the same file; in-process commits only make it look sooner.
 */
import { createHash, X509Certificate } from 'node:crypto'
import type { Logger } from 'pino'
import type { GatewayMetrics } from '../metrics.js'
import type { Ingress } from '../resources/ingress.js'
import type { Secret } from '../resources/secret.js'
import type { KindName } from '../resources/stored.js'
import type { ChangeFeed } from '../store/change-feed.js'
import type { ObjectStore } from '../store/object-store.js'
import { SnapshotReader } from './snapshot.js'
import { RouteCompiler, type IngressReport } from './compile.js'
import type { AccessSpec } from './policies/access.js'
import type { PolicyCompiler, PolicyTable } from './policies/chain.js'
import type { AnnotationProblem, SecretLookup } from './policies/policy.js'
import { secretLookup } from './secret-material.js'
import type { RouteTable } from './route-table.js'
import type { Condition } from '../resources/meta.js'
import { certificatesCondition, type CertificateCompileResult, type CertificateCompiler, type CertificateProblem } from './compile-certificates.js'
import type { SniTable } from './sni-table.js'

export interface ReloaderOptions {
  store: ObjectStore
  feed: ChangeFeed
  logger: Logger
  ingressClasses: string[]
  /** Shown in status.loadBalancer.ingress of served ingresses. */
  publishAddress: () => string
  metrics?: GatewayMetrics
  /** How often to look for commits made by other processes. */
  pollIntervalMs?: number
  followerId?: string
  /** Compiles the SNI table beside each route table; without it there is no SNI table. */
  certificates?: CertificateCompiler
  /** Whether this reloader writes ingress and Secret statuses (default true); with several data-plane processes only one does. */
  writeStatus?: boolean
  /** Binds the routes' access-control chains beside each route table; without it a route with an access spec is denied (503). */
  policies?: PolicyCompiler
}

/** The families an access spec enforces, in the order they run. */
function accessSummary (spec: AccessSpec): string {
  const parts: string[] = []
  if (spec.cors !== undefined) parts.push('CORS')
  if (spec.rateLimit !== undefined) parts.push('rate limits')
  if (spec.sourceRange !== undefined) parts.push('source ranges')
  if (spec.basicAuth !== undefined) parts.push('basic auth')
  if (spec.externalAuth !== undefined) parts.push('external auth')
  return parts.join(', ') + (spec.satisfy === 'any' ? ' (satisfy: any)' : '')
}

function isIp (value: string): boolean {
  return /^[\d.]+$/.test(value) || value.includes(':')
}

/** The status the data plane reports for one ingress. */
export function ingressStatusFromReport (report: IngressReport, address: string, generation: number, certificateProblems: readonly CertificateProblem[] = [], accessProblems: readonly AnnotationProblem[] = report.accessDenials): Record<string, unknown> {
  const conditions: Condition[] = []
  conditions.push(report.served
    ? { type: 'Served', status: 'True', reason: 'Serving', message: `routes are live on ${address}`, observedGeneration: generation }
    : { type: 'Served', status: 'False', reason: report.reason ?? 'NotServed', message: report.message ?? 'not served', observedGeneration: generation })
  if (report.conflicts.length > 0) {
    conditions.push({ type: 'Conflicted', status: 'True', reason: 'RuleClaimedByOlderIngress', message: report.conflicts.map(c => `${c.host === '' ? '*' : c.host} ${c.path === '' ? '/' : c.path} (${c.pathType}) is served by ${c.winner}`).join('; '), observedGeneration: generation })
  }
  if (report.pathProblems.length > 0) {
    conditions.push({ type: 'PathsCompiled', status: 'False', reason: 'PathNotCompiled', message: report.pathProblems.map(p => `${p.host === '' ? '*' : p.host} ${p.path}: ${p.message}`).join('; '), observedGeneration: generation })
  }
  if (report.backendProblems.length > 0) {
    conditions.push({ type: 'BackendsReady', status: 'False', reason: 'BackendUnavailable', message: report.backendProblems.map(b => `${b.service}: ${b.problem}`).join('; '), observedGeneration: generation })
  }
  if (report.annotationProblems.length > 0) {
    conditions.push({ type: 'AnnotationsValid', status: 'False', reason: 'InvalidAnnotation', message: report.annotationProblems.map(p => `${p.key}: ${p.message}`).join('; '), observedGeneration: generation })
  }
  if (report.ignoredAnnotations.length > 0) {
    conditions.push({ type: 'AnnotationsIgnored', status: 'True', reason: 'UnsupportedAnnotation', message: `ingressd does not implement: ${report.ignoredAnnotations.join(', ')}`, observedGeneration: generation })
  }
  if (report.noEffectAnnotations.length > 0) {
    conditions.push({ type: 'AnnotationsNoEffect', status: 'True', reason: 'AcceptedWithoutEffect', message: `accepted, with no effect in ingressd: ${report.noEffectAnnotations.join(', ')}`, observedGeneration: generation })
  }
  if (accessProblems.length > 0) {
    conditions.push({ type: 'AccessControlReady', status: 'False', reason: 'AccessDenied', message: `every path of this ingress answers 503 (INGRESSD_ERR_ACCESS_DENIED_CONFIG) until this is fixed: ${accessProblems.map(p => `${p.key}: ${p.message}`).join('; ')}`, observedGeneration: generation })
  } else if (report.access !== undefined) {
    conditions.push({ type: 'AccessControlReady', status: 'True', reason: 'Enforced', message: `enforced on every path of this ingress: ${accessSummary(report.access)}`, observedGeneration: generation })
  }
  if (certificateProblems.length > 0) conditions.push(certificatesCondition(certificateProblems, generation))
  const loadBalancer = report.served ? { ingress: [isIp(address) ? { ip: address } : { hostname: address }] } : {}
  return { loadBalancer, conditions }
}

/** Follows the store and keeps `current` pointing at the newest good table. */
export class Reloader {
  private table: RouteTable | undefined
  private sniTable: SniTable | undefined
  private policyTable: PolicyTable | undefined
  private secretTable: SecretLookup | undefined
  private servedVersion = -1
  private running = false
  private again = false
  private timer: NodeJS.Timeout | undefined
  private unsubscribe: (() => void) | undefined
  /** The last status written per ingress, with what it was rendered from, so an unchanged report is not rendered again. */
  private ingressStatuses = new Map<string, RenderedStatus>()
  private statusByReport = new Map<IngressReport, RenderedStatus>()
  private secretStatuses = new Map<string, { text: string, uid: string | undefined }>()
  /** Whether this follower has pruned the status rows of deleted objects (once, on its first write). */
  private statusesPruned = false
  private statusPass = 0
  private lastSecrets: Secret[] | undefined
  private readonly compiler: RouteCompiler
  readonly followerId: string
  private compiledRoutingVersion = -1
  private compiledEpoch = -1
  private readonly snapshots: SnapshotReader
  private expiryCache = new Map<string, { namespace: string, name: string, notAfter: number }>()
  lastReloadMs = 0
  reloadFailures = 0
  /** How many times the tables were compiled (a write that changes nothing served does not compile). */
  compiles = 0

  constructor (private readonly opts: ReloaderOptions) {
    this.followerId = opts.followerId ?? `dataplane-${process.pid}`
    this.snapshots = new SnapshotReader(opts.store)
    this.compiler = new RouteCompiler({ ingressClasses: opts.ingressClasses })
  }

  /** The table to route by. */
  get current (): RouteTable {
    if (this.table === undefined) throw new Error('the reloader has not compiled its first table yet')
    return this.table
  }

  /** The routes' bound policy chains, compiled with `current`. */
  get policies (): PolicyTable | undefined {
    return this.policyTable
  }

  /** The SNI table compiled with `current`; undefined until then, or without a certificate compiler. */
  /** The Secrets of the snapshot `current` was compiled from (proxy-ssl-secret is read per request from it). */
  get secrets (): SecretLookup | undefined {
    return this.secretTable
  }

  get sni (): SniTable | undefined {
    return this.sniTable
  }

  /** True once the first table serves. */
  get ready (): boolean {
    return this.table !== undefined
  }

  get generation (): number {
    return this.servedVersion
  }

  /** Compiles the first table and starts following the store. */
  start (): void {
    this.opts.feed.register(this.followerId, -1)
    this.reload()
    this.unsubscribe = this.opts.store.onCommit(() => this.schedule())
    this.timer = setInterval(() => {
      if (this.opts.store.resourceVersion() !== this.servedVersion) this.schedule()
    }, this.opts.pollIntervalMs ?? 250)
    this.timer.unref()
  }

  stop (): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.unsubscribe?.()
    this.opts.feed.unregister(this.followerId)
  }

  /** Looks at the store soon (a commit was announced). Coalesces: while a compile is pending, more commits just mark one more pass. */
  schedule (): void {
    if (this.running) {
      this.again = true
      return
    }
    this.running = true
    setImmediate(() => {
      try {
        do {
          this.again = false
          this.reload()
        } while (this.again)
      } finally {
        this.running = false
      }
    })
  }

  /** One compile and swap. Never throws: a failure keeps the last good table. */
  reload (): void {
    const started = performance.now()
    let resourceVersion = -1
    try {
      const versions = this.opts.store.db.transaction(() => ({ resource: this.opts.store.resourceVersion(), routing: this.opts.store.routingVersion(), epoch: this.opts.store.epoch() }))()
      // A new epoch (a cluster mirror copied whole) may bring back version numbers already seen: compile.
      const sameEpoch = versions.epoch === this.compiledEpoch
      if (this.table !== undefined && sameEpoch && versions.resource === this.servedVersion) return
      if (this.table !== undefined && sameEpoch && versions.routing === this.compiledRoutingVersion) {
        // Only labels or IngressClass objects changed: nothing the tables depend on. No compile.
        this.servedVersion = versions.resource
        this.opts.metrics?.configGeneration.set(this.servedVersion)
        this.opts.feed.reportServed(this.followerId, this.servedVersion)
        return
      }
      if (!sameEpoch && this.compiledEpoch !== -1) {
        // The file was replaced whole, its statuses with it: write every status again.
        this.ingressStatuses.clear()
        this.statusByReport.clear()
        this.secretStatuses.clear()
      }
      const read = this.snapshots.read()
      resourceVersion = read.resourceVersion
      this.compiles++
      const { table, reports } = this.compiler.compile(read.snapshot, resourceVersion)
      const tls = this.opts.certificates?.compile(read.snapshot, reports, resourceVersion)
      const secrets = secretLookup(read.snapshot)
      const policies = this.opts.policies?.compile(reports, secrets)
      // The tables swap together: a handshake and the request after it see the same version.
      this.table = table
      if (tls !== undefined) this.sniTable = tls.table
      this.policyTable = policies?.table
      this.secretTable = secrets
      this.servedVersion = resourceVersion
      this.compiledRoutingVersion = read.routingVersion
      this.compiledEpoch = versions.epoch
      this.lastReloadMs = performance.now() - started
      this.recordMetrics(read.snapshot.secrets)
      if (this.opts.writeStatus !== false) this.writeStatuses(reports, read.snapshot.ingresses, resourceVersion, tls, policies?.problems)
      this.opts.logger.debug({ resourceVersion, routes: table.routeCount, ms: Math.round(this.lastReloadMs * 100) / 100 }, 'route table swapped')
    } catch (err) {
      this.reloadFailures++
      this.opts.metrics?.reloadFailures.inc()
      this.opts.logger.error({ err, resourceVersion }, 'route table compile failed; the last good table keeps serving')
      // The version was looked at: writers must not hang on it, and they are told it failed.
      if (resourceVersion > this.servedVersion) this.servedVersion = resourceVersion
      this.opts.feed.reportServed(this.followerId, this.servedVersion, `compile failed at resourceVersion ${resourceVersion}: ${(err as Error).message}`)
      return
    }
    this.opts.feed.reportServed(this.followerId, this.servedVersion)
  }

  /** Generation, reload time and each certificate's expiry (parsed once per Secret version). */
  private recordMetrics (secrets: Secret[]): void {
    const metrics = this.opts.metrics
    if (metrics === undefined) return
    metrics.configGeneration.set(this.servedVersion)
    metrics.reloadDuration.set(this.lastReloadMs / 1000)
    // The snapshot keeps the list while no Secret changes: the expiry gauges stand.
    if (secrets === this.lastSecrets) return
    this.lastSecrets = secrets
    const next = new Map<string, { namespace: string, name: string, notAfter: number }>()
    metrics.certificateExpiry.reset()
    for (const secret of secrets) {
      const key = `${secret.metadata.namespace ?? ''}/${secret.metadata.name}@${secret.metadata.resourceVersion}`
      let entry = this.expiryCache.get(key)
      if (entry === undefined) {
        try {
          const pem = Buffer.from(secret.data['tls.crt'] ?? '', 'base64').toString('utf8')
          entry = { namespace: secret.metadata.namespace ?? '', name: secret.metadata.name, notAfter: Date.parse(new X509Certificate(pem).validTo) / 1000 }
        } catch {
          continue
        }
      }
      next.set(key, entry)
      metrics.certificateExpiry.set({ namespace: entry.namespace, secret: entry.name }, entry.notAfter)
    }
    this.expiryCache = next
  }

  /**
   * Writes the statuses that changed. A report the compiler carried over (the same object) with
   * the same generation, address and certificate problems renders the same status, so it is
   * skipped without rendering; the others are rendered and written if their text changed.
   */
  private writeStatuses (reports: IngressReport[], ingresses: Ingress[], resourceVersion: number, tls?: CertificateCompileResult, accessProblems?: ReadonlyMap<string, readonly AnnotationProblem[]>): void {
    const address = this.opts.publishAddress()
    const changed: { kind: KindName, namespace: string, name: string, status: string }[] = []
    const pass = ++this.statusPass
    const problemsOf = tls?.ingressProblems === undefined || tls.ingressProblems.size === 0 ? undefined : tls.ingressProblems
    let current = 0
    for (let i = 0; i < reports.length; i++) {
      const report = reports[i] as IngressReport
      const meta = ingresses[i]?.metadata
      const generation = meta?.generation ?? 0
      const uid = meta?.uid
      // Looked up by the report object: a carried-over report costs no key building.
      const same = this.statusByReport.get(report)
      if (same !== undefined) {
        if (same.pass === pass) continue
        if (same.generation === generation && same.uid === uid && same.address === address && sameProblems(same.problems, problemsOf?.get(same.key)) && same.access === accessOf(report, accessProblems, same.key)) {
          same.pass = pass
          current++
          continue
        }
      }
      const key = `${report.namespace}/${report.name}`
      const last = this.ingressStatuses.get(key)
      if (last?.pass === pass) continue
      current++
      const problems = problemsOf?.get(key)
      const access = accessOf(report, accessProblems, key)
      const text = JSON.stringify(ingressStatusFromReport(report, address, generation, problems, access))
      // Kept as a digest: at 10,000 ingresses the texts themselves held some 3 MB.
      const digest = createHash('sha1').update(text).digest('base64')
      // A delete removes the status row: an ingress deleted and created again is written even with the same text.
      if (last?.digest !== digest || last.uid !== uid) changed.push({ kind: 'Ingress', namespace: report.namespace, name: report.name, status: text })
      if (last !== undefined) this.statusByReport.delete(last.report)
      const entry: RenderedStatus = { key, report, generation, uid, address, problems, access, digest, pass }
      this.ingressStatuses.set(key, entry)
      this.statusByReport.set(report, entry)
    }
    if (this.ingressStatuses.size > current) {
      for (const [key, entry] of this.ingressStatuses) {
        if (entry.pass === pass) continue
        this.ingressStatuses.delete(key)
        this.statusByReport.delete(entry.report)
      }
    }
    const secrets = new Map<string, { text: string, uid: string | undefined }>()
    for (const { namespace, name, uid, status } of tls?.secretStatuses ?? []) {
      const key = `${namespace}/${name}`
      const text = JSON.stringify(status)
      secrets.set(key, { text, uid })
      // As for ingresses: a Secret deleted and created again lost its status row, so the same text is written again.
      const last = this.secretStatuses.get(key)
      if (last?.text !== text || last.uid !== uid) changed.push({ kind: 'Secret', namespace, name, status: text })
    }
    this.secretStatuses = secrets
    if (changed.length === 0 && this.statusesPruned) return
    try {
      this.opts.store.setStatuses(changed, resourceVersion, { prune: !this.statusesPruned })
      this.statusesPruned = true
    } catch (err) {
      this.ingressStatuses.clear()
      this.statusByReport.clear()
      this.secretStatuses.clear()
      this.opts.logger.warn({ err }, 'could not record ingress status; will retry on the next change')
    }
  }
}

/** A status as last written, and what it was rendered from. */
interface RenderedStatus {
  /** `namespace/name`, made once. */
  key: string
  report: IngressReport
  generation: number
  uid: string | undefined
  address: string
  problems: readonly CertificateProblem[] | undefined
  /** Why its paths are denied (the same array while nothing changed). */
  access: readonly AnnotationProblem[]
  /** SHA-1 of the status text written (an unchanged text is not written again). */
  digest: string
  /** The writeStatuses pass that last saw this ingress. */
  pass: number
}

/** An ingress's access denials: those the policy compile found (they include the annotations' own), else the annotations'. */
function accessOf (report: IngressReport, compiled: ReadonlyMap<string, readonly AnnotationProblem[]> | undefined, key: string): readonly AnnotationProblem[] {
  return compiled?.get(key) ?? report.accessDenials
}

function sameProblems (a: readonly CertificateProblem[] | undefined, b: readonly CertificateProblem[] | undefined): boolean {
  if (a === b) return true
  if (a === undefined || b === undefined || a.length !== b.length) return false
  return a.every((p, i) => {
    const q = b[i] as CertificateProblem
    return p.host === q.host && p.secret === q.secret && p.reason === q.reason && p.message === q.message
  })
}
