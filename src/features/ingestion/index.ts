import fp from 'fastify-plugin'

// PLACEHOLDER: being written this session.
export default fp(async function ingestionPlugin (app, _opts: Record<string, unknown>) {
  void app
}, { name: 'ingestion', dependencies: ['core', 'auth'] })
