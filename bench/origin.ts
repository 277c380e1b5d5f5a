/**
 * The benchmark's origin: answers every request with a fixed 100-byte body, keep-alive.
 * Run as its own process: `node --import tsx bench/origin.ts PORT`; prints "listening PORT".
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'

const body = Buffer.from('x'.repeat(99) + '\n')
const server = createServer((req, res) => {
  req.resume()
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length })
  res.end(body)
})
server.keepAliveTimeout = 65_000
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`)
})
