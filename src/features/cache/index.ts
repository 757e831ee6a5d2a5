import fp from 'fastify-plugin'

// PLACEHOLDER: the cache is being written this session.
export default fp(async function cachePlugin (app) {
  void app
}, { name: 'cache', dependencies: ['core', 'redis'] })
