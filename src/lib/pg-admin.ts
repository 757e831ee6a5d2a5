import pg from 'pg'

/** The URL of database `name` on the server of `adminUrl` (same host, port and credentials). */
export function databaseUrlOf (adminUrl: string, name: string): string {
  const u = new URL(adminUrl)
  u.pathname = `/${name}`
  return u.toString()
}

/** Runs one statement on its own connection (CREATE/DROP DATABASE cannot run inside a pool's transaction). */
export async function adminQuery (adminUrl: string, text: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl })
  await client.connect()
  try { await client.query(text) } finally { await client.end() }
}

/** A throw-away database name: letters, digits and _ only, so it needs no quoting. */
export function isPlainIdentifier (name: string): boolean {
  return /^[a-z_][a-z0-9_]*$/.test(name)
}
