import { readFileSync } from 'node:fs'

// The Lua scripts live in their own files (scripts/*.lua) and are shipped beside the compiled code.
const read = (name: string) => readFileSync(new URL(`./scripts/${name}.lua`, import.meta.url), 'utf8')

export const scripts = {
  setFenced: { name: 'cbSetFenced', lua: read('set-fenced') },
  invalidate: { name: 'cbInvalidate', lua: read('invalidate') }
} as const
