// The checksum every replica block, sidecar and op-log record carries: it must stay zlib's CRC-32
// (data written before the SIMD library came in is checked with it), also when built from pieces.

import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { crc32 } from '../src/protocol/crc32.js';

describe('crc32', () => {
  it("equals zlib's CRC-32 on any bytes, unsigned, continued from a running value", () => {
    const data = randomBytes(70_000);
    for (const [from, to] of [[0, 0], [0, 1], [3, 4099], [1, 65_537], [0, 70_000]]) {
      const piece = data.subarray(from, to);
      expect(crc32(piece)).toBe(zlibCrc32(piece) >>> 0);
      expect(crc32(piece, 0xdeadbeef)).toBe(zlibCrc32(piece, 0xdeadbeef) >>> 0);
    }
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926); // the CRC-32 check value
    expect(crc32(data.subarray(5000), crc32(data.subarray(0, 5000)))).toBe(crc32(data));
  });
});
