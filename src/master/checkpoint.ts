// The checkpoint file: the whole namespace, {gen, chunkSize, image} in msgpack behind an 8-byte
// header ([u32 length][u32 crc32] of the body); written to a temporary file, then renamed over
// the last one. The master's checkpoint worker writes it (oplog.ts, checkpoint-worker.ts).
//
// It is written a slice of inodes at a time, so that neither the whole image (an object per
// inode) nor the whole encoded file (~125 MB at a million files) is ever held at once. msgpack can
// be written piecewise: an array's header carries its count and its elements follow as values
// encoded one after another, so the file reads back with one decode, as when it was one value.

import { open, readFile, rename, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { crc32 } from '../protocol/crc32.js';
import { decode, encode, encodeLarge, releaseDecoded } from '../protocol/rpc.js';
import { inodeImage, type Namespace, type NamespaceImage } from './namespace.js';

export interface Checkpoint {
  gen: number;
  chunkSize: number;
  image: NamespaceImage;
}

/** Inodes (or version pairs) made and encoded per slice: ~1 MB of file each. */
const SLICE = 8192;

/** Bytes that go to the file in one write: small values are gathered up to this. */
const WRITE_BYTES = 1 << 20;

/** The header of a msgpack map of n entries. */
const mapHeader = (n: number): Buffer => (n < 16 ? Buffer.from([0x80 | n]) : Buffer.from([0xde, n >> 8, n & 0xff]));

/** The header of a msgpack array of n elements, always in its 32-bit form. */
function arrayHeader(n: number): Buffer {
  const b = Buffer.allocUnsafe(5);
  b[0] = 0xdd;
  b.writeUInt32BE(n, 1);
  return b;
}

/** The elements of an encoded msgpack array, without its header. */
function arrayBody(encoded: Buffer): Buffer {
  const first = encoded[0];
  const header = first >= 0x90 && first <= 0x9f ? 1 : first === 0xdc ? 3 : first === 0xdd ? 5 : -1;
  if (header < 0) throw new Error(`not a msgpack array (0x${first.toString(16)})`);
  return encoded.subarray(header);
}

/** The body written in order after the header's place, its length and checksum kept as it goes. */
class BodyWriter {
  private parts: Buffer[] = [];
  private held = 0;
  private at = 8;
  length = 0;
  crc = 0;

  constructor(private readonly fh: FileHandle) {}

  async put(b: Buffer): Promise<void> {
    this.parts.push(b);
    this.held += b.length;
    this.length += b.length;
    this.crc = crc32(b, this.crc);
    if (this.held >= WRITE_BYTES) await this.flush();
  }

  /** An array of count elements, made, encoded and written a slice at a time. */
  async putArray<T>(count: number, items: Iterable<T>, slice = SLICE): Promise<void> {
    await this.put(arrayHeader(count));
    let batch: T[] = [];
    let seen = 0;
    for (const item of items) {
      batch.push(item);
      if (batch.length === slice) {
        seen += batch.length;
        await this.putSlice(batch);
        batch = [];
      }
    }
    seen += batch.length;
    if (batch.length > 0) await this.putSlice(batch);
    if (seen !== count) throw new Error(`checkpoint: ${seen} elements where ${count} were announced`);
  }

  private async putSlice<T>(batch: T[]): Promise<void> {
    await this.put(arrayBody(encodeLarge(batch)));
    await this.flush();
  }

  async flush(): Promise<void> {
    if (this.held === 0) return;
    const b = Buffer.concat(this.parts);
    this.parts = [];
    this.held = 0;
    await this.fh.write(b, 0, b.length, this.at);
    this.at += b.length;
  }
}

/** Map inodes to their images lazily, so a slice's images are made only when it is encoded. */
function* images(ns: Namespace) {
  for (const n of ns.inodes.all()) yield inodeImage(n);
}

/**
 * Write ns (which nothing may change while this runs) as the checkpoint of generation gen at
 * path: on disk, and in place of the last one, when this resolves; the last one stays whole if it
 * throws.
 */
export async function writeCheckpoint(path: string, gen: number, chunkSize: number, ns: Namespace): Promise<void> {
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, 'w');
  try {
    const out = new BodyWriter(fh);
    // Key order and shape as in Checkpoint and NamespaceImage.
    await out.put(mapHeader(3));
    for (const v of ['gen', gen, 'chunkSize', chunkSize, 'image']) await out.put(encode(v));
    await out.put(mapHeader(5));
    await out.put(encode('inodes'));
    await out.putArray(ns.inodes.count, images(ns));
    for (const v of ['nextIno', ns.nextIno, 'nextHandle', ns.nextHandle, 'versions']) await out.put(encode(v));
    await out.putArray(ns.versions.size, ns.versions);
    await out.put(encode('trash'));
    await out.putArray(ns.trash.size, ns.trash);
    await out.flush();
    if (out.length > 0xffffffff) throw new Error(`checkpoint of ${out.length} bytes: over the header's 4 GiB`);
    const head = Buffer.allocUnsafe(8);
    head.writeUInt32LE(out.length, 0);
    head.writeUInt32LE(out.crc, 4);
    await fh.write(head, 0, 8, 0);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  await syncDir(dirname(path));
}

/** The checkpoint at path, or null if there is none; throws if it is corrupt. */
export async function readCheckpoint(path: string): Promise<Checkpoint | null> {
  const buf = await readFile(path).catch(() => null);
  if (!buf) return null;
  const len = buf.length >= 8 ? buf.readUInt32LE(0) : -1;
  const body = buf.subarray(8, 8 + len);
  if (len < 0 || body.length !== len || crc32(body) !== buf.readUInt32LE(4)) {
    throw new Error(`checkpoint ${path} is corrupt`);
  }
  const ckpt = decode(body) as Checkpoint;
  releaseDecoded(); // the file's buffer is not needed once decoded
  return ckpt;
}

export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
