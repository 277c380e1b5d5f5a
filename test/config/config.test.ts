import t from 'tap'
import { loadConfig, parseListenAddress } from '../../src/config/config.js'
import { IngressdError } from '../../src/errors.js'

t.test('defaults', async t => {
  const c = loadConfig({}, {})
  t.same(c.adminAddr, { host: '127.0.0.1', port: 8001 })
  t.same(c.httpAddr, { host: '0.0.0.0', port: 8080 })
  t.same(c.httpsAddr, { host: '0.0.0.0', port: 8443 })
  t.equal(c.db, './data/ingressd.db')
  t.equal(c.adminToken, undefined)
  t.equal(c.logLevel, 'info')
  t.equal(c.adminBodyLimit, 10 * 1024 * 1024)
  t.same(c.ingressClasses, ['ingressd', 'nginx'])
  t.equal(c.proxyConnectTimeoutMs, 5000)
  t.equal(c.proxyReadTimeoutMs, 60000)
  t.ok(Object.isFrozen(c))
})

t.test('flags win over the environment, which wins over defaults', async t => {
  const c = loadConfig({ 'http-addr': ':0' }, { INGRESSD_HTTP_ADDR: '127.0.0.1:9', INGRESSD_LOG_LEVEL: 'debug' })
  t.same(c.httpAddr, { host: '0.0.0.0', port: 0 })
  t.equal(c.logLevel, 'debug')
})

t.test('addresses', async t => {
  t.same(parseListenAddress('[::1]:8001', 'x'), { host: '::1', port: 8001 })
  t.same(parseListenAddress('localhost:0', 'x'), { host: 'localhost', port: 0 })
  for (const bad of ['8080', 'host:99999', 'a:b', '']) t.throws(() => parseListenAddress(bad, 'INGRESSD_HTTP_ADDR'), /INGRESSD_HTTP_ADDR/)
})

t.test('a bad value names the setting and the expected form', async t => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ INGRESSD_LOG_LEVEL: 'loud' }, /INGRESSD_LOG_LEVEL="loud" is invalid: expected one of fatal, error/],
    [{ INGRESSD_ADMIN_BODY_LIMIT: 'big' }, /INGRESSD_ADMIN_BODY_LIMIT="big" is invalid: expected a size/],
    [{ INGRESSD_PROXY_READ_TIMEOUT: 'soon' }, /INGRESSD_PROXY_READ_TIMEOUT="soon" is invalid: expected a duration/],
    [{ INGRESSD_TRUSTED_PROXIES: '10.0.0.0/40' }, /"10.0.0.0\/40" is not an IP address or CIDR range/],
    [{ INGRESSD_ADMIN_TOKEN: 'short' }, /at least 16 characters/],
    [{ INGRESSD_ADMIN_ADDR: '0.0.0.0:8001' }, /not a loopback address, and INGRESSD_ADMIN_TOKEN is not set/]
  ]
  for (const [env, message] of cases) {
    try {
      loadConfig({}, env)
      t.fail(`accepted ${JSON.stringify(env)}`)
    } catch (err) {
      t.ok(err instanceof IngressdError)
      t.equal((err as IngressdError).code, 'INGRESSD_ERR_CONFIG')
      t.match((err as Error).message, message)
    }
  }
  t.notMatch((() => { try { loadConfig({}, { INGRESSD_ADMIN_TOKEN: 'short' }) } catch (e) { return (e as Error).message } return '' })(), /short/, 'the token is not echoed')
  t.same(loadConfig({}, { INGRESSD_ADMIN_ADDR: '0.0.0.0:8001', INGRESSD_ADMIN_TOKEN: 'x'.repeat(16) }).adminAddr.host, '0.0.0.0', 'a token allows any address')
})

t.test('INGRESSD_WORKERS: auto is one per core, else a positive whole number', async t => {
  const { availableParallelism } = await import('node:os')
  t.equal(loadConfig({}, {}).workers, availableParallelism(), 'default: auto')
  t.equal(loadConfig({}, { INGRESSD_WORKERS: 'auto' }).workers, availableParallelism())
  t.equal(loadConfig({}, { INGRESSD_WORKERS: '1' }).workers, 1)
  t.equal(loadConfig({ workers: '4' }, { INGRESSD_WORKERS: '1' }).workers, 4, 'the --workers flag wins')
  for (const raw of ['0', '-1', 'two', '1.5', '']) {
    t.throws(() => loadConfig({}, { INGRESSD_WORKERS: raw }), { code: 'INGRESSD_ERR_CONFIG', message: /INGRESSD_WORKERS=.*positive whole number/ }, `rejects ${JSON.stringify(raw)}`)
  }
})
