import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { sendPage } from '../../http/paging.js'
import { DateTime, NullableDateTime, Uuid } from '../../http/schemas.js'
import type { ApiKeyInfo, ApiKeyService } from '../auth/api-keys.js'
import { ErrorResponse, OrgParams, PageOnlyQuery } from './schemas.js'

const ApiKey = Type.Object({
  id: Uuid,
  organizationId: Uuid,
  name: Type.String(),
  createdAt: DateTime,
  revokedAt: NullableDateTime
})
const CreatedApiKey = Type.Object({
  apiKey: ApiKey,
  key: Type.String({ description: 'the secret, shown this once: send it as the `x-api-key` header' })
})
const CreateApiKeyBody = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 200, pattern: '\\S', description: 'what the key is for, e.g. the gateway it is installed on' })
}, { additionalProperties: false })
const ApiKeyParams = Type.Object({ orgId: Uuid, keyId: Uuid }, { additionalProperties: false })
const errors = { 400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse, 404: ErrorResponse }

const apiKeyJson = (k: ApiKeyInfo) => ({
  id: k.id,
  organizationId: k.organizationId,
  name: k.name,
  createdAt: k.createdAt.toISOString(),
  revokedAt: k.revokedAt?.toISOString() ?? null
})

/** The organization's device API keys, for its owners: list, create (the secret shown once), revoke. */
export function apiKeyRoutes (fastify: FastifyInstance, service: ApiKeyService): void {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const config = { role: 'owner' as const }

  app.get('/api/orgs/:orgId/api-keys', {
    config,
    schema: {
      tags: ['api-keys'],
      operationId: 'listApiKeys',
      summary: "List the organization's device API keys (owner)",
      description: 'Oldest first, revoked keys included; never the secrets. At most `limit` per page, the next in `Link: <…>; rel="next"`.',
      params: OrgParams,
      querystring: PageOnlyQuery,
      response: { 200: Type.Array(ApiKey), ...errors }
    }
  }, async (req, reply) => sendPage(req, reply, await service.list(req.params.orgId, { limit: req.query.limit ?? 1000, cursor: req.query.cursor }), apiKeyJson))

  app.post('/api/orgs/:orgId/api-keys', {
    config,
    schema: {
      tags: ['api-keys'],
      operationId: 'createApiKey',
      summary: 'Create a device API key (owner)',
      description: 'The response carries the key itself, this once: store it in the device or gateway.',
      params: OrgParams,
      body: CreateApiKeyBody,
      response: { 201: CreatedApiKey, ...errors }
    }
  }, async (req, reply) => {
    const { key, apiKey } = await service.create(req.params.orgId, req.body.name.trim())
    return reply.code(201).header('cache-control', 'no-store').send({ apiKey: apiKeyJson(apiKey), key })
  })

  app.delete('/api/orgs/:orgId/api-keys/:keyId', {
    config,
    schema: {
      tags: ['api-keys'],
      operationId: 'revokeApiKey',
      summary: 'Revoke a device API key (owner)',
      description: 'Refused from the next request on, on every instance. Revoking a revoked key returns it unchanged.',
      params: ApiKeyParams,
      response: { 200: ApiKey, ...errors }
    }
  }, async (req) => apiKeyJson(await service.revoke(req.params.orgId, req.params.keyId)))
}
