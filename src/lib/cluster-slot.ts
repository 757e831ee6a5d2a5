// CRC16-CCITT (XMODEM), the checksum Redis Cluster maps keys to its 16384 slots with.
const table = new Uint16Array(256)
for (let i = 0; i < 256; i++) {
  let c = i << 8
  for (let j = 0; j < 8; j++) c = (c & 0x8000) !== 0 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff
  table[i] = c
}

/**
 * The Redis Cluster slot of a key or sharded channel, as CLUSTER KEYSLOT computes it: only the part inside the
 * first non-empty `{…}` counts when there is one (the hash tag).
 */
export function clusterSlot (key: string): number {
  let hashed = key
  const open = key.indexOf('{')
  if (open !== -1) {
    const close = key.indexOf('}', open + 1)
    if (close > open + 1) hashed = key.slice(open + 1, close)
  }
  let crc = 0
  for (let i = 0; i < hashed.length; i++) {
    const c = hashed.charCodeAt(i)
    // Keys are ASCII (ids, prefixes) on the hot path; anything else is hashed as its UTF-8 bytes.
    if (c > 0x7f) return crcOfBytes(Buffer.from(hashed, 'utf8'))
    crc = ((crc << 8) & 0xffff) ^ table[((crc >> 8) ^ c) & 0xff]!
  }
  return crc % 16384
}

function crcOfBytes (bytes: Buffer): number {
  let crc = 0
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ table[((crc >> 8) ^ byte) & 0xff]!
  return crc % 16384
}
