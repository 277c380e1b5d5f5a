import t from 'tap'
import { normalizeRequestPath } from '../../src/dataplane/request-path.js'

t.test('dot segments, encoded dots and repeated slashes are resolved; escaping the root is refused', async t => {
  const cases: [string, string | undefined][] = [
    ['/', '/'],
    ['/foo/bar', '/foo/bar'],
    ['/foo/', '/foo/'],
    ['/api/../secret', '/secret'],
    ['/api/./v1', '/api/v1'],
    ['/api/%2e%2e/secret', '/secret'],
    ['/api/%2E/v1/', '/api/v1/'],
    ['//foo///bar', '/foo/bar'],
    ['/foo/..', '/'],
    ['/foo/bar/..', '/foo/'],
    ['/foo/.', '/foo/'],
    ['/..', undefined],
    ['/../etc/passwd', undefined],
    ['/a/../../b', undefined],
    ['foo', undefined],
    ['http://other/x', undefined],
    ['/caf%C3%A9/%2F', '/caf%C3%A9/%2F'],
    ['/...', '/...']
  ]
  for (const [raw, expected] of cases) t.equal(normalizeRequestPath(raw), expected, `${raw} -> ${String(expected)}`)
})
