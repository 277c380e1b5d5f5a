import t from 'tap'
import { normalizeHost } from '../../src/dataplane/host.js'

t.test('normalizeHost', async t => {
  const cases: [string | undefined, string | undefined][] = [
    // plain names, case, port, trailing dot
    ['foo.bar.com', 'foo.bar.com'],
    ['Foo.BAR.com', 'foo.bar.com'],
    ['foo.bar.com:8080', 'foo.bar.com'],
    ['foo.bar.com:443', 'foo.bar.com'],
    ['foo.bar.com.', 'foo.bar.com'],
    ['FOO.bar.com.:80', 'foo.bar.com'],
    ['foo.bar.com:', 'foo.bar.com'],
    ['localhost', 'localhost'],
    ['my-host', 'my-host'],
    ['under_score.example', 'under_score.example'],
    ['127.0.0.1', '127.0.0.1'],
    ['127.0.0.1:3000', '127.0.0.1'],
    // IPv6
    ['[::1]', '[::1]'],
    ['[::1]:8080', '[::1]'],
    ['[2001:DB8::1]:443', '[2001:db8::1]'],
    ['[::1', undefined],
    ['[::1]x', undefined],
    ['[::1]:99999', undefined],
    ['[not-ip]', undefined],
    ['::1', undefined],
    // invalid
    [undefined, undefined],
    ['', undefined],
    ['.', undefined],
    [':80', undefined],
    ['user@foo.com', undefined],
    ['foo.com/path', undefined],
    ['foo .com', undefined],
    [' foo.com', undefined],
    ['foo.com:abc', undefined],
    ['foo.com:0', undefined],
    ['foo.com:65536', undefined],
    ['foo.com:123456', undefined],
    ['foo.com:80:80', undefined],
    ['foo..com', undefined],
    ['.foo.com', undefined],
    ['foo.com..', undefined],
    ['-foo.com', undefined],
    ['foo-.com', undefined],
    ['*.foo.com', undefined],
    ['foo%2ecom', undefined],
    ['a'.repeat(64) + '.com', undefined],
    [('a'.repeat(60) + '.').repeat(5) + 'com', undefined]
  ]
  for (const [input, expected] of cases) t.equal(normalizeHost(input), expected, JSON.stringify(input))
})
