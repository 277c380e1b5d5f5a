/**
 * Starts a real gateway for a test: a fresh SQLite file in a temporary folder, every listener on
 * port 0 over loopback, logs captured so tests can assert what was (and was not) written. With
 * INGRESSD_ADMIN_TLS the admin URL is https:// and `api()` verifies the admin API with its CA.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { Agent, request } from 'undici'
import { loadConfig, type Config } from '../../src/config/config.js'
import { startGateway, type Gateway } from '../../src/main.js'

export interface TestGateway {
  gateway: Gateway
  /** `http://127.0.0.1:<port>`, or `https://` with INGRESSD_ADMIN_TLS. */
  admin: string
  /** The admin API's CA (PEM) with INGRESSD_ADMIN_TLS, when it has one; `api()` trusts it. */
  adminCa?: string
  http: string
  httpPort: number
  /** `https://127.0.0.1:<port>`: the HTTPS listener (connect with a servername for SNI). */
  https: string
  httpsPort: number
  dir: string
  db: string
  logs: string[]
  token?: string
  config: Readonly<Config>
  /** Calls the admin API; JSON bodies are sent as JSON, strings as they are. */
  api: (method: string, path: string, body?: unknown, headers?: Record<string, string>) => Promise<{ status: number, body: any, text: string, headers: Record<string, string | string[] | undefined> }>
  close: () => Promise<void>
}

interface Closable { teardown: (fn: () => Promise<void> | void) => void }

/** Starts a gateway and registers its shutdown (and the temp folder's removal) with the test. */
export async function startTestGateway (t: Closable, env: Record<string, string> = {}, opts: { dir?: string } = {}): Promise<TestGateway> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'ingressd-test-'))
  const db = join(dir, 'ingressd.db')
  const config = loadConfig({}, {
    INGRESSD_DB: db,
    INGRESSD_ADMIN_ADDR: '127.0.0.1:0',
    INGRESSD_HTTP_ADDR: '127.0.0.1:0',
    INGRESSD_HTTPS_ADDR: '127.0.0.1:0',
    INGRESSD_LOG_LEVEL: 'info',
    ...env
  })
  const logs: string[] = []
  const sink = new Writable({ write (chunk, _enc, cb) { logs.push(String(chunk)); cb() } })
  const logger = pino({ level: config.logLevel }, sink)
  let gateway: Gateway
  try {
    gateway = await startGateway(config, logger)
  } catch (err) {
    // A refused start (a test of a bad setting) leaves no folder behind either.
    if (opts.dir === undefined) rmSync(dir, { recursive: true, force: true })
    throw err
  }
  const tls = config.adminTls !== 'off'
  const admin = `${tls ? 'https' : 'http'}://127.0.0.1:${gateway.addresses.admin.port}`
  // Verified against the CA when there is one (a file certificate without one: not verified).
  const dispatcher = tls ? new Agent({ connect: gateway.adminCaPem === undefined ? { rejectUnauthorized: false } : { ca: gateway.adminCaPem } }) : undefined
  const http = `http://127.0.0.1:${gateway.addresses.http.port}`
  let closed = false
  const close = async (): Promise<void> => {
    if (closed) return
    closed = true
    await dispatcher?.close()
    // A short grace: tests leave nothing in flight on purpose, and must not wait 30 s if they do.
    await gateway.close(1000)
  }
  t.teardown(async () => {
    await close()
    if (opts.dir === undefined) rmSync(dir, { recursive: true, force: true })
  })
  const token = env.INGRESSD_ADMIN_TOKEN
  const api: TestGateway['api'] = async (method, path, body, headers = {}) => {
    const h: Record<string, string> = { ...headers }
    if (token !== undefined && h.authorization === undefined) h.authorization = `Bearer ${token}`
    let payload: string | undefined
    if (typeof body === 'string') payload = body
    else if (body !== undefined) {
      payload = JSON.stringify(body)
      h['content-type'] ??= method === 'PATCH' ? 'application/merge-patch+json' : 'application/json'
    }
    const res = await request(`${admin}${path}`, { method: method as 'GET', headers: h, body: payload, ...(dispatcher === undefined ? {} : { dispatcher }) })
    const text = await res.body.text()
    let parsed: unknown
    try { parsed = JSON.parse(text) } catch { parsed = undefined }
    return { status: res.statusCode, body: parsed, text, headers: res.headers }
  }
  const httpsPort = gateway.addresses.https.port
  const result: TestGateway = { gateway, admin, http, httpPort: gateway.addresses.http.port, https: `https://127.0.0.1:${httpsPort}`, httpsPort, dir, db, logs, config, api, close }
  if (token !== undefined) result.token = token
  if (gateway.adminCaPem !== undefined) result.adminCa = gateway.adminCaPem
  return result
}
