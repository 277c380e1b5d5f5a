/**
 * Real origin servers for proxy tests: each answers with JSON describing the request it got
 * (its own name, method, URL, headers, body), so a test can assert what the upstream saw.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface SeenRequest {
  server: string
  method: string
  url: string
  headers: Record<string, string | string[] | undefined>
  body: string
}

export interface Origin {
  name: string
  host: string
  port: number
  server: Server
  seen: SeenRequest[]
}

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void

/** Starts an echo origin (127.0.0.1 on a free port unless told); `handler` may answer differently. Closed at teardown. */
export async function startOrigin (t: { teardown: (fn: () => Promise<void> | void) => void }, name: string, handler?: Handler, bind: { host?: string, port?: number } = {}): Promise<Origin> {
  const host = bind.host ?? '127.0.0.1'
  const seen: SeenRequest[] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8')
      const entry = { server: name, method: req.method ?? '', url: req.url ?? '', headers: req.headers, body }
      seen.push(entry)
      if (handler !== undefined) return handler(req, res, body)
      const text = JSON.stringify(entry)
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
      res.end(text)
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(bind.port ?? 0, host, resolve)
  })
  t.teardown(() => new Promise<void>(resolve => {
    server.closeAllConnections()
    server.close(() => resolve())
  }))
  return { name, host, port: (server.address() as AddressInfo).port, server, seen }
}
