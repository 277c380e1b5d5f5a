// Runs the ingressd CLI from source, so tests can spawn the real command as a child process:
//   node --import tsx test/helpers/cli.ts serve --admin-addr 127.0.0.1:0
import { main } from '../../src/cli/main.js'

process.exitCode = await main(process.argv.slice(2))
