/**
 * The real `ingressd` command as a child process (test/helpers/cli.ts under tsx): for what only a
 * separate process can show, such as start-up refusals, exit codes and surviving SIGKILL.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const CLI = fileURLToPath(new URL('./cli.ts', import.meta.url))
const ROOT = fileURLToPath(new URL('../../', import.meta.url))
/** The shipped command: the esbuild bundle `npm run build` writes to dist/bundle/ (test/operations/bundle.test.ts builds it). */
const BUNDLED_CLI = fileURLToPath(new URL('../../bin/ingressd.js', import.meta.url))

/** Which program runs: src/ under tsx (the default), or the built bundle. */
export interface CliOptions { bundle?: boolean }

export interface CliRun {
  child: ChildProcess
  /** Every stdout line so far (the JSON log lines of `serve`). */
  lines: string[]
  stderr: () => string
  /** Settles when the process has exited. */
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
}

/**
 * Spawns `ingressd <args>` with `env` on top of a copy of this process's environment from which
 * every INGRESSD_ variable is removed, so only what the test sets counts (and INGRESSD_WORKERS=1
 * unless the test sets it).
 */
export function runCli (args: string[], env: Record<string, string> = {}, options: CliOptions = {}): CliRun {
  // The bundle runs without tap's coverage hooks (NODE_OPTIONS): covering it means nothing, and
  // writing its coverage on exit took over a minute.
  const skip = (k: string): boolean => k.startsWith('INGRESSD_') || (options.bundle === true && (k === 'NODE_OPTIONS' || k === 'NODE_V8_COVERAGE'))
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !skip(k)))
  // One process unless the test asks for workers (the default, one per core, would fork many).
  const child = spawn(process.execPath, options.bundle === true ? [BUNDLED_CLI, ...args] : ['--import', 'tsx', CLI, ...args], { cwd: ROOT, env: { ...base, INGRESSD_WORKERS: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: string[] = []
  let partial = ''
  let stderr = ''
  child.stdout?.setEncoding('utf8')
  child.stdout?.on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n')
    partial = parts.pop() ?? ''
    lines.push(...parts)
  })
  child.stderr?.setEncoding('utf8')
  child.stderr?.on('data', (chunk: string) => { stderr += chunk })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>(resolve => {
    child.on('close', (code, signal) => {
      if (partial !== '') lines.push(partial)
      partial = ''
      resolve({ code, signal })
    })
  })
  return { child, lines, stderr: () => stderr, exited }
}

export interface ChildGateway extends CliRun {
  /** `http://host:port` (or `https://` with INGRESSD_ADMIN_TLS) of the admin API, from the start-up log line. */
  admin: string
  /** The start-up log line, parsed. */
  started: Record<string, unknown>
}

/** Runs `ingressd serve` and resolves once it logs that it serves; rejects if it exits first. */
export async function startChildGateway (env: Record<string, string>, args: string[] = [], options: CliOptions = {}): Promise<ChildGateway> {
  const run = runCli(['serve', ...args], env, options)
  const started = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const look = (): boolean => {
      for (const line of run.lines) {
        let parsed: Record<string, unknown>
        try { parsed = JSON.parse(line) } catch { continue }
        if (typeof parsed.msg === 'string' && parsed.msg.startsWith('ingressd serving')) {
          resolve(parsed)
          return true
        }
      }
      return false
    }
    const onData = (): void => { if (look()) run.child.stdout?.off('data', onData) }
    run.child.stdout?.on('data', onData)
    run.exited.then(({ code, signal }) => {
      if (!look()) reject(new Error(`ingressd exited (code ${String(code)}, signal ${String(signal)}) before serving: ${run.stderr()}${run.lines.join('\n')}`))
    }, reject)
  })
  return { ...run, admin: typeof started.adminUrl === 'string' ? started.adminUrl : `http://${String(started.admin)}`, started }
}

/** Whether a process (a gateway's worker, say) still runs. */
export function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
