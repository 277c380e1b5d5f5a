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

/** An Ingress routing every path of `host` to `service` port 8080 (what serviceManifests makes), with `annotations`. */
export function annotatedIngress (name: string, host: string, service: string, annotations: Record<string, string>): unknown {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name, annotations },
    spec: { rules: [{ host, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: service, port: { number: 8080 } } } }] } }] }
  }
}

/** An endpoint on loopback at `port`, for serviceManifests, when the server there is not an Origin. */
export function loopbackEndpoint (port: number): Origin {
  return { host: '127.0.0.1', port } as unknown as Origin
}
