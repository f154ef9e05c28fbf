// The sidecar file next to each replica ("<handle>.meta") holds its version and block checksums:
//
//   0  magic "GFSC"           4  checksum block size (u32 LE)
//   8  chunk version (u64 LE) 16 crc32 of bytes 0..15 (u32 LE)   20 reserved
//   24 crc32 of block 0, block 1, ... (u32 LE each)
//
// Fixed offsets let a write update just the checksums it changed in place, and a version change
// rewrite just the header (then fsync). The header carries its own CRC so a torn or garbled
// header is seen as corruption rather than read as some other version.

import { crc32 } from '../protocol/crc32.js';

export const HEADER_BYTES = 24;
const MAGIC = 0x43534647; // "GFSC" read as u32 LE

export const crcOffset = (block: number): number => HEADER_BYTES + 4 * block;

export function encodeHeader(blockSize: number, version: number): Buffer {
  const b = Buffer.alloc(HEADER_BYTES);
  b.writeUInt32LE(MAGIC, 0);
  b.writeUInt32LE(blockSize, 4);
  b.writeBigUInt64LE(BigInt(version), 8);
  b.writeUInt32LE(crc32(b.subarray(0, 16)), 16);
  return b;
}

export function encodeCrcs(crcs: ArrayLike<number>, from = 0, to = crcs.length): Buffer {
  const b = Buffer.alloc(4 * (to - from));
  for (let i = from; i < to; i++) b.writeUInt32LE(crcs[i] >>> 0, 4 * (i - from));
  return b;
}

export interface Sidecar {
  blockSize: number;
  version: number;
  crcs: Uint32Array;
}

/** Parse a whole sidecar; null when it is not one (bad magic, bad header CRC, ragged length). */
export function decodeSidecar(b: Buffer): Sidecar | null {
  if (b.length < HEADER_BYTES || (b.length - HEADER_BYTES) % 4 !== 0) return null;
  if (b.readUInt32LE(0) !== MAGIC || b.readUInt32LE(16) !== crc32(b.subarray(0, 16))) return null;
  const version = Number(b.readBigUInt64LE(8));
  if (!Number.isSafeInteger(version)) return null;
  const n = (b.length - HEADER_BYTES) / 4;
  const crcs = new Uint32Array(n);
  for (let i = 0; i < n; i++) crcs[i] = b.readUInt32LE(HEADER_BYTES + 4 * i);
  return { blockSize: b.readUInt32LE(4), version, crcs };
}
