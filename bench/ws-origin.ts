/**
 * The benchmark's WebSocket origin: echoes every message. `node --import tsx bench/ws-origin.ts PORT`.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { WebSocketServer } from 'ws'

const server = createServer()
const wss = new WebSocketServer({ server })
wss.on('connection', sock => sock.on('message', (data, binary) => sock.send(data, { binary })))
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`)
})
