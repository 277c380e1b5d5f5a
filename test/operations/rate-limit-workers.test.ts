/**
 * Rate limits hold per node, not per worker: a real node:cluster primary and two workers
 * (fixtures/rate-limit-cluster.ts) put a steady overload on the same client and zone for 10 s,
 * and the requests let through, summed over both workers, stay within 10% of burst + rate × 10 s.
 * The same load counted by each worker on its own (the control) lets about twice that through.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const FIXTURE = fileURLToPath(new URL('./fixtures/rate-limit-cluster.ts', import.meta.url))
const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const DURATION_MS = 10_000
/** The fixture's zones: 100 requests a second, burst 200. */
const RATE = 100
const BURST = 200

interface LoadResult { slot: number, start: number, end: number, sent: number, accepted: Record<string, number>, asynchronous: boolean, junk: number }
interface FixtureOutput {
  results: LoadResult[]
  connections: { held: boolean[], whileHeld: boolean[], afterDeath: boolean[], released: boolean[] }
  rtt: { p50: number, p90: number, p99: number }
}

async function runFixture (): Promise<FixtureOutput> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('INGRESSD_')))
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE], { cwd: ROOT, env: { ...env, FIXTURE_DURATION_MS: String(DURATION_MS) }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s })
  child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
  const killer = setTimeout(() => child.kill('SIGKILL'), 45_000)
  const code = await new Promise<number | null>(resolve => child.on('close', c => resolve(c)))
  clearTimeout(killer)
  if (code !== 0) throw new Error(`fixture exited ${String(code)}: ${stderr}${stdout}`)
  return JSON.parse(stdout.trim().split('\n').pop() ?? '') as FixtureOutput
}

t.test('two workers share one limiter per node', async t => {
  const out = await runFixture()
  const [w0, w1] = out.results.sort((a, b) => a.slot - b.slot) as [LoadResult, LoadResult]
  t.ok(w0.asynchronous && w1.asynchronous, 'in a worker, limiterForProcess() asks the primary')
  const seconds = (Math.max(w0.end, w1.end) - Math.min(w0.start, w1.start)) / 1000
  const expected = BURST + RATE * seconds
  const offered = w0.sent + w1.sent
  t.ok(offered > 3 * expected, `an overload: ${offered} requests offered for ${Math.round(expected)} allowed`)

  const both = (w0.accepted.both ?? 0) + (w1.accepted.both ?? 0)
  t.comment(`over ${seconds.toFixed(2)} s: expected ${Math.round(expected)}; two workers let through ${both} (${w0.accepted.both} + ${w1.accepted.both}), one worker ${w0.accepted.one}; counted per worker, ${w0.accepted.local} + ${w1.accepted.local}`)
  t.ok(Math.abs(both - expected) <= 0.1 * expected, `two workers: ${both} within 10% of ${Math.round(expected)}`)
  t.ok((w0.accepted.both ?? 0) > 0 && (w1.accepted.both ?? 0) > 0, 'each worker let some through: one budget, shared')
  const one = w0.accepted.one ?? 0
  t.ok(Math.abs(one - expected) <= 0.1 * expected, `one worker asking the primary: ${one} within 10% of ${Math.round(expected)}`)
  const alone = w0.accepted.local ?? 0
  t.ok(Math.abs(alone - expected) <= 0.1 * expected, `in-process (INGRESSD_WORKERS=1), the same load: ${alone} within 10% of ${Math.round(expected)}`)
  const local = alone + (w1.accepted.local ?? 0)
  t.ok(local > 1.6 * expected, `the control, each worker counting alone, lets about twice through (${local}): the test tells the two apart`)
  t.ok(w0.junk > 0, `${w0.junk} malformed messages sent to the primary meanwhile, which kept answering`)

  t.same(out.connections.held, [true, true], 'limit-connections 2: a worker holds both slots')
  t.same(out.connections.whileHeld, [false], 'another worker is refused a third')
  t.same(out.connections.afterDeath, [true, true, false], 'the holder killed, its slots are dropped: two again, not three')
  t.same(out.connections.released, [true, true], 'slots given back through onDone are free again')

  t.comment(`IPC round trip of one ask (2,000 sequential): p50 ${out.rtt.p50} µs, p90 ${out.rtt.p90} µs, p99 ${out.rtt.p99} µs`)
  t.ok(out.rtt.p50 < 1000, 'a round trip takes well under a millisecond')
})
