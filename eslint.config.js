import neostandard from 'neostandard'

export default [
  ...neostandard({ ts: true, ignores: ['dist/**', 'data/**', 'coverage/**', '.tap/**', 'openapi/**'] }),
  {
    // TypeBox's idiom: a schema constant and its Static<> type share one name, so one import brings both.
    files: ['src/resources/**/*.ts'],
    rules: { '@typescript-eslint/no-redeclare': 'off' }
  }
]
