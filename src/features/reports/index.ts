import fp from 'fastify-plugin'

// PLACEHOLDER: being written this session.
export default fp(async function reportsPlugin (app, _opts: Record<string, unknown>) {
  void app
}, { name: 'reports', dependencies: ['core', 'auth'] })
