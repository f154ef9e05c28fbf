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

import { close, open } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, sep } from 'node:path';
import { promisify } from 'node:util';
import { crc32 } from 'node:zlib';
import { readAll } from '../chunkserver/fsutil.js';
import type { ChunkserverDataApi } from '../protocol/messages.js';

const openAsync = promisify(open);
const closeAsync = promisify(close);

type Where = ChunkserverDataApi['readLocal'][1];

export class LocalReads {
  /** Per chunkserver address: what the id file it named holds here (null: nothing readable). */
  private readonly ids = new Map<string, Promise<string | null>>();
  /** Chunkservers whose disk is not this host's: always read through them. */
  private readonly remote = new Set<string>();
  /** Reads served from replica files directly (tests and benchmarks look at it). */
  served = 0;

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
    const buf = Buffer.allocUnsafe(where.length);
    let fd: number;
    try {
      fd = await openAsync(path, 'r');
    } catch {
      return null;
    }
    try {
      if ((await readAll(fd, buf, from)) !== buf.length) return null;
    } catch {
      return null;
    } finally {
      await closeAsync(fd).catch(() => {});
    }
    for (let i = 0, at = 0; at < buf.length; i++, at += B) {
      if (crc32(buf.subarray(at, Math.min(at + B, buf.length))) >>> 0 !== crcs.readUInt32LE(4 * i)) return null;
    }
    this.served++;
    const start = Math.min(offset - from, buf.length);
    return buf.subarray(start, Math.min(start + length, buf.length));
  }

  /** Whether the server's id file, read here once, holds its id: then its disk is this host's. */
  private async onThisHost(address: string, where: Where): Promise<boolean> {
    let id = this.ids.get(address);
    if (!id) {
      id = readFile(where.idPath, 'utf8').then((s) => s.trim(), () => null);
      this.ids.set(address, id);
    }
    if ((await id) === where.id) return true;
    this.ids.delete(address);
    this.remote.add(address);
    return false;
  }
}
