/**
 * Password hashes as htpasswd and openssl write them: committed fixtures made by those tools
 * (so the suite holds where they are missing), fresh ones made by the tools at test time, the
 * SHA-crypt vectors of Drepper's specification, malformed and refused hashes, and the file
 * parsers, whose problems must never quote a hash.
 */
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import bcrypt from 'bcryptjs'
import {
  compileHash, dummyHash, hashProblem, MAX_PASSWORD_BYTES, parseAuthMap, parseHtpasswd, verifyPassword, type HashKind
} from '../../../src/dataplane/policies/htpasswd.js'

const P1 = 'correct horse battery staple'
const P2 = 'pä$$ wörd:with:colons'

const APR1 = '$apr1$InKIvPn2$MBqJ7pkbED8gWrtwtfmnQ1'
const BCRYPT = '$2y$05$Wz6kkEbLtewMvjEgall/eeU4C7kY7MO5GHjFZNpq3Mb3z2b3GlbqO'
const SHA = '{SHA}q/eq1kOINtvlJqojGr3i0O73TUI='
const DES = '0bTvqia9LzAt.'

/** Made with OpenSSL 3.0 (`openssl passwd`) and Apache 2.4's `htpasswd -nb`; {SSHA} with `openssl sha1 -binary`. */
const FIXTURES: Array<[string, string, string]> = [
  ['openssl -apr1', '$apr1$InKIvPn2$MBqJ7pkbED8gWrtwtfmnQ1', P1],
  ['openssl -apr1, UTF-8 and colons', '$apr1$J4Ch2Tp5$M1JBxybkuQLwZ0LuYK3.g1', P2],
  ['openssl -1', '$1$Bxe1cRJ6$E10ECe7vRjnXgEUr9XbwI/', P1],
  ['openssl -1, UTF-8 and colons', '$1$ItJEJtau$Ci9a/VNd9ZI4UlI6P5wCN/', P2],
  ['openssl -5', '$5$gYYTMlDx/Y1xgwlv$NMSBy02BqnlwngDIdW.MtEYFzN1/E9hGzViSVK2nwID', P1],
  ['openssl -5, UTF-8 and colons', '$5$02aH.Ywy3v7fTMdY$QuSBC8gQ8dzTuiL89LiXBtv9f5zExUf9CW6L3TkDoG9', P2],
  ['openssl -6', '$6$AqLHkxEy1MDt9LEn$6FJR/j6LOpSl8uVcYawEuXorsgrjW/2oqG6OFo.D21ZpY5tnOjty4z5FIQdVPupugkZkhRpy8HcRCkX0NrhlO.', P1],
  ['openssl -6, UTF-8 and colons', '$6$p9bEHMrMCp6zUETi$xxx4xef4r6AQlFIxH0KhfbKBT7a.htvMM34sTosIZhECdd0i6BwinZrq6QBIJ.iCB.NJoWlu9kl4bnuXkm1La.', P2],
  ['openssl -5 rounds=1000', '$5$rounds=1000$abcdefgh$e6L/jnksFK.lGRjnmE6utEeW4Tmz1tlQP.bCZd38LS9', P1],
  ['openssl -6 rounds=20000', '$6$rounds=20000$0123456789abcdef$sLiU0r1Y7p5oYppzlPqZD3ycNnf1HE.03UZ2C7f3AQW.Fmss8dvI84ymB99/LfQegqOpucKzW6o3dwhMDHSLY/', P2],
  ['htpasswd -B', '$2y$05$Wz6kkEbLtewMvjEgall/eeU4C7kY7MO5GHjFZNpq3Mb3z2b3GlbqO', P1],
  ['htpasswd -B, UTF-8 and colons', '$2y$05$uroXZfZQvC40CDF80wbHHe9Z7fFfjTVu5zzj4JdLlAxQLcIXgrgca', P2],
  ['htpasswd -B -C 4', '$2y$04$G6SFh2bu59Nfg0z7g.EqSOJR2nf1284S6GlOsFKJWq.4mqYfcpPk2', P1],
  ['htpasswd -m', '$apr1$Ja8kNkL0$H1cTo.fXlcxOw//MaWbpD.', P1],
  ['htpasswd -m, UTF-8 and colons', '$apr1$1ZEoLiJe$bOnLgBc5GoLFCs63TYzKD.', P2],
  ['htpasswd -s', '{SHA}q/eq1kOINtvlJqojGr3i0O73TUI=', P1],
  ['htpasswd -s, UTF-8 and colons', '{SHA}Rev9fsZRqHU4f+EFuOOyN8g0MZQ=', P2],
  ['htpasswd -2', '$5$lHafUlXe5vPTaJkz$7S81pkPpu1fCVBA.cpP3JxKWd35WwdlJ0ixfycWlDJ/', P1],
  ['htpasswd -5', '$6$kwyjRy4TlmwnF9Js$e9V0n.uii7uz.ljKYcFjF5TJsZqbypvW1hLYPx1hGqabOC2SvLuk/8K.thF/BAXm7NUwVab6GPWXRxtKfhK/j0', P2],
  ['htpasswd -2 -r 2000', '$5$rounds=2000$CLVBODAMocPegyxn$QeWD3pzDqQaVFfVC1ZzP0kSBuziDRlg/y2ySiQvYa20', P1],
  ['htpasswd -5 -r 20000', '$6$rounds=20000$dJ7hY9crUL5bx3Mh$cTUMnHeYE37DtC5e2jLvAE5kAAor936Jgkv.B3Iw/63O045dFtasLbPyRJ4qIhrvhTCzEblWoex1RQJcRe/xF1', P2],
  ['{SSHA} (openssl sha1 of password + salt, then the salt)', '{SSHA}x0d6yx0rrwkVNhoT2kGM+V5Slm1OYUNsNDMyMQ==', P1],
  ['{SSHA}, binary salt', '{SSHA}kQRpnNwqlxEiPiAN1ULMcptu4OIBAgME', P2],
  ['{PLAIN}', `{PLAIN}${P1}`, P1],
  ['{PLAIN} with colons (within a hash, not a file line)', `{PLAIN}${P2}`, P2],
  // Drepper's specification, as OpenSSL reproduces it; rounds=10 is raised to the minimum of 1000.
  ['SHA-crypt spec: $5$saltstring', '$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5', 'Hello world!'],
  ['SHA-crypt spec: $6$saltstring', '$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1', 'Hello world!'],
  ['SHA-crypt spec: rounds=10000, salt cut to 16', '$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.', 'Hello world!'],
  ['SHA-crypt spec: rounds=1000 as written', '$5$rounds=1000$roundstoolow$yfvwcWrQ8l/K0DAWyuPMDNHpIVlTQebY9l/gL972bIC', 'the minimum number is still observed'],
  ['SHA-crypt spec: rounds=10 counts as 1000', '$5$rounds=10$roundstoolow$yfvwcWrQ8l/K0DAWyuPMDNHpIVlTQebY9l/gL972bIC', 'the minimum number is still observed']
]

function wrongPasswords (password: string): string[] {
  return [password + 'x', password.slice(0, -1), password.toUpperCase(), '', ' ' + password]
}

t.test('committed fixtures: the right password matches, others do not', async t => {
  for (const [label, hash, password] of FIXTURES) {
    t.equal(hashProblem(hash), undefined, `${label}: usable`)
    t.equal(verifyPassword(hash, password), true, `${label}: right password`)
    for (const wrong of wrongPasswords(password)) t.equal(verifyPassword(hash, wrong), false, `${label}: wrong password ${JSON.stringify(wrong)}`)
  }
})

function hasTool (name: string, probe: string[]): boolean {
  try {
    execFileSync(name, probe, { stdio: 'ignore' })
    return true
  } catch (err) {
    // htpasswd exits non-zero on a usage line but exists; only a missing binary fails to spawn.
    return (err as NodeJS.ErrnoException).code !== 'ENOENT'
  }
}

const PASSWORDS = ['s3cret', P2, 'x', 'a password longer than sixteen bytes, and then some more to pass sixty-four bytes of SHA-512']

const OPENSSL = hasTool('openssl', ['version'])
const HTPASSWD = hasTool('htpasswd', ['-nb', 'probe', 'probe'])

t.test('hashes made now by openssl passwd', { skip: OPENSSL ? false : 'openssl is not installed: only the committed fixtures above are checked' }, async t => {
  const variants = [['-apr1'], ['-1'], ['-5'], ['-6'], ['-5', '-salt', 'rounds=1500$someSalt'], ['-6', '-salt', 'rounds=3000$0123456789abcdefXYZ']]
  for (const args of variants) {
    for (const password of PASSWORDS) {
      const hash = execFileSync('openssl', ['passwd', ...args, password]).toString().trim()
      t.equal(hashProblem(hash), undefined, `openssl passwd ${args.join(' ')}: usable`)
      t.equal(verifyPassword(hash, password), true, `openssl passwd ${args.join(' ')}: right password (${password.length} characters)`)
      t.equal(verifyPassword(hash, '!' + password), false, `openssl passwd ${args.join(' ')}: wrong password`)
      t.equal(verifyPassword(hash, password + '!'), false, `openssl passwd ${args.join(' ')}: longer password`)
    }
  }
})

t.test('hashes made now by htpasswd', { skip: HTPASSWD ? false : 'htpasswd (apache2-utils) is not installed: the committed htpasswd fixtures above are checked, fresh ones are not made' }, async t => {
  const variants = [['-B'], ['-B', '-C', '4'], ['-m'], ['-s'], ['-2'], ['-5'], ['-2', '-r', '1200'], ['-5', '-r', '1200']]
  for (const args of variants) {
    for (const password of PASSWORDS) {
      const line = execFileSync('htpasswd', ['-nb', ...args, 'user', password]).toString().split('\n')[0] as string
      const hash = line.slice('user:'.length)
      t.equal(hashProblem(hash), undefined, `htpasswd ${args.join(' ')}: usable`)
      t.equal(verifyPassword(hash, password), true, `htpasswd ${args.join(' ')}: right password (${password.length} characters)`)
      // '!' first: bcrypt reads only 72 bytes, so a change past them would not count.
      t.equal(verifyPassword(hash, '!' + password), false, `htpasswd ${args.join(' ')}: wrong password`)
    }
  }
  const des = (execFileSync('htpasswd', ['-nbd', 'user', 'secret12']).toString().split('\n')[0] as string).slice('user:'.length)
  t.match(hashProblem(des), /DES crypt is not supported/, 'htpasswd -d (DES crypt) is refused')
  t.equal(verifyPassword(des, 'secret12'), false, 'and never matches')
})

t.test('{SSHA} as its definition has it: SHA-1 of password and salt, then the salt', async t => {
  for (const salt of [Buffer.from('abcd'), Buffer.from([0, 255, 10, 13, 58]), Buffer.alloc(16, 7)]) {
    const hash = `{SSHA}${Buffer.concat([createHash('sha1').update(P2).update(salt).digest(), salt]).toString('base64')}`
    t.equal(verifyPassword(hash, P2), true, `salt of ${salt.length} bytes`)
    t.equal(verifyPassword(hash, P1), false)
  }
})

t.test('unusable hashes: each says why and never matches', async t => {
  const cases: Array<[string, string, RegExp]> = [
    ['DES crypt', '0bTvqia9LzAt.', /legacy DES crypt is not supported/],
    ['empty', '', /empty/],
    ['plain text without {PLAIN}', 'secret', /unknown hash format.*{PLAIN} prefix/],
    ['plain text with a space', 'my secret', /contains whitespace/],
    ['yescrypt', '$y$j9T$abcdefghijklmnopqrstuv$0123456789abcdefghijklmnopqrstuvwxyzABCDE', /yescrypt \(\$y\$\) hashes are not supported/],
    ['argon2', '$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA', /Argon2/],
    ['unknown $ format', '$9$abc$def', /unknown hash format/],
    ['{SHA256}', '{SHA256}abc=', /\{SHA256\} hashes are not supported/],
    ['bcrypt, too short', '$2y$05$Wz6kkEbLtewMvjEgall/eeU4C7kY7MO5GHjFZNpq3Mb3z2b3Glbq', /malformed bcrypt/],
    ['bcrypt, $2x$', '$2x$05$Wz6kkEbLtewMvjEgall/eeU4C7kY7MO5GHjFZNpq3Mb3z2b3GlbqO', /malformed bcrypt/],
    ['bcrypt, bad character', '$2y$05$Wz6kkEbLtewMvjEgall/eeU4C7kY7MO5GHjFZNpq3Mb3z2b3Glbq!', /malformed bcrypt/],
    ['bcrypt, cost 3', '$2y$03$Wz6kkEbLtewMvjEgall/eeU4C7kY7MO5GHjFZNpq3Mb3z2b3GlbqO', /below the minimum of 4/],
    ['bcrypt, cost 15', '$2y$15$Wz6kkEbLtewMvjEgall/eeU4C7kY7MO5GHjFZNpq3Mb3z2b3GlbqO', /cost 15 is above the 14/],
    ['bcrypt, cost 31', '$2b$31$Wz6kkEbLtewMvjEgall/eeU4C7kY7MO5GHjFZNpq3Mb3z2b3GlbqO', /above/],
    ['apr1, short digest', '$apr1$InKIvPn2$MBqJ7pkbED8gWrtwtfmnQ', /malformed MD5-crypt/],
    ['apr1, salt of 9', '$apr1$InKIvPn2x$MBqJ7pkbED8gWrtwtfmnQ1', /malformed MD5-crypt/],
    ['apr1, no digest', '$apr1$InKIvPn2', /malformed MD5-crypt/],
    ['$5$, digest of a $6$', '$5$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1', /malformed SHA-crypt.*43/],
    ['$6$, salt of 17', '$6$saltstringsaltstr$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.', /malformed SHA-crypt/],
    ['$6$, rounds not a number', '$6$rounds=ten$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1', /malformed SHA-crypt/],
    ['$6$, rounds over the cap', '$6$rounds=1000001$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1', /rounds=1000001 is above the 1000000/],
    ['$5$, the spec maximum', '$5$rounds=999999999$roundstoolow$yfvwcWrQ8l/K0DAWyuPMDNHpIVlTQebY9l/gL972bIC', /above/],
    ['{SHA}, 19 bytes', `{SHA}${Buffer.alloc(19).toString('base64')}`, /malformed \{SHA\}/],
    ['{SHA}, not base64', '{SHA}q/eq1kOINtvlJqojGr3i0O73TU*=', /malformed \{SHA\}/],
    ['{SSHA}, no salt', `{SSHA}${Buffer.alloc(20).toString('base64')}`, /malformed \{SSHA\}/],
    ['{PLAIN} empty', '{PLAIN}', /empty password/]
  ]
  for (const [label, hash, problem] of cases) {
    t.match(hashProblem(hash), problem, label)
    t.equal(verifyPassword(hash, 'secret12'), false, `${label}: never matches`)
  }
  // The DES hash of "secret12" from htpasswd -d: the right password still does not open it.
  t.equal(verifyPassword('0bTvqia9LzAt.', 'secret12'), false, 'DES crypt never matches, even with its password')
})

t.test('problems never quote what may be a password', async t => {
  for (const value of ['$hunter2$', '$ecretpass', 'hunter2', '{hunter2}x', '$2y$hunter2']) {
    const problem = hashProblem(value) ?? ''
    t.notMatch(problem, /hunter2|ecretpass/, `${JSON.stringify(value)} → ${problem}`)
  }
})

t.test('passwords longer than MAX_PASSWORD_BYTES never match (CPU bound)', async t => {
  const long = 'a'.repeat(MAX_PASSWORD_BYTES + 1)
  t.equal(verifyPassword(`{PLAIN}${long}`, long), false, '{PLAIN}')
  t.equal(verifyPassword(BCRYPT, P1 + ' '.repeat(MAX_PASSWORD_BYTES)), false, 'bcrypt, though it would read only 72 bytes')
  const atLimit = 'é'.repeat(MAX_PASSWORD_BYTES / 2)
  t.equal(verifyPassword(`{PLAIN}${atLimit}`, atLimit), true, 'exactly the limit in UTF-8 bytes')
  const overLimit = atLimit + 'a'
  t.equal(verifyPassword(`{PLAIN}${overLimit}`, overLimit), false, 'one byte over')
  const sha512 = `$6$saltstring$${'a'.repeat(86)}`
  const start = performance.now()
  t.equal(verifyPassword(sha512, 'b'.repeat(12 * 1024)), false, 'a 12 KiB password is refused before hashing')
  t.ok(performance.now() - start < 50, 'and costs nothing')
})

t.test('bcrypt reads the first 72 bytes of a password, as every bcrypt does', async t => {
  const seventyTwo = 'x'.repeat(72)
  const hash = bcrypt.hashSync(seventyTwo, 4).replace(/^\$2b\$/, '$2y$')
  t.equal(verifyPassword(hash, seventyTwo), true, '$2y$ as htpasswd writes it')
  t.equal(verifyPassword(hash, seventyTwo + 'ignored'), true, 'bytes past 72 do not count')
  t.equal(verifyPassword(hash, 'x'.repeat(71)), false)
  t.equal(verifyPassword(`{PLAIN}${seventyTwo}`, seventyTwo + 'y'), false, '{PLAIN} compares the whole password')
})

t.test('{PLAIN} compares without revealing the stored length', async t => {
  t.equal(verifyPassword('{PLAIN}abc', 'abc'), true)
  t.equal(verifyPassword('{PLAIN}abc', 'abcd'), false)
  t.equal(verifyPassword('{PLAIN}abc', 'ab'), false)
  t.equal(verifyPassword('{PLAIN}ABC', 'abc'), false, 'case-sensitive')
})

t.test('verifyPassword never throws on hostile input', async t => {
  const values = ['$', '$$$$', '$2y$', '$2y$99$', '$apr1$', '$5$rounds=$$', '$6$rounds=0$$' + 'a'.repeat(86), '{SHA}', '{SSHA}====', '\u0000', '$1$\u0000$' + 'a'.repeat(22)]
  for (const value of values) {
    t.doesNotThrow(() => verifyPassword(value, 'x'), JSON.stringify(value))
    t.equal(verifyPassword(value, 'x'), false, JSON.stringify(value))
  }
  t.equal(hashProblem('$6$rounds=0$$' + 'a'.repeat(86)), undefined, 'rounds=0 is raised to 1000 (the spec), an empty salt is allowed')
})

t.test('dummy hashes: the same kind and cost, and nobody\'s password', async t => {
  const kinds: HashKind[] = ['bcrypt:4', 'apr1', 'md5-crypt', 'sha256-crypt:1000', 'sha512-crypt:2000', 'sha', 'ssha', 'plain']
  for (const kind of kinds) {
    const hash = dummyHash(kind)
    const compiled = compileHash(hash)
    t.ok(compiled.ok, `${kind}: usable`)
    if (compiled.ok) {
      t.equal(compiled.kind, kind, `${kind}: the same kind`)
      t.equal(compiled.verify(''), false)
      t.equal(compiled.verify('password'), false)
    }
    t.not(dummyHash(kind), hash, `${kind}: random each time`)
  }
  const fixture = compileHash('$2y$05$Wz6kkEbLtewMvjEgall/eeU4C7kY7MO5GHjFZNpq3Mb3z2b3GlbqO')
  t.equal(fixture.ok && fixture.kind, 'bcrypt:5')
  const sha = compileHash('$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1')
  t.equal(sha.ok && sha.kind, 'sha512-crypt:5000', 'no rounds= means the default 5000')
})

/** Every hash-looking piece a problem must not quote. */
function leaks (problems: string[], secrets: string[]): string[] {
  return problems.filter(p => secrets.some(s => p.includes(s) || p.includes(s.slice(7, 20))))
}

t.test('parseHtpasswd: comments, blank lines, CRLF, extra fields', async t => {
  const text = [
    '# made with htpasswd',
    '',
    `alice:${APR1}`,
    `bob:${BCRYPT}\r`,
    '   ',
    '  # indented comment',
    `carol:${SHA}:a comment field nginx ignores`,
    'dave:{PLAIN}pa',
    ''
  ].join('\n')
  const parsed = parseHtpasswd(text)
  t.same(parsed.problems, [])
  t.same([...parsed.users.keys()], ['alice', 'bob', 'carol', 'dave'])
  t.equal(parsed.users.get('bob'), BCRYPT, 'CR removed')
  t.equal(parsed.users.get('carol'), SHA, 'the hash ends at the next colon')
  t.equal(parsed.users.get('dave'), '{PLAIN}pa')
  t.same(parseHtpasswd(''), { users: new Map(), problems: [] })
  t.same(parseHtpasswd('alice:' + APR1).users.get('alice'), APR1, 'no final newline')
})

t.test('parseHtpasswd: problems name the line and the user, never the hash', async t => {
  const text = [
    `alice:${APR1}`,
    'a-bare-line-without-colon-{PLAIN}hunter2',
    `:${SHA}`,
    `bob:${DES}`,
    `carol:${BCRYPT.slice(0, -1)}`,
    `alice:${SHA}`,
    'erin:{PLAIN}',
    `frank:${BCRYPT}`,
    'gina:hunter2'
  ].join('\r\n')
  const parsed = parseHtpasswd(text)
  t.same([...parsed.users.keys()], ['alice', 'frank'], 'usable users stay, the first alice wins')
  t.equal(parsed.users.get('alice'), APR1)
  t.equal(parsed.problems.length, 7)
  t.match(parsed.problems[0], /^line 2: expected "user:hash"$/)
  t.match(parsed.problems[1], /^line 3: the user name is empty$/)
  t.match(parsed.problems[2], /^line 4 \(user "bob"\): legacy DES crypt/)
  t.match(parsed.problems[3], /^line 5 \(user "carol"\): malformed bcrypt/)
  t.match(parsed.problems[4], /^line 6 \(user "alice"\): the user is already on line 1/)
  t.match(parsed.problems[5], /^line 7 \(user "erin"\): \{PLAIN\} with an empty password/)
  t.match(parsed.problems[6], /^line 9 \(user "gina"\): unknown hash format/)
  t.same(leaks(parsed.problems, [APR1, SHA, DES, BCRYPT]), [], 'no hash is quoted')
  t.notMatch(parsed.problems.join('\n'), /hunter2/, 'nor a plain-text password')
})

t.test('parseHtpasswd: user names are quoted safely', async t => {
  const parsed = parseHtpasswd(`we"ird\u0007:${DES}`)
  t.match(parsed.problems[0], /^line 1 \(user "we\\"ird\\u0007"\)/)
})

t.test('parseAuthMap: one user per key', async t => {
  const parsed = parseAuthMap({ bob: BCRYPT, alice: `${APR1}\n`, carol: `${SHA}\r\n` })
  t.same(parsed.problems, [])
  t.same([...parsed.users.entries()], [['alice', APR1], ['bob', BCRYPT], ['carol', SHA]], 'sorted, one trailing newline tolerated')
  t.equal(parseAuthMap({ ivy: '{PLAIN}pa:ss' }).users.get('ivy'), '{PLAIN}pa', 'the hash ends at a colon, as in the file ingress-nginx writes')

  const bad = parseAuthMap({ dan: DES, eve: `${APR1}\n${SHA}`, fay: '', gus: BCRYPT, 'h:i': SHA })
  t.same([...bad.users.keys()], ['gus'])
  t.match(bad.problems, [/^user "dan": legacy DES crypt/, /^user "eve": the value spans several lines/, /^user "fay": the hash is empty/, /^user "h:i": a user name cannot contain ":"/])
  t.same(leaks(bad.problems, [APR1, SHA, DES, BCRYPT]), [], 'no hash is quoted')
})
