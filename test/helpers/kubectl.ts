/**
 * The real kubectl binaries for tests: every `kubectl.1.NN` beside the `kubectl` on PATH (Google
 * Cloud SDK's packaging installs 1.27 to 1.33 that way), each run with its own kubeconfig and
 * discovery cache, so versions and tests never share state.
 */
import { execFile, execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'

/** One kubectl binary: its minor version (`1.27`) and path. */
export interface KubectlBinary {
  version: string
  path: string
}

/** The minor number of a binary's version (`27` for `1.27`). */
export function minorOf (binary: KubectlBinary): number {
  return Number(binary.version.split('.')[1])
}

function onPath (name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, name)
    if (dir !== '' && existsSync(candidate)) return candidate
  }
  return undefined
}

/** The minor version (`1.20`) a kubectl binary reports, or undefined when it does not run. */
function reportedVersion (path: string): string | undefined {
  try {
    const out = execFileSync(path, ['version', '--client', '-o', 'json'], { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] })
    const info = (JSON.parse(out) as { clientVersion?: { major?: string, minor?: string } }).clientVersion
    const minor = /^\d+/.exec(info?.minor ?? '')?.[0]
    return info?.major === undefined || minor === undefined ? undefined : `${info.major}.${minor}`
  } catch {
    return undefined
  }
}

/**
 * Every versioned kubectl found (in the folder of the `kubectl` on PATH, its link target's
 * folder, and on PATH), oldest first, and the plain `kubectl` on PATH too when its version is
 * not among them (Debian's kubernetes-client is kubectl 1.20: what CI can install);
 * `INGRESSD_TEST_KUBECTL_VERSIONS=1.27,1.33` narrows them.
 */
export function kubectlBinaries (): KubectlBinary[] {
  const dirs = new Set<string>()
  const plain = onPath('kubectl')
  if (plain !== undefined) {
    dirs.add(dirname(plain))
    try { dirs.add(dirname(realpathSync(plain))) } catch {}
  }
  for (const dir of (process.env.PATH ?? '').split(delimiter)) if (dir !== '') dirs.add(dir)
  const found = new Map<string, string>()
  for (const dir of dirs) {
    let names: string[]
    try { names = readdirSync(dir) } catch { continue }
    for (const name of names) {
      const m = /^kubectl\.(1\.\d+)$/.exec(name)
      if (m !== null && !found.has(m[1] as string)) found.set(m[1] as string, join(dir, name))
    }
  }
  if (plain !== undefined) {
    const version = reportedVersion(plain)
    if (version !== undefined && !found.has(version)) found.set(version, plain)
  }
  const wanted = process.env.INGRESSD_TEST_KUBECTL_VERSIONS?.split(',').map(s => s.trim()).filter(s => s !== '')
  return [...found.entries()]
    .filter(([version]) => wanted === undefined || wanted.includes(version))
    .sort(([a], [b]) => Number(a.split('.')[1]) - Number(b.split('.')[1]))
    .map(([version, path]) => ({ version, path }))
}

/** Why kubectl tests cannot run here, or undefined when at least one binary was found. */
export function noKubectlReason (binaries: KubectlBinary[]): string | undefined {
  return binaries.length > 0 ? undefined : 'no kubectl on this machine (Debian\'s kubernetes-client installs kubectl 1.20; the Google Cloud SDK\'s "kubectl" package installs kubectl.1.27 to kubectl.1.33 beside it): kubectl tests skipped'
}

export interface KubectlResult {
  code: number
  stdout: string
  stderr: string
}

/** A kubectl bound to one server: its own kubeconfig and discovery cache, removed at teardown. */
export interface Kubectl {
  version: string
  kubeconfig: string
  run: (args: string[], opts?: { env?: Record<string, string>, input?: string, timeoutMs?: number }) => Promise<KubectlResult>
}

interface Closable { teardown: (fn: () => void) => void }

/** The kubeconfig kubectl reads to reach `server`. */
export function kubeconfigFor (server: string, opts: { token?: string, caPem?: string, namespace?: string } = {}): string {
  const cluster = opts.caPem === undefined
    ? `    server: ${server}\n`
    : `    server: ${server}\n    certificate-authority-data: ${Buffer.from(opts.caPem).toString('base64')}\n`
  // Over https with no credentials at all kubectl stops at a "Please enter Username" prompt.
  const user = opts.token !== undefined ? `  user:\n    token: ${opts.token}\n` : server.startsWith('https:') ? '  user:\n    username: ingressd\n' : '  user: {}\n'
  return `apiVersion: v1\nkind: Config\nclusters:\n- name: ingressd\n  cluster:\n${cluster}users:\n- name: ingressd\n${user}contexts:\n- name: ingressd\n  context:\n    cluster: ingressd\n    user: ingressd\n    namespace: ${opts.namespace ?? 'default'}\ncurrent-context: ingressd\n`
}

/** Binds `binary` to `server` (a kubeconfig written to a temporary folder, or the given one). */
export function kubectlFor (t: Closable, binary: KubectlBinary, server: string, opts: { token?: string, caPem?: string, kubeconfig?: string } = {}): Kubectl {
  const dir = mkdtempSync(join(tmpdir(), `ingressd-kubectl-${binary.version}-`))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const kubeconfig = join(dir, 'kubeconfig')
  writeFileSync(kubeconfig, opts.kubeconfig ?? kubeconfigFor(server, opts))
  const run: Kubectl['run'] = async (args, runOpts = {}) => await new Promise(resolve => {
    const child = execFile(binary.path, args, {
      cwd: dir,
      timeout: runOpts.timeoutMs ?? 30_000,
      env: { PATH: process.env.PATH ?? '', HOME: dir, KUBECONFIG: kubeconfig, KUBECACHEDIR: join(dir, 'cache'), ...runOpts.env }
    }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1
      resolve({ code, stdout, stderr })
    })
    if (runOpts.input !== undefined) child.stdin?.end(runOpts.input)
  })
  return { version: binary.version, kubeconfig, run }
}
