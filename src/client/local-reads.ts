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

/**
 * Bytes of one O_DIRECT arena: more than glibc's largest dynamic mmap threshold (32 MiB), so each
 * arena is a fresh mapping and sits at the same offset in a page as the last (found at once).
 */
const ARENA_BYTES = 40 * 1024 * 1024 + DIRECT_ALIGN;
/** Reads larger than this go through the page cache (the client reads at most 8 MiB at once). */
const MAX_DIRECT_BYTES = 16 * 1024 * 1024;

export class LocalReads {
  /** Per chunkserver address: what the id file it named holds here (null: nothing readable). */
  private readonly ids = new Map<string, Promise<string | null>>();
  /** Chunkservers whose disk is not this host's: always read through them. */
  private readonly remote = new Set<string>();
  /** Chunkservers whose disk is this host's. */
  private readonly local = new Set<string>();
  /** Reads served from replica files directly (tests and benchmarks look at it). */
  served = 0;
  /** Replica reads made O_DIRECT (readDirect; tests look at it). */
  directReads = 0;
  /** Large reads bypass the page cache (readDirect); off once this host's file system refuses it. */
  private directOn = true;
  /** Where O_DIRECT reads take their buffers from (readDirect). */
  private arena: { raw: Buffer; used: number; skew: Promise<number | null> } | null = null;
  /** The aligned offset found in the last arena: where the next one's search starts. */
  private skew = 0;

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

  /** length bytes of the file at path from pos, or null when they cannot all be read. */
  private async readReplica(path: string, pos: number, length: number): Promise<Buffer | null> {
    let fd: number;
    const direct = this.directOn && pos % DIRECT_ALIGN === 0 && length >= DIRECT_MIN_BYTES && length <= MAX_DIRECT_BYTES;
    try {
      fd = await openAsync(path, direct ? constants.O_RDONLY | constants.O_DIRECT : constants.O_RDONLY);
    } catch (e) {
      if (!direct || (e as NodeJS.ErrnoException).code !== 'EINVAL') return null;
      this.directOn = false; // this file system takes no O_DIRECT: through the page cache from now on
      return this.readReplica(path, pos, length);
    }
    try {
      if (direct) return await this.readDirect(fd, pos, length);
      const buf = Buffer.allocUnsafe(length);
      return (await readAll(fd, buf, pos)) === length ? buf : null;
    } catch {
      return null;
    } finally {
      await closeAsync(fd).catch(() => {});
    }
  }

  /**
   * Read through fd, opened O_DIRECT: the replica's bytes skip the page cache, as the
   * chunkserver's large writes do (direct-io.ts has why that pays on this machine kind; measured
   * here: a 1 GiB sequential read spent ~15% of the machine's CPU filling the page cache with
   * replica pages, read once and never again).
   *
   * O_DIRECT wants an aligned buffer address, which Node cannot ask for. Reads take consecutive
   * pieces of a large arena whose aligned offset was found once, by a first small read tried at
   * successive offsets (a misaligned one fails at once with EINVAL); pieces are whole pages, so
   * every piece is aligned too. An arena lives while any piece of it is referenced.
   */
  private async readDirect(fd: number, pos: number, length: number): Promise<Buffer | null> {
    const span = Math.ceil(length / DIRECT_ALIGN) * DIRECT_ALIGN;
    let a = this.arena;
    if (!a || a.used + span > ARENA_BYTES - DIRECT_ALIGN) {
      const raw = Buffer.allocUnsafeSlow(ARENA_BYTES);
      a = this.arena = { raw, used: 0, skew: this.alignedOffset(raw, fd, pos) };
    }
    const at = a.used;
    a.used += span;
    const arena = a;
    const skew = await arena.skew.catch((e: unknown) => {
      if (this.arena === arena) this.arena = null; // the probe's read failed: the next read makes another
      throw e;
    });
    if (skew === null) {
      this.directOn = false; // no aligned offset: through the page cache from now on
      return null;
    }
    const start = skew + at;
    let got = 0;
    // Short only at the end of the file, or where a signal cut it (then aligned: go on).
    while (got < length) {
      const n = (await readAsync(fd, arena.raw, start + got, span - got, pos + got)).bytesRead;
      got += n;
      if (n === 0 || n % DIRECT_ALIGN !== 0) break;
    }
    if (got < length) return null;
    this.directReads++;
    return arena.raw.subarray(start, start + length);
  }

  /** The offset into raw at which O_DIRECT reads through fd work (null: none does). */
  private async alignedOffset(raw: Buffer, fd: number, pos: number): Promise<number | null> {
    for (let tries = 0, skew = this.skew; tries < DIRECT_ALIGN / 16; tries++, skew = (skew + 16) % DIRECT_ALIGN) {
      try {
        await readAsync(fd, raw, skew, DIRECT_ALIGN, pos);
        this.skew = skew;
        return skew;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EINVAL') throw e;
      }
    }
    return null;
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
