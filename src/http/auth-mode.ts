export type AuthMode = 'jwt' | 'apiKey' | 'public'

/** How a route authenticates: its `config.auth`, else a bearer token under /api and nothing elsewhere. */
export function routeAuthMode (url: string, configured: AuthMode | undefined): AuthMode {
  return configured ?? (url.startsWith('/api/') ? 'jwt' : 'public')
}
