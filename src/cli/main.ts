/**
 * The `ingressd` command line: serve (what `npm start` runs), migrate, openapi, kubeconfig (for
 * the real kubectl; see kubeconfig.ts), and the kubectl-style client verbs (apply, get, describe,
 * delete, create, expose; see verbs.ts).
 */
import cluster from 'node:cluster'
import { writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { loadConfig, SETTINGS } from '../config/config.js'
import { IngressdError } from '../errors.js'
import { runKubeconfig } from './kubeconfig.js'
import { CLIENT_USAGE, findClientCommand, processIo, runClient, type CliIo } from './verbs.js'

const USAGE = `Usage: ingressd <command> [flags]

Commands:
  serve      run the gateway (admin API, HTTP and HTTPS data planes)
  migrate    apply pending schema migrations to the store and exit
  openapi    write the admin API's OpenAPI document to openapi/openapi.json (or --out FILE, - for stdout)
  kubeconfig print a kubeconfig with which kubectl drives the running admin API (--server, --token)

Flags for serve and migrate (each also an environment variable):
${SETTINGS.map(s => `  --${s.flag.padEnd(24)} ${s.env} (default: ${s.default === '' ? 'unset' : s.default})`).join('\n')}

${CLIENT_USAGE}`

function settingFlags (): Record<string, { type: 'string' }> {
  return Object.fromEntries(SETTINGS.map(s => [s.flag, { type: 'string' as const }]))
}

/**
 * `ingressd migrate` with INGRESSD_POSTGRES_URL: applies the PostgreSQL migrations and prints one
 * line, the URL shown without its password. A failure (refused credentials, a missing or
 * unreachable database, a migration that fails) is one IngressdError naming the setting, which
 * main() prints on one line and exits 2 for; the password appears nowhere.
 */
async function migratePostgres (url: string): Promise<void> {
  const { PostgresStore, isUnavailable, redactUrl } = await import('../store/cluster/postgres.js')
  const shown = redactUrl(url)
  const store = new PostgresStore(url, 'ingressd/migrate')
  let applied: string[]
  try {
    applied = await store.migrate()
  } catch (err) {
    const code = String((err as { code?: unknown }).code ?? '')
    const message = String((err as { message?: unknown }).message ?? err)
    const why = code === '28P01' || code === '28000'
      ? `PostgreSQL refused the credentials (${message})`
      : code === '3D000'
        ? `the database does not exist (${message})`
        : err instanceof IngressdError
          ? message
          : isUnavailable(err) ? `PostgreSQL cannot be reached (${message})` : message
    // Whatever a driver message quotes, a password in a URL or a password= parameter stays hidden.
    const safe = `INGRESSD_POSTGRES_URL (${shown}): ${why}`
      .replace(/:\/\/([^:@/\s]*):[^@/\s]*@/g, '://$1:***@')
      .replace(/(password=)[^\s&]*/gi, '$1***')
    const errorCode = err instanceof IngressdError ? err.code : isUnavailable(err) ? 'INGRESSD_ERR_STORE_UNAVAILABLE' : 'INGRESSD_ERR_CONFIG'
    throw new IngressdError(errorCode, safe, { cause: err })
  } finally {
    await store.close()
  }
  process.stdout.write(applied.length === 0 ? `${shown}: schema is up to date\n` : `${shown}: applied ${applied.join(', ')}\n`)
}

/** Runs one command; returns the exit code. The client verbs write to `io` (tests capture it). */
export async function main (argv: string[], io: CliIo = processIo()): Promise<number> {
  const client = findClientCommand(argv)
  if (client !== undefined && 'verb' in client) return await runClient(client.verb, client.args, io)
  // Client flags may come first here too: `ingressd --server URL kubeconfig`.
  if (argv[0] === 'kubeconfig' || (client !== undefined && client.unknown === 'kubeconfig')) return await runKubeconfig(argv.filter((_, i) => i !== argv.indexOf('kubeconfig')), io)
  if (client !== undefined) {
    io.stderr.write(`ingressd: unknown command "${client.unknown}"\n\n${USAGE}`)
    return 1
  }
  const [command, ...rest] = argv
  try {
    if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
      io.stdout.write(USAGE)
      return command === undefined ? 1 : 0
    }
    if (command === 'serve' || command === 'migrate') {
      const { values } = parseArgs({ args: rest, options: { ...settingFlags(), help: { type: 'boolean', short: 'h' } }, strict: true })
      if (values.help === true) {
        process.stdout.write(USAGE)
        return 0
      }
      const config = loadConfig(values as Record<string, string | undefined>)
      if (command === 'migrate') {
        // The server's modules load only for the commands that need them: client verbs start fast.
        const { openDatabase } = await import('../store/database.js')
        const { applyMigrations } = await import('../store/migrations.js')
        const db = openDatabase(config.db, { migrate: false })
        const applied = applyMigrations(db)
        db.close()
        process.stdout.write(applied.length === 0 ? `${config.db}: schema is up to date\n` : `${config.db}: applied ${applied.join(', ')}\n`)
        // Cluster mode: PostgreSQL's own migrations too (numbered alike, under an advisory lock).
        if (config.postgresUrl !== undefined) await migratePostgres(config.postgresUrl)
        return 0
      }
      const { createLogger } = await import('../logger.js')
      const logger = createLogger(config.logLevel)
      if (cluster.isWorker) {
        // Only the worker's module graph: the admin plane, its schemas and the OpenAPI document
        // stay in the primary.
        const { startWorker } = await import('../worker.js')
        // A data-plane worker forked by the primary below: it stops when the primary says so.
        const worker = await startWorker(config, logger)
        await worker.stopped
        await worker.close().catch((err: unknown) => { logger.error({ err }, 'worker shutdown failed') })
        await new Promise<void>(resolve => logger.flush(() => resolve()))
        // Closes the IPC channel, the last thing keeping the worker alive; it then exits 0.
        process.disconnect?.()
        return 0
      }
      const { startGateway } = await import('../main.js')
      const { startPrimary } = await import('../cluster.js')
      // An in-memory store cannot be shared between processes.
      const clustered = config.workers > 1 && config.db !== ':memory:'
      const gateway = clustered ? await startPrimary(config, logger) : await startGateway(config, logger)
      await new Promise<void>(resolve => {
        const stop = (signal: string): void => {
          logger.info({ signal }, 'shutting down')
          gateway.close().then(() => { logger.info('stopped') }, (err: unknown) => { logger.error({ err }, 'shutdown failed') })
            .finally(() => { logger.flush(() => resolve()) })
        }
        process.once('SIGTERM', () => stop('SIGTERM'))
        process.once('SIGINT', () => stop('SIGINT'))
      })
      return 0
    }
    if (command === 'openapi') {
      const { values } = parseArgs({ args: rest, options: { out: { type: 'string' } }, strict: true })
      const { generateOpenApi, OPENAPI_PATH } = await import('../admin/openapi.js')
      const text = await generateOpenApi()
      if (values.out === '-') process.stdout.write(text)
      else writeFileSync(values.out ?? OPENAPI_PATH, text)
      return 0
    }
    io.stderr.write(`ingressd: unknown command "${command}"\n\n${USAGE}`)
    return 1
  } catch (err) {
    if (err instanceof IngressdError) {
      process.stderr.write(`ingressd: ${err.message} (${err.code})\n`)
      return 2
    }
    if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true) {
      process.stderr.write(`ingressd: ${(err as Error).message}\n\n${USAGE}`)
      return 1
    }
    throw err
  }
}
