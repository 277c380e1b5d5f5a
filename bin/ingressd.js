#!/usr/bin/env node
// The `ingressd` command: runs the bundled CLI (npm start and npm run build produce dist/bundle/;
// see scripts/bundle.mjs).
import { existsSync } from 'node:fs'

const entry = new URL('../dist/bundle/main.js', import.meta.url)
if (!existsSync(entry)) {
  process.stderr.write('ingressd: dist/bundle/ is missing; run `npm run build` (npm start does it for you)\n')
  process.exit(1)
}
const { main } = await import(entry.href)
process.exitCode = await main(process.argv.slice(2))
