// CRC32 per checksum block (cfg.checksumBlock, 64 KiB by default). zlib.crc32 takes a running
// value, so the checksum of a block can be built from pieces (old bytes, a zero gap, new bytes)
// without first copying them into one buffer.

import { crc32 } from 'node:zlib';

const zeroPages = new Map<number, Buffer>();

/** A shared, never-written buffer of n zero bytes (n ≤ one block). */
export function zeros(n: number): Buffer {
  let z = zeroPages.get(n);
  if (!z) {
    z = Buffer.alloc(n);
    if (zeroPages.size < 8) zeroPages.set(n, z);
  }
  return z;
}

/** crc32 of the concatenation of pieces. */
export function crcOf(pieces: Iterable<Uint8Array>): number {
  let c = 0;
  for (const p of pieces) if (p.length > 0) c = crc32(p, c);
  return c;
}

/**
 * CRCs of every block of data, where data starts at a block boundary; the last block may be
 * partial (its checksum covers only the bytes present).
 */
export function blockCrcs(data: Uint8Array, blockSize: number): number[] {
  const out: number[] = [];
  for (let at = 0; at < data.length; at += blockSize) out.push(crc32(data.subarray(at, Math.min(at + blockSize, data.length))));
  return out;
}

/** Builds block CRCs from a stream of buffers of any sizes (used when a replica arrives in pieces). */
export class BlockCrcBuilder {
  readonly crcs: number[] = [];
  private cur = 0;
  private curLen = 0;
  length = 0;

  constructor(private readonly blockSize: number) {}

  add(buf: Uint8Array): void {
    let at = 0;
    while (at < buf.length) {
      const n = Math.min(this.blockSize - this.curLen, buf.length - at);
      this.cur = crc32(buf.subarray(at, at + n), this.cur);
      this.curLen += n;
      at += n;
      if (this.curLen === this.blockSize) this.flush();
    }
    this.length += buf.length;
  }

  /** The CRCs, the final partial block included. */
  finish(): number[] {
    if (this.curLen > 0) this.flush();
    return this.crcs;
  }

  private flush(): void {
    this.crcs.push(this.cur >>> 0);
    this.cur = 0;
    this.curLen = 0;
  }
}
