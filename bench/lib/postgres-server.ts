import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import pg from 'pg'
import { freePort, waitFor } from '../../src/lib/net.js'

export interface BenchPostgres {
  /** Superuser URL of the server's `postgres` database (trust authentication, 127.0.0.1 only). */
  adminUrl: string
  port: number
  binDir: string
  stop (): Promise<void>
}

/**
 * The newest PostgreSQL server binaries on this machine with pg_stat_statements beside them (Debian's
 * /usr/lib/postgresql/<version>/bin, or the directory `pg_config --bindir` names), or why there are none.
 */
export function findPostgresBinaries (): { binDir: string } | { missing: string } {
  const candidates: string[] = []
  try {
    candidates.push(execFileSync('pg_config', ['--bindir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim())
  } catch {}
  const debian = '/usr/lib/postgresql'
  if (existsSync(debian)) {
    const versions = readdirSync(debian).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a))
    candidates.push(...versions.map((v) => path.join(debian, v, 'bin')))
  }
  for (const binDir of candidates) {
    if (!existsSync(path.join(binDir, 'initdb')) || !existsSync(path.join(binDir, 'postgres'))) continue
    const lib = (() => {
      try { return execFileSync(path.join(binDir, 'pg_config'), ['--pkglibdir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() } catch { return null }
    })()
    if (lib !== null && !existsSync(path.join(lib, 'pg_stat_statements.so'))) continue
    return { binDir }
  }
  return { missing: 'no PostgreSQL server binaries (initdb, postgres) with pg_stat_statements found: install PostgreSQL or pass --database-url' }
}

/** The uid and gid of `postgres`, which initdb and postgres run as when we are root (both refuse to run as root). */
function postgresUser (): { uid: number, gid: number } {
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim())
  return { uid: id('-u'), gid: id('-g') }
}

/**
 * A private, throw-away PostgreSQL cluster for the benchmark: initdb into a temporary directory, then `postgres` on a
 * free loopback port with pg_stat_statements preloaded, so that the benchmark counts the dashboard's statements exactly
 * (the shared server cannot load it without a restart, which a benchmark must not do). Its settings are initdb's
 * defaults but for autovacuum, which is off (below). As root, both run as the `postgres` user.
 */
export async function startBenchPostgres (binDir: string, log: (line: string) => void): Promise<BenchPostgres> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'coldboard-bench-pg-'))
  const data = path.join(dir, 'data')
  const asRoot = process.getuid?.() === 0
  const user = asRoot ? postgresUser() : null
  if (user) chownSync(dir, user.uid, user.gid)
  const opts = user ? { uid: user.uid, gid: user.gid } : {}
  let child: ChildProcess | null = null
  const cleanup = () => rmSync(dir, { recursive: true, force: true })
  try {
    execFileSync(path.join(binDir, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--no-sync'], {
      ...opts, stdio: ['ignore', 'ignore', 'pipe'], cwd: dir
    })
    const port = await freePort()
    child = spawn(path.join(binDir, 'postgres'), [
      '-D', data,
      '-c', `port=${port}`,
      '-c', 'listen_addresses=127.0.0.1',
      '-c', `unix_socket_directories=${dir}`,
      '-c', 'shared_preload_libraries=pg_stat_statements',
      '-c', 'pg_stat_statements.track=top',
      // Room for every statement of a run (the write path's included), so that none is evicted and its calls lost.
      '-c', 'pg_stat_statements.max=20000',
      // The dataset is vacuumed and analyzed once seeded (dataset.ts). Autovacuum off keeps its workers, whose bursts no
      // cache changes, from landing in one measured window and not in another on two cores: the runs compare the
      // cache, not when a vacuum happened to start (a run with it on measured every latency 2–4 times higher, on and off).
      '-c', 'autovacuum=off'
    ], { ...opts, cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr!.on('data', (b: Buffer) => { stderr = (stderr + b.toString()).slice(-4000) })
    const exited = new Promise<void>((resolve) => child!.once('exit', () => resolve()))
    const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`
    await waitFor(async () => {
      if (child!.exitCode !== null) throw new Error(`private PostgreSQL exited: ${stderr.trim().split('\n').slice(-3).join(' | ')}`)
      const c = new pg.Client({ connectionString: adminUrl })
      try { await c.connect(); await c.end(); return true } catch { return false }
    }, 30_000, `the private PostgreSQL on ${port}`)
    log(`private PostgreSQL (${binDir}) on 127.0.0.1:${port}, pg_stat_statements preloaded`)
    const running = child
    return {
      adminUrl,
      port,
      binDir,
      async stop () {
        // SIGINT: PostgreSQL's fast shutdown (sessions ended, no wait for clients).
        if (running.exitCode === null) {
          running.kill('SIGINT')
          const timer = setTimeout(() => running.kill('SIGKILL'), 15_000)
          await exited
          clearTimeout(timer)
        }
        cleanup()
      }
    }
  } catch (err) {
    if (child && child.exitCode === null) child.kill('SIGKILL')
    cleanup()
    throw err
  }
}

/**
 * The server a benchmark runs on: `adminUrl` when given (stop() leaves it alone), else a private one started here
 * (startBenchPostgres), else, with no binaries, `fallbackUrl`, which it logs.
 */
export async function benchPostgres (adminUrl: string | null, fallbackUrl: string, log: (line: string) => void): Promise<{ adminUrl: string, stop (): Promise<void> }> {
  const none = async () => {}
  if (adminUrl !== null) return { adminUrl, stop: none }
  const found = findPostgresBinaries()
  if ('binDir' in found) return startBenchPostgres(found.binDir, log)
  log(`${found.missing}; running on ${fallbackUrl}`)
  return { adminUrl: fallbackUrl, stop: none }
}
