/**
 * Basic auth: the annotations as ingress-nginx reads them (refused on write, or denied), and the
 * bound step called directly with a request's headers: the challenge, the credentials' odd
 * spellings, what the backend is left with, and the cache of good credentials.
 */
import t from 'tap'
import type { IncomingMessage } from 'node:http'
import bcrypt from 'bcryptjs'
import { BASIC_AUTH_KEYS, bindBasicAuth, DEFAULT_REALM, parseBasicAuth, type BasicAuthFailure, type BasicAuthSpec } from '../../../src/dataplane/policies/basic-auth.js'
import type { PolicyAnswer, PolicyContext, PolicyStep, SecretLookup, SecretMaterial } from '../../../src/dataplane/policies/policy.js'

const PREFIX = 'nginx.ingress.kubernetes.io/'

function reader (annotations: Record<string, string>): (name: string) => string | undefined {
  return name => Object.hasOwn(annotations, name) ? annotations[name] : undefined
}

t.test('BASIC_AUTH_KEYS', async t => {
  t.same([...BASIC_AUTH_KEYS].sort(), ['auth-realm', 'auth-secret', 'auth-secret-type', 'auth-type'])
})

t.test('parseBasicAuth: the rules, table-driven', async t => {
  const ok = (name: string, extra: Partial<BasicAuthSpec> = {}): BasicAuthSpec => ({ secret: { namespace: 'shop', name }, secretType: 'auth-file', realm: DEFAULT_REALM, ...extra })
  const cases: Array<[string, Record<string, string>, BasicAuthSpec | undefined, Array<[string, RegExp]>, Array<[string, RegExp]>]> = [
    ['no annotation', {}, undefined, [], []],
    ['auth-secret alone is ignored, as ingress-nginx does', { 'auth-secret': 'users', 'auth-realm': 'bad"realm' }, undefined, [], []],
    ['name', { 'auth-type': 'basic', 'auth-secret': 'users' }, ok('users'), [], []],
    ['own namespace spelled out', { 'auth-type': 'basic', 'auth-secret': 'shop/users' }, ok('users'), [], []],
    ['dotted name', { 'auth-type': 'basic', 'auth-secret': 'basic.users-1' }, ok('basic.users-1'), [], []],
    ['auth-map', { 'auth-type': 'basic', 'auth-secret': 'users', 'auth-secret-type': 'auth-map' }, ok('users', { secretType: 'auth-map' }), [], []],
    ['auth-file spelled out', { 'auth-type': 'basic', 'auth-secret': 'users', 'auth-secret-type': 'auth-file' }, ok('users'), [], []],
    ['a realm', { 'auth-type': 'basic', 'auth-secret': 'users', 'auth-realm': 'Staff only - shop/admin: v2' }, ok('users', { realm: 'Staff only - shop/admin: v2' }), [], []],
    ['an empty realm keeps the default', { 'auth-type': 'basic', 'auth-secret': 'users', 'auth-realm': '' }, ok('users'), [], []],
    ['auth-secret missing', { 'auth-type': 'basic' }, undefined, [['auth-secret', /^required with auth-type "basic"/]], []],
    ['auth-secret empty', { 'auth-type': 'basic', 'auth-secret': '' }, undefined, [['auth-secret', /required.*got an empty value/]], []],
    ['auth-secret blank', { 'auth-type': 'basic', 'auth-secret': '  ' }, undefined, [['auth-secret', /required.*got an empty value/]], []],
    ['another namespace', { 'auth-type': 'basic', 'auth-secret': 'kube-system/users' }, undefined, [['auth-secret', /namespace "kube-system".*own namespace \("shop"\).*allow-cross-namespace-resources/]], []],
    ['uppercase name', { 'auth-type': 'basic', 'auth-secret': 'Users' }, undefined, [['auth-secret', /DNS-1123 subdomain.*got "Users"/]], []],
    ['underscore', { 'auth-type': 'basic', 'auth-secret': 'my_users' }, undefined, [['auth-secret', /DNS-1123/]], []],
    ['three parts', { 'auth-type': 'basic', 'auth-secret': 'shop/users/x' }, undefined, [['auth-secret', /"name" or "namespace\/name"/]], []],
    ['empty namespace', { 'auth-type': 'basic', 'auth-secret': '/users' }, undefined, [['auth-secret', /DNS-1123/]], []],
    ['empty name', { 'auth-type': 'basic', 'auth-secret': 'shop/' }, undefined, [['auth-secret', /DNS-1123/]], []],
    ['spaces around', { 'auth-type': 'basic', 'auth-secret': ' users' }, undefined, [['auth-secret', /DNS-1123/]], []],
    ['unknown auth-secret-type', { 'auth-type': 'basic', 'auth-secret': 'users', 'auth-secret-type': 'htpasswd' }, undefined, [['auth-secret-type', /expected "auth-file".*or "auth-map".*got "htpasswd"/]], []],
    ['realm with a quote', { 'auth-type': 'basic', 'auth-secret': 'users', 'auth-realm': 'say "hi"' }, undefined, [['auth-realm', /printable ASCII/]], []],
    ['realm with a backslash', { 'auth-type': 'basic', 'auth-secret': 'users', 'auth-realm': 'a\\b' }, undefined, [['auth-realm', /printable ASCII/]], []],
    ['realm with a newline', { 'auth-type': 'basic', 'auth-secret': 'users', 'auth-realm': 'a\r\nSet-Cookie: x=1' }, undefined, [['auth-realm', /printable ASCII/]], []],
    ['realm with a tab', { 'auth-type': 'basic', 'auth-secret': 'users', 'auth-realm': 'a\tb' }, undefined, [['auth-realm', /printable ASCII/]], []],
    ['realm beyond ASCII', { 'auth-type': 'basic', 'auth-secret': 'users', 'auth-realm': 'Zutritt für Mitarbeiter' }, undefined, [['auth-realm', /printable ASCII/]], []],
    ['auth-type Basic', { 'auth-type': 'Basic', 'auth-secret': 'users' }, undefined, [['auth-type', /expected "basic".*got "Basic" \(the value is case-sensitive/]], []],
    ['auth-type with spaces', { 'auth-type': ' basic', 'auth-secret': 'users' }, undefined, [['auth-type', /case-sensitive, without spaces/]], []],
    ['auth-type ntlm', { 'auth-type': 'ntlm', 'auth-secret': 'users' }, undefined, [['auth-type', /expected "basic".*"digest".*got "ntlm"$/]], []],
    ['auth-type empty', { 'auth-type': '', 'auth-secret': 'users' }, undefined, [['auth-type', /got ""$/]], []],
    ['several problems at once', { 'auth-type': 'ntlm', 'auth-secret-type': 'x', 'auth-realm': '"' }, undefined, [['auth-type', /ntlm/], ['auth-secret', /required with auth-type "ntlm"/], ['auth-secret-type', /got "x"/], ['auth-realm', /printable/]], []],
    ['digest is denied, not refused', { 'auth-type': 'digest', 'auth-secret': 'users' }, undefined, [], [['auth-type', /"digest".*not implemented by ingressd.*denied \(503\)/]]],
    ['digest with a broken secret: both', { 'auth-type': 'digest', 'auth-secret': 'other/users' }, undefined, [['auth-secret', /own namespace/]], [['auth-type', /digest/]]]
  ]
  for (const [label, annotations, spec, problems, denials] of cases) {
    const parsed = parseBasicAuth(reader(annotations), 'shop')
    t.same(parsed.spec, spec, `${label}: spec`)
    t.match(parsed.problems, problems.map(([key, message]) => ({ key: PREFIX + key, message })), `${label}: problems`)
    t.equal(parsed.problems.length, problems.length, `${label}: ${parsed.problems.length} problems`)
    t.match(parsed.denials, denials.map(([key, message]) => ({ key: PREFIX + key, message })), `${label}: denials`)
    t.equal(parsed.denials.length, denials.length, `${label}: ${parsed.denials.length} denials`)
  }
  const spec = parseBasicAuth(reader({ 'auth-type': 'basic', 'auth-secret': 'users' }), 'shop').spec
  t.ok(spec !== undefined && Object.isFrozen(spec) && Object.isFrozen(spec.secret), 'the spec is frozen')
})

// Made with htpasswd (-m, -B, -s) and openssl passwd -6; see htpasswd.test.ts.
const APR1 = '$apr1$InKIvPn2$MBqJ7pkbED8gWrtwtfmnQ1'
const BCRYPT = '$2y$05$Wz6kkEbLtewMvjEgall/eeU4C7kY7MO5GHjFZNpq3Mb3z2b3GlbqO'
const SHA = '{SHA}q/eq1kOINtvlJqojGr3i0O73TUI='
const SHA512 = '$6$AqLHkxEy1MDt9LEn$6FJR/j6LOpSl8uVcYawEuXorsgrjW/2oqG6OFo.D21ZpY5tnOjty4z5FIQdVPupugkZkhRpy8HcRCkX0NrhlO.'
const PASSWORD = 'correct horse battery staple'
const APR1_P2 = '$apr1$J4Ch2Tp5$M1JBxybkuQLwZ0LuYK3.g1'
const P2 = 'pä$$ wörd:with:colons'

const HTPASSWD = [
  '# the shop\'s staff',
  `alice:${APR1}`,
  `bob:${BCRYPT}`,
  `carol:${SHA}`,
  `dave:${SHA512}`,
  'erin:{PLAIN}pa:ss',
  'frank:{PLAIN}pass:word',
  `gérard:${APR1}`,
  `hank:${APR1_P2}`,
  ''
].join('\n')

function lookup (secrets: Record<string, SecretMaterial>): SecretLookup {
  return (namespace, name) => secrets[`${namespace}/${name}`]
}

const SPEC: BasicAuthSpec = { secret: { namespace: 'shop', name: 'users' }, secretType: 'auth-file', realm: 'Staff only' }

interface Failure { user: string, reason: BasicAuthFailure }

function bind (data: Record<string, string>, spec: BasicAuthSpec = SPEC, type = 'Opaque'): { step: PolicyStep, failures: Failure[] } {
  const failures: Failure[] = []
  const bound = bindBasicAuth(spec, lookup({ 'shop/users': { type, data } }), { onFailure: (user, reason) => failures.push({ user, reason }) })
  if (!('step' in bound)) throw new Error(`expected a step, got the denial: ${bound.denial}`)
  return { step: bound.step, failures }
}

/** A request as the step sees it: the headers and, as Node gives them, the raw name/value list. */
function context (authorization?: string | string[], rawHeaders?: string[]): PolicyContext {
  const headers: Record<string, string | string[]> = { host: 'shop.example' }
  if (authorization !== undefined) headers.authorization = authorization
  const req = { headers, rawHeaders: rawHeaders ?? Object.entries(headers).flatMap(([k, v]) => Array.isArray(v) ? v.flatMap(x => [k, x]) : [k, v]) }
  return {
    req: req as unknown as IncomingMessage,
    method: 'GET',
    host: 'shop.example',
    path: '/admin',
    query: '',
    proto: 'https',
    client: '192.0.2.1',
    requestId: 'r1',
    upstreamHeaders: { 'x-kept': 'yes' }
  }
}

function basic (user: string, password: string, scheme = 'Basic'): string {
  return `${scheme} ${Buffer.from(`${user}:${password}`).toString('base64')}`
}

async function run (step: PolicyStep, ctx: PolicyContext): Promise<PolicyAnswer | undefined> {
  return await step(ctx)
}

const CHALLENGE = { status: 401, code: 'INGRESSD_ERR_AUTH_REQUIRED', headers: { 'www-authenticate': 'Basic realm="Staff only"' } }

t.test('no credentials: 401 with the realm', async t => {
  const { step, failures } = bind({ auth: HTPASSWD })
  const ctx = context()
  t.same(await run(step, ctx), CHALLENGE)
  t.same(ctx.upstreamHeaders, { 'x-kept': 'yes' }, 'nothing changed for the upstream')
  t.same(failures, [{ user: '', reason: 'missing' }])
  const realm = bind({ auth: HTPASSWD }, { ...SPEC, realm: DEFAULT_REALM }).step
  t.same((await run(realm, context()))?.headers, { 'www-authenticate': 'Basic realm=""' }, 'the default realm')
})

t.test('every user of the file, each hash format: let in, Authorization removed for the backend', async t => {
  const { step, failures } = bind({ auth: HTPASSWD })
  const users: Array<[string, string]> = [['alice', PASSWORD], ['bob', PASSWORD], ['carol', PASSWORD], ['dave', PASSWORD], ['erin', 'pa'], ['gérard', PASSWORD], ['hank', P2]]
  for (const [user, password] of users) {
    const ctx = context(basic(user, password))
    t.equal(await run(step, ctx), undefined, `${user}: let in`)
    t.same(ctx.upstreamHeaders, { 'x-kept': 'yes', authorization: null }, `${user}: authorization removed, other upstream headers kept`)
  }
  t.same(failures, [])
  const frank = context(basic('frank', 'pass:word'))
  t.same(await run(step, frank), CHALLENGE, 'the file\'s hash ends at its second colon, as nginx reads it')
  t.equal(await run(step, context(basic('frank', 'pass'))), undefined, 'so frank\'s password is "pass"')
})

t.test('the credentials\' odd spellings', async t => {
  const { step, failures } = bind({ auth: HTPASSWD })
  const token = Buffer.from(`alice:${PASSWORD}`).toString('base64')
  const erin = Buffer.from('erin:pa').toString('base64')
  const cases: Array<[string, string | string[], BasicAuthFailure | undefined]> = [
    ['Basic', `Basic ${token}`, undefined],
    ['basic', `basic ${token}`, undefined],
    ['BASIC', `BASIC ${token}`, undefined],
    ['bAsIc', `bAsIc ${token}`, undefined],
    ['extra spaces', `   Basic     ${token}   `, undefined],
    ['a tab', `Basic\t${token}`, undefined],
    ['no padding (nginx decodes it)', `Basic ${erin.replace(/=+$/, '')}`, undefined],
    ['padding', `Basic ${erin}`, undefined],
    ['a password with colons', basic('hank', P2), undefined],
    ['the user ends at the first colon', `Basic ${Buffer.from(`hank:${P2}`).toString('base64')}`, undefined],
    ['a one-element list', [`Basic ${token}`], undefined],
    ['no colon', `Basic ${Buffer.from('alice').toString('base64')}`, 'malformed'],
    ['empty user', basic('', PASSWORD), 'malformed'],
    ['bad base64 characters', 'Basic YWxp!2U6cGFzcw==', 'malformed'],
    ['base64url', `Basic ${Buffer.from('alice:??>>').toString('base64url')}`, 'malformed'],
    ['a lone trailing base64 character', 'Basic YWxpY', 'malformed'],
    ['padding in the middle', 'Basic YQ==YQ==', 'malformed'],
    ['nothing after the scheme', 'Basic', 'malformed'],
    ['only spaces after the scheme', 'Basic    ', 'malformed'],
    ['no space after the scheme', `Basic${token}`, 'malformed'],
    ['another scheme', `Bearer ${token}`, 'malformed'],
    ['Basicx', `Basicx ${token}`, 'malformed'],
    ['empty', '', 'malformed'],
    ['not UTF-8', `Basic ${Buffer.from([0x61, 0x3a, 0xff, 0xfe]).toString('base64')}`, 'malformed'],
    ['a password too long to hash', basic('alice', 'x'.repeat(1025)), 'malformed'],
    ['two values in a list', [`Basic ${token}`, `Basic ${token}`], 'malformed'],
    ['an empty list', [], 'missing']
  ]
  for (const [label, value, failure] of cases) {
    failures.length = 0
    const ctx = context(value)
    const answer = await run(step, ctx)
    if (failure === undefined) {
      t.equal(answer, undefined, `${label}: let in`)
      t.equal(ctx.upstreamHeaders?.authorization, null, `${label}: removed`)
    } else {
      t.same(answer, CHALLENGE, `${label}: 401`)
      t.equal(failures[0]?.reason, failure, `${label}: ${failure}`)
      t.same(ctx.upstreamHeaders, { 'x-kept': 'yes' }, `${label}: upstream headers untouched`)
    }
  }
})

t.test('a second Authorization header: refused, not ignored', async t => {
  const { step, failures } = bind({ auth: HTPASSWD })
  const good = basic('alice', PASSWORD)
  // Node keeps the first value in headers and every one in rawHeaders.
  const ctx = context(good, ['Host', 'shop.example', 'Authorization', good, 'authorization', basic('bob', 'guess')])
  t.same(await run(step, ctx), CHALLENGE)
  t.same(failures, [{ user: '', reason: 'malformed' }])
  t.equal(await run(step, context(good, ['Host', 'shop.example', 'AUTHORIZATION', good])), undefined, 'one header, in any case')
  const bare = context(good)
  delete (bare.req as unknown as { rawHeaders?: string[] }).rawHeaders
  t.equal(await run(step, bare), undefined, 'a request object without rawHeaders (HTTP/2 compat and plain data) is read from headers')
})

t.test('unknown users and wrong passwords: 401, the user name for the log, never the password', async t => {
  const { step, failures } = bind({ auth: HTPASSWD })
  t.same(await run(step, context(basic('mallory', PASSWORD))), CHALLENGE)
  t.same(await run(step, context(basic('alice', 'guess'))), CHALLENGE)
  t.same(await run(step, context(basic('Alice', PASSWORD))), CHALLENGE, 'user names are case-sensitive')
  t.same(await run(step, context(basic('alice', ''))), CHALLENGE, 'empty password')
  t.same(failures, [
    { user: 'mallory', reason: 'unknown-user' },
    { user: 'alice', reason: 'wrong-password' },
    { user: 'Alice', reason: 'unknown-user' },
    { user: 'alice', reason: 'wrong-password' }
  ])
  const quiet = bindBasicAuth(SPEC, lookup({ 'shop/users': { type: 'Opaque', data: { auth: HTPASSWD } } }))
  if ('step' in quiet) t.same(await run(quiet.step, context(basic('nobody', 'x'))), CHALLENGE, 'without onFailure too')
})

t.test('auth-map: every key is a user', async t => {
  const spec: BasicAuthSpec = { ...SPEC, secretType: 'auth-map' }
  const { step } = bind({ alice: APR1, bob: `${BCRYPT}\n` }, spec)
  t.equal(await run(step, context(basic('alice', PASSWORD))), undefined)
  t.equal(await run(step, context(basic('bob', PASSWORD))), undefined)
  t.same(await run(step, context(basic('auth', PASSWORD))), CHALLENGE)
})

t.test('the Secret cannot be used: a denial naming it and the problem, never a hash', async t => {
  const denial = (secrets: Record<string, SecretMaterial>, spec: BasicAuthSpec = SPEC): string => {
    const bound = bindBasicAuth(spec, lookup(secrets))
    return 'denial' in bound ? bound.denial : 'a step'
  }
  t.match(denial({}), /^basic auth: Secret shop\/users does not exist; .*denied \(503\)/)
  t.match(denial({ 'shop/other': { type: 'Opaque', data: { auth: HTPASSWD } } }), /does not exist/)
  t.match(denial({ 'shop/users': { type: 'Opaque', data: { users: HTPASSWD } } }), /Secret shop\/users has no key "auth" holding an htpasswd file; /)
  t.match(denial({ 'shop/users': { type: 'kubernetes.io/basic-auth', data: { username: 'alice', password: 'x' } } }), /no key "auth".*username and password keys are not read/)
  const broken = `alice:${APR1}\nbob ${BCRYPT}\ncarol:0bTvqia9LzAt.\n`
  const message = denial({ 'shop/users': { type: 'Opaque', data: { auth: broken } } })
  t.match(message, /^basic auth: Secret shop\/users, key "auth": line 2: expected "user:hash"; line 3 \(user "carol"\): legacy DES crypt/)
  t.notMatch(message, /InKIvPn2|Wz6kkEbL|0bTvqia9/, 'no hash is quoted')
  t.match(denial({ 'shop/users': { type: 'Opaque', data: { auth: '# nobody yet\n\n' } } }), /key "auth" has no user/)
  t.match(denial({ 'shop/users': { type: 'Opaque', data: { auth: '' } } }), /has no user/)
  const map: BasicAuthSpec = { ...SPEC, secretType: 'auth-map' }
  t.match(denial({ 'shop/users': { type: 'Opaque', data: {} } }, map), /Secret shop\/users \(auth-map\) has no user/)
  const mapMessage = denial({ 'shop/users': { type: 'Opaque', data: { alice: APR1, bob: 'plaintext' } } }, map)
  t.match(mapMessage, /\(auth-map\): user "bob": unknown hash format/)
  t.notMatch(mapMessage, /plaintext/)
  t.match(denial({ 'shop/users': { type: 'Opaque', data: { alice: APR1 } } }, map), 'a step')
})

t.test('good credentials are verified once, then cached; failures are not', async t => {
  const password = 'cached password'
  // Cost 10 (about 70 ms here): slow enough that a cache hit is unmistakable.
  const hash = bcrypt.hashSync(password, 10)
  const { step, failures } = bind({ auth: `zoe:${hash}\n` })
  const timed = async (ctx: PolicyContext): Promise<[number, PolicyAnswer | undefined]> => {
    const start = performance.now()
    const answer = await run(step, ctx)
    return [performance.now() - start, answer]
  }

  const [first, answer] = await timed(context(basic('zoe', password)))
  t.equal(answer, undefined, 'let in')
  const repeats: number[] = []
  for (let i = 0; i < 5; i++) {
    const ctx = context(basic('zoe', password))
    const [ms, again] = await timed(ctx)
    t.equal(again, undefined)
    t.equal(ctx.upstreamHeaders?.authorization, null, 'a cache hit removes Authorization too')
    repeats.push(ms)
  }
  t.ok(Math.min(...repeats) < first / 10, `a repeat costs an HMAC, not a bcrypt (first ${first.toFixed(1)} ms, then ${Math.min(...repeats).toFixed(2)} ms)`)

  const wrong: number[] = []
  for (let i = 0; i < 3; i++) {
    const [ms, refused] = await timed(context(basic('zoe', 'not it')))
    t.same(refused?.status, 401)
    wrong.push(ms)
  }
  t.ok(Math.min(...wrong) > first / 4, `each wrong password is verified again (${wrong.map(ms => ms.toFixed(1)).join(', ')} ms)`)

  const unknown: number[] = []
  for (let i = 0; i < 3; i++) {
    const [ms] = await timed(context(basic('yves', password)))
    unknown.push(ms)
  }
  t.ok(Math.min(...unknown) > Math.min(...wrong) / 4, `an unknown user costs a verification too (${unknown.map(ms => ms.toFixed(1)).join(', ')} ms)`)
  t.same(failures.map(f => f.reason), ['wrong-password', 'wrong-password', 'wrong-password', 'unknown-user', 'unknown-user', 'unknown-user'])

  // The password changes: a new hash, so the old password's cache entry does not open it.
  const changed = bind({ auth: `zoe:${bcrypt.hashSync('new password', 4)}\n` }).step
  t.same(await run(changed, context(basic('zoe', password))), CHALLENGE, 'the old password is refused at once')
  t.equal(await run(changed, context(basic('zoe', 'new password'))), undefined)
  // The user is removed: looked up before the cache.
  const removed = bind({ auth: `alice:${APR1}\n` }).step
  t.same(await run(removed, context(basic('zoe', password))), CHALLENGE, 'a removed user is refused')
})

t.test('the cache is bounded, least recently used out first', async t => {
  // One slow user whose cache hits show in the timing, and cheap {PLAIN} users to fill the cache.
  const lines = [`zed:${bcrypt.hashSync('zed password', 10)}`]
  for (let i = 0; i < 2200; i++) lines.push(`u${i}:{PLAIN}p${i}`)
  const { step } = bind({ auth: lines.join('\n') })
  const zed = async (): Promise<number> => {
    const start = performance.now()
    t.equal(await run(step, context(basic('zed', 'zed password'))), undefined)
    return performance.now() - start
  }
  const fill = async (from: number, to: number): Promise<void> => {
    let letIn = 0
    for (let i = from; i < to; i++) if (await run(step, context(basic(`u${i}`, `p${i}`))) === undefined) letIn++
    t.equal(letIn, to - from, `users ${from} to ${to - 1} let in`)
  }
  const slow = await zed()
  await fill(0, 600)
  t.ok(await zed() < slow / 10, 'still cached after 600 others')
  await fill(600, 1200)
  t.ok(await zed() < slow / 10, 'still cached: its last use moved it to the back')
  await fill(1200, 2200)
  t.ok(await zed() > slow / 4, 'after 1,000 newer entries it was dropped, and is verified again')
})
