import { EventEmitter } from 'node:events'
import { runInNewContext } from 'node:vm'
import { setFlagsFromString } from 'node:v8'
import t from 'tap'
import { bindRateLimit, createLocalLimiter, parseRateLimit, RateLimiter, RATE_LIMIT_KEYS, type LimiterBackend, type RateLimitSpec, type ZoneLimits } from '../../../src/dataplane/policies/rate-limit.js'
import { serveLimiter, workerLimiter, type LimiterChannel, type LimiterPeer } from '../../../src/dataplane/limiter-cluster.js'
import type { PolicyAnswer, PolicyContext } from '../../../src/dataplane/policies/policy.js'
import type { FromWorker, ToWorker } from '../../../src/cluster-protocol.js'
import { loadConfig } from '../../../src/config/config.js'

const P = 'nginx.ingress.kubernetes.io/'

function reader (annotations: Record<string, string>): (name: string) => string | undefined {
  return name => annotations[name]
}

/** A clock the test moves. */
function clock (start = 1000): { now: () => number, advance: (ms: number) => void } {
  let at = start
  return { now: () => at, advance: ms => { at += ms } }
}

function ctx (client: string): PolicyContext {
  return { client, req: {} as PolicyContext['req'], method: 'GET', host: 'a.example', path: '/', query: '', proto: 'http', requestId: 'r' }
}

t.test('parseRateLimit', async t => {
  t.same(RATE_LIMIT_KEYS, ['limit-rps', 'limit-rpm', 'limit-burst-multiplier', 'limit-connections', 'limit-whitelist', 'limit-allowlist'])
  const cases: Array<[string, Record<string, string>, RateLimitSpec | undefined, string[]]> = [
    ['nothing set', {}, undefined, []],
    ['rps with the default multiplier', { 'limit-rps': '10' }, { rps: 10, burstMultiplier: 5, allow: [] }, []],
    ['spaces around a number', { 'limit-rpm': ' 60 ' }, { rpm: 60, burstMultiplier: 5, allow: [] }, []],
    ['all three limits and a multiplier', { 'limit-rps': '5', 'limit-rpm': '100', 'limit-connections': '3', 'limit-burst-multiplier': '2' }, { rps: 5, rpm: 100, connections: 3, burstMultiplier: 2, allow: [] }, []],
    ['0 turns a limit off', { 'limit-rps': '0', 'limit-rpm': '30' }, { rpm: 30, burstMultiplier: 5, allow: [] }, []],
    ['every limit 0: the family is unused', { 'limit-rps': '0', 'limit-connections': '0', 'limit-whitelist': '10.0.0.0/8' }, undefined, []],
    ['a multiplier of 0 falls back to 5', { 'limit-rps': '1', 'limit-burst-multiplier': '0' }, { rps: 1, burstMultiplier: 5, allow: [] }, []],
    ['a multiplier alone limits nothing', { 'limit-burst-multiplier': '3' }, undefined, []],
    ['whitelist and allowlist merged, v4 and v6', { 'limit-rps': '1', 'limit-whitelist': '10.0.0.0/8, 192.168.1.1', 'limit-allowlist': '2001:db8::/32' }, { rps: 1, burstMultiplier: 5, allow: ['10.0.0.0/8', '192.168.1.1', '2001:db8::/32'] }, []],
    ['a negative rate', { 'limit-rps': '-1' }, undefined, ['limit-rps']],
    ['a fraction', { 'limit-rpm': '1.5' }, undefined, ['limit-rpm']],
    ['a word', { 'limit-connections': 'ten' }, undefined, ['limit-connections']],
    ['a unit', { 'limit-rps': '10r/s' }, undefined, ['limit-rps']],
    ['too large', { 'limit-rps': '9999999999' }, undefined, ['limit-rps']],
    ['a malformed multiplier', { 'limit-rps': '1', 'limit-burst-multiplier': 'x' }, undefined, ['limit-burst-multiplier']],
    ['a malformed CIDR', { 'limit-rps': '1', 'limit-whitelist': '10.0.0.0/33' }, undefined, ['limit-whitelist']],
    ['not an address', { 'limit-rps': '1', 'limit-allowlist': 'example.com' }, undefined, ['limit-allowlist']],
    ['an empty list', { 'limit-rps': '1', 'limit-whitelist': ' , ' }, undefined, ['limit-whitelist']],
    ['a bad CIDR even with no limit', { 'limit-whitelist': 'nope' }, undefined, ['limit-whitelist']]
  ]
  for (const [name, annotations, spec, problemKeys] of cases) {
    const got = parseRateLimit(reader(annotations))
    t.same(got.spec, spec, `${name}: spec`)
    t.same(got.problems.map(p => p.key), problemKeys.map(k => P + k), `${name}: problems`)
    t.same(got.denials, [], `${name}: no denials`)
    for (const p of got.problems) t.ok(p.message.length > 10, `${name}: the problem says what is wrong: ${p.message}`)
  }
})

t.test('leaky bucket: burst = rate × multiplier at once, then the rate', async t => {
  const cases: Array<{ name: string, limits: ZoneLimits, burst: number, intervalMs: number }> = [
    { name: 'rps 10 ×5', limits: { rps: 10, burstMultiplier: 5 }, burst: 50, intervalMs: 100 },
    { name: 'rps 1 ×1', limits: { rps: 1, burstMultiplier: 1 }, burst: 1, intervalMs: 1000 },
    { name: 'rpm 60 ×2', limits: { rpm: 60, burstMultiplier: 2 }, burst: 120, intervalMs: 1000 },
    { name: 'rps 1000 ×5', limits: { rps: 1000, burstMultiplier: 5 }, burst: 5000, intervalMs: 1 }
  ]
  for (const c of cases) {
    const time = clock()
    const limiter = new RateLimiter({ now: time.now })
    let passed = 0
    while (limiter.take('ns/a', c.limits, '203.0.113.1') !== null) passed++
    t.equal(passed, c.burst, `${c.name}: exactly the burst passes at once`)
    time.advance(c.intervalMs - 0.001)
    t.equal(limiter.take('ns/a', c.limits, '203.0.113.1'), null, `${c.name}: nothing before 1/rate`)
    time.advance(0.001)
    t.not(limiter.take('ns/a', c.limits, '203.0.113.1'), null, `${c.name}: one after 1/rate`)
    t.equal(limiter.take('ns/a', c.limits, '203.0.113.1'), null, `${c.name}: and only one`)
  }
})

t.test('steady overload for 10 s: burst + rate × 10 accepted', async t => {
  const cases: Array<{ limits: ZoneLimits, offeredEveryMs: number, expected: number }> = [
    { limits: { rps: 20, burstMultiplier: 5 }, offeredEveryMs: 5, expected: 100 + 200 },
    { limits: { rps: 50, burstMultiplier: 1 }, offeredEveryMs: 2, expected: 50 + 500 },
    { limits: { rpm: 600, burstMultiplier: 1 }, offeredEveryMs: 5, expected: 600 + 100 },
    { limits: { rpm: 120, burstMultiplier: 1 }, offeredEveryMs: 50, expected: 120 + 20 },
    // Both apply, and the tighter binds: rpm here (burst 30, then one every 2 s)...
    { limits: { rps: 100, rpm: 30, burstMultiplier: 1 }, offeredEveryMs: 10, expected: 30 + 5 },
    // ...rps there (burst 1, then one a second).
    { limits: { rps: 1, rpm: 600, burstMultiplier: 1 }, offeredEveryMs: 10, expected: 1 + 10 }
  ]
  for (const c of cases) {
    const time = clock()
    const limiter = new RateLimiter({ now: time.now })
    let accepted = 0
    for (let at = 0; at <= 10_000; at += c.offeredEveryMs) {
      if (limiter.take('ns/a', c.limits, '198.51.100.9') !== null) accepted++
      time.advance(c.offeredEveryMs)
    }
    t.ok(Math.abs(accepted - c.expected) <= 1, `${JSON.stringify(c.limits)}: ${accepted} accepted, expected ${c.expected}`)
  }
})

t.test('a refused request changes nothing, and rps is not spent when rpm refuses', async t => {
  const time = clock()
  const limiter = new RateLimiter({ now: time.now })
  const limits = { rps: 10, rpm: 2, burstMultiplier: 1 }
  t.not(limiter.take('z', limits, 'c'), null)
  t.not(limiter.take('z', limits, 'c'), null)
  for (let i = 0; i < 100; i++) t.equal(limiter.take('z', limits, 'c'), null)
  time.advance(30_000)
  t.not(limiter.take('z', limits, 'c'), null, 'after 1/rpm one more passes: the refusals did not fill the bucket')
})

t.test('zones and clients are separate; one zone is shared by every path that names it', async t => {
  const time = clock()
  const limiter = new RateLimiter({ now: time.now })
  const limits = { rps: 1, burstMultiplier: 1 }
  t.not(limiter.take('ns/a', limits, '10.0.0.1'), null)
  t.equal(limiter.take('ns/a', limits, '10.0.0.1'), null, 'same zone (another path of the ingress), same client')
  t.not(limiter.take('ns/b', limits, '10.0.0.1'), null, 'another ingress')
  t.not(limiter.take('ns/a', limits, '10.0.0.2'), null, 'another client')
  t.not(limiter.take('ns/a', limits, '2001:db8::1'), null, 'an IPv6 client')
})

t.test('limit-connections: in-flight requests per client', async t => {
  const limiter = new RateLimiter({ now: clock().now })
  const limits = { connections: 2, burstMultiplier: 5 }
  const a = limiter.take('z', limits, 'c')
  const b = limiter.take('z', limits, 'c')
  t.ok(a !== null && b !== null)
  t.equal(limiter.take('z', limits, 'c'), null, 'a third at once is refused')
  t.not(limiter.take('z', limits, 'd'), null, 'another client has its own slots')
  a?.()
  a?.()
  const c = limiter.take('z', limits, 'c')
  t.not(c, null, 'a slot given back is taken again')
  t.equal(limiter.take('z', limits, 'c'), null, 'releasing twice gave back one slot, not two')

  // A request that takes a slot but is then refused by rps keeps no slot: nothing to release.
  const time = clock()
  const atomic = new RateLimiter({ now: time.now })
  const one = { connections: 1, rps: 1, burstMultiplier: 1 }
  const first = atomic.take('q', one, 'c')
  t.not(first, null)
  first?.()
  t.equal(atomic.take('q', one, 'c'), null, 'refused by rps (its slot was free)')
  time.advance(1000)
  t.not(atomic.take('q', one, 'c'), null, 'the refused request did not keep the only slot')
})

t.test('memory: a flood of distinct addresses stays at the cap', async t => {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const limiter = new RateLimiter({ now: clock().now })
  const limits = { rps: 10, burstMultiplier: 5 }
  const heap = (): number => { gc(); gc(); return process.memoryUsage().heapUsed }
  const address = (i: number): string => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`
  const before = heap()
  for (let i = 0; i < 100_000; i++) limiter.take('ns/a', limits, address(i))
  t.equal(limiter.size, 100_000)
  const atCap = heap()
  for (let i = 100_000; i < 300_000; i++) limiter.take(i % 2 === 0 ? 'ns/a' : 'ns/b', limits, address(i))
  t.equal(limiter.size, 100_000, 'the key count stays at the cap (100,000 across zones)')
  const after = heap()
  t.comment(`heap: +${((atCap - before) / 1e6).toFixed(1)} MB for 100,000 keys, +${((after - atCap) / 1e6).toFixed(1)} MB after 200,000 more`)
  t.ok(atCap - before < 40e6, 'about 100,000 entries take tens of MB at most')
  t.ok(after - atCap < 8e6, 'flooding on does not grow the heap')
  t.not(limiter.take('ns/b', limits, address(299_999)), null, 'the newest keys are kept...')
  t.equal(limiter.size, 100_000)

  const small = new RateLimiter({ now: clock().now, maxKeys: 3 })
  for (const k of ['a', 'b', 'c']) small.take('z', limits, k)
  for (let i = 0; i < 50; i++) small.take('z', limits, 'a')
  small.take('z', limits, 'd')
  t.equal(small.size, 3)
  t.equal(small.take('z', limits, 'a'), null, 'a recently used key survives eviction (its bucket is full)')
})

t.test('drained entries are dropped as new requests come', async t => {
  const time = clock()
  const limiter = new RateLimiter({ now: time.now })
  const limits = { rps: 10, burstMultiplier: 5 }
  for (let i = 0; i < 1000; i++) limiter.take('z', limits, `c${i}`)
  t.equal(limiter.size, 1000)
  time.advance(101)
  for (let i = 0; i < 600; i++) limiter.take('z', limits, 'busy')
  t.equal(limiter.size, 1, 'each request drops up to two drained entries: all 1000 are gone')
  const held = new RateLimiter({ now: time.now })
  const release = held.take('z', { connections: 1, burstMultiplier: 5 }, 'x')
  time.advance(10_000)
  held.take('z', limits, 'y')
  held.take('z', limits, 'y')
  t.equal(held.size, 2, 'an entry holding a connection slot is kept')
  release?.()
  held.take('z', limits, 'y')
  t.equal(held.size, 1, 'and dropped once released')
})

t.test('eviction spares entries holding connection slots', async t => {
  const limiter = new RateLimiter({ now: clock().now, maxKeys: 2 })
  const conn = { connections: 1, burstMultiplier: 5 }
  const release = limiter.take('z', conn, 'holder')
  limiter.take('z', { rps: 1, burstMultiplier: 5 }, 'x')
  limiter.take('z', { rps: 1, burstMultiplier: 5 }, 'y')
  t.equal(limiter.size, 2)
  t.equal(limiter.take('z', conn, 'holder'), null, 'the holder was not evicted: its slot still counts')
  release?.()
})

t.test('the step', async t => {
  const spec = (over: Partial<RateLimitSpec>): RateLimitSpec => ({ burstMultiplier: 1, allow: [], ...over })
  const limited = (status: number): PolicyAnswer => ({ status, code: 'INGRESSD_ERR_RATE_LIMITED' })

  t.test('rps: the answer is synchronous in-process, and carries the configured status', async t => {
    for (const status of [503, 429]) {
      const step = bindRateLimit('ns/a', spec({ rps: 2 }), createLocalLimiter(), status)
      t.equal(step(ctx('10.0.0.1')), undefined)
      t.equal(step(ctx('10.0.0.1')), undefined)
      t.same(step(ctx('10.0.0.1')), limited(status))
      t.equal(step(ctx('10.0.0.2')), undefined, 'keyed by client')
    }
  })

  t.test('allowlisted clients are never limited (v4, v6)', async t => {
    const step = bindRateLimit('ns/a', spec({ rps: 1, allow: ['10.0.0.0/8', '2001:db8::/32', '192.0.2.7'] }), createLocalLimiter(), 503)
    for (const client of ['10.1.2.3', '2001:db8::5', '192.0.2.7']) {
      for (let i = 0; i < 5; i++) t.equal(step(ctx(client)), undefined, client)
    }
    t.equal(step(ctx('192.0.2.8')), undefined)
    t.same(step(ctx('192.0.2.8')), limited(503), 'others are')
    t.same(step(ctx('2001:db9::1')) ?? step(ctx('2001:db9::1')), limited(503))
  })

  t.test('limit-connections: slots come back through onDone', async t => {
    const step = bindRateLimit('ns/a', spec({ connections: 1, rps: 100 }), createLocalLimiter(), 503)
    const first = ctx('10.0.0.1')
    t.equal(step(first), undefined)
    t.equal(first.onDone?.length, 1, 'a release is registered')
    const second = ctx('10.0.0.1')
    t.same(step(second), limited(503))
    for (const done of first.onDone ?? []) done()
    for (const done of second.onDone ?? []) done()
    const third = ctx('10.0.0.1')
    t.equal(step(third), undefined, 'the slot is free again, and the refused one gave back nothing it did not hold')
    t.same(step(ctx('10.0.0.1')), limited(503))
    const existing = ctx('10.0.0.9')
    const before = (): void => {}
    existing.onDone = [before]
    step(existing)
    t.equal(existing.onDone.length, 2, 'added to the callbacks already there')
    t.equal(existing.onDone[0], before)
  })

  t.test('rate only: nothing is registered', async t => {
    const c = ctx('10.0.0.1')
    bindRateLimit('ns/a', spec({ rps: 1 }), createLocalLimiter(), 503)(c)
    t.equal(c.onDone, undefined)
  })

  t.test('an asynchronous backend: the step answers with a promise', async t => {
    const asks: Array<{ zone: string, key: string, resolve: (ok: boolean) => void }> = []
    let released = 0
    const backend: LimiterBackend = {
      admit (zone, _limits, key) {
        return { allowed: new Promise(resolve => asks.push({ zone, key, resolve })), release: () => { released++ } }
      }
    }
    const step = bindRateLimit('ns/a', spec({ connections: 1 }), backend, 429)
    const c = ctx('10.0.0.1')
    const pending = step(c)
    t.ok(pending instanceof Promise)
    t.equal(c.onDone?.length, 1, 'the release is registered before the answer')
    asks[0]?.resolve(false)
    t.same(await pending, limited(429))
    const ok = step(ctx('10.0.0.1'))
    asks[1]?.resolve(true)
    t.equal(await ok, undefined)
    t.same(asks.map(a => a.zone + ' ' + a.key), ['ns/a 10.0.0.1', 'ns/a 10.0.0.1'])
    c.onDone?.[0]?.()
    t.equal(released, 1)
  })
})

/** A worker and the primary wired through in-process fakes of cluster IPC. */
function fakeCluster (opts: { answer?: boolean } = {}): {
  emitter: EventEmitter
  peer: LimiterPeer & { connected: boolean }
  channel: LimiterChannel
  sent: FromWorker[]
  deliver: (message: unknown) => void
  flush: () => Promise<void>
} {
  const emitter = new EventEmitter()
  const sent: FromWorker[] = []
  let listener: (message: unknown) => void = () => {}
  const queue: Array<() => void> = []
  const peer = {
    id: 7,
    connected: true,
    isConnected () { return this.connected },
    send (message: ToWorker, callback: (error: Error | null) => void) {
      queue.push(() => listener(message))
      callback(null)
      return true
    }
  }
  const channel: LimiterChannel = {
    send (message) {
      sent.push(message)
      if (opts.answer !== false) queue.push(() => emitter.emit('message', peer, message))
      return true
    },
    onMessage (l) { listener = l }
  }
  const flush = async (): Promise<void> => {
    while (queue.length > 0) queue.shift()?.()
    await new Promise(resolve => setImmediate(resolve))
  }
  return { emitter, peer, channel, sent, deliver: m => listener(m), flush }
}

t.test('cluster IPC (in-process fakes)', async t => {
  t.test('asks are answered by id, and limits are counted in the primary', async t => {
    const f = fakeCluster()
    const served = serveLimiter(f.emitter, { now: clock().now })
    const worker = workerLimiter({ channel: f.channel })
    t.teardown(() => { served.close(); worker.close() })
    const limits = { rps: 1, burstMultiplier: 2 }
    const answers = [worker.admit('ns/a', limits, 'c'), worker.admit('ns/a', limits, 'c'), worker.admit('ns/a', limits, 'c')]
    t.equal(worker.pending, 3)
    await f.flush()
    t.same(await Promise.all(answers.map(a => a.allowed)), [true, true, false])
    t.equal(worker.pending, 0)
    t.equal(served.limiter.size, 1)
  })

  t.test('answers out of order reach the right asks; unknown or malformed answers are ignored', async t => {
    const f = fakeCluster({ answer: false })
    const worker = workerLimiter({ channel: f.channel })
    t.teardown(() => worker.close())
    const a = worker.admit('z', { rps: 1, burstMultiplier: 1 }, 'c').allowed
    const b = worker.admit('z', { rps: 1, burstMultiplier: 1 }, 'c').allowed
    const ids = f.sent.map(m => (m as { id: number }).id)
    for (const junk of [null, 'x', 42, { type: 'other' }, { type: 'ingressd:limit-answer' }, { type: 'ingressd:limit-answer', id: 'a', ok: true }, { type: 'ingressd:limit-answer', id: 999, ok: true }, { type: 'ingressd:limit-answer', id: ids[0], ok: 'yes' }]) {
      t.doesNotThrow(() => f.deliver(junk), JSON.stringify(junk))
    }
    t.equal(worker.pending, 2)
    f.deliver({ type: 'ingressd:limit-answer', id: ids[1], ok: false })
    f.deliver({ type: 'ingressd:limit-answer', id: ids[0], ok: true })
    t.same(await Promise.all([a, b]), [true, false])
  })

  t.test('no answer within the timeout: the request goes through, logged once', async t => {
    const f = fakeCluster({ answer: false })
    const logged: string[] = []
    const logger = { warn: (_o: unknown, msg: string) => { logged.push(`warn ${msg}`) }, info: (msg: string) => { logged.push(`info ${msg}`) } }
    const worker = workerLimiter({ channel: f.channel, timeoutMs: 40, logger: logger as never })
    // The limiter's timer does not hold a process open (a worker's servers do): this test's must.
    const hold = setTimeout(() => {}, 5000)
    t.teardown(() => { worker.close(); clearTimeout(hold) })
    const started = Date.now()
    const answers = await Promise.all([1, 2, 3].map(async () => await worker.admit('z', { rps: 1, burstMultiplier: 1 }, 'c').allowed))
    t.same(answers, [true, true, true], 'fail open')
    t.ok(Date.now() - started >= 35, 'after the timeout')
    t.equal(logged.length, 1, 'one line for the outage')
    const late = worker.admit('z', { rps: 1, burstMultiplier: 1 }, 'c').allowed
    f.deliver({ type: 'ingressd:limit-answer', id: (f.sent.at(-1) as { id: number }).id, ok: false })
    t.equal(await late, false)
    t.equal(logged.length, 2)
    t.match(logged[1], /answers again/)
  })

  t.test('a closed channel: through at once', async t => {
    const worker = workerLimiter({ channel: { send: () => { throw new Error('channel closed') }, onMessage: () => {} } })
    const a = worker.admit('z', { rps: 1, connections: 1, burstMultiplier: 1 }, 'c')
    t.equal(a.allowed, true)
    t.doesNotThrow(() => a.release())
    t.equal(worker.pending, 0)
  })

  t.test('connection slots: released by message, never twice, not after a refusal, and all of a dead worker\'s', async t => {
    const f = fakeCluster()
    const served = serveLimiter(f.emitter, { now: clock().now })
    const worker = workerLimiter({ channel: f.channel })
    t.teardown(() => { served.close(); worker.close() })
    const limits = { connections: 2, burstMultiplier: 5 }
    const a = worker.admit('z', limits, 'c')
    const b = worker.admit('z', limits, 'c')
    const c = worker.admit('z', limits, 'c')
    await f.flush()
    t.same(await Promise.all([a.allowed, b.allowed, c.allowed]), [true, true, false])
    const releases = (): number => f.sent.filter(m => m.type === 'ingressd:limit-release').length
    c.release()
    t.equal(releases(), 0, 'nothing to give back for a refused ask')
    a.release()
    a.release()
    t.equal(releases(), 1, 'one release message')
    await f.flush()
    const d = worker.admit('z', limits, 'c')
    await f.flush()
    t.equal(await d.allowed, true, 'the slot came back')
    const e = worker.admit('z', limits, 'c')
    await f.flush()
    t.equal(await e.allowed, false, 'b and d hold both slots')
    f.emitter.emit('exit', f.peer)
    const g = worker.admit('z', limits, 'c')
    await f.flush()
    t.equal(await g.allowed, true, 'the dead worker\'s slots were dropped')
    b.release()
    d.release()
    await f.flush()
    const h = worker.admit('z', limits, 'c')
    const i = worker.admit('z', limits, 'c')
    await f.flush()
    t.same([await h.allowed, await i.allowed], [true, false], 'stale releases of the dead worker\'s asks freed nothing: g and h hold the two slots')
  })

  t.test('a release sent before the answer (client gone) still frees the slot', async t => {
    const f = fakeCluster()
    const served = serveLimiter(f.emitter, { now: clock().now })
    const worker = workerLimiter({ channel: f.channel })
    t.teardown(() => { served.close(); worker.close() })
    const limits = { connections: 1, burstMultiplier: 5 }
    const a = worker.admit('z', limits, 'c')
    a.release()
    await f.flush()
    t.equal(await a.allowed, true)
    const b = worker.admit('z', limits, 'c')
    await f.flush()
    t.equal(await b.allowed, true, 'the ask and then its release reached the primary in order')
  })

  t.test('malformed asks never throw in the primary; with an id they are answered as allowed', async t => {
    const f = fakeCluster()
    const logged: unknown[] = []
    const served = serveLimiter(f.emitter, { logger: { warn: (o: unknown) => { logged.push(o) }, info: () => {} } as never })
    t.teardown(() => served.close())
    const answered: unknown[] = []
    const peer = { id: 1, isConnected: () => true, send: (m: ToWorker, cb: (e: Error | null) => void) => { answered.push(m); cb(null); return true } }
    const junk: unknown[] = [
      null, 'ingressd:limit', [], { type: 5 }, { type: 'ingressd:limit' },
      { type: 'ingressd:limit', id: 1, zone: 7, key: 'c', burstMultiplier: 5 },
      { type: 'ingressd:limit', id: 2, zone: 'z', key: 'c', burstMultiplier: 5, rps: -1 },
      { type: 'ingressd:limit', id: 3, zone: 'z', key: 'c', burstMultiplier: 'x' },
      { type: 'ingressd:limit', id: 4, zone: 'z'.repeat(10_000), key: 'c', burstMultiplier: 5, rps: 1 },
      { type: 'ingressd:limit', id: 5, zone: 'z', key: 'c', burstMultiplier: 5, rps: Infinity },
      { type: 'ingressd:limit', id: 1.5, zone: 'z', key: 'c', burstMultiplier: 5 },
      { type: 'ingressd:limit-release' }, { type: 'ingressd:limit-release', id: 'x' }, { type: 'ingressd:limit-release', id: 12345 },
      { type: 'ingressd:unknown' }
    ]
    for (const m of junk) t.doesNotThrow(() => f.emitter.emit('message', peer, m), JSON.stringify(m)?.slice(0, 60))
    t.same(answered, [1, 2, 3, 4, 5].map(id => ({ type: 'ingressd:limit-answer', id, ok: true })))
    t.equal(logged.length, 1, 'logged once')
    t.equal(served.limiter.size, 0)
    const gone = { id: 2, isConnected: () => false, send: () => { throw new Error('must not be called') } }
    t.doesNotThrow(() => f.emitter.emit('message', gone, { type: 'ingressd:limit', id: 1, zone: 'z', key: 'c', burstMultiplier: 5, rps: 1 }), 'a disconnected worker is not answered')
    served.close()
    t.equal(f.emitter.listenerCount('message'), 0, 'close stops listening')
  })
})

t.test('INGRESSD_LIMIT_REQ_STATUS_CODE', async t => {
  t.equal(loadConfig({}, {}).limitReqStatusCode, 503, 'ingress-nginx\'s default')
  t.equal(loadConfig({}, { INGRESSD_LIMIT_REQ_STATUS_CODE: '429' }).limitReqStatusCode, 429)
  t.equal(loadConfig({ 'limit-req-status-code': '599' }, {}).limitReqStatusCode, 599)
  for (const bad of ['399', '600', '200', '42', 'x', '']) {
    t.throws(() => loadConfig({}, { INGRESSD_LIMIT_REQ_STATUS_CODE: bad }), { code: 'INGRESSD_ERR_CONFIG', message: /INGRESSD_LIMIT_REQ_STATUS_CODE.*400 to 599/ }, JSON.stringify(bad))
  }
})
