/** INGRESSD_ADMIN_TLS, INGRESSD_ADMIN_TLS_CERT and INGRESSD_ADMIN_TLS_KEY: what is accepted, and what is refused naming the setting. */
import t from 'tap'
import { loadConfig } from '../../src/config/config.js'
import { IngressdError } from '../../src/errors.js'

function refusal (flags: Record<string, string>, env: Record<string, string>): string {
  try {
    loadConfig(flags, env)
  } catch (err) {
    if (err instanceof IngressdError && err.code === 'INGRESSD_ERR_CONFIG') return err.message
    throw err
  }
  return ''
}

t.test('off by default; auto; file with both paths', async t => {
  const off = loadConfig({}, {})
  t.equal(off.adminTls, 'off')
  t.equal(off.adminTlsCert, undefined)
  t.equal(off.adminTlsKey, undefined)
  t.equal(loadConfig({}, { INGRESSD_ADMIN_TLS: 'auto' }).adminTls, 'auto')
  t.equal(loadConfig({ 'admin-tls': 'auto' }, { INGRESSD_ADMIN_TLS: 'off' }).adminTls, 'auto', 'the flag wins')
  const file = loadConfig({}, { INGRESSD_ADMIN_TLS: 'file', INGRESSD_ADMIN_TLS_CERT: '/etc/ingressd/admin.crt', INGRESSD_ADMIN_TLS_KEY: '/etc/ingressd/admin.key' })
  t.same([file.adminTls, file.adminTlsCert, file.adminTlsKey], ['file', '/etc/ingressd/admin.crt', '/etc/ingressd/admin.key'])
})

t.test('refused with a message naming the setting', async t => {
  t.match(refusal({}, { INGRESSD_ADMIN_TLS: 'on' }), /INGRESSD_ADMIN_TLS="on" is invalid: expected one of off, auto, file/)
  t.match(refusal({}, { INGRESSD_ADMIN_TLS: 'file' }), /^INGRESSD_ADMIN_TLS_CERT is not set: INGRESSD_ADMIN_TLS=file serves/)
  t.match(refusal({}, { INGRESSD_ADMIN_TLS: 'file', INGRESSD_ADMIN_TLS_CERT: 'a.crt' }), /^INGRESSD_ADMIN_TLS_KEY is not set/)
  t.match(refusal({ 'admin-tls': 'file', 'admin-tls-key': 'a.key' }, {}), /^INGRESSD_ADMIN_TLS_CERT is not set: --admin-tls=file/, 'flags are named as flags')
  t.match(refusal({}, { INGRESSD_ADMIN_TLS_CERT: 'a.crt' }), /^INGRESSD_ADMIN_TLS_CERT is set but INGRESSD_ADMIN_TLS is off: set INGRESSD_ADMIN_TLS=file/)
  t.match(refusal({ 'admin-tls-key': 'a.key' }, { INGRESSD_ADMIN_TLS: 'auto' }), /^--admin-tls-key is set but INGRESSD_ADMIN_TLS is auto/)
})

t.test('TLS does not lift the loopback rule: without a token the admin API stays on loopback', async t => {
  t.match(refusal({}, { INGRESSD_ADMIN_TLS: 'auto', INGRESSD_ADMIN_ADDR: '0.0.0.0:8001' }), /not a loopback address, and INGRESSD_ADMIN_TOKEN is not set/)
  t.equal(loadConfig({}, { INGRESSD_ADMIN_TLS: 'auto', INGRESSD_ADMIN_ADDR: '0.0.0.0:8001', INGRESSD_ADMIN_TOKEN: 'x'.repeat(16) }).adminAddr.host, '0.0.0.0')
})
