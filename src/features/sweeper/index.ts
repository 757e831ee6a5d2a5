import fp from 'fastify-plugin'

// PLACEHOLDER: being written this session.
export default fp(async function sweeperPlugin (app, _opts: Record<string, unknown>) {
  void app
}, { name: 'sweeper', dependencies: ['core', 'auth'] })
