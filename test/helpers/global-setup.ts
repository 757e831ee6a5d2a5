import type { TestProject } from 'vitest/node'
import { createDatabase } from '../../src/infra/postgres.js'
import { adminQuery, databaseUrl } from './db.js'

declare module 'vitest' {
  export interface ProvidedContext { templateDatabase: string }
}

/** Migrates one template database per run; every test file clones it (CREATE DATABASE … TEMPLATE). */
export default async function setup (project: TestProject) {
  const name = `cb_tpl_${process.pid}_${Date.now().toString(36)}`
  await adminQuery(`CREATE DATABASE ${name}`)
  const database = await createDatabase({ databaseUrl: databaseUrl(name), dataDir: '.coldboard-test' })
  await database.migrate()
  await database.close()
  project.provide('templateDatabase', name)
  return async () => { await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) }
}
