// Runs the tap suite, passing its output through, and ends with the plain
// "N passed, N failed" line that CI reads; exits with tap's own status.
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'

const tapDir = dirname(createRequire(import.meta.url).resolve('tap/package.json'))
const child = spawn(process.execPath, [join(tapDir, 'dist/esm/run.mjs'), ...process.argv.slice(2)], { stdio: ['ignore', 'pipe', 'inherit'] })
let tail = ''
child.stdout.on('data', chunk => {
  process.stdout.write(chunk)
  tail = (tail + chunk.toString('utf8')).slice(-4096)
})
child.on('close', (code) => {
  const m = /# \{ total: (\d+), pass: (\d+)(?:, fail: (\d+))?(?:, skip: (\d+))?/.exec(tail)
  if (m !== null) {
    const [total, pass, skip] = [Number(m[1]), Number(m[2]), Number(m[4] ?? 0)]
    process.stdout.write(`\ntests: ${pass} passed, ${total - pass - skip} failed${skip > 0 ? `, ${skip} skipped` : ''}\n`)
  }
  process.exit(code ?? 1)
})
