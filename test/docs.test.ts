import { readFileSync } from 'node:fs'
import t from 'tap'
import { SETTINGS } from '../src/config/config.js'
import { ERROR_CODES } from '../src/errors.js'

const errorsDoc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8')
const configDoc = readFileSync(new URL('../docs/configuration.md', import.meta.url), 'utf8')

t.test('docs/errors.md lists every error code, and no code that does not exist', async t => {
  const documented = new Set(errorsDoc.match(/INGRESSD_ERR_[A-Z_]+/g))
  for (const code of Object.keys(ERROR_CODES)) t.ok(documented.has(code), `${code} is documented`)
  for (const code of documented) t.ok(code in ERROR_CODES, `${code} in the docs exists in src/errors.ts`)
})

t.test('docs/configuration.md documents every setting with its default', async t => {
  for (const s of SETTINGS) {
    const row = configDoc.split('\n').find(line => line.startsWith(`| \`${s.env}\``))
    t.ok(row, `${s.env} has a row`)
    t.match(row ?? '', `--${s.flag}`)
    if (s.default !== '') t.match(row ?? '', `\`${s.default}\``)
  }
  const documented = new Set(configDoc.match(/INGRESSD_[A-Z_]+/g))
  for (const env of documented) t.ok(SETTINGS.some(s => s.env === env), `${env} in the docs is a real setting`)
})

t.test('src/version.ts says the version package.json says', async t => {
  const { VERSION } = await import('../src/version.js')
  t.equal(VERSION, JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version)
})
