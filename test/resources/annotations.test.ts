import t from 'tap'
import { NGINX_PREFIX, parseIngressAnnotations, parseNginxSize, type IngressSettings } from '../../src/resources/annotations.js'
import { usesRegexPaths } from '../../src/resources/path-regex.js'

const P = NGINX_PREFIX
const DEFAULTS: IngressSettings = { useRegex: false, forceSslRedirect: false }

t.test('parseNginxSize', async t => {
  const cases: [string, number | undefined][] = [
    ['0', Infinity],
    ['0m', Infinity],
    ['10', 10],
    ['512k', 512 * 1024],
    ['512K', 512 * 1024],
    ['1m', 1048576],
    ['8M', 8 * 1048576],
    ['1g', 1024 ** 3],
    [' 2m ', 2 * 1048576],
    ['', undefined],
    ['m', undefined],
    ['1.5m', undefined],
    ['-1', undefined],
    ['1mb', undefined],
    ['1t', undefined],
    ['10 m', undefined],
    ['999999999999999g', undefined]
  ]
  for (const [input, expected] of cases) t.equal(parseNginxSize(input), expected, JSON.stringify(input))
})

t.test('settings from annotations', async t => {
  const cases: { name: string, annotations: Record<string, string> | undefined, settings: IngressSettings }[] = [
    { name: 'no annotations', annotations: undefined, settings: DEFAULTS },
    { name: 'only non-nginx annotations', annotations: { 'kubernetes.io/ingress.class': 'nginx', 'example.com/x': 'y' }, settings: DEFAULTS },
    { name: 'rewrite-target without groups', annotations: { [`${P}rewrite-target`]: '/' }, settings: { ...DEFAULTS, rewriteTarget: '/' } },
    { name: 'rewrite-target with $2 turns regex on', annotations: { [`${P}rewrite-target`]: '/$2' }, settings: { ...DEFAULTS, rewriteTarget: '/$2', useRegex: true } },
    { name: 'empty rewrite-target is unset', annotations: { [`${P}rewrite-target`]: '' }, settings: DEFAULTS },
    { name: 'use-regex true', annotations: { [`${P}use-regex`]: 'true' }, settings: { ...DEFAULTS, useRegex: true } },
    { name: 'use-regex false', annotations: { [`${P}use-regex`]: 'false' }, settings: DEFAULTS },
    { name: 'use-regex false with $1 target is still regex', annotations: { [`${P}use-regex`]: 'false', [`${P}rewrite-target`]: '/$1' }, settings: { ...DEFAULTS, rewriteTarget: '/$1', useRegex: true } },
    { name: 'ssl-redirect false', annotations: { [`${P}ssl-redirect`]: 'false' }, settings: { ...DEFAULTS, sslRedirect: false } },
    { name: 'ssl-redirect true', annotations: { [`${P}ssl-redirect`]: 'true' }, settings: { ...DEFAULTS, sslRedirect: true } },
    { name: 'force-ssl-redirect', annotations: { [`${P}force-ssl-redirect`]: 'true' }, settings: { ...DEFAULTS, forceSslRedirect: true } },
    {
      name: 'timeouts in seconds, with or without s',
      annotations: { [`${P}proxy-connect-timeout`]: '5', [`${P}proxy-read-timeout`]: '120s', [`${P}proxy-send-timeout`]: '30' },
      settings: { ...DEFAULTS, connectTimeoutMs: 5000, readTimeoutMs: 120000, sendTimeoutMs: 30000 }
    },
    { name: 'body size', annotations: { [`${P}proxy-body-size`]: '8m' }, settings: { ...DEFAULTS, bodySizeLimit: 8 * 1048576 } },
    { name: 'body size unlimited', annotations: { [`${P}proxy-body-size`]: '0' }, settings: { ...DEFAULTS, bodySizeLimit: Infinity } },
    { name: 'load-balance ewma', annotations: { [`${P}load-balance`]: 'ewma' }, settings: { ...DEFAULTS, loadBalance: 'ewma' } },
    { name: 'load-balance round_robin', annotations: { [`${P}load-balance`]: 'round_robin' }, settings: { ...DEFAULTS, loadBalance: 'round_robin' } }
  ]
  for (const c of cases) {
    const out = parseIngressAnnotations(c.annotations)
    t.same(out.settings, c.settings, c.name)
    t.same(out.problems, [], `${c.name}: no problems`)
    t.same(out.ignored, [], `${c.name}: nothing ignored`)
  }
})

t.test('malformed values are problems, and leave the setting unset', async t => {
  const cases: [string, string, RegExp][] = [
    ['use-regex', 'yes', /"true" or "false".*"yes"/],
    ['use-regex', 'True', /"true" or "false"/],
    ['ssl-redirect', '1', /"true" or "false"/],
    ['force-ssl-redirect', '', /"true" or "false"/],
    ['proxy-connect-timeout', '5m', /whole number of seconds/],
    ['proxy-read-timeout', '0', /whole number of seconds/],
    ['proxy-send-timeout', '1.5', /whole number of seconds/],
    ['proxy-read-timeout', '99999999', /whole number of seconds/],
    ['proxy-body-size', '1mb', /nginx size/],
    ['proxy-body-size', 'lots', /nginx size/],
    ['load-balance', 'least_conn', /"round_robin" or "ewma"/]
  ]
  for (const [name, value, message] of cases) {
    const out = parseIngressAnnotations({ [`${P}${name}`]: value })
    t.same(out.settings, DEFAULTS, `${name}=${value}: settings untouched`)
    t.equal(out.problems.length, 1, `${name}=${value}: one problem`)
    t.equal(out.problems[0]?.key, `${P}${name}`, `${name}=${value}: key`)
    t.match(out.problems[0]?.message, message, `${name}=${value}: message`)
  }
})

t.test('snippets are refused, unknown nginx keys ignored', async t => {
  const out = parseIngressAnnotations({
    [`${P}configuration-snippet`]: 'more_set_headers "X: y";',
    [`${P}server-snippet`]: 'location /x {}',
    [`${P}auth-snippet`]: 'x',
    [`${P}stream-snippet`]: 'x',
    [`${P}enable-opentelemetry`]: 'true',
    [`${P}mirror-target`]: 'https://mirror.example.com',
    [`${P}ssl-redirect`]: 'false',
    'other.io/anything': 'x'
  })
  t.same(out.settings, { ...DEFAULTS, sslRedirect: false })
  t.same(out.problems.map(p => p.key), [`${P}auth-snippet`, `${P}configuration-snippet`, `${P}server-snippet`, `${P}stream-snippet`])
  for (const p of out.problems) t.match(p.message, /accepts no raw nginx configuration/)
  t.same(out.ignored, [`${P}enable-opentelemetry`, `${P}mirror-target`])
})

t.test('useRegex agrees with usesRegexPaths (the write-time check)', async t => {
  const cases: Record<string, string>[] = [
    {},
    { [`${P}use-regex`]: 'true' },
    { [`${P}use-regex`]: 'false' },
    { [`${P}use-regex`]: 'TRUE' },
    { [`${P}rewrite-target`]: '/' },
    { [`${P}rewrite-target`]: '/$1' },
    { [`${P}rewrite-target`]: '/x/$9/y' },
    { [`${P}rewrite-target`]: '$' }
  ]
  for (const a of cases) t.equal(parseIngressAnnotations(a).settings.useRegex, usesRegexPaths(a), JSON.stringify(a))
})

t.test('never throws on odd stored input', async t => {
  const odd = { [`${P}use-regex`]: 42 } as unknown as Record<string, string>
  const out = parseIngressAnnotations(odd)
  t.same(out.settings, DEFAULTS)
  t.equal(out.problems.length, 1)
  t.same(parseIngressAnnotations(null as unknown as undefined).settings, DEFAULTS)
  // A key named like an Object.prototype member is not a handler.
  t.same(parseIngressAnnotations({ [`${P}constructor`]: 'x', [`${P}__proto__`]: 'y' }).ignored.length, 2)
})
