import pg from 'pg'

/** The server the tests create their databases on (trust auth locally; override with TEST_DATABASE_URL). */
export const adminUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres:postgres@127.0.0.1:5432/postgres'

export function databaseUrl (name: string): string {
  const u = new URL(adminUrl)
  u.pathname = `/${name}`
  return u.toString()
}

export async function adminQuery (text: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl })
  await client.connect()
  try { await client.query(text) } finally { await client.end() }
}
