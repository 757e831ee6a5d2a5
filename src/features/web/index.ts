import fp from 'fastify-plugin'

// PLACEHOLDER: the dashboard page is being written this session.
export default fp(async function webPlugin (app) {
  void app
}, { name: 'web', dependencies: ['core'] })
