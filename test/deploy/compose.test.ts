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

t.test('docker-compose.yml is valid without a .env, with and without the cluster profile', { skip: hasCompose ? false : 'docker-compose not found: apt-get install docker-compose (CI\'s .ci/run installs it)' }, async t => {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('INGRESSD_')))
  const res = spawnSync('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q'], { cwd: ROOT, env, encoding: 'utf8' })
  t.equal(res.status, 0, res.stderr)
  const cluster = spawnSync('docker-compose', ['--profile', 'cluster', '-f', 'docker-compose.yml', 'config'], { cwd: ROOT, env, encoding: 'utf8' })
  t.equal(cluster.status, 0, cluster.stderr)
  // As compose resolves it: each node's URL is a PostgreSQL URL naming the postgres service, with the default password.
  const resolved = parse(cluster.stdout)
  for (const node of ['node-a', 'node-b']) {
    const url = new URL(resolved.services[node].environment.INGRESSD_POSTGRES_URL)
    t.equal(url.protocol, 'postgres:', node)
    t.equal(url.hostname, 'postgres')
    t.equal(url.pathname, `/${resolved.services.postgres.environment.POSTGRES_DB as string}`)
    t.equal(url.username, resolved.services.postgres.environment.POSTGRES_USER)
    t.equal(decodeURIComponent(url.password), resolved.services.postgres.environment.POSTGRES_PASSWORD, 'the password PostgreSQL was given')
  }
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

t.test('the cluster profile: PostgreSQL and two nodes, none of them started by a plain `docker compose up`', async t => {
  const compose = parse(read('docker-compose.yml'))
  const services = compose.services as Record<string, Record<string, any>>
  const byDefault = Object.keys(services).filter(name => services[name]?.profiles === undefined)
  t.same(byDefault.sort(), ['apply-examples', 'ingressd', 'service1', 'service2'], 'the default `docker compose up` starts what it did')
  const cluster = Object.keys(services).filter(name => services[name]?.profiles !== undefined)
  for (const name of cluster) t.same(services[name]?.profiles, ['cluster'], `${name} only with --profile cluster`)
  t.ok(cluster.includes('postgres') && cluster.includes('node-a') && cluster.includes('node-b'))

  const postgres = services.postgres as Record<string, any>
  t.match(postgres.image, /^postgres:1[6-9]$/, 'PostgreSQL 16 or newer (ingressd needs 15+)')
  t.match(JSON.stringify(postgres.healthcheck.test), 'pg_isready')
  t.ok(postgres.volumes.some((v: string) => v.startsWith('postgres-data:')) && 'postgres-data' in compose.volumes, 'its data on a named volume')

  const gw = services.ingressd as Record<string, any>
  const hostPorts = (svc: Record<string, any>): string[] => (svc.ports ?? []).map((p: string) => p.split(':').slice(0, -1).join(':'))
  const names = new Set<string>()
  const volumes = new Set<string>()
  for (const name of ['node-a', 'node-b']) {
    const node = services[name] as Record<string, any>
    t.equal(node.build, gw.build, `${name}: the gateway's build`)
    t.equal(node.image, gw.image, `${name}: the gateway's image`)
    t.same(node.command, START)
    t.match(node.environment.INGRESSD_POSTGRES_URL, /^postgres:\/\/ingressd:\$\{INGRESSD_POSTGRES_PASSWORD:-[^}]{16,}\}@postgres:5432\/ingressd$/, 'the password from .env, with a default')
    t.equal(node.environment.INGRESSD_NODE_NAME, name)
    names.add(node.environment.INGRESSD_NODE_NAME)
    t.equal(node.environment.INGRESSD_DB, '/data/ingressd.db')
    const volume = (node.volumes as string[]).find(v => v.endsWith(':/data'))?.split(':')[0] as string
    t.ok(volume in compose.volumes, `${name}: its mirror on the named volume ${volume}`)
    volumes.add(volume)
    t.equal(node.depends_on.postgres.condition, 'service_healthy')
    t.match(JSON.stringify(node.healthcheck.test), '/readyz')
    t.ok(hostPorts(node).every(p => !hostPorts(gw).includes(p)), `${name}: host ports apart from the gateway's`)
    t.ok(node.ports.some((p: string) => p.startsWith('127.0.0.1:') && p.endsWith(':8001')), `${name}: the admin API on loopback only`)
  }
  t.equal(names.size, 2, 'two node names')
  t.equal(volumes.size, 2, 'a mirror each')
  t.same(hostPorts(services['node-a'] as Record<string, any>).filter(p => hostPorts(services['node-b'] as Record<string, any>).includes(p)), [], 'the nodes on different host ports')

  const once = services['apply-examples-cluster'] as Record<string, any>
  t.equal(once.depends_on['node-a'].condition, 'service_healthy')
  t.same(once.command.slice(-2), ['--server', 'http://node-a:8001'], 'the examples go through one node; the other serves them through PostgreSQL')
  t.match(read('README.md'), 'docker compose --profile cluster up')
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
