/**
 * npm test's drift check: the committed openapi/openapi.json must be exactly what the code
 * generates. Fix a failure with `npm run openapi` and commit the result.
 */
import { readFileSync } from 'node:fs'
import { generateOpenApi, OPENAPI_PATH } from '../src/admin/openapi.js'

const generated = await generateOpenApi()
let committed = ''
try {
  committed = readFileSync(OPENAPI_PATH, 'utf8')
} catch {}
if (committed !== generated) {
  process.stderr.write('openapi/openapi.json differs from what the code generates: run `npm run openapi` and commit the result.\n')
  process.exit(1)
}
process.stdout.write(`openapi/openapi.json is up to date (${Object.keys(JSON.parse(generated).paths).length} paths)\n`)
