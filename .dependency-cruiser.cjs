// The layer rules of docs/architecture.md, checked by `npm run lint` (depcruise src bench test scripts).
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', comment: 'Modules never import each other in a circle.', from: {}, to: { circular: true } },
    {
      name: 'no-circular-folders',
      severity: 'error',
      scope: 'folder',
      comment: 'Folders never depend on each other in a circle (the cache layer does not know the dashboard, and so on).',
      from: { path: '^src/' },
      to: { circular: true }
    },
    { name: 'src-not-to-bench-or-test', severity: 'error', comment: 'The product never imports benchmarks or tests.', from: { path: '^src/' }, to: { path: '^(bench|test)/' } },
    { name: 'bench-not-to-test', severity: 'error', comment: 'Benchmarks share support through src/lib, never test/.', from: { path: '^bench/' }, to: { path: '^test/' } },
    { name: 'lib-is-a-leaf', severity: 'error', comment: 'src/lib is generic support: it imports nothing else of the project.', from: { path: '^src/lib/' }, to: { path: '^src/(?!lib/)' } },
    {
      name: 'infra-below-features',
      severity: 'error',
      comment: 'Infrastructure (connections, metrics helper) knows nothing of features, commands or the app.',
      from: { path: '^src/(infra|db)/' },
      to: { path: '^src/(features|tools|commands|app|server|cli)' }
    },
    {
      name: 'http-below-features',
      severity: 'error',
      comment: 'The shared HTTP layer (validation, errors, paging, the OpenAPI completion) knows no feature.',
      from: { path: '^src/http/' },
      to: { path: '^src/(features|tools|commands|app|server|cli)' }
    },
    {
      name: 'cache-is-generic',
      severity: 'error',
      comment: 'The generic cache layer knows nothing of what it stores (src/features/dashboard is its user).',
      from: { path: '^src/features/cache/' },
      to: { path: '^src/features/(?!cache/)' }
    },
    {
      name: 'features-not-to-entry-points',
      severity: 'error',
      comment: 'Features are composed by src/app.ts; they never import it, the server, the CLI or commands.',
      from: { path: '^src/(features|tools)/' },
      to: { path: '^src/(app|server|cli)\\.ts$|^src/commands/' }
    }
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|dist|web/dist)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'], extensions: ['.ts', '.js', '.json'] }
  }
}
