/**
 * What the cluster primary (cluster.ts) and its data-plane workers (worker.ts) say to each other
 * over cluster IPC. Its own module so that neither side loads the other's code.
 */
import type { AddressInfo } from 'node:net'

/** Which worker slot (0 to workers - 1) a forked worker fills; a replacement takes its predecessor's. */
export const SLOT_ENV = 'INGRESSD_WORKER_SLOT'

/** A worker asks the primary's rate limiter (dataplane/limiter-cluster.ts) about one request; `id` matches the answer. */
export interface LimitAsk {
  type: 'ingressd:limit'
  id: number
  zone: string
  key: string
  rps?: number
  rpm?: number
  burstMultiplier: number
  connections?: number
}
/** The request of ask `id` is over: the primary gives back the limit-connections slot it took, if any. */
export interface LimitRelease { type: 'ingressd:limit-release', id: number }
/** The primary's answer to ask `id`: whether the request may go on. */
export interface LimitAnswer { type: 'ingressd:limit-answer', id: number, ok: boolean }

/** Primary to worker. */
export type ToWorker = { type: 'ingressd:commit', resourceVersion: number } | { type: 'ingressd:shutdown' } | LimitAnswer
/** Worker to primary. */
export type FromWorker =
  | { type: 'ingressd:ready', pid: number, http: AddressInfo, https: AddressInfo }
  | { type: 'ingressd:served', resourceVersion: number, problem?: string }
  | LimitAsk
  | LimitRelease

/** Whether `message` is one of ours (a type starting `ingressd:`); its other fields are the receiver's to check. */
export function isMessage<T extends { type: string }> (message: unknown): message is T {
  return typeof message === 'object' && message !== null && typeof (message as { type?: unknown }).type === 'string' && (message as { type: string }).type.startsWith('ingressd:')
}

/** What `ingressd serve` runs and stops, in the primary and in each worker alike. */
export interface Running {
  close: (graceMs?: number) => Promise<void>
}
