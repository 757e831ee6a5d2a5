import fp from 'fastify-plugin'

// PLACEHOLDER: being written this session.
export default fp(async function alertsPlugin (app, _opts: Record<string, unknown>) {
  void app
}, { name: 'alerts', dependencies: ['core', 'auth'] })
