/** The process's logger and its start-up line, shared by the single process, the cluster primary and each data-plane worker. */
import type { AddressInfo } from 'node:net'
import { pino, type Logger } from 'pino'
import type { Config } from './config/config.js'
import type { ObjectStore } from './store/object-store.js'

/**
 * The logger every part writes through: JSON lines on stdout, written asynchronously (lines
 * queue while a write is in progress) so an access line per request never makes the data plane
 * wait on a slow pipe. Lines are written in batches of at least 4 KiB, or every 100 ms, whichever
 * comes first: one write per access line cost the proxy about a sixth of its CPU per request (the
 * access log now hands its lines over in batches of its own, see dataplane/access-log.ts). A
 * line is thus at most 100 ms late; pino writes what is queued when the process exits, and
 * `flush()` before exiting does it explicitly (a SIGKILL loses at most those 100 ms). No log call
 * passes headers, bodies or keys, so nothing needs redacting on the hot path; tests assert that
 * Authorization, cookies and keys never appear.
 */
export function createLogger (level: Config['logLevel']): Logger {
  return pino({ level, base: { pid: process.pid } }, pino.destination({ dest: 1, sync: false, minLength: 4096, periodicFlush: 100 }))
}

/** The one start-up line that names every address served (tests and tools read it). */
export function logServing (logger: Logger, config: Readonly<Config>, store: ObjectStore, addresses: { admin: AddressInfo, http: AddressInfo, https: AddressInfo }, workers?: number[]): void {
  const admin = formatAddress(addresses.admin)
  const http = formatAddress(addresses.http)
  const https = formatAddress(addresses.https)
  logger.info({
    admin,
    http,
    https,
    ...(workers === undefined ? {} : { workers }),
    db: config.db,
    auth: config.adminToken === undefined ? 'none (loopback only)' : 'bearer token',
    resourceVersion: store.resourceVersion()
  }, `ingressd serving: admin http://${admin}, http ${http}, https ${https}${workers === undefined ? '' : `, ${workers.length} data-plane workers`}`)
}

/** `host:port` of a bound address, as the start-up line prints it. */
export function formatAddress (address: AddressInfo): string {
  return `${address.address}:${address.port}`
}
