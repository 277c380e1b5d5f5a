/**
 * The admin API's OpenAPI document, generated from the route schemas: written to
 * openapi/openapi.json by `ingressd openapi`, and compared with it by `npm test`.
 */
import { fileURLToPath } from 'node:url'
import { ChangeFeed } from '../store/change-feed.js'
import { openDatabase } from '../store/database.js'
import { ObjectStore } from '../store/object-store.js'
import { buildAdminApp } from './app.js'
import { GatewayMetrics } from '../metrics.js'

export const OPENAPI_PATH = fileURLToPath(new URL('../../openapi/openapi.json', import.meta.url))

/** Builds the admin app against a throwaway in-memory store and returns its document as JSON text. */
export async function generateOpenApi (): Promise<string> {
  const db = openDatabase(':memory:')
  const app = await buildAdminApp({ store: new ObjectStore(db), feed: new ChangeFeed(), logger: false, bodyLimit: 1024, metrics: new GatewayMetrics(), readiness: { ready: () => true, detail: () => ({}) } })
  await app.ready()
  const text = JSON.stringify(app.swagger(), null, 2) + '\n'
  await app.close()
  db.close()
  return text
}
