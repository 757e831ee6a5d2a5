import neostandard from 'neostandard'

export default [
  ...neostandard({ ts: true, ignores: ['dist/**', 'node_modules/**', '.coldboard/**', 'src/db/migrations/**', 'web/dist/**', 'web/src/generated/**', 'bench-out/**', 'artifacts/**', 'scratch/**'] }),
  {
    rules: {
      'no-console': 'error',
      'no-void': ['error', { allowAsStatement: true }]
    }
  },
  {
    files: ['test/**', 'bench/**', 'bin/**', 'src/cli.ts', 'src/tools/**'],
    rules: { 'no-console': 'off' }
  }
]
