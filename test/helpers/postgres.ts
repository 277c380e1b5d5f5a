/**
 * Real PostgreSQL for tests: throwaway clusters made with `initdb` in temp folders.
 *
 * - `sharedPostgres()`: one cluster per tap run, shared by every test file (tap runs files in
 *   separate processes whose common parent is the runner); each test takes its own database from
 *   it with `createDatabase()`. The first file that asks starts it, under a lock, in a folder named
 *   after the runner's pid, so a run without a PostgreSQL test pays nothing and does not need
 *   PostgreSQL installed. The tap `before`/`after` hooks (.taprc → test/helpers/postgres-global.ts)
 *   sweep what dead runs left and remove the cluster before tap exits.
 * - `startPrivatePostgres(t)`: a cluster of the test's own, for tests that stop, crash or restart
 *   PostgreSQL; removed at the test's teardown.
 *
 * Every cluster folder is named `ingressd-pg-*` in the temp dir and holds `owner.json` (the process
 * whose death makes it garbage). A detached watchdog shell per folder removes it, postmaster
 * included, if its owner dies without cleaning up (Ctrl-C, a tap timeout): pg_ctl starts the
 * postmaster in a session of its own, so no signal from the terminal or tap ever reaches it.
 */
import { execFile, spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, appendFileSync, openSync, closeSync, unlinkSync } from 'node:fs'
import { createServer } from 'node:net'
import { delimiter, join } from 'node:path'
import { tmpdir } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'

/** What `pgCtl` can do to a private cluster. */
export type PgCtlAction = 'stop-fast' | 'stop-immediate' | 'start'

export interface PostgresCluster {
  /** `postgres://ingressd@127.0.0.1:<port>/postgres`: the superuser on the maintenance database. */
  url: string
  /** The same as `url`, as a `pg.Client`/`pg.Pool` config. */
  admin: { host: string, port: number, user: string, database: string }
  host: string
  port: number
  /** The cluster's temp folder (data in `data/`, server log in `postgres.log`). */
  dir: string
  /** Creates an empty database (default name `ingressd_<random>`) and returns its URL. */
  createDatabase: (name?: string) => Promise<string>
  /**
   * Stops (`-m fast` or `-m immediate`, i.e. a crash) or starts the cluster, on the same port.
   * Only private clusters allow it: the shared one serves other test files at the same time.
   */
  pgCtl: (action: PgCtlAction) => Promise<void>
}

interface Teardownable { teardown: (fn: () => unknown) => void }

interface Owner { pid: number, start?: string, watchdog?: number }

interface ClusterInfo { port: number, bin: string }

const HOST = '127.0.0.1'
const SUPERUSER = 'ingressd'
const PREFIX = 'ingressd-pg-'
const isRoot = process.getuid?.() === 0

/** The folder of the shared cluster of the tap run whose runner process is `runnerPid`. */
export function sharedRunDir (runnerPid: number): string {
  return join(tmpdir(), `${PREFIX}run-${runnerPid}`)
}

let binDir: string | undefined

/**
 * The directory holding initdb, pg_ctl and postgres (15 or newer). Debian keeps them off PATH in
 * /usr/lib/postgresql/<major>/bin; `INGRESSD_PG_BIN` overrides the search.
 */
export function findPostgresBin (): string {
  if (binDir !== undefined) return binDir
  const candidates: string[] = []
  if (process.env.INGRESSD_PG_BIN !== undefined && process.env.INGRESSD_PG_BIN !== '') candidates.push(process.env.INGRESSD_PG_BIN)
  const debian = '/usr/lib/postgresql'
  if (existsSync(debian)) {
    const majors = readdirSync(debian).filter(v => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a))
    candidates.push(...majors.map(v => join(debian, v, 'bin')))
  }
  candidates.push(...(process.env.PATH ?? '').split(delimiter).filter(p => p !== ''))
  const found = candidates.find(dir => ['initdb', 'pg_ctl', 'postgres'].every(f => existsSync(join(dir, f))))
  if (found === undefined) {
    throw new Error('PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: install them with ' +
      '`apt-get install postgresql` (.ci/run does), or set INGRESSD_PG_BIN to the directory holding them')
  }
  const version = spawnSync(join(found, 'postgres'), ['--version'], { encoding: 'utf8' }).stdout ?? ''
  const major = Number(/\(PostgreSQL\)\s+(\d+)/.exec(version)?.[1] ?? 0)
  if (major < 15) throw new Error(`PostgreSQL 15 or newer needed, found "${version.trim()}" in ${found}: apt-get install postgresql`)
  if (isRoot && spawnSync('id', ['-u', 'postgres']).status !== 0) {
    throw new Error('PostgreSQL refuses to run as root and there is no `postgres` user to run it as: apt-get install postgresql creates it')
  }
  binDir = found
  return found
}

/** As root, a command line run as `postgres` (PostgreSQL refuses root); otherwise as it is. */
function asPostgres (file: string, args: string[]): [string, string[]] {
  return isRoot ? ['runuser', ['-u', 'postgres', '--', file, ...args]] : [file, args]
}

async function run (file: string, args: string[], cwd: string): Promise<void> {
  const [cmd, argv] = asPostgres(file, args)
  await new Promise<void>((resolve, reject) => {
    execFile(cmd, argv, { cwd, timeout: 90_000 }, (err, stdout, stderr) => {
      if (err === null) resolve()
      else reject(new Error(`${[file, ...args].join(' ')} failed: ${err.message.trim()}\n${stdout}${stderr}`))
    })
  })
}

/** A folder the server user can own: PostgreSQL wants its data and socket dirs to be its own. */
function giveToPostgres (dir: string): void {
  if (isRoot) chownSync(dir, pgIds().uid, pgIds().gid)
}

let ids: { uid: number, gid: number } | undefined
function pgIds (): { uid: number, gid: number } {
  if (ids === undefined) {
    const uid = Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim())
    const gid = Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim())
    ids = { uid, gid }
  }
  return ids
}

/** The kernel's start time of a process: with the pid, it tells a live owner from a reused pid. */
function processStart (pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
  } catch {
    return undefined
  }
}

function alive (owner: Owner): boolean {
  try {
    process.kill(owner.pid, 0)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  return owner.start === undefined || processStart(owner.pid) === owner.start
}

function readOwner (dir: string): Owner | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, 'owner.json'), 'utf8')) as Owner
  } catch {
    return undefined
  }
}

/*
 * Runs detached (its own session, stdio closed) so that nothing that kills the owner kills it too.
 * SIGQUIT is PostgreSQL's immediate shutdown; the cmdline check keeps a stale postmaster.pid whose
 * pid was reused from making it signal a stranger.
 */
const WATCHDOG = `
owner=$1; dir=$2
while kill -0 "$owner" 2>/dev/null && [ -d "$dir" ]; do sleep 0.5; done
[ -d "$dir" ] || exit 0
pm=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null)
if [ -n "$pm" ] && tr '\\0' ' ' < "/proc/$pm/cmdline" 2>/dev/null | grep -qF -- "-D $dir/data"; then
  kill -QUIT "$pm"
  i=0; while kill -0 "$pm" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
fi
rm -rf "$dir"
`

/** Writes the folder's owner and starts its watchdog. */
function claim (dir: string, ownerPid: number): void {
  const child = spawn('sh', ['-c', WATCHDOG, 'ingressd-pg-watchdog', String(ownerPid), dir], { detached: true, stdio: 'ignore' })
  child.unref()
  const owner: Owner = { pid: ownerPid, start: processStart(ownerPid), watchdog: child.pid }
  writeFileSync(join(dir, 'owner.json.tmp'), JSON.stringify(owner))
  renameSync(join(dir, 'owner.json.tmp'), join(dir, 'owner.json'))
}

/** Immediate shutdown of a cluster folder's postmaster, if one runs, and waits for it to exit. */
function killPostmasterSync (dir: string): void {
  let pid: number
  try {
    pid = Number(readFileSync(join(dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0])
  } catch {
    return
  }
  let cmdline = ''
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ')
  } catch {
    return
  }
  if (!cmdline.includes(`-D ${join(dir, 'data')}`)) return
  try {
    process.kill(pid, 'SIGQUIT')
  } catch {
    return
  }
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    try {
      process.kill(pid, 0)
    } catch {
      return
    }
    spawnSync('sleep', ['0.05'])
  }
}

/** Removes a cluster folder now: postmaster, files, watchdog. Synchronous so exit handlers can use it. */
function destroySync (dir: string): void {
  const owner = readOwner(dir)
  killPostmasterSync(dir)
  rmSync(dir, { recursive: true, force: true })
  if (owner?.watchdog !== undefined && isWatchdogOf(owner.watchdog, dir)) {
    try {
      process.kill(owner.watchdog)
    } catch {}
  }
}

/** Whether `pid` is still the watchdog of `dir`: the pid of a long-dead one may belong to a stranger. */
function isWatchdogOf (pid: number, dir: string): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
    return argv.includes('ingressd-pg-watchdog') && argv.includes(dir)
  } catch {
    return false
  }
}

/**
 * Removes the cluster folders of runs and tests that died without cleaning up (their watchdog
 * was killed too, e.g. by a reboot's leftovers in a persistent /tmp or a `kill -9` of everything).
 */
export function sweepStaleClusters (): void {
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith(PREFIX)) continue
    const dir = join(tmpdir(), name)
    const owner = readOwner(dir)
    if (owner === undefined) {
      // A folder is created a moment before its owner.json: only an old one is an orphan.
      try {
        if (Date.now() - statSync(dir).mtimeMs < 60_000) continue
      } catch {
        continue
      }
    } else if (alive(owner)) {
      continue
    }
    destroySync(dir)
  }
}

/** A free loopback port below the ephemeral range, so that no port-0 listener takes it while PostgreSQL is stopped. */
async function pickPort (): Promise<number> {
  let low = 32768
  try {
    low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0])
  } catch {}
  const from = Math.max(1024, low - 12000)
  for (let i = 0; i < 50; i++) {
    const port = from + Math.floor(Math.random() * (low - from))
    const free = await new Promise<boolean>(resolve => {
      const server = createServer()
      server.once('error', () => resolve(false))
      server.listen(port, HOST, () => server.close(() => resolve(true)))
    })
    if (free) return port
  }
  throw new Error('no free port found for PostgreSQL')
}

function settings (dir: string, port: number): string {
  // fsync off: nothing here has to survive a power loss, and an immediate stop (a crash) keeps
  // what was written in the OS page cache. synchronous_commit stays on: off, a commit returns
  // while its WAL is still in shared memory, and an immediate stop loses rows already
  // acknowledged (seen here: a committed table gone after stop-immediate), which would fail
  // every "acknowledged writes survive a crash" test. With fsync off it costs one write() per commit.
  return [
    '', '# ingressd test cluster',
    `listen_addresses = '${HOST}'`,
    `port = ${port}`,
    `unix_socket_directories = '${dir}'`,
    'fsync = off',
    'full_page_writes = off',
    'max_connections = 100',
    'shared_buffers = 32MB',
    ''
  ].join('\n')
}

async function pgStart (bin: string, dir: string): Promise<void> {
  await run(join(bin, 'pg_ctl'), ['-D', join(dir, 'data'), '-l', join(dir, 'postgres.log'), '-w', '-t', '60', 'start'], dir)
}

async function pgStop (bin: string, dir: string, mode: 'fast' | 'immediate'): Promise<void> {
  await run(join(bin, 'pg_ctl'), ['-D', join(dir, 'data'), '-m', mode, '-w', '-t', '60', 'stop'], dir)
}

function logTail (dir: string): string {
  try {
    return readFileSync(join(dir, 'postgres.log'), 'utf8').split('\n').slice(-15).join('\n')
  } catch {
    return ''
  }
}

/** initdb and start in `dir` (which must exist, owned by the server user); retries taken ports. */
async function initAndStart (dir: string): Promise<ClusterInfo> {
  const bin = findPostgresBin()
  await run(join(bin, 'initdb'), ['-D', join(dir, 'data'), '-U', SUPERUSER, '--auth=trust', '--no-sync', '--no-instructions', '-E', 'UTF8', '--locale=C'], dir)
  const conf = join(dir, 'data', 'postgresql.conf')
  for (let attempt = 0; ; attempt++) {
    const port = await pickPort()
    // A later line wins in postgresql.conf, so a retry only appends.
    appendFileSync(conf, attempt === 0 ? settings(dir, port) : `port = ${port}\n`)
    try {
      await pgStart(bin, dir)
      return { port, bin }
    } catch (err) {
      const log = logTail(dir)
      if (attempt < 4 && /could not bind|already in use/i.test(log)) continue
      throw new Error(`${(err as Error).message}\npostgres.log:\n${log}`)
    }
  }
}

function databaseUrl (port: number, database: string): string {
  return `postgres://${SUPERUSER}@${HOST}:${port}/${database}`
}

function makeCluster (dir: string, info: ClusterInfo, pgCtl: (action: PgCtlAction) => Promise<void>): PostgresCluster {
  const admin = { host: HOST, port: info.port, user: SUPERUSER, database: 'postgres' }
  return {
    url: databaseUrl(info.port, 'postgres'),
    admin,
    host: HOST,
    port: info.port,
    dir,
    pgCtl,
    async createDatabase (name?: string): Promise<string> {
      const db = name ?? `ingressd_${randomBytes(6).toString('hex')}`
      if (!/^[a-z_][a-z0-9_]{0,62}$/.test(db)) throw new Error(`database name ${JSON.stringify(db)}: use [a-z0-9_], at most 63 characters`)
      const client = new pg.Client(admin)
      await client.connect()
      try {
        await client.query(`CREATE DATABASE "${db}"`)
      } finally {
        await client.end()
      }
      return databaseUrl(info.port, db)
    }
  }
}

function privateControl (dir: string, bin: string): (action: PgCtlAction) => Promise<void> {
  return async (action) => {
    if (action === 'start') await pgStart(bin, dir)
    else await pgStop(bin, dir, action === 'stop-fast' ? 'fast' : 'immediate')
  }
}

/** A new cluster folder in the temp dir, owned by `ownerPid` and watched. */
function newClusterDir (ownerPid: number): string {
  const dir = mkdtempSync(join(tmpdir(), `${PREFIX}private-`))
  giveToPostgres(dir)
  claim(dir, ownerPid)
  return dir
}

/**
 * A cluster of the test's own (its own initdb, data and port), for tests that stop, crash or
 * restart PostgreSQL. Stopped and removed at the test's teardown, whatever state the test left it in.
 */
export async function startPrivatePostgres (t: Teardownable): Promise<PostgresCluster> {
  findPostgresBin()
  const dir = newClusterDir(process.pid)
  t.teardown(() => destroySync(dir))
  const info = await initAndStart(dir)
  return makeCluster(dir, info, privateControl(dir, info.bin))
}

/** Runs `fn` holding an exclusive lock file; takes the lock over from a holder that died. */
async function withLock<T> (lock: string, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 120_000
  for (;;) {
    try {
      const fd = openSync(lock, 'wx')
      writeFileSync(fd, JSON.stringify({ pid: process.pid, start: processStart(process.pid) }))
      closeSync(fd)
      break
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    let holder: Owner | undefined
    try {
      holder = JSON.parse(readFileSync(lock, 'utf8')) as Owner
    } catch {}
    // An unreadable lock is one being written, or one whose writer died before writing.
    if (holder !== undefined ? !alive(holder) : lockAge(lock) > 10_000) {
      rmSync(lock, { force: true })
      continue
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${lock}`)
    await sleep(100)
  }
  try {
    return await fn()
  } finally {
    unlinkSync(lock)
  }
}

function lockAge (lock: string): number {
  try {
    return Date.now() - statSync(lock).mtimeMs
  } catch {
    return 0
  }
}

/** Starts the run's shared cluster in `dir` unless a test file already did; returns where it is. */
async function ensureSharedStarted (dir: string): Promise<ClusterInfo> {
  const infoFile = join(dir, 'info.json')
  return await withLock(join(dir, 'start.lock'), async () => {
    if (existsSync(infoFile)) return JSON.parse(readFileSync(infoFile, 'utf8')) as ClusterInfo
    // A starter that died half-way left a data dir and maybe a postmaster: start over.
    killPostmasterSync(dir)
    rmSync(join(dir, 'data'), { recursive: true, force: true })
    const info = await initAndStart(dir)
    writeFileSync(`${infoFile}.tmp`, JSON.stringify(info))
    renameSync(`${infoFile}.tmp`, infoFile)
    return info
  })
}

function sharedControl (): Promise<void> {
  return Promise.reject(new Error('pgCtl on the shared cluster would stop it under every other test file: use startPrivatePostgres(t)'))
}

let shared: Promise<PostgresCluster> | undefined

/**
 * The run's folder, created by whoever comes first: the `before` hook or a test file. The owner is
 * the tap runner (every test file's parent), so its watchdog removes the cluster when the run ends
 * even without the `after` hook.
 */
async function adoptRunDir (ownerPid: number): Promise<string> {
  const dir = sharedRunDir(ownerPid)
  const deadline = Date.now() + 10_000
  for (;;) {
    try {
      mkdirSync(dir, { mode: 0o700 })
      giveToPostgres(dir)
      claim(dir, ownerPid)
      return dir
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    const owner = readOwner(dir)
    if (owner?.pid === ownerPid && alive(owner)) return dir
    // A folder left by an earlier process with the same pid: not ours, remove it.
    if (owner !== undefined) destroySync(dir)
    // Otherwise its creator is between mkdir and owner.json.
    else if (Date.now() > deadline) throw new Error(`${dir} has no owner.json`)
    else await sleep(50)
  }
}

async function openShared (): Promise<PostgresCluster> {
  findPostgresBin()
  let dir = process.env.INGRESSD_PG_SHARED_DIR
  if (dir === undefined || dir === '') {
    // Under tap (TAP_CHILD_ID), the run is the runner's; run alone (`node --import tsx x.test.ts`),
    // it is this process's, removed when it exits.
    const underTap = process.env.TAP_CHILD_ID !== undefined
    // The `before` hook sweeps too; this covers runs without it.
    sweepStaleClusters()
    dir = await adoptRunDir(underTap ? process.ppid : process.pid)
    if (!underTap) {
      const mine = dir
      process.once('exit', () => destroySync(mine))
    }
    // Processes this test spawns find the same cluster whatever their parent is.
    process.env.INGRESSD_PG_SHARED_DIR = dir
  }
  return makeCluster(dir, await ensureSharedStarted(dir), sharedControl)
}

/**
 * The PostgreSQL cluster shared by every test file of this tap run: started once, by the first
 * file that asks, and removed when the run ends. Take a database of your own from it with
 * `createDatabase()`. Throws, saying to `apt-get install postgresql`, when PostgreSQL is not installed.
 */
export async function sharedPostgres (): Promise<PostgresCluster> {
  shared ??= openShared().catch((err: unknown) => {
    shared = undefined
    throw err
  })
  return await shared
}

/**
 * The tap `before` hook's half: sweeps clusters left by dead runs, then creates this run's folder
 * (owned by the runner, watched so that an interrupted run leaves nothing behind).
 */
export async function prepareSharedRun (runnerPid: number): Promise<void> {
  sweepStaleClusters()
  await adoptRunDir(runnerPid)
}

/** The tap `after` hook's half: stops the run's shared cluster, if a test started it, and removes its folder. */
export function finishSharedRun (runnerPid: number): void {
  destroySync(sharedRunDir(runnerPid))
}
