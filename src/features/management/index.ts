import fp from 'fastify-plugin'

// PLACEHOLDER: being written this session.
export default fp(async function managementPlugin (app, _opts: Record<string, unknown>) {
  void app
}, { name: 'management', dependencies: ['core', 'auth'] })
