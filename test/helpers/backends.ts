/**
 * Wires real origins into a test gateway the way a user would: a Service plus its Endpoints per
 * backend, written through the admin API.
 */
import type { Origin } from './origin.js'
import type { TestGateway } from './gateway.js'

/** A Service named `name` on port 8080 (named `http`) whose Endpoints are the given origins. */
export function serviceManifests (name: string, origins: Origin[], namespace = 'default'): unknown[] {
  const ports = [...new Set(origins.map(o => o.port))]
  return [
    { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace }, spec: { ports: [{ name: 'http', port: 8080, targetPort: 'http' }] } },
    {
      apiVersion: 'v1',
      kind: 'Endpoints',
      metadata: { name, namespace },
      subsets: ports.map(port => ({ addresses: origins.filter(o => o.port === port).map(o => ({ ip: o.host })), ports: [{ name: 'http', port }] }))
    }
  ]
}

/** Applies manifests in one /apply call and fails loudly if the gateway refused them. */
export async function apply (gw: TestGateway, manifests: unknown[]): Promise<void> {
  const res = await gw.api('POST', '/apply', manifests)
  if (res.status !== 200) throw new Error(`apply failed: ${res.status} ${res.text}`)
}
