// Short-circuit reads (as HDFS has them): when a replica's chunkserver runs on this host, the
// client asks it only where the bytes are and what their checksums are (`readLocal`), then reads
// the replica file itself and checks every block. The data then crosses no socket: a chunkserver
// no longer copies it into one and the client out of one (measured: the CPU of both, not the disk,
// is what held sequential reads up on one machine).
//
// A chunkserver counts as local once the client has read the file that holds its id (the path
// comes with each answer) and found that id: a server elsewhere names a path that is missing here
// or holds another id. Anything short of a clean read of checked bytes (a block whose CRC does
// not match, a file that moved) returns null and the caller reads through the chunkserver, which
// checks the replica itself and reports it if it is corrupt: this path never decides a replica
// is bad, and never serves bytes it has not checked.

import { close, constants, open, read } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, sep } from 'node:path';
import { promisify } from 'node:util';
import { crc32 } from '../protocol/crc32.js';
import { DIRECT_ALIGN, DIRECT_MIN_BYTES } from '../chunkserver/direct-io.js';
import { readAll } from '../chunkserver/fsutil.js';
import type { ChunkserverDataApi } from '../protocol/messages.js';

const openAsync = promisify(open);
const closeAsync = promisify(close);
const readAsync = promisify(read);

type Where = ChunkserverDataApi['readLocal'][1];

/** Reads larger than this go through the page cache (the client reads at most 8 MiB at once). */
const MAX_DIRECT_BYTES = 16 * 1024 * 1024;

/**
 * A Buffer of at least bytes at a page-aligned address (null: none to be had), which O_DIRECT
 * reads need and Node cannot allocate: the mount passes the FUSE addon's pool (aligned-pool.h),
 * which also reuses their memory. Without one, reads go through the page cache.
 */
export type AlignedAlloc = (bytes: number) => Buffer | null;

export class LocalReads {
  /** Per chunkserver address: what the id file it named holds here (null: nothing readable). */
  private readonly ids = new Map<string, Promise<string | null>>();
  /** Chunkservers whose disk is not this host's: always read through them. */
  private readonly remote = new Set<string>();
  /** Chunkservers whose disk is this host's. */
  private readonly local = new Set<string>();
  /** Reads served from replica files directly (tests and benchmarks look at it). */
  served = 0;
  /** Replica reads made O_DIRECT (readReplica; tests look at it). */
  directReads = 0;
  /** Large reads bypass the page cache (readReplica); off once this host's file system refuses it. */
  private directOn: boolean;

  constructor(private readonly alignedAlloc?: AlignedAlloc) {
    this.directOn = alignedAlloc !== undefined;
  }

  /** Whether some chunkserver's disk is known to be this host's. */
  get found(): boolean {
    return this.local.size > 0;
  }

  /** False once address is known to be another host's. */
  maybeLocal(address: string): boolean {
    return !this.remote.has(address);
  }

  /**
   * The bytes [offset, offset + length) (cut at the replica's end) that `where` describes, read
   * from the replica file and checked; null when they cannot be (the caller reads remotely).
   */
  async read(address: string, where: Where, offset: number, length: number): Promise<Buffer | null> {
    const { path, from, blockSize: B, crcs } = where;
    // A malformed answer is not this replica's fault: read through the server, report nothing.
    if (typeof path !== 'string' || typeof where.idPath !== 'string' || !Buffer.isBuffer(crcs) || !Number.isSafeInteger(from) || !Number.isSafeInteger(where.length) || !(B > 0) || crcs.length !== 4 * Math.ceil(where.length / B)) return null;
    // Only files in the server's own data directory (beside its id file) are ever read.
    if (!path.startsWith(dirname(where.idPath) + sep) || !(await this.onThisHost(address, where))) return null;
    const buf = await this.readReplica(path, from, where.length);
    if (buf === null) return null;
    for (let i = 0, at = 0; at < buf.length; i++, at += B) {
      if (crc32(buf.subarray(at, Math.min(at + B, buf.length))) >>> 0 !== crcs.readUInt32LE(4 * i)) return null;
    }
    this.served++;
    const start = Math.min(offset - from, buf.length);
    return buf.subarray(start, Math.min(start + length, buf.length));
  }

  /**
   * length bytes of the file at path from pos, or null when they cannot all be read. Large aligned
   * reads go O_DIRECT: the replica's bytes skip the page cache, as the chunkserver's large writes
   * do (direct-io.ts has why that pays on this machine kind; measured here: a 1 GiB sequential
   * read spent ~15% of the machine's CPU filling the page cache with replica pages, read once and
   * never again). Into a buffer whose memory is reused (aligned-pool.h: fresh memory cost a page
   * fault per 4 KiB read).
   */
  private async readReplica(path: string, pos: number, length: number): Promise<Buffer | null> {
    const span = Math.ceil(length / DIRECT_ALIGN) * DIRECT_ALIGN;
    const direct = this.directOn && pos % DIRECT_ALIGN === 0 && length >= DIRECT_MIN_BYTES && length <= MAX_DIRECT_BYTES ? this.alignedAlloc?.(span) : null;
    let fd: number;
    try {
      fd = await openAsync(path, direct ? constants.O_RDONLY | constants.O_DIRECT : constants.O_RDONLY);
    } catch (e) {
      if (!direct || (e as NodeJS.ErrnoException).code !== 'EINVAL') return null;
      this.directOn = false; // this file system takes no O_DIRECT: through the page cache from now on
      return this.readReplica(path, pos, length);
    }
    try {
      if (!direct) {
        const buf = Buffer.allocUnsafe(length);
        return (await readAll(fd, buf, pos)) === length ? buf : null;
      }
      let got = 0;
      // Short only at the end of the file, or where a signal cut it (then aligned: go on).
      while (got < length) {
        const n = (await readAsync(fd, direct, got, span - got, pos + got)).bytesRead;
        got += n;
        if (n === 0 || n % DIRECT_ALIGN !== 0) break;
      }
      if (got < length) return null;
      this.directReads++;
      return direct.subarray(0, length);
    } catch (e) {
      if (!direct || (e as NodeJS.ErrnoException).code !== 'EINVAL') return null;
      this.directOn = false; // its device wants more alignment than we give: the page cache from now on
      return this.readReplica(path, pos, length);
    } finally {
      await closeAsync(fd).catch(() => {});
    }
  }

  /** Whether the server's id file, read here once, holds its id: then its disk is this host's. */
  private async onThisHost(address: string, where: Where): Promise<boolean> {
    let id = this.ids.get(address);
    if (!id) {
      id = readFile(where.idPath, 'utf8').then((s) => s.trim(), () => null);
      this.ids.set(address, id);
    }
    if ((await id) === where.id) {
      this.local.add(address);
      return true;
    }
    this.ids.delete(address);
    this.local.delete(address);
    this.remote.add(address);
    return false;
  }
}
