// CRC32 per checksum block (cfg.checksumBlock, 4 KiB by default). zlib.crc32 takes a running
// value, so the checksum of a block can be built from pieces (old bytes, a zero gap, new bytes)
// without first copying them into one buffer.

import { crc32 } from '../protocol/crc32.js';

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

/**
 * The CRCs of one replica, 4 bytes each in a typed array that grows by doubling (a JS number[]
 * would hold most CRCs, which are over 2^31, as 8-byte doubles). A full 64 MiB chunk with 4 KiB
 * blocks takes 64 KiB; a small file's replica takes what its blocks need.
 */
export class CrcTable {
  private a: Uint32Array;
  length: number;

  constructor(crcs: ArrayLike<number> = []) {
    this.length = crcs.length;
    this.a = new Uint32Array(Math.max(4, crcs.length));
    this.a.set(crcs);
  }

  get(i: number): number {
    return this.a[i];
  }

  /** Set crcs[i]; the table grows to i + 1 if shorter (blocks in between read as 0 until set). */
  set(i: number, crc: number): void {
    if (i >= this.a.length) {
      const grown = new Uint32Array(Math.max(i + 1, this.a.length * 2));
      grown.set(this.a.subarray(0, this.length));
      this.a = grown;
    }
    this.a[i] = crc;
    if (i >= this.length) this.length = i + 1;
  }

  /** Keep the first n CRCs. */
  truncate(n: number): void {
    if (n < this.length) this.length = n;
  }
}
