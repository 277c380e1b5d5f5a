/**
 * Rate limits per node with several data-plane workers: the one RateLimiter of the node lives in
 * the cluster primary, and each worker asks it over cluster IPC about every request of a route
 * that carries limit-* annotations (other routes never ask).
 *
 * Why one authoritative limiter and a round trip, rather than leases of tokens granted to each
 * worker: the round trip costs little. Measured through this module on a 2-core machine
 * (test/operations/rate-limit-workers.test.ts: 2,000 sequential asks from a worker after 10 s of
 * load): 21 to 26 µs median, 36 to 69 µs p90, 0.2 to 1.3 ms p99. A bare ping-pong of the same
 * messages carried 70,000 to 140,000 asks a second over one worker's channel, and a take in the
 * primary costs about 1 µs, so the primary's one thread is not what limits a node. Against that,
 * leases split a client's burst between workers (round robin hands a client's connections to
 * any of them), so a worker would run out while another still holds tokens, or the node would
 * overshoot by up to a lease per worker: the answer would depend on INGRESSD_WORKERS, which is
 * what this is here to avoid. With one limiter the count is exact, whatever the worker count.
 *
 * Failure policy: a rate limit protects availability; it is not access control. When the primary
 * cannot be asked or does not answer within the timeout, the request goes through (fail open),
 * and that is logged once per outage, not per request.
 */
import cluster from 'node:cluster'
import type { EventEmitter } from 'node:events'
import type { Logger } from 'pino'
import { isMessage, SLOT_ENV, type FromWorker, type LimitAnswer, type LimitAsk, type LimitRelease, type ToWorker } from '../cluster-protocol.js'
import { createLocalLimiter, RateLimiter, type Admission, type LimiterBackend, type LimiterOptions, type Release, type ZoneLimits } from './policies/rate-limit.js'

/** What the limiter logs through (a pino logger, or a child of one). */
export type LimiterLogger = Pick<Logger, 'warn' | 'info'>

/** The side of a cluster worker the primary's limiter needs (node:cluster's Worker has it). */
export interface LimiterPeer {
  readonly id: number
  isConnected: () => boolean
  send: (message: ToWorker, callback: (error: Error | null) => void) => boolean
}

/** The primary's limiter, serving the workers. */
export interface ServedLimiter {
  /** The node's limiter (for tests and metrics). */
  readonly limiter: RateLimiter
  /** Stops listening to the workers. */
  close: () => void
}

/** Longest names accepted from a worker: an Ingress's namespace/name and a client address fit easily. */
const MAX_ZONE_LENGTH = 512
const MAX_KEY_LENGTH = 128

function optionalPositive (value: unknown): boolean {
  return value === undefined || (typeof value === 'number' && Number.isFinite(value) && value > 0)
}

function isAsk (message: { type: string }): message is LimitAsk {
  const m = message as Partial<LimitAsk>
  return Number.isSafeInteger(m.id) &&
    typeof m.zone === 'string' && m.zone.length <= MAX_ZONE_LENGTH &&
    typeof m.key === 'string' && m.key.length <= MAX_KEY_LENGTH &&
    typeof m.burstMultiplier === 'number' && Number.isFinite(m.burstMultiplier) && m.burstMultiplier > 0 &&
    optionalPositive(m.rps) && optionalPositive(m.rpm) && optionalPositive(m.connections)
}

// Passing a callback to send() also made a round trip 4 times faster (16 µs instead of 80 µs
// median, measured with and without): without one, Node emits a closed channel as an 'error' event.
const ignoreSendError = (): void => {}

/**
 * Serves the node's limiter to the workers of `source` (node:cluster in the primary, or any
 * emitter of its 'message' and 'exit' events). Connection slots are held per worker and ask id,
 * so a worker that dies gives back every slot it held, and a release for a refused or unknown
 * ask does nothing. Malformed messages are answered as allowed (when they carry an id) or
 * ignored, and logged once: they never throw.
 */
export function serveLimiter (source: EventEmitter = cluster, opts: LimiterOptions & { logger?: LimiterLogger } = {}): ServedLimiter {
  const limiter = new RateLimiter(opts)
  const held = new Map<number, Map<number, Release>>()
  let warnedMalformed = false
  const malformed = (worker: LimiterPeer, message: unknown): void => {
    if (warnedMalformed) return
    warnedMalformed = true
    opts.logger?.warn({ worker: worker.id, message: JSON.stringify(message).slice(0, 200) }, 'malformed rate-limit message from a worker, ignored (logged once)')
  }
  const answer = (worker: LimiterPeer, id: number, ok: boolean): void => {
    if (!worker.isConnected()) return
    const reply: LimitAnswer = { type: 'ingressd:limit-answer', id, ok }
    worker.send(reply, ignoreSendError)
  }
  const onMessage = (worker: LimiterPeer, message: unknown): void => {
    if (!isMessage<FromWorker>(message)) return
    if (message.type === 'ingressd:limit') {
      if (!isAsk(message)) {
        malformed(worker, message)
        const id = (message as { id?: unknown }).id
        if (Number.isSafeInteger(id)) answer(worker, id as number, true)
        return
      }
      const limits: ZoneLimits = { rps: message.rps, rpm: message.rpm, burstMultiplier: message.burstMultiplier, connections: message.connections }
      const release = limiter.take(message.zone, limits, message.key)
      if (release !== null && message.connections !== undefined) {
        let slots = held.get(worker.id)
        if (slots === undefined) held.set(worker.id, slots = new Map())
        slots.set(message.id, release)
      }
      answer(worker, message.id, release !== null)
    } else if (message.type === 'ingressd:limit-release') {
      const id = (message as Partial<LimitRelease>).id
      if (!Number.isSafeInteger(id)) {
        malformed(worker, message)
        return
      }
      const slots = held.get(worker.id)
      const release = slots?.get(id as number)
      if (slots === undefined || release === undefined) return
      slots.delete(id as number)
      release()
    }
  }
  const onExit = (worker: LimiterPeer): void => {
    const slots = held.get(worker.id)
    if (slots === undefined) return
    held.delete(worker.id)
    for (const release of slots.values()) release()
  }
  source.on('message', onMessage)
  source.on('exit', onExit)
  return {
    limiter,
    close () {
      source.off('message', onMessage)
      source.off('exit', onExit)
    }
  }
}

/** How a worker reaches the primary: process's IPC channel by default, a fake in tests. */
export interface LimiterChannel {
  /** Sends one message; false (or a throw) when the channel is closed. */
  send: (message: FromWorker) => boolean
  /** Delivers every message from the primary. */
  onMessage: (listener: (message: unknown) => void) => void
}

const processChannel: LimiterChannel = {
  send (message) {
    if (!process.connected || process.send === undefined) return false
    // With a callback a closed channel reports to it instead of emitting 'error' on process.
    return process.send(message, undefined, undefined, ignoreSendError)
  },
  onMessage (listener) {
    process.on('message', listener)
  }
}

/** Options of the worker's side. */
export interface WorkerLimiterOptions {
  channel?: LimiterChannel
  /** How long to wait for the primary before letting the request through; default 1 s. */
  timeoutMs?: number
  logger?: LimiterLogger
}

/** A worker's backend: its limiter and the timer it keeps while asks are pending. */
export interface WorkerLimiter extends LimiterBackend {
  /** Asks waiting for an answer. */
  readonly pending: number
  /** Lets every pending ask through and stops the timer. */
  close: () => void
}

interface Pending {
  resolve: (ok: boolean) => void
  sentAt: number
  /** How it was answered, once it was: a release after a refusal need not be sent. */
  answered?: boolean
}

/**
 * The worker's side: each admit sends one ask to the primary and resolves with its answer, matched
 * by id. The limit-connections release is sent whenever the request ends (the primary ignores
 * one for an ask it refused), so even a client that aborts before the answer frees its slot.
 */
export function workerLimiter (opts: WorkerLimiterOptions = {}): WorkerLimiter {
  const channel = opts.channel ?? processChannel
  const timeoutMs = opts.timeoutMs ?? 1000
  const pending = new Map<number, Pending>()
  let nextId = 0
  let failing = false
  let timer: NodeJS.Timeout | undefined

  const failOpen = (why: string): void => {
    if (failing) return
    failing = true
    opts.logger?.warn({ why, timeoutMs }, 'the primary\'s rate limiter cannot be asked: requests go through unlimited until it answers again')
  }
  const send = (message: FromWorker): boolean => {
    try {
      return channel.send(message)
    } catch {
      return false
    }
  }
  // Map order is send order, so the expired asks are at the front.
  const expire = (): void => {
    const cutoff = Date.now() - timeoutMs
    for (const [id, p] of pending) {
      if (p.sentAt > cutoff) break
      pending.delete(id)
      failOpen('timeout')
      p.resolve(true)
    }
    if (pending.size === 0 && timer !== undefined) {
      clearInterval(timer)
      timer = undefined
    }
  }
  channel.onMessage(message => {
    if (!isMessage<ToWorker>(message) || message.type !== 'ingressd:limit-answer') return
    const { id, ok } = message as Partial<LimitAnswer>
    if (typeof id !== 'number' || typeof ok !== 'boolean') return
    const p = pending.get(id)
    if (p === undefined) return
    pending.delete(id)
    if (failing) {
      failing = false
      opts.logger?.info('the primary\'s rate limiter answers again')
    }
    p.answered = ok
    p.resolve(ok)
  })

  return {
    get pending () { return pending.size },
    admit (zone: string, limits: ZoneLimits, key: string): Admission {
      const id = ++nextId
      const ask: LimitAsk = { type: 'ingressd:limit', id, zone, key, rps: limits.rps, rpm: limits.rpm, burstMultiplier: limits.burstMultiplier, connections: limits.connections }
      const entry: Pending = { resolve: () => {}, sentAt: Date.now() }
      const allowed = new Promise<boolean>(resolve => { entry.resolve = resolve })
      if (!send(ask)) {
        failOpen('channel closed')
        return { allowed: true, release: () => {} }
      }
      pending.set(id, entry)
      timer ??= setInterval(expire, Math.max(10, Math.min(250, timeoutMs / 4))).unref()
      let released = limits.connections === undefined
      return {
        allowed,
        release () {
          if (released) return
          released = true
          if (entry.answered === false) return
          const message: LimitRelease = { type: 'ingressd:limit-release', id }
          send(message)
        }
      }
    },
    close () {
      if (timer !== undefined) clearInterval(timer)
      timer = undefined
      for (const p of pending.values()) p.resolve(true)
      pending.clear()
    }
  }
}

let processBackend: LimiterBackend | undefined

/**
 * The backend this process's data plane uses, made once: the primary's limiter over IPC in a
 * cluster worker (one the primary forked, with SLOT_ENV set), else an in-process one whose answers
 * are synchronous (INGRESSD_WORKERS=1).
 */
export function limiterForProcess (logger?: LimiterLogger): LimiterBackend {
  processBackend ??= cluster.isWorker && process.env[SLOT_ENV] !== undefined ? workerLimiter({ logger }) : createLocalLimiter()
  return processBackend
}
