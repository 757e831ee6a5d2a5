import fp from 'fastify-plugin'

// PLACEHOLDER: being written this session.
export default fp(async function healthPlugin (app, _opts: Record<string, unknown>) {
  void app
}, { name: 'health', dependencies: ['core', 'auth'] })
