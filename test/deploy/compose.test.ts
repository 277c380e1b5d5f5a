/**
 * The docker compose set-up and the image: the compose file is valid on a clean clone (no .env
 * yet), and the image, the compose file and the README all start the gateway the same way.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import t from 'tap'
import { parse } from 'yaml'

const ROOT = new URL('../../', import.meta.url)
const read = (file: string): string => readFileSync(new URL(file, ROOT), 'utf8')
const START = ['node', 'bin/ingressd.js', 'serve']
const hasCompose = spawnSync('sh', ['-c', 'command -v docker-compose']).status === 0

t.test('docker-compose.yml is valid without a .env', { skip: hasCompose ? false : 'docker-compose not found: apt-get install docker-compose (CI\'s .ci/run installs it)' }, async t => {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('INGRESSD_')))
  const res = spawnSync('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q'], { cwd: ROOT, env, encoding: 'utf8' })
  t.equal(res.status, 0, res.stderr)
})

t.test('the compose file runs the gateway, two demo backends and a one-shot apply of the examples', async t => {
  const compose = parse(read('docker-compose.yml'))
  const gw = compose.services.ingressd
  t.same(gw.command, START, 'the gateway runs the image\'s documented start command')
  t.same(gw.ports, ['80:8080', '443:8443', '127.0.0.1:8001:8001'], 'HTTP on 80, HTTPS on 443, the admin API on loopback only')
  t.match(gw.environment.INGRESSD_ADMIN_TOKEN, /^\$\{INGRESSD_ADMIN_TOKEN:-.{16,}\}$/, 'the admin token comes from .env, with a default so config passes without one')
  t.ok(gw.volumes.some((v: string) => v.startsWith('ingressd-data:')), 'the store is on a named volume')
  t.ok('ingressd-data' in compose.volumes)
  t.match(JSON.stringify(gw.healthcheck.test), '/readyz')
  t.ok(compose.services.service1.image !== undefined && compose.services.service2.image !== undefined, 'two demo backends')
  const once = compose.services['apply-examples']
  t.equal(once.depends_on.ingressd.condition, 'service_healthy')
  t.same(once.command.slice(0, 3), ['node', 'bin/ingressd.js', 'apply'])
  const files = once.command.filter((_: string, i: number) => once.command[i - 1] === '-f')
  t.ok(files.length > 0)
  for (const f of files) t.ok(existsSync(new URL(f, ROOT)), `${f} exists in the repository`)
  t.match(read('.env.example'), /^INGRESSD_ADMIN_TOKEN=/m, '.env.example documents the token')
})

t.test('the Dockerfile: glibc Node LTS, multi-stage, production dependencies only, non-root, the documented start command', async t => {
  const dockerfile = read('Dockerfile')
  const stages = dockerfile.match(/^FROM .+$/gm) ?? []
  t.ok(stages.length >= 2, 'multi-stage')
  for (const from of stages) t.match(from, /node:\d+-(bookworm|bullseye)/, 'glibc-based (better-sqlite3 has no musl binary)')
  t.match(dockerfile, /RUN npm ci\n/, 'built with npm ci, as CI installs')
  t.match(dockerfile, /npm run build/, 'compiled as npm start compiles')
  t.match(dockerfile, /npm prune --omit=dev/, 'only production dependencies reach the final stage')
  t.match(dockerfile, /^USER node$/m, 'runs as a non-root user')
  const cmd = /^CMD (\[.*\])$/m.exec(dockerfile)?.[1]
  t.same(JSON.parse(cmd ?? '[]'), START)
  const readme = read('README.md')
  t.match(readme, START.join(' '), 'the README documents the image\'s start command')
  t.match(readme, 'docker compose up')
  const pkg = JSON.parse(read('package.json'))
  t.equal(pkg.scripts.start, START.join(' '), 'and it is what npm start runs')
})
