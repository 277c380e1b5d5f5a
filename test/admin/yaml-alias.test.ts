import t from 'tap'
import { startTestGateway } from '../helpers/gateway.js'

t.test('a YAML value that reads as an alias with no anchor is a 400 that quotes nothing, in the answer or the log', async t => {
  const gw = await startTestGateway(t, { INGRESSD_LOG_LEVEL: 'debug' })
  const password = 'Sup3r-secret-pw-7f3a9c'
  const yaml = `apiVersion: v1\nkind: Secret\nmetadata: {name: basic}\ntype: kubernetes.io/basic-auth\nstringData:\n  username: admin\n  password: *${password}\n`
  for (const path of ['/api/v1/namespaces/default/secrets', '/apply']) {
    const res = await gw.api('POST', path, yaml, { 'content-type': 'application/yaml' })
    t.equal(res.status, 400, `${path}: ${res.text.slice(0, 300)}`)
    t.equal(res.body.details.errorCode, 'INGRESSD_ERR_MALFORMED_BODY')
    t.match(res.body.message, /alias \(\*name\) refers to no anchor/)
    t.notOk(res.text.includes(password), `${path}: the answer does not quote the value`)
  }
  t.notOk(gw.logs.some(l => l.includes(password)), 'no log line quotes the value')
  t.equal((await gw.api('GET', '/api/v1/namespaces/default/secrets/basic')).status, 404)
})
