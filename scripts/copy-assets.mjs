// The compiled server needs the files tsc does not emit: the SQL migrations and the Lua scripts.
import { cpSync, readdirSync, statSync } from 'node:fs'
import path from 'node:path'

const assets = /\.(sql|lua|json)$/
function copy (dir) {
  for (const name of readdirSync(dir)) {
    const from = path.join(dir, name)
    if (statSync(from).isDirectory()) copy(from)
    else if (assets.test(name)) cpSync(from, path.join('dist', path.relative('src', from)))
  }
}
copy('src')
