/**
 * `npm run bench`: ingressd side by side with nginx (and a minimal Fastify proxy), in one run.
 * See bench/README.md. Options: --duration 5 (seconds per load run), --rounds 3,
 * --only proxy,scale,admin,live,compile, --json FILE.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { request } from 'undici'
import { WebSocket } from 'ws'
import { compileRouteTable } from '../src/dataplane/compile.js'
import { CertificateCompiler } from '../src/dataplane/compile-certificates.js'
import { generateSelfSigned } from '../src/resources/tls-material.js'
import type { Secret } from '../src/resources/secret.js'
import type { Ingress } from '../src/resources/ingress.js'
import type { Service } from '../src/resources/service.js'
import type { Endpoints } from '../src/resources/endpoints.js'

const { values: opts } = parseArgs({
  options: {
    duration: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    only: { type: 'string', default: 'compile,certs,admin,live,proxy,https,websocket,scale' },
    json: { type: 'string' },
    connections: { type: 'string', default: '64' }
  }
})
const DURATION = Number(opts.duration)
const ROUNDS = Number(opts.rounds)
const CONNECTIONS = Number(opts.connections)
const ONLY = new Set(opts.only.split(','))
const ROOT = new URL('..', import.meta.url).pathname
const results: Record<string, unknown> = {}
const children: ChildProcess[] = []

const hasCommand = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0
const HAS_TASKSET = hasCommand('taskset')
const HAS_WRK = hasCommand('wrk')
const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find(p => existsSync(p))

/** Runs a command pinned to `core` (when taskset exists) and resolves once stdout matches `ready`. */
function start (cmd: string, args: string[], env: Record<string, string>, ready: RegExp, core: number): Promise<{ child: ChildProcess, match: RegExpExecArray }> {
  const [bin, argv] = HAS_TASKSET ? ['taskset', ['-c', String(core), cmd, ...args]] : [cmd, args]
  const child = spawn(bin, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(child)
  return new Promise((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error(`${cmd} did not start: ${out}`)), 20_000)
    const onData = (d: Buffer): void => {
      out += d.toString()
      const m = ready.exec(out)
      if (m !== null) {
        clearTimeout(timer)
        child.stdout?.off('data', onData)
        child.stdout?.resume()
        resolve({ child, match: m })
      }
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', (d: Buffer) => { out += d.toString() })
    child.once('exit', code => { clearTimeout(timer); reject(new Error(`${cmd} exited ${String(code)}: ${out}`)) })
  })
}

function stop (child: ChildProcess): Promise<void> {
  return new Promise(resolve => {
    if (child.exitCode !== null) return resolve()
    child.removeAllListeners('exit')
    child.once('exit', () => resolve())
    child.kill('SIGTERM')
    setTimeout(() => child.kill('SIGKILL'), 3000).unref()
  })
}

/** CPU ticks (user+system) of a process and its resident memory high-water mark. */
function procStats (pid: number): { ticks: number, hwmKb: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  return { ticks: Number(stat[11]) + Number(stat[12]), hwmKb: Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) }
}
const TICKS_PER_S = 100

interface LoadResult { rps: number, p50: number, p99: number, cpuUsPerReq: number, peakMb: number, errors: number }

function ms (value: string, unit: string): number {
  const n = Number(value)
  return unit === 'us' ? n / 1000 : unit === 's' ? n * 1000 : n
}

/** Drives `url` with wrk (64 keep-alive connections) and measures the target process. */
async function load (url: string, host: string, pid: number, duration = DURATION, extra: string[] = []): Promise<LoadResult> {
  if (!HAS_WRK) throw new Error('wrk is not installed: apt-get install wrk')
  const before = procStats(pid)
  const args = ['-t1', `-c${CONNECTIONS}`, `-d${duration}s`, '--latency', '-H', `Host: ${host}`, ...extra, url]
  const [bin, argv] = HAS_TASKSET ? ['taskset', ['-c', '0', 'wrk', ...args]] : ['wrk', args]
  const out = spawnSync(bin, argv, { encoding: 'utf8' }).stdout
  const after = procStats(pid)
  const total = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0)
  const lat = (pct: string): number => { const m = new RegExp(`${pct}%\\s+([\\d.]+)(us|ms|s)`).exec(out); return m === null ? NaN : ms(m[1] as string, m[2] as string) }
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0)
  const sockErr = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0),
    p50: lat('50'),
    p99: lat('99'),
    cpuUsPerReq: total === 0 ? NaN : ((after.ticks - before.ticks) / TICKS_PER_S) * 1e6 / total,
    peakMb: after.hwmKb / 1024,
    errors: non2xx + (sockErr === null ? 0 : sockErr.slice(1).reduce((a, b) => a + Number(b), 0))
  }
}

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s.length === 0 ? NaN : (s[Math.floor((s.length - 1) / 2)] as number) }
const pct = (xs: number[], p: number): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.ceil(p / 100 * s.length) - 1)] as number }
const fmt = (n: number, d = 0): string => Number.isFinite(n) ? n.toFixed(d) : '-'

async function startOrigin (): Promise<number> {
  const { match } = await start(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/origin.ts'), '0'], {}, /listening (\d+)/, 0)
  return Number(match[1])
}

interface Ingressd { child: ChildProcess, admin: string, http: string, https: string, dir: string }

async function startIngressd (env: Record<string, string> = {}): Promise<Ingressd> {
  const dir = mkdtempSync(join(tmpdir(), 'ingressd-bench-'))
  const { child, match } = await start(process.execPath, [join(ROOT, 'bin/ingressd.js'), 'serve'], {
    INGRESSD_DB: join(dir, 'db.sqlite'),
    INGRESSD_ADMIN_ADDR: '127.0.0.1:0',
    INGRESSD_HTTP_ADDR: '127.0.0.1:0',
    INGRESSD_HTTPS_ADDR: '127.0.0.1:0',
    INGRESSD_LOG_LEVEL: 'info',
    // One process, as the comparison rows are (nginx with one worker): a fair per-core figure.
    INGRESSD_WORKERS: '1',
    ...env
  }, /"admin":"([\d.]+:\d+)","http":"([\d.]+:\d+)","https":"([\d.]+:\d+)"/, 1)
  // Access log lines go to a pipe that is drained, as they would go to a log collector.
  return { child, admin: `http://${match[1] as string}`, http: `http://${match[2] as string}`, https: `http://${match[3] as string}`, dir }
}

function manifests (n: number, originPort: number, prefix = 'app'): unknown[] {
  const out: unknown[] = [
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'origin' }, spec: { ports: [{ port: 80, targetPort: originPort }] } },
    { apiVersion: 'v1', kind: 'Endpoints', metadata: { name: 'origin' }, subsets: [{ addresses: [{ ip: '127.0.0.1' }], ports: [{ port: originPort }] }] }
  ]
  for (let i = 0; i < n; i++) {
    out.push({ apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: `${prefix}-${i}` }, spec: { rules: [{ host: `${prefix}-${i}.example.com`, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'origin', port: { number: 80 } } } }, { path: '/api', pathType: 'Prefix', backend: { service: { name: 'origin', port: { number: 80 } } } }] } }] } })
  }
  return out
}

async function adminCall (base: string, method: string, path: string, body?: unknown): Promise<number> {
  const res = await request(`${base}${path}`, { method: method as 'POST', headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) })
  await res.body.text()
  if (res.statusCode >= 300) throw new Error(`${method} ${path}: ${res.statusCode}`)
  return res.statusCode
}

async function startNginx (originPort: number, certDir?: string): Promise<{ child: ChildProcess, url: string, tlsUrl?: string, dir: string } | undefined> {
  if (NGINX === undefined) return undefined
  const dir = mkdtempSync(join(tmpdir(), 'nginx-bench-'))
  const port = 20000 + Math.floor(Math.random() * 20000)
  const tlsPort = port + 1
  const tls = certDir === undefined ? '' : `listen 127.0.0.1:${tlsPort} ssl; ssl_certificate ${certDir}/tls.crt; ssl_certificate_key ${certDir}/tls.key; ssl_protocols TLSv1.2 TLSv1.3;`
  // The equivalent of what ingressd does: host routing, keep-alive upstream pool, forwarded
  // headers, request ids, an access log.
  writeFileSync(join(dir, 'nginx.conf'), `
worker_processes 1;
error_log ${dir}/error.log warn;
pid ${dir}/nginx.pid;
events { worker_connections 4096; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  upstream origin { server 127.0.0.1:${originPort}; keepalive 64; }
  map $http_upgrade $connection_upgrade { default upgrade; '' ''; }
  server {
    listen 127.0.0.1:${port} default_server;
    ${tls}
    server_name app-0.example.com;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Forwarded-Port $server_port;
      proxy_set_header X-Request-ID $request_id;
      add_header X-Request-ID $request_id;
    }
  }
}
`)
  const [bin, argv] = HAS_TASKSET ? ['taskset', ['-c', '1', NGINX, '-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;']] : [NGINX, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;']]
  const child = spawn(bin, argv, { stdio: 'ignore' })
  children.push(child)
  for (let i = 0; i < 50; i++) {
    try {
      await request(`http://127.0.0.1:${port}/`, { headers: { host: 'app-0.example.com' } }).then(r => r.body.text())
      // nginx forks its worker: measure the worker, which serves the requests.
      const workers = spawnSync('pgrep', ['-P', String(child.pid)], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean)
      return { child: Object.assign(child, { workerPid: Number(workers[0] ?? child.pid) }), url: `http://127.0.0.1:${port}/`, tlsUrl: `https://127.0.0.1:${tlsPort}/`, dir }
    } catch { await new Promise(resolve => setTimeout(resolve, 100)) }
  }
  throw new Error('nginx did not start')
}

/** A minimal Fastify + @fastify/http-proxy, the reference row from the performance issue. */
async function startMinimalFastify (originPort: number): Promise<{ child: ChildProcess, url: string }> {
  const { child, match } = await start(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/minimal-fastify-proxy.ts'), String(originPort)], {}, /listening (\d+)/, 1)
  return { child, url: `http://127.0.0.1:${match[1] as string}/` }
}

function printTable (title: string, header: string[], rows: (string | number)[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map(r => String(r[i]).length)))
  const line = (cells: (string | number)[]): string => `| ${cells.map((c, i) => i === 0 ? String(c).padEnd(widths[i] as number) : String(c).padStart(widths[i] as number)).join(' | ')} |`
  process.stdout.write(`\n### ${title}\n\n${line(header)}\n|${widths.map((w, i) => i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`).join('|')}|\n${rows.map(line).join('\n')}\n`)
}

async function benchProxy (originPort: number): Promise<void> {
  const nginx = await startNginx(originPort)
  if (nginx === undefined) process.stdout.write('\nnginx is not installed (apt-get install nginx-light): the proxy table has no nginx row and no ratios.\n')
  const gw = await startIngressd()
  await adminCall(gw.admin, 'POST', '/apply', manifests(10, originPort))
  const minimal = await startMinimalFastify(originPort)
  const runs: Record<string, LoadResult[]> = { nginx: [], ingressd: [], 'fastify + @fastify/http-proxy': [] }
  for (let r = 0; r < ROUNDS; r++) {
    if (nginx !== undefined) runs.nginx?.push(await load(nginx.url, 'app-0.example.com', (nginx.child as ChildProcess & { workerPid: number }).workerPid))
    runs.ingressd?.push(await load(`${gw.http}/`, 'app-0.example.com', gw.child.pid as number))
    runs['fastify + @fastify/http-proxy']?.push(await load(minimal.url, 'app-0.example.com', minimal.child.pid as number))
  }
  const summary = Object.fromEntries(Object.entries(runs).filter(([, v]) => v.length > 0).map(([k, v]) => [k, {
    rps: median(v.map(x => x.rps)), p50: median(v.map(x => x.p50)), p99: median(v.map(x => x.p99)), cpuUsPerReq: median(v.map(x => x.cpuUsPerReq)), peakMb: Math.max(...v.map(x => x.peakMb)), errors: v.reduce((a, x) => a + x.errors, 0)
  }]))
  results.proxy = { rounds: ROUNDS, durationS: DURATION, connections: CONNECTIONS, summary }
  const base = summary.nginx
  printTable(`Plain HTTP proxying, 100-byte responses, ${CONNECTIONS} keep-alive connections, medians of ${ROUNDS} interleaved rounds of ${DURATION} s`,
    ['proxy', 'req/s', 'vs nginx', 'p50 ms', 'p99 ms', 'p99 vs nginx', 'CPU µs/req', 'CPU vs nginx', 'peak RSS MB', 'errors'],
    Object.entries(summary).map(([k, s]) => [k, fmt(s.rps), base === undefined ? '-' : fmt(s.rps / base.rps, 2), fmt(s.p50, 2), fmt(s.p99, 2), base === undefined ? '-' : fmt(s.p99 / base.p99, 2), fmt(s.cpuUsPerReq, 1), base === undefined ? '-' : fmt(s.cpuUsPerReq / base.cpuUsPerReq, 2), fmt(s.peakMb, 1), s.errors]))
  await Promise.all([stop(gw.child), stop(minimal.child), nginx === undefined ? undefined : stop(nginx.child)])
  rmSync(gw.dir, { recursive: true, force: true })
  if (nginx !== undefined) rmSync(nginx.dir, { recursive: true, force: true })
}

async function benchScale (originPort: number): Promise<void> {
  const rows: (string | number)[][] = []
  const out: Record<string, unknown> = {}
  const gws: Record<number, Ingressd> = {}
  for (const n of [10, 10_000]) {
    gws[n] = await startIngressd()
    const started = performance.now()
    await adminCall((gws[n] as Ingressd).admin, 'POST', '/apply', manifests(n, originPort))
    out[`apply${n}Ms`] = performance.now() - started
  }
  const runs: Record<number, LoadResult[]> = { 10: [], 10000: [] }
  for (let r = 0; r < ROUNDS; r++) {
    for (const n of [10, 10_000]) {
      const gw = gws[n] as Ingressd
      // The last ingress: its host is one of n in the table.
      runs[n]?.push(await load(`${gw.http}/api`, `app-${n - 1}.example.com`, gw.child.pid as number))
    }
  }
  for (const n of [10, 10_000]) {
    const v = runs[n] as LoadResult[]
    const rps = median(v.map(x => x.rps))
    out[n] = { rps, p99: median(v.map(x => x.p99)), peakMb: Math.max(...v.map(x => x.peakMb)) }
    rows.push([`${n} ingresses`, fmt(rps), fmt(rps / median((runs[10] as LoadResult[]).map(x => x.rps)), 3), fmt(median(v.map(x => x.p99)), 2), fmt(Math.max(...v.map(x => x.peakMb)), 1)])
    await stop((gws[n] as Ingressd).child)
    rmSync((gws[n] as Ingressd).dir, { recursive: true, force: true })
  }
  results.scale = out
  printTable('Lookup cost: the same route with 10 and with 10,000 ingresses (2 paths each)', ['table', 'req/s', 'vs 10', 'p99 ms', 'peak RSS MB'], rows)
}

async function benchAdmin (originPort: number): Promise<void> {
  const gw = await startIngressd()
  const bundle = manifests(1000, originPort)
  // "1,000 ingresses with their services": one Service (and Endpoints) per ingress.
  const withServices = bundle.slice(2).flatMap((ing, i) => [
    { apiVersion: 'v1', kind: 'Service', metadata: { name: `svc-${i}` }, spec: { ports: [{ port: 80, targetPort: originPort }] } },
    ing
  ])
  let t0 = performance.now()
  await adminCall(gw.admin, 'POST', '/apply', withServices)
  const applyMs = performance.now() - t0
  t0 = performance.now()
  for (let i = 0; i < 1000; i++) {
    await adminCall(gw.admin, 'POST', '/apis/networking.k8s.io/v1/namespaces/default/ingresses', { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: `single-${i}` }, spec: { rules: [{ host: `single-${i}.example.com`, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'origin', port: { number: 80 } } } }] } }] } })
  }
  const singleMs = performance.now() - t0
  results.admin = { applyObjects: withServices.length, applyMs, singleCreates: 1000, singleMs }
  printTable('Admin writes (each returns once the data plane serves it)', ['operation', 'objects', 'total ms', 'objects/s'], [
    ['one POST /apply: 1,000 ingresses + 1,000 services', withServices.length, fmt(applyMs), fmt(withServices.length / applyMs * 1000)],
    ['1,000 single creates, one after another (table growing 1,000 → 2,000)', 1000, fmt(singleMs), fmt(1000 / singleMs * 1000)]
  ])
  await stop(gw.child)
  rmSync(gw.dir, { recursive: true, force: true })
}

async function benchLive (originPort: number): Promise<void> {
  const rows: (string | number)[][] = []
  const out: Record<string, unknown> = {}
  for (const n of [100, 10_000]) {
    const gw = await startIngressd()
    await adminCall(gw.admin, 'POST', '/apply', manifests(n, originPort))
    const writeMs: number[] = []
    const liveMs: number[] = []
    let missed = 0
    for (let i = 0; i < 50; i++) {
      const host = `live-${i}.example.com`
      const t0 = performance.now()
      await adminCall(gw.admin, 'POST', '/apis/networking.k8s.io/v1/namespaces/default/ingresses', { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: `live-${i}` }, spec: { rules: [{ host, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'origin', port: { number: 80 } } } }] } }] } })
      const returned = performance.now()
      writeMs.push(returned - t0)
      for (;;) {
        const res = await request(`${gw.http}/`, { headers: { host } })
        await res.body.text()
        if (res.statusCode === 200) break
        missed++
      }
      liveMs.push(performance.now() - returned)
    }
    out[n] = { writeP50: median(writeMs), writeP99: pct(writeMs, 99), liveAfterReturnP99: pct(liveMs, 99), requestsBeforeLive: missed }
    rows.push([`${n} ingresses`, fmt(median(writeMs), 1), fmt(pct(writeMs, 99), 1), fmt(pct(liveMs, 99), 2), missed])
    await stop(gw.child)
    rmSync(gw.dir, { recursive: true, force: true })
  }
  results.live = out
  printTable('From an admin write to the first request served by the new route (50 creates)', ['table', 'write p50 ms', 'write p99 ms', 'return → first 200, p99 ms', 'requests that missed'], rows)
}

function benchCompile (): void {
  const rows: (string | number)[][] = []
  const out: Record<string, unknown> = {}
  const meta = (name: string, i: number): Ingress['metadata'] => ({ name, namespace: 'default', uid: `u-${i}`, resourceVersion: String(i), generation: 1, creationTimestamp: new Date(1_700_000_000_000 + i * 1000).toISOString() })
  for (const n of [100, 1000, 10_000]) {
    const ingresses = manifests(n, 9).slice(2).map((m, i) => ({ ...(m as Ingress), metadata: meta(`app-${i}`, i) }))
    const services = [{ apiVersion: 'v1', kind: 'Service', metadata: meta('origin', 0), spec: { ports: [{ port: 80, targetPort: 9 }] } }] as Service[]
    const endpoints = [{ apiVersion: 'v1', kind: 'Endpoints', metadata: meta('origin', 0), subsets: [{ addresses: [{ ip: '127.0.0.1' }], ports: [{ port: 9 }] }] }] as Endpoints[]
    const times: number[] = []
    let heapMb = 0
    const kept: unknown[] = []
    for (let r = 0; r < 7; r++) {
      global.gc?.()
      const before = process.memoryUsage().heapUsed
      const t0 = performance.now()
      const compiled = compileRouteTable({ ingresses, services, endpoints }, { ingressClasses: ['ingressd', 'nginx'] })
      times.push(performance.now() - t0)
      global.gc?.()
      // Measured while the table is still referenced: what one live table costs.
      heapMb = (process.memoryUsage().heapUsed - before) / 1024 / 1024
      if (compiled.table.routeCount === 0) throw new Error('empty table')
      kept.push(compiled)
      if (kept.length > 1) kept.shift()
    }
    out[n] = { firstMs: times[0], medianMs: median(times), tableHeapMb: heapMb }
    rows.push([`${n} ingresses`, fmt(times[0] as number, 1), fmt(median(times), 1), global.gc === undefined ? '-' : fmt(heapMb, 1)])
  }
  results.compile = out
  printTable('Route-table compile (in process, 2 paths per ingress)', ['ingresses', 'first ms', 'median of 7 ms', 'table heap MB'], rows)
}

/** N certificates for the SNI benchmarks: 1,000 distinct EC certificates, reused cyclically beyond that (one context per Secret either way). */
async function certificatePool (n: number): Promise<{ cert: string, key: string }[]> {
  const pool: { cert: string, key: string }[] = []
  for (let i = 0; i < Math.min(n, 1000); i++) pool.push(await generateSelfSigned({ commonName: `tls-${i}.example.com`, dnsNames: [`tls-${i}.example.com`], keyType: 'ec' }))
  return pool
}

async function benchCerts (): Promise<void> {
  const rows: (string | number)[][] = []
  const out: Record<string, unknown> = {}
  const pool = await certificatePool(1000)
  const generated = await generateSelfSigned({ commonName: 'Kubernetes Ingress Controller Fake Certificate', keyType: 'ec' })
  for (const n of [1000, 10_000]) {
    const secrets: Secret[] = []
    const ingresses: Ingress[] = []
    const privateKeys = new Map<string, string>()
    for (let i = 0; i < n; i++) {
      const pem = pool[i % pool.length] as { cert: string, key: string }
      const metadata = { name: `tls-${i}`, namespace: 'default', uid: `s-${i}`, resourceVersion: String(i + 1), generation: 1, creationTimestamp: new Date(1_700_000_000_000 + i * 1000).toISOString() }
      secrets.push({ apiVersion: 'v1', kind: 'Secret', metadata, type: 'kubernetes.io/tls', data: { 'tls.crt': Buffer.from(pem.cert).toString('base64') } })
      privateKeys.set(`default/tls-${i}`, pem.key)
      ingresses.push({ apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { ...metadata, uid: `i-${i}` }, spec: { tls: [{ hosts: [`tls-${i}.example.com`], secretName: `tls-${i}` }], rules: [{ host: `tls-${i}.example.com`, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'origin', port: { number: 80 } } } }] } }] } })
    }
    const { reports } = compileRouteTable({ ingresses, services: [], endpoints: [] }, { ingressClasses: ['nginx'] })
    global.gc?.()
    const rssBefore = process.memoryUsage().rss
    const heapBefore = process.memoryUsage().heapUsed
    const compiler = new CertificateCompiler({ generated })
    let t0 = performance.now()
    const first = compiler.compile({ ingresses, secrets, privateKeys }, reports, 1)
    const firstMs = performance.now() - t0
    global.gc?.()
    const rssMb = (process.memoryUsage().rss - rssBefore) / 1024 / 1024
    const heapMb = (process.memoryUsage().heapUsed - heapBefore) / 1024 / 1024
    t0 = performance.now()
    const again = compiler.compile({ ingresses, secrets, privateKeys }, reports, 2)
    const againMs = performance.now() - t0
    if (first.table === undefined || again.table === undefined) throw new Error('no SNI table')
    out[n] = { firstMs, recompileMs: againMs, contexts: compiler.contextsBuilt, rssMb, heapMb }
    rows.push([`${n} certificates`, fmt(firstMs), fmt(againMs, 1), compiler.contextsBuilt, fmt(rssMb, 1), fmt(heapMb, 1)])
  }
  results.certs = out
  printTable('SNI table: build with N certificates (one TLS context per certificate), and a recompile that reuses them', ['certificates', 'first build ms', 'recompile ms', 'contexts built', 'RSS growth MB', 'heap growth MB'], rows)
}

async function benchHttps (originPort: number): Promise<void> {
  // The same RSA 2048 certificate for both, served without SNI (wrk connects to an IP).
  const pem = await generateSelfSigned({ commonName: 'bench.example.com', dnsNames: ['bench.example.com', 'app-0.example.com'], keyType: 'rsa' })
  const certDir = mkdtempSync(join(tmpdir(), 'bench-tls-'))
  writeFileSync(join(certDir, 'tls.crt'), pem.cert)
  writeFileSync(join(certDir, 'tls.key'), pem.key)
  const nginx = await startNginx(originPort, certDir)
  const gw = await startIngressd({ INGRESSD_DEFAULT_CERT: 'default/bench-cert' })
  await adminCall(gw.admin, 'POST', '/apply', [...manifests(10, originPort), { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'bench-cert' }, type: 'kubernetes.io/tls', stringData: { 'tls.crt': pem.cert, 'tls.key': pem.key } }])
  const httpsUrl = gw.https.replace('http://', 'https://') + '/'
  const runs: Record<string, { keep: LoadResult[], fresh: LoadResult[] }> = { nginx: { keep: [], fresh: [] }, ingressd: { keep: [], fresh: [] } }
  for (let r = 0; r < ROUNDS; r++) {
    if (nginx !== undefined) {
      const pid = (nginx.child as ChildProcess & { workerPid: number }).workerPid
      runs.nginx?.keep.push(await load(nginx.tlsUrl as string, 'app-0.example.com', pid))
      runs.nginx?.fresh.push(await load(nginx.tlsUrl as string, 'app-0.example.com', pid, DURATION, ['-H', 'Connection: close']))
    }
    runs.ingressd?.keep.push(await load(httpsUrl, 'app-0.example.com', gw.child.pid as number))
    runs.ingressd?.fresh.push(await load(httpsUrl, 'app-0.example.com', gw.child.pid as number, DURATION, ['-H', 'Connection: close']))
  }
  const summary = Object.fromEntries(Object.entries(runs).filter(([, v]) => v.keep.length > 0).map(([k, v]) => [k, {
    rps: median(v.keep.map(x => x.rps)), p99: median(v.keep.map(x => x.p99)), cpuUsPerReq: median(v.keep.map(x => x.cpuUsPerReq)), handshakes: median(v.fresh.map(x => x.rps)), errors: [...v.keep, ...v.fresh].reduce((a, x) => a + x.errors, 0)
  }]))
  results.https = summary
  const base = summary.nginx
  printTable(`HTTPS termination (RSA 2048, TLS 1.3, HTTP/1.1), medians of ${ROUNDS} rounds of ${DURATION} s`,
    ['proxy', 'keep-alive req/s', 'vs nginx', 'p99 ms', 'CPU µs/req', 'new handshakes/s', 'vs nginx', 'errors'],
    Object.entries(summary).map(([k, x]) => [k, fmt(x.rps), base === undefined ? '-' : fmt(x.rps / base.rps, 2), fmt(x.p99, 2), fmt(x.cpuUsPerReq, 1), fmt(x.handshakes), base === undefined ? '-' : fmt(x.handshakes / base.handshakes, 2), x.errors]))
  await Promise.all([stop(gw.child), nginx === undefined ? undefined : stop(nginx.child)])
  rmSync(gw.dir, { recursive: true, force: true })
  rmSync(certDir, { recursive: true, force: true })
  if (nginx !== undefined) rmSync(nginx.dir, { recursive: true, force: true })
}

/** Echo round trips over `clients` WebSockets for `seconds`: each client sends its next message when the last one comes back. */
async function echoLoad (url: string, host: string, clients: number, seconds: number): Promise<{ perSecond: number, p50: number, p99: number, errors: number }> {
  const latencies: number[] = []
  let errors = 0
  const until = Date.now() + seconds * 1000
  const payload = 'x'.repeat(100)
  await Promise.all(Array.from({ length: clients }, () => new Promise<void>(resolve => {
    const ws = new WebSocket(url, { headers: { host } })
    let sentAt = 0
    const next = (): void => {
      if (Date.now() >= until) { ws.close(); return }
      sentAt = performance.now()
      ws.send(payload)
    }
    ws.on('open', next)
    ws.on('message', () => { latencies.push(performance.now() - sentAt); next() })
    ws.on('error', () => { errors++; resolve() })
    ws.on('close', () => resolve())
  })))
  return { perSecond: latencies.length / seconds, p50: median(latencies), p99: pct(latencies, 99), errors }
}

async function benchWebSocket (): Promise<void> {
  const { match } = await start(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/ws-origin.ts'), '0'], {}, /listening (\d+)/, 0)
  const wsPort = Number(match[1])
  const nginx = await startNginx(wsPort)
  const gw = await startIngressd()
  await adminCall(gw.admin, 'POST', '/apply', manifests(10, wsPort))
  const runs: Record<string, { perSecond: number, p50: number, p99: number, errors: number }[]> = { nginx: [], ingressd: [] }
  for (let r = 0; r < ROUNDS; r++) {
    if (nginx !== undefined) runs.nginx?.push(await echoLoad(nginx.url.replace('http://', 'ws://'), 'app-0.example.com', 32, DURATION))
    runs.ingressd?.push(await echoLoad(gw.http.replace('http://', 'ws://') + '/', 'app-0.example.com', 32, DURATION))
  }
  const summary = Object.fromEntries(Object.entries(runs).filter(([, v]) => v.length > 0).map(([k, v]) => [k, { perSecond: median(v.map(x => x.perSecond)), p50: median(v.map(x => x.p50)), p99: median(v.map(x => x.p99)), errors: v.reduce((a, x) => a + x.errors, 0) }]))
  results.websocket = summary
  const base = summary.nginx
  printTable(`WebSocket echo: 32 connections, 100-byte messages, one in flight per connection, medians of ${ROUNDS} rounds of ${DURATION} s (the load generator is this Node process)`,
    ['proxy', 'round trips/s', 'vs nginx', 'p50 ms', 'p99 ms', 'errors'],
    Object.entries(summary).map(([k, x]) => [k, fmt(x.perSecond), base === undefined ? '-' : fmt(x.perSecond / base.perSecond, 2), fmt(x.p50, 2), fmt(x.p99, 2), x.errors]))
  await Promise.all([stop(gw.child), nginx === undefined ? undefined : stop(nginx.child)])
  rmSync(gw.dir, { recursive: true, force: true })
  if (nginx !== undefined) rmSync(nginx.dir, { recursive: true, force: true })
}

try {
  process.stdout.write(`ingressd benchmark: ${new Date().toISOString()}, node ${process.version}, ${HAS_WRK ? 'wrk' : 'no wrk'}, ${NGINX ?? 'no nginx'}, ${HAS_TASKSET ? 'load generator and origin on core 0, proxies on core 1' : 'no taskset: processes not pinned'}\n`)
  const originPort = await startOrigin()
  if (ONLY.has('compile')) benchCompile()
  if (ONLY.has('certs')) await benchCerts()
  if (ONLY.has('admin')) await benchAdmin(originPort)
  if (ONLY.has('live')) await benchLive(originPort)
  if (ONLY.has('proxy')) await benchProxy(originPort)
  if (ONLY.has('https')) await benchHttps(originPort)
  if (ONLY.has('websocket')) await benchWebSocket()
  if (ONLY.has('scale')) await benchScale(originPort)
  if (opts.json !== undefined) writeFileSync(opts.json, JSON.stringify(results, null, 2) + '\n')
} finally {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL')
}
