// Runs the tap suite, passing its output through, and ends with the plain
// "N passed, N failed" line that CI reads; exits with tap's own status.
import { spawn } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, relative } from 'node:path'

/**
 * The longest files start first: tap runs files in the order given, so a five-minute file that
 * starts last stretches the whole run by five minutes while the other jobs sit idle.
 */
const SLOWEST_FIRST = ['test/store/crash-loop.test.ts', 'test/operations/soak.test.ts', 'test/kubectl/watch.test.ts', 'test/cluster/churn.test.ts', 'test/cluster/startup.test.ts', 'test/store/crash.test.ts', 'test/operations/shutdown.test.ts', 'test/operations/rate-limit-gateway.test.ts', 'test/operations/bundle.test.ts']

function testFiles (dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap(e => e.isDirectory() ? testFiles(join(dir, e.name)) : e.name.endsWith('.test.ts') ? [relative('.', join(dir, e.name))] : [])
}

const args = process.argv.slice(2)
const files = args.length > 0
  ? args
  : (() => {
      const all = testFiles('test').sort()
      return [...SLOWEST_FIRST.filter(f => all.includes(f)), ...all.filter(f => !SLOWEST_FIRST.includes(f))]
    })()
const tapDir = dirname(createRequire(import.meta.url).resolve('tap/package.json'))
const child = spawn(process.execPath, [join(tapDir, 'dist/esm/run.mjs'), ...files], { stdio: ['ignore', 'pipe', 'inherit'] })
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
