/** `npm run openapi`: writes openapi/openapi.json from the code. */
import { writeFileSync } from 'node:fs'
import { generateOpenApi, OPENAPI_PATH } from '../src/admin/openapi.js'

writeFileSync(OPENAPI_PATH, await generateOpenApi())
process.stdout.write(`wrote ${OPENAPI_PATH}\n`)
