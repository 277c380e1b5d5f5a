/**
 * The reference row: the smallest Fastify + @fastify/http-proxy reverse proxy, no routing,
 * no headers of its own, no logging. `node --import tsx bench/minimal-fastify-proxy.ts ORIGIN_PORT`.
 */
import Fastify from 'fastify'
import proxy from '@fastify/http-proxy'

const app = Fastify({ logger: false })
await app.register(proxy, { upstream: `http://127.0.0.1:${process.argv[2] ?? '0'}` })
await app.listen({ host: '127.0.0.1', port: 0 })
const address = app.server.address()
process.stdout.write(`listening ${typeof address === 'object' && address !== null ? address.port : 0}\n`)
