// `npm run build`, second step: bundles the compiled CLI (dist/cli/main.js and everything it
// imports) into dist/bundle/, which bin/ingressd.js runs.
//
// Why: Node keeps a module record, its source and its compiled code per file, and ingressd's
// dependencies are thousands of small files (typebox alone is some 700, about 15 MB of resident
// memory when imported file by file, 5 MB bundled). Bundled, a process starts about 20 MB
// smaller and a data-plane worker about 10 MB. The CLI's lazy imports stay lazy (code splitting):
// a worker still loads no admin plane.
//
// Left outside the bundle, loaded from node_modules as before: better-sqlite3 (a native addon),
// @fastify/swagger-ui (serves its static files from its own directory) and @peculiar/x509 (its
// dependency injection breaks when its modules are merged; it loads only to generate the default
// certificate). Identifiers are kept, so stack traces name the functions; the source map
// (node --enable-source-maps) points back to src/.
import { build } from 'esbuild'
import { rmSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
// The bundle sits two levels under the repository, as the compiled modules do, so the paths they
// resolve from import.meta.url (migrations/, openapi/) stay the same.
const outdir = `${root}dist/bundle`
rmSync(outdir, { recursive: true, force: true })
await build({
  entryPoints: { main: `${root}dist/cli/main.js` },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: 'linked',
  external: ['better-sqlite3', '@fastify/swagger-ui', '@peculiar/x509'],
  // Dependencies written as CommonJS call require(); an ES module has none of its own.
  banner: { js: "import { createRequire as __ingressdCreateRequire } from 'node:module'; const require = __ingressdCreateRequire(import.meta.url);" },
  logLevel: 'warning'
})
