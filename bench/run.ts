/**
 * `npm run bench`: ingressd side by side with nginx (and a minimal Fastify proxy), in one run.
 * See bench/README.md. Options: --duration 5 (seconds per load run), --rounds 3,
 * --only compile,certs,admin,live,proxy,policies,https,websocket,scale,workers,memory,cluster, --json FILE.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect as tlsConnect } from 'node:tls'
import { parseArgs } from 'node:util'
import { request } from 'undici'
import ts from 'typescript'
import { WebSocket } from 'ws'
import { compileRouteTable } from '../src/dataplane/compile.js'
import { CertificateCompiler } from '../src/dataplane/compile-certificates.js'
import { generateSelfSigned } from '../src/resources/tls-material.js'
import type { Secret } from '../src/resources/secret.js'
import type { Ingress } from '../src/resources/ingress.js'
import type { Service } from '../src/resources/service.js'
import type { Endpoints } from '../src/resources/endpoints.js'
import { findPostgresBin, startPrivatePostgres, type PostgresCluster } from '../test/helpers/postgres.js'

const { values: opts } = parseArgs({
  options: {
    duration: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    only: { type: 'string', default: 'compile,certs,admin,live,proxy,policies,https,websocket,scale,workers,memory,cluster' },
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
/** The machine's cores, read before this process pins itself below (the count follows the affinity). */
const CORES = availableParallelism()
// This process belongs with the load generator: it drains the gateways' access logs, drives the
// WebSocket and admin scenarios. Left to the scheduler, it ran on the proxies' core too and took
// CPU from whichever gateway it was reading, which moved ingressd's figures by up to a third.
if (HAS_TASKSET) spawnSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' })

/** `cmd args` pinned to `core` with taskset (when it exists); with `core` null, left to the scheduler on every core (set explicitly: children inherit this process's core 0). */
function pinned (cmd: string, args: string[], core: number | null): [string, string[]] {
  return HAS_TASKSET ? ['taskset', ['-c', core === null ? `0-${CORES - 1}` : String(core), cmd, ...args]] : [cmd, args]
}

/** Runs a command pinned to `core` (null: not pinned) and resolves once stdout matches `ready`. */
function start (cmd: string, args: string[], env: Record<string, string>, ready: RegExp, core: number | null, cwd?: string): Promise<{ child: ChildProcess, match: RegExpExecArray }> {
  const [bin, argv] = pinned(cmd, args, core)
  const child = spawn(bin, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], cwd })
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

/** The fields of /proc/<pid>/stat after the command name: [0] state, [1] ppid, [11] utime, [12] stime, [19] starttime. */
function statFields (pid: number | string): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return stat.slice(stat.lastIndexOf(') ') + 2).split(' ')
}

/** `pid` and every descendant (a cluster primary and its workers, an nginx master and its workers), from the ppids in /proc/<pid>/stat. */
function processTree (pid: number): number[] {
  const childrenOf = new Map<number, number[]>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    let ppid: number
    try { ppid = Number(statFields(entry)[1]) } catch { continue } // exited meanwhile
    childrenOf.set(ppid, [...(childrenOf.get(ppid) ?? []), Number(entry)])
  }
  const tree = [pid]
  for (let i = 0; i < tree.length; i++) tree.push(...(childrenOf.get(tree[i] as number) ?? []))
  return tree
}

/** SIGKILLs the processes of `processTree(pid)` that are still the same processes (same start time) when called. */
function treeKiller (pid: number): () => void {
  const tree = processTree(pid).map(p => { try { return { p, since: statFields(p)[19] } } catch { return undefined } })
  return () => {
    for (const proc of tree.reverse()) {
      if (proc === undefined) continue
      try { if (statFields(proc.p)[19] === proc.since) process.kill(proc.p, 'SIGKILL') } catch { /* gone */ }
    }
  }
}

function stop (child: ChildProcess): Promise<void> {
  return new Promise(resolve => {
    if (child.exitCode !== null || child.pid === undefined) return resolve()
    // A cluster primary or an nginx master stops its workers first; none may outlive it anyway.
    const killLeftovers = treeKiller(child.pid)
    child.removeAllListeners('exit')
    child.once('exit', () => { killLeftovers(); resolve() })
    child.kill('SIGTERM')
    setTimeout(() => child.kill('SIGKILL'), 3000).unref()
  })
}

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0)

/** CPU ticks (user+system) of each process, and their resident memory and its high-water mark (VmRSS, VmHWM), summed. */
function procStats (pids: number[]): { ticks: number[], rssKb: number, hwmKb: number } {
  const status = pids.map(pid => readFileSync(`/proc/${pid}/status`, 'utf8'))
  const field = (name: string): number => sum(status.map(s => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(s)?.[1] ?? 0)))
  return { ticks: pids.map(pid => { const stat = statFields(pid); return Number(stat[11]) + Number(stat[12]) }), rssKb: field('VmRSS'), hwmKb: field('VmHWM') }
}
const TICKS_PER_S = 100

/** cpuShares: each measured process's share of the CPU the run took; peakMb, rssMb: VmHWM and VmRSS after the run, summed over the processes. */
interface LoadResult { rps: number, p50: number, p99: number, cpuUsPerReq: number, cpuShares: number[], peakMb: number, rssMb: number, errors: number }

interface LoadOptions {
  duration?: number
  /** More wrk arguments, before the URL. */
  extra?: string[]
  /** A wrk Lua script and its arguments (given after the URL and `--`). */
  script?: { file: string, args: string[] }
}

function ms (value: string, unit: string): number {
  const n = Number(value)
  return unit === 'us' ? n / 1000 : unit === 's' ? n * 1000 : n
}

/** Drives `url` with wrk (64 keep-alive connections, pinned to core 0) and measures the target processes (CPU summed over them). */
async function load (url: string, host: string, pids: number[], { duration = DURATION, extra = [], script }: LoadOptions = {}): Promise<LoadResult> {
  if (!HAS_WRK) throw new Error('wrk is not installed: apt-get install wrk')
  const before = procStats(pids)
  const args = ['-t1', `-c${CONNECTIONS}`, `-d${duration}s`, '--latency', '-H', `Host: ${host}`, ...extra, ...(script === undefined ? [url] : ['-s', script.file, url, '--', ...script.args])]
  const [bin, argv] = pinned('wrk', args, 0)
  // Not spawnSync: this process must keep draining the gateways' stdout (their access logs) while
  // wrk runs, or the pipe fills and a gateway buffers its log lines in memory.
  const out = await new Promise<string>((resolve, reject) => {
    const wrk = spawn(bin, argv, { stdio: ['ignore', 'pipe', 'ignore'] })
    let text = ''
    wrk.stdout.setEncoding('utf8')
    wrk.stdout.on('data', (d: string) => { text += d })
    wrk.once('error', reject)
    wrk.once('close', () => resolve(text))
  })
  const after = procStats(pids)
  const ticks = after.ticks.map((t, i) => t - (before.ticks[i] ?? 0))
  const total = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0)
  const lat = (pct: string): number => { const m = new RegExp(`${pct}%\\s+([\\d.]+)(us|ms|s)`).exec(out); return m === null ? NaN : ms(m[1] as string, m[2] as string) }
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0)
  const sockErr = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0),
    p50: lat('50'),
    p99: lat('99'),
    cpuUsPerReq: total === 0 ? NaN : (sum(ticks) / TICKS_PER_S) * 1e6 / total,
    cpuShares: ticks.map(t => t / sum(ticks)),
    peakMb: after.hwmKb / 1024,
    rssMb: after.rssKb / 1024,
    errors: non2xx + (sockErr === null ? 0 : sockErr.slice(1).reduce((a, b) => a + Number(b), 0))
  }
}

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s.length === 0 ? NaN : (s[Math.floor((s.length - 1) / 2)] as number) }
const pct = (xs: number[], p: number): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.ceil(p / 100 * s.length) - 1)] as number }
const fmt = (n: number, d = 0): string => Number.isFinite(n) ? n.toFixed(d) : '-'

/** The origin's process id, once started: the `workers` scenario reports how busy it is. */
let originPid: number | undefined

async function startOrigin (): Promise<number> {
  const { child, match } = await start(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/origin.ts'), '0'], {}, /listening (\d+)/, 0)
  originPid = child.pid
  return Number(match[1])
}

/** Busy and total time of all cores together, in ticks, from the first line of /proc/stat. */
function machineTicks (): { busy: number, total: number } {
  // cpu user nice system idle iowait irq softirq steal
  const f = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1, 9).map(Number)
  const total = sum(f)
  return { busy: total - (f[3] ?? 0) - (f[4] ?? 0), total }
}

interface Ingressd { child: ChildProcess, admin: string, http: string, https: string, dir: string }

/** ingressd as `npm start` runs it, pinned to `core` (null: not pinned), one process unless `env` sets INGRESSD_WORKERS. */
async function startIngressd (env: Record<string, string> = {}, core: number | null = 1): Promise<Ingressd> {
  const dir = mkdtempSync(join(tmpdir(), 'ingressd-bench-'))
  // Ready on the start-up line, the same in one process and in a cluster primary (which logs it once
  // every worker serves, and adds "workers", their pids, after these three addresses).
  const { child, match } = await start(process.execPath, [join(ROOT, 'bin/ingressd.js'), 'serve'], {
    INGRESSD_DB: join(dir, 'db.sqlite'),
    INGRESSD_ADMIN_ADDR: '127.0.0.1:0',
    INGRESSD_HTTP_ADDR: '127.0.0.1:0',
    INGRESSD_HTTPS_ADDR: '127.0.0.1:0',
    INGRESSD_LOG_LEVEL: 'info',
    // One process, as the comparison rows are (nginx with one worker): a fair per-core figure.
    INGRESSD_WORKERS: '1',
    ...env
  }, /"admin":"([\d.]+:\d+)","http":"([\d.]+:\d+)","https":"([\d.]+:\d+)"/, core)
  // Access log lines go to a pipe that is drained, as they would go to a log collector.
  return { child, admin: `http://${match[1] as string}`, http: `http://${match[2] as string}`, https: `http://${match[3] as string}`, dir }
}

/** One Service `origin` and n ingresses `${prefix}-${i}` (host `${prefix}-${i}.example.com`, paths / and /api); the first `tls` of them with spec.tls naming the Secret `${prefix}-${i}-tls` (see `tlsSecrets`). */
function manifests (n: number, originPort: number, prefix = 'app', tls = 0): unknown[] {
  const out: unknown[] = [
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'origin' }, spec: { ports: [{ port: 80, targetPort: originPort }] } },
    { apiVersion: 'v1', kind: 'Endpoints', metadata: { name: 'origin' }, subsets: [{ addresses: [{ ip: '127.0.0.1' }], ports: [{ port: originPort }] }] }
  ]
  for (let i = 0; i < n; i++) {
    const host = `${prefix}-${i}.example.com`
    out.push({ apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: `${prefix}-${i}` }, spec: { ...(i < tls ? { tls: [{ hosts: [host], secretName: `${prefix}-${i}-tls` }] } : {}), rules: [{ host, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'origin', port: { number: 80 } } } }, { path: '/api', pathType: 'Prefix', backend: { service: { name: 'origin', port: { number: 80 } } } }] } }] } })
  }
  return out
}

/** TLS Secrets `${prefix}-${i}-tls`, one per certificate of `pool`: those that ingress `${prefix}-${i}` of `manifests(n, port, prefix, pool.length)` names. */
function tlsSecrets (pool: { cert: string, key: string }[], prefix = 'app'): unknown[] {
  return pool.map((pem, i) => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name: `${prefix}-${i}-tls` }, type: 'kubernetes.io/tls', stringData: { 'tls.crt': pem.cert, 'tls.key': pem.key } }))
}

async function adminCall (base: string, method: string, path: string, body?: unknown): Promise<number> {
  const res = await request(`${base}${path}`, { method: method as 'POST', headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) })
  await res.body.text()
  if (res.statusCode >= 300) throw new Error(`${method} ${path}: ${res.statusCode}`)
  return res.statusCode
}

interface Nginx { child: ChildProcess, url: string, tlsUrl: string, dir: string, workerPid: number }

/** nginx configured as the equivalent of ingressd, with `workers` worker processes, pinned to `core` (null: not pinned). */
async function startNginx (originPort: number, { certDir, workers = 1, core = 1 }: { certDir?: string, workers?: number, core?: number | null } = {}): Promise<Nginx | undefined> {
  if (NGINX === undefined) return undefined
  const dir = mkdtempSync(join(tmpdir(), 'nginx-bench-'))
  const port = 20000 + Math.floor(Math.random() * 20000)
  const tlsPort = port + 1
  const tls = certDir === undefined ? '' : `listen 127.0.0.1:${tlsPort} ssl; ssl_certificate ${certDir}/tls.crt; ssl_certificate_key ${certDir}/tls.key; ssl_protocols TLSv1.2 TLSv1.3;`
  // The equivalent of what ingressd does: host routing, keep-alive upstream pool, forwarded
  // headers, request ids, an access log. With several workers, a listening socket each
  // (reuseport): else one worker may accept all of wrk's connections, opened at once.
  writeFileSync(join(dir, 'nginx.conf'), `
worker_processes ${workers};
error_log ${dir}/error.log warn;
pid ${dir}/nginx.pid;
events { worker_connections 4096; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  upstream origin { server 127.0.0.1:${originPort}; keepalive 64; }
  map $http_upgrade $connection_upgrade { default upgrade; '' ''; }
  server {
    listen 127.0.0.1:${port} default_server${workers > 1 ? ' reuseport' : ''};
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
  const [bin, argv] = pinned(NGINX, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], core)
  const child = spawn(bin, argv, { stdio: 'ignore' })
  children.push(child)
  for (let i = 0; i < 50; i++) {
    try {
      await request(`http://127.0.0.1:${port}/`, { headers: { host: 'app-0.example.com' } }).then(r => r.body.text())
      // nginx forks its workers: with one, measure the worker, which serves the requests.
      return { child, workerPid: processTree(child.pid as number)[1] ?? child.pid as number, url: `http://127.0.0.1:${port}/`, tlsUrl: `https://127.0.0.1:${tlsPort}/`, dir }
    } catch { await new Promise(resolve => setTimeout(resolve, 100)) }
  }
  throw new Error('nginx did not start')
}

/**
 * A minimal Fastify + @fastify/http-proxy, the reference row from the performance issue. Run as
 * plain JavaScript (transpiled here, evaluated as a module from the repository root, where its
 * imports resolve), not through tsx, whose loader thread would add some 25 MB to its resident memory.
 */
async function startMinimalFastify (originPort: number): Promise<{ child: ChildProcess, url: string }> {
  const source = readFileSync(join(ROOT, 'bench/minimal-fastify-proxy.ts'), 'utf8')
  const js = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText
  // `node -e CODE -- NAME PORT`: process.argv[2] is the port, as when run from the file.
  const { child, match } = await start(process.execPath, ['--input-type=module', '-e', js, '--', 'minimal-fastify-proxy', String(originPort)], {}, /listening (\d+)/, 1, ROOT)
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
    if (nginx !== undefined) runs.nginx?.push(await load(nginx.url, 'app-0.example.com', [nginx.workerPid]))
    runs.ingressd?.push(await load(`${gw.http}/`, 'app-0.example.com', [gw.child.pid as number]))
    runs['fastify + @fastify/http-proxy']?.push(await load(minimal.url, 'app-0.example.com', [minimal.child.pid as number]))
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

/**
 * What access control costs: the plain route beside a route with basic auth, a source range and a
 * rate limit on (the limit high enough never to refuse), and one behind external auth (the origin,
 * on loopback, answers the auth sub-request). All in one ingressd, interleaved per round; each
 * figure is also given as the median of its per-round ratio to the plain route.
 */
async function benchPolicies (originPort: number): Promise<void> {
  const gw = await startIngressd()
  const P = 'nginx.ingress.kubernetes.io/'
  const route = (name: string, annotations: Record<string, string>): unknown => ({ apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name, annotations }, spec: { rules: [{ host: `${name}.example.com`, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'origin', port: { number: 80 } } } }] } }] } })
  await adminCall(gw.admin, 'POST', '/apply', [
    ...manifests(10, originPort),
    // admin / s3cret, apr1 as htpasswd writes it by default.
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'basic-auth' }, type: 'Opaque', stringData: { auth: 'admin:$apr1$abcdefgh$M2T3erDstkD7SsE2QQnfH0\n' } },
    route('guarded', { [`${P}auth-type`]: 'basic', [`${P}auth-secret`]: 'basic-auth', [`${P}whitelist-source-range`]: '127.0.0.0/8', [`${P}limit-rps`]: '1000000' }),
    route('extauth', { [`${P}auth-url`]: `http://127.0.0.1:${originPort}/auth`, [`${P}auth-response-headers`]: 'X-Auth-User' })
  ])
  const authorization = `Authorization: Basic ${Buffer.from('admin:s3cret').toString('base64')}`
  const rows: Array<[string, string, string[]]> = [
    ['plain route', 'app-0.example.com', []],
    ['basic auth + source range + limit-rps', 'guarded.example.com', ['-H', authorization]],
    ['external auth (auth service on loopback)', 'extauth.example.com', []]
  ]
  const runs: LoadResult[][] = rows.map(() => [])
  for (let r = 0; r < ROUNDS; r++) {
    for (const [i, [, host, extra]] of rows.entries()) runs[i]?.push(await load(`${gw.http}/`, host, [gw.child.pid as number], { extra }))
  }
  const base = runs[0] as LoadResult[]
  const perRound = (v: LoadResult[], pick: (x: LoadResult) => number): number => median(v.map((x, i) => pick(x) / pick(base[i] as LoadResult)))
  const out: Record<string, unknown> = {}
  const table = rows.map(([name], i) => {
    const v = runs[i] as LoadResult[]
    const summary = { rps: median(v.map(x => x.rps)), p99: median(v.map(x => x.p99)), cpuUsPerReq: median(v.map(x => x.cpuUsPerReq)), rpsVsPlain: perRound(v, x => x.rps), cpuVsPlain: perRound(v, x => x.cpuUsPerReq), errors: v.reduce((a, x) => a + x.errors, 0) }
    out[name] = summary
    return [name, fmt(summary.rps), fmt(summary.rpsVsPlain, 3), fmt(summary.p99, 2), fmt(summary.cpuUsPerReq, 1), fmt(summary.cpuVsPlain, 3), summary.errors]
  })
  results.policies = { rounds: ROUNDS, durationS: DURATION, connections: CONNECTIONS, rows: out }
  printTable(`Access-control annotations: one ingressd, ${CONNECTIONS} keep-alive connections, ${ROUNDS} interleaved rounds of ${DURATION} s; "vs plain" is the median of each round's ratio to the plain route`,
    ['route', 'req/s', 'req/s vs plain', 'p99 ms', 'CPU µs/req', 'CPU vs plain', 'errors'], table)
  await stop(gw.child)
  rmSync(gw.dir, { recursive: true, force: true })
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
      runs[n]?.push(await load(`${gw.http}/api`, `app-${n - 1}.example.com`, [gw.child.pid as number]))
    }
  }
  // Each 10,000-ingress run against the 10-ingress run of the same round, then the median of those
  // ratios: the machine's speed drifts between rounds, and a ratio within a round cancels it.
  const base = runs[10] as LoadResult[]
  const perRound = (v: LoadResult[], pick: (x: LoadResult) => number): number => median(v.map((x, i) => pick(x) / pick(base[i] as LoadResult)))
  for (const n of [10, 10_000]) {
    const v = runs[n] as LoadResult[]
    const rps = median(v.map(x => x.rps))
    const cpu = median(v.map(x => x.cpuUsPerReq))
    const ratios = { rps: perRound(v, x => x.rps), cpuUsPerReq: perRound(v, x => x.cpuUsPerReq), eachRound: v.map((x, i) => x.rps / (base[i] as LoadResult).rps) }
    out[n] = { rps, p99: median(v.map(x => x.p99)), cpuUsPerReq: cpu, peakMb: Math.max(...v.map(x => x.peakMb)), vs10: ratios }
    rows.push([`${n} ingresses`, fmt(rps), fmt(ratios.rps, 3), ratios.eachRound.map(r => fmt(r, 2)).join(' '), fmt(median(v.map(x => x.p99)), 2), fmt(cpu, 1), fmt(ratios.cpuUsPerReq, 3), fmt(Math.max(...v.map(x => x.peakMb)), 1)])
    await stop((gws[n] as Ingressd).child)
    rmSync((gws[n] as Ingressd).dir, { recursive: true, force: true })
  }
  results.scale = out
  printTable(`Lookup cost: the same route with 10 and with 10,000 ingresses (2 paths each), ${ROUNDS} interleaved rounds of ${DURATION} s; "vs 10" is the median of each round's ratio`, ['table', 'req/s (median)', 'req/s vs 10', 'each round', 'p99 ms', 'CPU µs/req', 'CPU vs 10', 'peak RSS MB'], rows)
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

/** N certificates for the SNI benchmarks: up to 1,000 distinct self-signed EC certificates, certificate i for `host(i)` (reused cyclically beyond 1,000: one context per Secret either way). */
async function certificatePool (n: number, host = (i: number) => `tls-${i}.example.com`): Promise<{ cert: string, key: string }[]> {
  const pool: { cert: string, key: string }[] = []
  for (let i = 0; i < Math.min(n, 1000); i++) pool.push(await generateSelfSigned({ commonName: host(i), dnsNames: [host(i)], keyType: 'ec' }))
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
  printTable('SNI table: build with N certificates (each checked; TLS contexts are built by the first handshake for a name), and a recompile that reuses them', ['certificates', 'first build ms', 'recompile ms', 'contexts built', 'RSS growth MB', 'heap growth MB'], rows)
}

async function benchHttps (originPort: number): Promise<void> {
  // The same RSA 2048 certificate for both, served without SNI (wrk connects to an IP).
  const pem = await generateSelfSigned({ commonName: 'bench.example.com', dnsNames: ['bench.example.com', 'app-0.example.com'], keyType: 'rsa' })
  const certDir = mkdtempSync(join(tmpdir(), 'bench-tls-'))
  writeFileSync(join(certDir, 'tls.crt'), pem.cert)
  writeFileSync(join(certDir, 'tls.key'), pem.key)
  const nginx = await startNginx(originPort, { certDir })
  const gw = await startIngressd({ INGRESSD_DEFAULT_CERT: 'default/bench-cert' })
  await adminCall(gw.admin, 'POST', '/apply', [...manifests(10, originPort), { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'bench-cert' }, type: 'kubernetes.io/tls', stringData: { 'tls.crt': pem.cert, 'tls.key': pem.key } }])
  const httpsUrl = gw.https.replace('http://', 'https://') + '/'
  const runs: Record<string, { keep: LoadResult[], fresh: LoadResult[] }> = { nginx: { keep: [], fresh: [] }, ingressd: { keep: [], fresh: [] } }
  for (let r = 0; r < ROUNDS; r++) {
    if (nginx !== undefined) {
      runs.nginx?.keep.push(await load(nginx.tlsUrl, 'app-0.example.com', [nginx.workerPid]))
      runs.nginx?.fresh.push(await load(nginx.tlsUrl, 'app-0.example.com', [nginx.workerPid], { extra: ['-H', 'Connection: close'] }))
    }
    runs.ingressd?.keep.push(await load(httpsUrl, 'app-0.example.com', [gw.child.pid as number]))
    runs.ingressd?.fresh.push(await load(httpsUrl, 'app-0.example.com', [gw.child.pid as number], { extra: ['-H', 'Connection: close'] }))
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

/** How the `workers` scenario shares the cores (printed under its table and kept in the JSON). */
function workersPlacement (cores: number): string {
  return HAS_TASKSET
    ? `wrk (one thread) and the origin pinned to core 0; the proxies not pinned: they may run on any of the ${cores} cores, core 0 included, where they compete with wrk and the origin. The load generator takes CPU the proxies could use, so the scaling figures are a lower bound`
    : `nothing pinned (no taskset): wrk, the origin and the proxies share the ${cores} cores, so the scaling figures are a lower bound`
}

/** A run of the `workers` scenario, with how busy the machine (in % of one core: up to 100 × cores) and the origin were meanwhile. */
type WorkersRun = LoadResult & { machineCpuPct: number, originCpuPct: number }
interface WorkersTarget { proxy: 'nginx' | 'ingressd', workers: number, url: string, pid: number, processes: number, runs: WorkersRun[], close: () => Promise<void> }

async function benchWorkers (originPort: number): Promise<void> {
  const cores = CORES
  const counts = Array.from({ length: cores }, (_, i) => i + 1)
  if (NGINX === undefined) process.stdout.write('\nnginx is not installed (apt-get install nginx-light): the workers table has no nginx rows and no ratios.\n')
  const targets: WorkersTarget[] = []
  for (const workers of counts) {
    // Not pinned (core null): a gateway of several processes pinned to one core could not scale.
    const nginx = await startNginx(originPort, { workers, core: null })
    if (nginx !== undefined) {
      targets.push({ proxy: 'nginx', workers, url: nginx.url, pid: nginx.child.pid as number, processes: 0, runs: [], close: async () => { await stop(nginx.child); rmSync(nginx.dir, { recursive: true, force: true }) } })
    }
    const gw = await startIngressd({ INGRESSD_WORKERS: String(workers) }, null)
    await adminCall(gw.admin, 'POST', '/apply', manifests(10, originPort))
    targets.push({ proxy: 'ingressd', workers, url: `${gw.http}/`, pid: gw.child.pid as number, processes: 0, runs: [], close: async () => { await stop(gw.child); rmSync(gw.dir, { recursive: true, force: true }) } })
  }
  const warnings: string[] = []
  for (let r = 0; r < ROUNDS; r++) {
    for (const t of targets) {
      // Every process of the proxy: the cluster primary and its workers, the nginx master and its workers.
      const pids = processTree(t.pid)
      // One process for INGRESSD_WORKERS=1; a primary and N workers beyond; nginx: a master and N workers.
      const expected = t.proxy === 'ingressd' && t.workers === 1 ? 1 : t.workers + 1
      if (pids.length !== expected && t.processes !== pids.length) warnings.push(`${t.proxy} with ${t.workers} worker(s) runs ${pids.length} processes (${pids.join(', ')}) where ${expected} were expected (round ${r + 1})`)
      t.processes = pids.length
      const [machine, origin, t0] = [machineTicks(), procStats(originPid === undefined ? [] : [originPid]), performance.now()]
      const run = await load(t.url, 'app-0.example.com', pids)
      const [machineAfter, originAfter, seconds] = [machineTicks(), procStats(originPid === undefined ? [] : [originPid]), (performance.now() - t0) / 1000]
      t.runs.push({
        ...run,
        machineCpuPct: (machineAfter.busy - machine.busy) / (machineAfter.total - machine.total) * cores * 100,
        originCpuPct: originPid === undefined ? NaN : (sum(originAfter.ticks) - sum(origin.ticks)) / TICKS_PER_S / seconds * 100
      })
    }
  }
  await Promise.all(targets.map(async t => { await t.close() }))
  const summary = targets.map(t => ({
    proxy: t.proxy,
    workers: t.workers,
    processes: t.processes,
    rps: median(t.runs.map(x => x.rps)),
    p50: median(t.runs.map(x => x.p50)),
    p99: median(t.runs.map(x => x.p99)),
    cpuUsPerReq: median(t.runs.map(x => x.cpuUsPerReq)),
    // Each process's share of the CPU, in the order primary (or master) first, in the last round.
    cpuShares: t.runs.at(-1)?.cpuShares ?? [],
    rssMb: Math.max(...t.runs.map(x => x.rssMb)),
    errors: sum(t.runs.map(x => x.errors)),
    machineCpuPct: median(t.runs.map(x => x.machineCpuPct)),
    originCpuPct: median(t.runs.map(x => x.originCpuPct))
  }))
  const find = (proxy: string, workers: number): (typeof summary)[number] | undefined => summary.find(s => s.proxy === proxy && s.workers === workers)
  const scaling = (s: (typeof summary)[number]): number => s.rps / (find(s.proxy, 1)?.rps ?? NaN)
  const placement = workersPlacement(cores)
  printTable(`Worker processes: plain HTTP proxying, 100-byte responses, ${CONNECTIONS} keep-alive connections, 10 ingresses, medians of ${ROUNDS} interleaved rounds of ${DURATION} s; CPU and RSS summed over all the proxy's processes`,
    ['proxy', 'workers', 'processes', 'req/s', 'scaling vs 1 worker', 'p50 ms', 'p99 ms', 'CPU µs/req', 'CPU split % (last round)', 'RSS MB', 'errors', `machine CPU % (of ${cores * 100})`, 'origin CPU %'],
    summary.map(s => [s.proxy, s.workers, s.processes === 1 ? '1' : `1 + ${s.processes - 1}`, fmt(s.rps), fmt(scaling(s), 2), fmt(s.p50, 2), fmt(s.p99, 2), fmt(s.cpuUsPerReq, 1), s.cpuShares.map(x => fmt(x * 100)).join('/'), fmt(s.rssMb, 1), s.errors, fmt(s.machineCpuPct), fmt(s.originCpuPct)]))
  const vsNginx = counts.flatMap(workers => {
    const [gw, nginx] = [find('ingressd', workers), find('nginx', workers)]
    return gw === undefined || nginx === undefined ? [] : [{ workers, rps: gw.rps / nginx.rps, p50: gw.p50 / nginx.p50, p99: gw.p99 / nginx.p99, cpuUsPerReq: gw.cpuUsPerReq / nginx.cpuUsPerReq, scaling: scaling(gw) / scaling(nginx) }]
  })
  if (vsNginx.length > 0) {
    printTable('Worker processes: ingressd as a ratio to nginx with the same number of workers',
      ['workers', 'req/s', 'p50', 'p99', 'CPU µs/req', 'scaling'],
      vsNginx.map(v => [v.workers, fmt(v.rps, 2), fmt(v.p50, 2), fmt(v.p99, 2), fmt(v.cpuUsPerReq, 2), fmt(v.scaling, 2)]))
  }
  process.stdout.write(`\nCores (${cores}): ${placement}.\n${warnings.map(w => `WARNING: ${w}\n`).join('')}`)
  results.workers = { rounds: ROUNDS, durationS: DURATION, connections: CONNECTIONS, cores, placement, summary: summary.map(s => ({ ...s, scaling: scaling(s) })), vsNginx, warnings }
}

interface SniResult { perSecond: number, p50: number, p99: number, wrongCertificate: number, non200: number, errors: number }

/**
 * TLS handshakes with SNI for `seconds`, `concurrency` connections at a time, cycling through
 * `names`: each connection sends one `Connection: close` request, which must answer 200; with
 * `ownCertificates`, the certificate served must name the host. Latencies are TCP connect plus handshake.
 */
async function sniLoad (address: string, names: string[], seconds: number, concurrency: number, ownCertificates: boolean): Promise<SniResult> {
  const { hostname, port } = new URL(address)
  const latencies: number[] = []
  const counts = { wrongCertificate: 0, non200: 0, errors: 0 }
  const until = Date.now() + seconds * 1000
  let next = 0
  const once = (servername: string): Promise<void> => new Promise(resolve => {
    const t0 = performance.now()
    let response = ''
    let failed = false
    const socket = tlsConnect({ host: hostname, port: Number(port), servername, rejectUnauthorized: false })
    socket.setEncoding('utf8')
    socket.setTimeout(10_000, () => socket.destroy(new Error('timeout')))
    socket.once('secureConnect', () => {
      latencies.push(performance.now() - t0)
      if (ownCertificates && !(socket.getPeerCertificate().subjectaltname ?? '').split(', ').includes(`DNS:${servername}`)) counts.wrongCertificate++
      socket.write(`GET / HTTP/1.1\r\nHost: ${servername}\r\nConnection: close\r\n\r\n`)
    })
    socket.on('data', (d: string) => { response += d })
    socket.once('error', () => { failed = true })
    socket.once('close', () => {
      if (failed) counts.errors++
      else if (!response.startsWith('HTTP/1.1 200')) counts.non200++
      resolve()
    })
  })
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (Date.now() < until) await once(names[next++ % names.length] as string)
  }))
  return { perSecond: latencies.length / seconds, p50: median(latencies), p99: pct(latencies, 99), ...counts }
}

/** wrk script spreading requests over hosts `${prefix}-${i}.example.com`. */
const HOSTS_SCRIPT = join(ROOT, 'bench/hosts.lua')
/** How many certificate names the `memory` scenario's TLS clients cycle through. */
const SNI_NAMES = 300

type Mem = { rssMb: number, hwmMb: number }
const memoryMb = (pid: number): Mem => { const s = procStats([pid]); return { rssMb: s.rssKb / 1024, hwmMb: s.hwmKb / 1024 } }

interface MemoryRun {
  gateway: string
  ingresses?: number
  certificates?: number
  applySecretsMs?: number
  applyIngressesMs?: number
  started: Mem
  loaded: Mem
  afterHttp: Mem
  /** After the HTTP and then the TLS traffic. */
  afterTraffic: Mem
  http: { hosts: number, rps: number, p99: number, errors: number }
  tls?: SniResult & { names: number }
}

/**
 * One ingressd with `ingresses` ingresses, the first `pool.length` of them with their own
 * certificate: memory after loading and after HTTP and TLS traffic. With one worker, one process
 * and one row; with several, a row for the primary, one for the largest worker in each column, and
 * one for the sum of every process.
 */
async function memoryRun (originPort: number, ingresses: number, pool: { cert: string, key: string }[], workers = 1): Promise<MemoryRun[]> {
  const certificates = pool.length
  const gw = await startIngressd({ INGRESSD_WORKERS: String(workers) }, workers === 1 ? 1 : null)
  const pids = processTree(gw.child.pid as number)
  const sample = (): Mem[] => pids.map(memoryMb)
  const started = sample()
  let t0 = performance.now()
  if (certificates > 0) await adminCall(gw.admin, 'POST', '/apply', tlsSecrets(pool))
  const applySecretsMs = certificates > 0 ? performance.now() - t0 : undefined
  t0 = performance.now()
  await adminCall(gw.admin, 'POST', '/apply', manifests(ingresses, originPort, 'app', certificates))
  const applyIngressesMs = performance.now() - t0
  const loaded = sample()
  // Plain HTTP over the hosts without TLS (plain HTTP to the others is only a redirect to HTTPS).
  const first = certificates < ingresses ? certificates : 0
  const http = await load(`${gw.http}/`, 'app-0.example.com', pids, { script: { file: HOSTS_SCRIPT, args: ['app', String(first), String(ingresses - first)] } })
  const afterHttp = sample()
  // TLS with SNI to the first names: each has its own certificate, or with none the default one.
  const names = Array.from({ length: Math.min(SNI_NAMES, certificates > 0 ? certificates : ingresses) }, (_, i) => `app-${i}.example.com`)
  const tls = await sniLoad(gw.https, names, DURATION, 16, certificates > 0)
  const afterTraffic = sample()
  await stop(gw.child)
  rmSync(gw.dir, { recursive: true, force: true })
  const common = { ingresses, certificates, applySecretsMs, applyIngressesMs, http: { hosts: ingresses - first, rps: http.rps, p99: http.p99, errors: http.errors }, tls: { names: names.length, ...tls } }
  const row = (gateway: string, pick: (phase: Mem[]) => Mem): MemoryRun => ({ gateway, ...common, started: pick(started), loaded: pick(loaded), afterHttp: pick(afterHttp), afterTraffic: pick(afterTraffic) })
  if (workers === 1) return [row('ingressd', phase => phase[0] as Mem)]
  const largest = (phase: Mem[]): Mem => ({ rssMb: Math.max(...phase.slice(1).map(m => m.rssMb)), hwmMb: Math.max(...phase.slice(1).map(m => m.hwmMb)) })
  return [
    row(`ingressd ${workers} workers: primary`, phase => phase[0] as Mem),
    row(`ingressd ${workers} workers: largest worker`, largest),
    row(`ingressd ${workers} workers: all ${pids.length} processes`, phase => ({ rssMb: sum(phase.map(m => m.rssMb)), hwmMb: sum(phase.map(m => m.hwmMb)) }))
  ]
}

async function benchMemory (originPort: number): Promise<void> {
  // One certificate per host app-i: the hosts `manifests()` names.
  const pool = await certificatePool(1000, i => `app-${i}.example.com`)
  const cores = CORES
  const runs = [
    ...await memoryRun(originPort, 10, []),
    ...await memoryRun(originPort, 10_000, pool),
    // The default process model on this machine (one data-plane worker per core), when it has several.
    ...cores > 1 ? await memoryRun(originPort, 10, [], cores) : []
  ]
  // The reference: the minimal Fastify proxy under the same plain HTTP load (it routes no host, so any will do).
  const minimal = await startMinimalFastify(originPort)
  const pid = minimal.child.pid as number
  const started = memoryMb(pid)
  const http = await load(minimal.url, 'app-0.example.com', [pid], { script: { file: HOSTS_SCRIPT, args: ['app', '0', '10'] } })
  const afterHttp = memoryMb(pid)
  const reference: MemoryRun = { gateway: 'fastify + @fastify/http-proxy', started, loaded: started, afterHttp, afterTraffic: afterHttp, http: { hosts: 10, rps: http.rps, p99: http.p99, errors: http.errors } }
  runs.push(reference)
  await stop(minimal.child)
  // The same load for all: plain HTTP (the minimal proxy serves no TLS).
  const label = (r: MemoryRun): string => r.ingresses === undefined ? r.gateway : `${r.gateway}, ${r.ingresses} ingresses, ${r.certificates ?? 0} certificates`
  printTable('Resident memory of the gateway, MB (VmRSS and its high-water mark VmHWM from /proc; ingressd with INGRESSD_WORKERS=1 is one process; with more, a primary (admin API, store) and that many data-plane workers, shown apart and summed). Target: under 250 at 10,000 ingresses and 1,000 certificates; at 10 ingresses, no higher than the minimal Fastify proxy',
    ['gateway', 'started RSS', 'loaded RSS', 'loaded HWM', 'after HTTP RSS', 'after HTTP HWM', 'HTTP HWM vs minimal Fastify', 'after HTTP + TLS RSS', 'after HTTP + TLS HWM'],
    runs.map(r => [label(r), fmt(r.started.rssMb, 1), fmt(r.loaded.rssMb, 1), fmt(r.loaded.hwmMb, 1), fmt(r.afterHttp.rssMb, 1), fmt(r.afterHttp.hwmMb, 1), fmt(r.afterHttp.hwmMb / reference.afterHttp.hwmMb, 2), r.tls === undefined ? '-' : fmt(r.afterTraffic.rssMb, 1), r.tls === undefined ? '-' : fmt(r.afterTraffic.hwmMb, 1)]))
  // The traffic figures once per gateway (the rows of one cluster share them).
  printTable(`Memory scenario: loading (one POST /apply of the Secrets, then one of the ingresses) and traffic (${DURATION} s of plain HTTP over ${CONNECTIONS} keep-alive connections, one host after another; then ${DURATION} s of TLS handshakes with SNI, 16 at a time, one request each)`,
    ['gateway', 'apply Secrets ms', 'apply ingresses ms', 'HTTP hosts', 'HTTP req/s', 'HTTP p99 ms', 'HTTP errors', 'SNI names', 'handshakes/s', 'handshake p99 ms', 'wrong certificate', 'TLS non-200', 'TLS errors'],
    runs.filter(r => !r.gateway.includes(' workers: ') || r.gateway.endsWith(': primary')).map(r => [label(r).replace(': primary', ''), fmt(r.applySecretsMs ?? NaN), fmt(r.applyIngressesMs ?? NaN), r.http.hosts, fmt(r.http.rps), fmt(r.http.p99, 2), r.http.errors, r.tls?.names ?? '-', fmt(r.tls?.perSecond ?? NaN), fmt(r.tls?.p99 ?? NaN, 2), r.tls?.wrongCertificate ?? '-', r.tls?.non200 ?? '-', r.tls?.errors ?? '-']))
  results.memory = { durationS: DURATION, connections: CONNECTIONS, sniNames: SNI_NAMES, runs }
}

/**
 * A throwaway PostgreSQL for the `cluster` scenario, as the tests make one (test/helpers/postgres.ts:
 * initdb as the postgres user in a temp dir, a free port), but durable: the tests' fsync=off would
 * flatter PostgreSQL beside SQLite, which syncs every commit. When PostgreSQL is not installed,
 * the reason instead (the scenario is skipped with it).
 */
async function benchPostgres (teardowns: (() => unknown)[]): Promise<PostgresCluster | string> {
  try {
    findPostgresBin()
  } catch (err) {
    return (err as Error).message
  }
  const pgc = await startPrivatePostgres({ teardown: fn => { teardowns.push(fn) } })
  writeFileSync(join(pgc.dir, 'data', 'postgresql.conf'), `${readFileSync(join(pgc.dir, 'data', 'postgresql.conf'), 'utf8')}\n# ingressd benchmark: durable commits, as SQLite's synchronous=FULL\nfsync = on\nfull_page_writes = on\n`)
  await pgc.pgCtl('stop-fast')
  await pgc.pgCtl('start')
  // pg_ctl ran from this process, pinned to core 0: let the postmaster (and the backends it forks) float like the nodes.
  if (HAS_TASKSET) {
    const postmaster = Number(readFileSync(join(pgc.dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0])
    for (const pid of processTree(postmaster)) spawnSync('taskset', ['-a', '-p', '-c', `0-${CORES - 1}`, String(pid)], { stdio: 'ignore' })
  }
  return pgc
}

/** Milliseconds from `since` to the first 200 for `host` on `base` (polled every 2 ms); NaN after `timeoutMs`. */
async function firstOk (base: string, host: string, since: number, timeoutMs = 20_000): Promise<number> {
  for (;;) {
    const res = await request(`${base}/`, { headers: { host } })
    await res.body.text()
    const now = performance.now()
    if (res.statusCode === 200) return now - since
    if (now - since > timeoutMs) return NaN
    await new Promise(resolve => setTimeout(resolve, 2))
  }
}

/** Three nodes (one data-plane process each, not pinned) on a new database of `pgc`. */
async function startNodes (pgc: PostgresCluster): Promise<Ingressd[]> {
  const url = await pgc.createDatabase()
  const nodes: Ingressd[] = []
  // One after another: the first creates the schema (the others would wait on its advisory lock anyway).
  for (const name of ['node-a', 'node-b', 'node-c']) nodes.push(await startIngressd({ INGRESSD_POSTGRES_URL: url, INGRESSD_NODE_NAME: name, INGRESSD_WORKERS: '1' }, null))
  return nodes
}

async function stopAll (gws: Ingressd[]): Promise<void> {
  await Promise.all(gws.map(async gw => { await stop(gw.child); rmSync(gw.dir, { recursive: true, force: true }) }))
}

async function benchCluster (originPort: number): Promise<void> {
  const teardowns: (() => unknown)[] = []
  try {
    const pgc = await benchPostgres(teardowns)
    if (typeof pgc === 'string') {
      process.stdout.write(`\ncluster scenario skipped: ${pgc}\n`)
      results.cluster = { skipped: pgc }
      return
    }
    const out: Record<string, unknown> = {}
    const ingress = (name: string, host: string): unknown => ({ apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name }, spec: { rules: [{ host, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'origin', port: { number: 80 } } } }] } }] } })

    // (a) From a write returning on node A to the first 200 on nodes B and C.
    const liveRows: (string | number)[][] = []
    for (const n of [100, 10_000]) {
      const nodes = await startNodes(pgc)
      const [a, b, c] = nodes as [Ingressd, Ingressd, Ingressd]
      let t0 = performance.now()
      await adminCall(a.admin, 'POST', '/apply', manifests(n, originPort))
      const applyMs = performance.now() - t0
      // Every node serves the whole table before the writes are timed.
      const [loadedB, loadedC] = await Promise.all([b, c].map(async gw => await firstOk(gw.http, `app-${n - 1}.example.com`, t0, 60_000)))
      const writeMs: number[] = []
      const onB: number[] = []
      const onC: number[] = []
      const onBoth: number[] = []
      let timedOut = 0
      for (let i = 0; i < 50; i++) {
        const host = `live-${i}.example.com`
        t0 = performance.now()
        await adminCall(a.admin, 'POST', '/apis/networking.k8s.io/v1/namespaces/default/ingresses', ingress(`live-${i}`, host))
        const returned = performance.now()
        writeMs.push(returned - t0)
        const [mb, mc] = await Promise.all([firstOk(b.http, host, returned), firstOk(c.http, host, returned)]) as [number, number]
        if (Number.isNaN(mb) || Number.isNaN(mc)) timedOut++
        onB.push(mb)
        onC.push(mc)
        onBoth.push(Math.max(mb, mc))
      }
      await stopAll(nodes)
      out[`live${n}`] = { ingresses: n, applyMs, loadedOnB: loadedB, loadedOnC: loadedC, writeP50: median(writeMs), writeP99: pct(writeMs, 99), bP50: median(onB), bP99: pct(onB, 99), cP50: median(onC), cP99: pct(onC, 99), bothP50: median(onBoth), bothP99: pct(onBoth, 99), timedOut }
      liveRows.push([`${n.toLocaleString('en-US')} ingresses`, fmt(applyMs), fmt(Math.max(loadedB ?? NaN, loadedC ?? NaN)), fmt(median(writeMs), 1), fmt(pct(writeMs, 99), 1), fmt(median(onB), 1), fmt(pct(onB, 99), 1), fmt(median(onC), 1), fmt(pct(onC, 99), 1), fmt(median(onBoth), 1), fmt(pct(onBoth, 99), 1), timedOut])
    }
    printTable('Cluster mode: three nodes (one process each, not pinned) on one PostgreSQL (fsync on); writes to node A, then the first 200 for the new host on nodes B and C (50 creates, one after another; ms)',
      ['stored', 'one /apply of them on A', 'until B and C serve them', 'write on A p50', 'write on A p99', 'return → 200 on B p50', 'B p99', 'on C p50', 'C p99', 'on both p50', 'both p99', 'not in 20 s'], liveRows)

    // (b) One /apply of 1,000 ingresses with their services, through PostgreSQL and on an embedded gateway.
    const bundle = [...manifests(0, originPort), ...manifests(1000, originPort).slice(2).flatMap((ing, i) => [
      { apiVersion: 'v1', kind: 'Service', metadata: { name: `svc-${i}` }, spec: { ports: [{ port: 80, targetPort: originPort }] } },
      ing
    ])]
    const applyRows: (string | number)[][] = []
    const nodes = await startNodes(pgc)
    const [a, b, c] = nodes as [Ingressd, Ingressd, Ingressd]
    let t0 = performance.now()
    await adminCall(a.admin, 'POST', '/apply', bundle)
    const clusterMs = performance.now() - t0
    const everywhere = Math.max(...await Promise.all([b, c].map(async gw => await firstOk(gw.http, 'app-999.example.com', t0, 60_000))))
    await stopAll(nodes)
    const embedded = await startIngressd({}, null)
    t0 = performance.now()
    await adminCall(embedded.admin, 'POST', '/apply', bundle)
    const embeddedMs = performance.now() - t0
    await stopAll([embedded])
    applyRows.push(
      ['cluster: node A, through PostgreSQL (B and C running)', bundle.length, fmt(clusterMs), fmt(bundle.length / clusterMs * 1000), fmt(everywhere)],
      ['embedded: SQLite only', bundle.length, fmt(embeddedMs), fmt(bundle.length / embeddedMs * 1000), '-']
    )
    out.apply = { objects: bundle.length, clusterMs, clusterServedEverywhereMs: everywhere, embeddedMs }
    printTable('Cluster mode: one POST /apply of 1,000 ingresses with their 1,000 services (returns once the node written to serves it)',
      ['gateway', 'objects', 'total ms', 'objects/s', 'until B and C serve it, ms'], applyRows)

    // (c) The data plane never asks PostgreSQL: the plain proxy load on a cluster node and on an
    // embedded gateway, each alone on core 1, interleaved; the ratio is the median of each round's.
    const url = await pgc.createDatabase()
    const clusterNode = await startIngressd({ INGRESSD_POSTGRES_URL: url, INGRESSD_NODE_NAME: 'proxy-node' })
    const plain = await startIngressd()
    for (const gw of [clusterNode, plain]) await adminCall(gw.admin, 'POST', '/apply', manifests(10, originPort))
    const proxyRuns: Record<'cluster' | 'embedded', LoadResult[]> = { cluster: [], embedded: [] }
    for (let r = 0; r < ROUNDS; r++) {
      proxyRuns.embedded.push(await load(`${plain.http}/`, 'app-0.example.com', [plain.child.pid as number]))
      proxyRuns.cluster.push(await load(`${clusterNode.http}/`, 'app-0.example.com', [clusterNode.child.pid as number]))
    }
    await stopAll([clusterNode, plain])
    const ratio = (pick: (x: LoadResult) => number): number => median(proxyRuns.cluster.map((x, i) => pick(x) / pick(proxyRuns.embedded[i] as LoadResult)))
    const proxyRows = (['embedded', 'cluster'] as const).map(k => {
      const v = proxyRuns[k]
      return [k === 'cluster' ? 'cluster node (PostgreSQL mode)' : 'embedded (SQLite)', fmt(median(v.map(x => x.rps))), k === 'cluster' ? fmt(ratio(x => x.rps), 3) : '1.000', fmt(median(v.map(x => x.p99)), 2), fmt(median(v.map(x => x.cpuUsPerReq)), 1), k === 'cluster' ? fmt(ratio(x => x.cpuUsPerReq), 3) : '1.000', v.reduce((a, x) => a + x.errors, 0)]
    })
    out.proxy = { rounds: ROUNDS, rpsVsEmbedded: ratio(x => x.rps), cpuVsEmbedded: ratio(x => x.cpuUsPerReq) }
    printTable(`Cluster mode: plain HTTP proxying on a cluster node beside an embedded gateway (10 ingresses, ${CONNECTIONS} keep-alive connections, ${ROUNDS} interleaved rounds of ${DURATION} s; "vs embedded" is the median of each round's ratio)`,
      ['gateway', 'req/s', 'req/s vs embedded', 'p99 ms', 'CPU µs/req', 'CPU vs embedded', 'errors'], proxyRows)
    results.cluster = out
  } finally {
    for (const fn of teardowns.reverse()) await fn()
  }
}

try {
  process.stdout.write(`ingressd benchmark: ${new Date().toISOString()}, node ${process.version}, ${CORES} cores, ${HAS_WRK ? 'wrk' : 'no wrk'}, ${NGINX ?? 'no nginx'}, ${HAS_TASKSET ? 'load generator, origin and this runner (which reads the access logs) on core 0, proxies on core 1 (in the workers scenario: proxies not pinned)' : 'no taskset: processes not pinned'}\n`)
  const originPort = await startOrigin()
  if (ONLY.has('compile')) benchCompile()
  if (ONLY.has('certs')) await benchCerts()
  if (ONLY.has('admin')) await benchAdmin(originPort)
  if (ONLY.has('live')) await benchLive(originPort)
  if (ONLY.has('proxy')) await benchProxy(originPort)
  if (ONLY.has('policies')) await benchPolicies(originPort)
  if (ONLY.has('https')) await benchHttps(originPort)
  if (ONLY.has('websocket')) await benchWebSocket()
  if (ONLY.has('scale')) await benchScale(originPort)
  if (ONLY.has('workers')) await benchWorkers(originPort)
  if (ONLY.has('memory')) await benchMemory(originPort)
  if (ONLY.has('cluster')) await benchCluster(originPort)
  if (opts.json !== undefined) writeFileSync(opts.json, JSON.stringify(results, null, 2) + '\n')
} finally {
  // Each child with its own children (a cluster primary's workers, nginx's workers).
  for (const c of children) if (c.exitCode === null && c.pid !== undefined) treeKiller(c.pid)()
}
