import t from 'tap'
import { loadConfig } from '../../src/config/config.js'

t.test('TLS settings: defaults', async t => {
  const c = loadConfig({}, {})
  t.equal(c.defaultCertificate, undefined)
  t.equal(c.tlsHandshakeTimeoutMs, 10_000)
  t.equal(c.httpsRedirectPort, undefined)
  t.equal(c.hsts, 'max-age=15724800; includeSubDomains')
})

t.test('TLS settings: values and refusals', async t => {
  const c = loadConfig({ 'default-cert': 'ingress/wildcard-cert' }, { INGRESSD_TLS_HANDSHAKE_TIMEOUT: '2s', INGRESSD_HTTPS_REDIRECT_PORT: '443', INGRESSD_HSTS: 'off' })
  t.equal(c.defaultCertificate, 'ingress/wildcard-cert')
  t.equal(c.tlsHandshakeTimeoutMs, 2000)
  t.equal(c.httpsRedirectPort, 443)
  t.equal(c.hsts, undefined, 'off disables HSTS')
  t.equal(loadConfig({}, { INGRESSD_HSTS: 'max-age=63072000; includeSubDomains; preload' }).hsts, 'max-age=63072000; includeSubDomains; preload')
  const bad: [Record<string, string>, RegExp][] = [
    [{ INGRESSD_DEFAULT_CERT: 'just-a-name' }, /INGRESSD_DEFAULT_CERT="just-a-name" is invalid: expected NAMESPACE\/NAME/],
    [{ INGRESSD_DEFAULT_CERT: 'Default/Cert' }, /expected NAMESPACE\/NAME/],
    [{ INGRESSD_HTTPS_REDIRECT_PORT: '0' }, /INGRESSD_HTTPS_REDIRECT_PORT="0" is invalid: expected a port/],
    [{ INGRESSD_HTTPS_REDIRECT_PORT: '70000' }, /expected a port/],
    [{ INGRESSD_HSTS: 'yes please' }, /INGRESSD_HSTS="yes please" is invalid/],
    [{ INGRESSD_HSTS: 'max-age=1\r\nx-evil: 1' }, /INGRESSD_HSTS/],
    [{ INGRESSD_TLS_HANDSHAKE_TIMEOUT: 'soon' }, /INGRESSD_TLS_HANDSHAKE_TIMEOUT="soon" is invalid: expected a duration/]
  ]
  for (const [env, message] of bad) t.throws(() => loadConfig({}, env), message, JSON.stringify(env))
})
