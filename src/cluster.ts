/**
 * Several data-plane processes (INGRESSD_WORKERS > 1), with node:cluster.
 *
 * The primary opens the store, runs the admin plane (the only writer) and forks the workers. It
 * holds the HTTP and HTTPS listening sockets and hands connections out to the workers (round
 * robin, cluster's default outside Windows). Each worker opens the same SQLite file (WAL: its
 * reads never block the writer), follows the store with its own Reloader and serves the same
 * data-plane apps as the single process. Over cluster IPC, the primary announces every commit
 * (`commit`) and each worker reports the version it serves (`served`), which the primary feeds
 * into its ChangeFeed, one follower per worker: an admin write returns once every worker serves
 * it. A worker that dies stops being waited for and is replaced.
 */
import cluster, { type Worker } from 'node:cluster'
import type { AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import { AggregatorRegistry } from 'prom-client'
import type { Config } from './config/config.js'
import { resolveAdminTls, type AdminTls } from './admin/admin-tls.js'
import { buildConfiguredAdmin, closeAdmin } from './admin/app.js'
import { logServing } from './logger.js'
import { ChangeFeed } from './store/change-feed.js'
import { openDatabase } from './store/database.js'
import { ObjectStore } from './store/object-store.js'
import { GatewayState } from './store/gateway-state.js'
import { ensureDefaultCertificate } from './dataplane/default-certificate.js'
import { serveLimiter } from './dataplane/limiter-cluster.js'
import { listen } from './dataplane/start.js'
import { mirrorSynced, startClusterStore, type ClusterStore } from './store/cluster/cluster-store.js'
import { clusterOptions } from './main.js'
import { isMessage, SLOT_ENV, type FromWorker, type Running, type ToWorker } from './cluster-protocol.js'

interface Slot {
  index: number
  worker: Worker
  ready: boolean
  pid: number
}

/**
 * The primary: store, admin plane and `config.workers` workers. Resolves once every worker serves
 * its first tables and the admin API listens; logs the start-up line with every address bound.
 */
export async function startPrimary (config: Readonly<Config>, logger: Logger): Promise<Running> {
  const db = openDatabase(config.db)
  const store = new ObjectStore(db)
  const feed = new ChangeFeed()
  const log = logger.child({ component: 'cluster' })
  let adminPort = config.adminAddr.port
  let clusterStore: ClusterStore | undefined
  let adminTls: AdminTls | undefined
  try {
    // Before any worker is forked: a certificate file that cannot serve stops start-up here.
    adminTls = await resolveAdminTls(config, new GatewayState(db), logger)
    // Cluster mode: the mirror is brought up to PostgreSQL before any worker reads it.
    if (config.postgresUrl !== undefined) clusterStore = await startClusterStore(clusterOptions(config, store, logger, feed, () => adminPort))
    // Generated once here, so the workers all find the same one instead of racing to create it.
    await ensureDefaultCertificate(new GatewayState(db))
  } catch (err) {
    await clusterStore?.close()
    db.close()
    throw err
  }
  const slots = new Map<number, Slot>()
  let stopping = false
  let addresses: { http: AddressInfo, https: AddressInfo } | undefined
  const everyWorkerReady = (): boolean => slots.size === config.workers && [...slots.values()].every(s => s.ready)
  let failStart: (err: Error) => void = () => {}
  let onReady: () => void = () => {}
  const allReady = new Promise<void>((resolve, reject) => {
    failStart = reject
    onReady = () => { if (everyWorkerReady()) resolve() }
  })

  const followerId = (worker: Worker): string => `worker-${worker.id}`

  function fork (index: number): void {
    const worker = cluster.fork({ [SLOT_ENV]: String(index) })
    const slot: Slot = { index, worker, ready: false, pid: worker.process.pid ?? 0 }
    slots.set(index, slot)
    // Until it reports, writes wait for it: a new worker must not serve an older version.
    feed.register(followerId(worker), -1)
    worker.on('message', (message: unknown) => {
      if (!isMessage<FromWorker>(message)) return
      if (message.type === 'ingressd:served') feed.reportServed(followerId(worker), message.resourceVersion, message.problem)
      else if (message.type === 'ingressd:ready') {
        slot.ready = true
        slot.pid = message.pid
        addresses ??= { http: message.http, https: message.https }
        log.debug({ worker: index, pid: message.pid }, 'worker serving')
        onReady()
      }
    })
    worker.on('exit', (code, signal) => {
      feed.unregister(followerId(worker))
      if (slots.get(index)?.worker !== worker) return
      slots.delete(index)
      if (stopping) return
      if (!slot.ready && addresses === undefined) {
        failStart(new Error(`data-plane worker ${index} exited (code ${String(code)}, signal ${String(signal)}) before serving`))
        return
      }
      log.error({ worker: index, pid: slot.pid, code, signal }, 'data-plane worker exited; forking a replacement')
      // After a pause: no tight loop of crashes, and a SIGTERM sent to the whole process group
      // (which stops the workers too) reaches the primary's handler before anything is replaced.
      setTimeout(() => { if (!stopping && !slots.has(index)) fork(index) }, 500)
    })
  }

  const unsubscribe = store.onCommit(resourceVersion => {
    const message: ToWorker = { type: 'ingressd:commit', resourceVersion }
    for (const { worker } of slots.values()) if (worker.isConnected()) worker.send(message)
  })

  /** Asks every worker to stop gracefully and waits for them all to exit (cut after the grace period and 5 s more). */
  async function stopWorkers (graceMs: number): Promise<void> {
    stopping = true
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined)
    await Promise.all(workers.map(async worker => {
      if (worker.isDead()) return
      const exited = new Promise<void>(resolve => worker.once('exit', () => resolve()))
      const message: ToWorker = { type: 'ingressd:shutdown' }
      if (worker.isConnected()) worker.send(message)
      else worker.process.kill('SIGTERM')
      const timer = setTimeout(() => worker.process.kill('SIGKILL'), graceMs + 5000)
      await exited
      clearTimeout(timer)
    }))
  }

  // Cluster's default: the primary accepts and hands connections out round robin (not on Windows).
  cluster.setupPrimary({ silent: false })
  // The node's one rate limiter, which every worker asks, so that limits hold per node.
  const limiter = serveLimiter(cluster, { logger: log })
  const aggregator = new AggregatorRegistry()
  try {
    for (let i = 0; i < config.workers; i++) fork(i)
    await allReady
    const admin = await buildConfiguredAdmin(config, {
      store,
      feed,
      logger,
      // The workers' data-plane metrics, summed (or min/max where a sum means nothing).
      metrics: { registry: { contentType: aggregator.contentType, metrics: async () => await aggregator.clusterMetrics() } },
      // The same report the heartbeat upserts: GET /apis/ingressd.io/v1/nodes shows this node as the others see it.
      node: clusterStore?.opts.node ?? clusterOptions(config, store, logger, feed, () => adminPort).node,
      ...(clusterStore === undefined ? {} : { writer: clusterStore, storeHealth: () => (clusterStore as ClusterStore).health, cluster: clusterStore }),
      tls: adminTls,
      readiness: {
        // A node that never copied a store has nothing to serve: not ready until it has.
        ready: () => everyWorkerReady() && (clusterStore === undefined || mirrorSynced(clusterStore)),
        detail: () => ({ generation: feed.servedByAll(), workers: [...slots.values()].filter(s => s.ready).length })
      }
    })
    let adminAddress: AddressInfo
    try {
      adminAddress = await listen(admin, config.adminAddr)
      adminPort = adminAddress.port
    } catch (err) {
      await admin.close()
      throw err
    }
    const http = addresses?.http as AddressInfo
    const https = addresses?.https as AddressInfo
    const pids = [...slots.values()].sort((a, b) => a.index - b.index).map(s => s.pid)
    logServing(logger, config, store, { admin: adminAddress, http, https }, { workers: pids, adminCaFingerprint: adminTls?.caFingerprint })
    return {
      async close (graceMs = config.shutdownGraceMs) {
        // Stop taking admin writes, let every worker finish what it serves, then the store.
        await closeAdmin(admin, graceMs)
        await stopWorkers(graceMs)
        limiter.close()
        unsubscribe()
        await clusterStore?.close()
        db.close()
      }
    }
  } catch (err) {
    await stopWorkers(0)
    limiter.close()
    unsubscribe()
    await clusterStore?.close()
    db.close()
    throw err
  }
}
