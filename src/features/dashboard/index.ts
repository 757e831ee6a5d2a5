import fp from 'fastify-plugin'

// PLACEHOLDER: being written this session.
export default fp(async function dashboardPlugin (app) {
  void app
}, { name: 'dashboard', dependencies: ['core', 'auth', 'cache'] })
