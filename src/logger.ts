/** The process's logger and its start-up line, shared by the single process, the cluster primary and each data-plane worker. */
import type { AddressInfo } from 'node:net'
import { pino, type Logger } from 'pino'
import type { Config } from './config/config.js'
import type { ObjectStore } from './store/object-store.js'

/**
 * The logger every part writes through: JSON lines on stdout, written asynchronously (lines
 * queue while a write is in progress) so an access line per request never makes the data plane
 * wait on a slow pipe. Lines are gathered by `BatchedDestination` and written in batches of
 * 16 KiB, or every 100 ms, whichever comes first. A line is thus about 100 ms late at most; what is
 * gathered is written when the process exits, and `flush()` before exiting does it explicitly (a
 * SIGKILL loses at most those 100 ms). No log call passes headers, bodies or keys, so nothing
 * needs redacting on the hot path; tests assert that Authorization, cookies and keys never appear.
 */
export function createLogger (level: Config['logLevel']): Logger {
  // sonic-boom keeps its own minimum write and timer: without them the proxy measured some 4 %
  // slower (an interleaved A/B), though the lines already arrive batched.
  const stdout = pino.destination({ dest: 1, sync: false, minLength: 4096, periodicFlush: BATCH_MS })
  const destination = new BatchedDestination(stdout)
  // Before pino's own exit handler, which writes out what stdout still holds.
  process.prependOnceListener('exit', () => destination.handOver())
  return pino({ level, base: { pid: process.pid } }, destination)
}

/** Characters of log lines gathered before they are handed to the destination. */
const BATCH_CHARS = 16 * 1024
/** The longest a line waits for its batch, ms. */
const BATCH_MS = 100

/** What BatchedDestination writes to: pino's destination (sonic-boom), or a test's. */
export interface LineSink {
  write: (text: string) => unknown
  /** Writes what it holds now; `cb` once written. */
  flush: (cb?: (err?: Error) => void) => void
}

/**
 * Gathers log lines and hands them to `sink` joined, 16 KiB at a time or every 100 ms. Given one
 * line at a time while a write is in flight, sonic-boom appends each to its pending text and takes
 * that whole text's UTF-8 length again, which copied the growing batch on every line: an access
 * line per request cost some 12 % of the proxy's throughput that way, and an upstream outage, with
 * a warning per request, would cost the same. Here a line costs an array push.
 */
export class BatchedDestination {
  #lines: string[] = []
  #chars = 0

  constructor (private readonly sink: LineSink) {
    setInterval(() => { if (this.#lines.length > 0) this.flush() }, BATCH_MS).unref()
  }

  write (line: string): boolean {
    this.#lines.push(line)
    this.#chars += line.length
    if (this.#chars >= BATCH_CHARS) this.handOver()
    return true
  }

  /** Hands the gathered lines to the sink and has it write them now (pino's `logger.flush(cb)`). */
  flush (cb?: (err?: Error) => void): void {
    this.handOver()
    this.sink.flush(cb)
  }

  /** Hands the gathered lines to the sink, which writes them when it is ready. */
  handOver (): void {
    if (this.#lines.length === 0) return
    const text = this.#lines.join('')
    this.#lines = []
    this.#chars = 0
    this.sink.write(text)
  }
}

/**
 * The one start-up line that names every address served (tests and tools read it). With admin
 * TLS it says https:// and shows the CA's fingerprint, which `ingressd kubeconfig` prints too, so
 * a user can check the CA they fetched is this gateway's.
 */
export function logServing (logger: Logger, config: Readonly<Config>, store: ObjectStore, addresses: { admin: AddressInfo, http: AddressInfo, https: AddressInfo }, extra: { workers?: number[], adminCaFingerprint?: string } = {}): void {
  const { workers, adminCaFingerprint } = extra
  const admin = formatAddress(addresses.admin)
  const http = formatAddress(addresses.http)
  const https = formatAddress(addresses.https)
  const tls = config.adminTls === 'auto' || config.adminTls === 'file'
  const adminUrl = `${tls ? 'https' : 'http'}://${addresses.admin.family === 'IPv6' ? `[${addresses.admin.address}]` : addresses.admin.address}:${addresses.admin.port}`
  // admin, http and https stay first and in this order: scripts (and bench/run.ts) read them off the line.
  logger.info({
    admin,
    http,
    https,
    adminUrl,
    ...(tls ? { adminTls: config.adminTls } : {}),
    ...(adminCaFingerprint === undefined ? {} : { adminCa: adminCaFingerprint }),
    ...(workers === undefined ? {} : { workers }),
    db: config.db,
    auth: config.adminToken === undefined ? 'none (loopback only)' : 'bearer token',
    resourceVersion: store.resourceVersion()
  }, `ingressd serving: admin ${adminUrl}${adminCaFingerprint === undefined ? '' : ` (CA SHA-256 ${adminCaFingerprint})`}, http ${http}, https ${https}${workers === undefined ? '' : `, ${workers.length} data-plane workers`}`)
}

/** `host:port` of a bound address, as the start-up line prints it. */
export function formatAddress (address: AddressInfo): string {
  return `${address.address}:${address.port}`
}
