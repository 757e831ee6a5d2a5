import fp from 'fastify-plugin'

// PLACEHOLDER: being written this session.
export default fp(async function monitoringPlugin (app) {
  void app
}, { name: 'monitoring', dependencies: ['core', 'realtime'] })
