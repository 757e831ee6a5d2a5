import fp from 'fastify-plugin'

// PLACEHOLDER: the queue is being written this session.
export default fp(async function queuePlugin (app, _opts: { worker: boolean }) {
  void app
}, { name: 'queue', dependencies: ['core', 'redis'] })
