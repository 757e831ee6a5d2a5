import { crc32 } from 'node:zlib'

/**
 * What the read-through stores under a dashboard key: a 14-byte header — "cb", the format version, flags
 * (bit 0: the body is gzip-compressed JSON), the CRC-32 of the body, when the entry expires (milliseconds since
 * the epoch, 48 bits: a hit near the end of its life refreshes it in the background) — then the body. A value without a
 * valid header (garbage, a gzip bomb someone wrote, JSON of the wrong shape, an older coldboard's format) is
 * not ours: the reader counts it, deletes it and loads from PostgreSQL. Checking costs a CRC over a few KB, no
 * parse.
 */
const MAGIC_0 = 0x63 // c
const MAGIC_1 = 0x62 // b
/** Bump when a cached payload's shape changes: entries written by another version are then reloaded. */
export const ENVELOPE_VERSION = 2
/** The header's length: the body starts here. */
export const HEADER_BYTES = 14
const GZIP = 1

/** `expiresAt`: when Redis will drop it (milliseconds since the epoch), as the SET's TTL says. */
export function seal (body: Buffer | string, gzip: boolean, expiresAt: number): Buffer {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body
  const header = Buffer.allocUnsafe(HEADER_BYTES)
  header[0] = MAGIC_0
  header[1] = MAGIC_1
  header[2] = ENVELOPE_VERSION
  header[3] = gzip ? GZIP : 0
  header.writeUInt32BE(crc32(bytes), 4)
  header.writeUIntBE(Math.max(0, Math.min(2 ** 48 - 1, Math.round(expiresAt))), 8, 6)
  return Buffer.concat([header, bytes])
}

/** The body (a view, not a copy), whether it is gzip-compressed and when it expires; null when the value is not one we sealed. */
export function open (value: Buffer): { body: Buffer, gzip: boolean, expiresAt: number } | null {
  if (value.length <= HEADER_BYTES || value[0] !== MAGIC_0 || value[1] !== MAGIC_1 || value[2] !== ENVELOPE_VERSION) return null
  const flags = value[3]!
  if ((flags & ~GZIP) !== 0) return null
  const body = value.subarray(HEADER_BYTES)
  if (crc32(body) !== value.readUInt32BE(4)) return null
  return { body, gzip: (flags & GZIP) !== 0, expiresAt: value.readUIntBE(8, 6) }
}

/** Sealed by coldboard, but by a version with another format (a rolling upgrade): a plain miss, not garbage. */
export function otherVersion (value: Buffer): boolean {
  return value.length > 3 && value[0] === MAGIC_0 && value[1] === MAGIC_1 && value[2] !== ENVELOPE_VERSION
}
