/**
 * Runs the `ingressd` command for CLI tests: in-process through main() with captured output, or
 * as a real child process (for stdin and exit codes) through test/helpers/cli.ts.
 */
import { spawn } from 'node:child_process'
import { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { main } from '../../src/cli/main.js'

const CLI = fileURLToPath(new URL('../helpers/cli.ts', import.meta.url))
const ROOT = fileURLToPath(new URL('../../', import.meta.url))

export interface RunResult {
  code: number
  stdout: string
  stderr: string
}

export interface RunOptions {
  /** What stdin holds (for `-f -`). */
  stdin?: string
  /** The environment the command sees; nothing from this process's own (no stray INGRESSD_*). */
  env?: Record<string, string>
  now?: Date
}

/** Runs `ingressd <args>` in this process, capturing what it writes. */
export async function run (args: string[], opts: RunOptions = {}): Promise<RunResult> {
  let stdout = ''
  let stderr = ''
  const code = await main(args, {
    stdout: { write: (s: string) => { stdout += s } },
    stderr: { write: (s: string) => { stderr += s } },
    stdin: Readable.from([Buffer.from(opts.stdin ?? '', 'utf8')]),
    env: opts.env ?? {},
    ...(opts.now === undefined ? {} : { now: () => opts.now as Date })
  })
  return { code, stdout, stderr }
}

/** Runs `ingressd <args>` as a child process with `stdin` piped in. */
export async function spawnCli (args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('INGRESSD_')))
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], { cwd: ROOT, env: { ...base, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8')
  child.stderr.setEncoding('utf8')
  child.stdout.on('data', (chunk: string) => { stdout += chunk })
  child.stderr.on('data', (chunk: string) => { stderr += chunk })
  child.stdin.end(opts.stdin ?? '')
  const code = await new Promise<number>(resolve => child.on('close', c => resolve(c ?? -1)))
  return { code, stdout, stderr }
}

/** A client command against a test gateway: `--server` added, and `token` when given. */
export function client (admin: string, token?: string): (...args: string[]) => Promise<RunResult> {
  return async (...args) => await run([...args, '--server', admin, ...(token === undefined ? [] : ['--token', token])])
}
