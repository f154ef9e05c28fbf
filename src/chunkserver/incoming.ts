// A replica arriving during replication: written in order to a temporary file next to the real
// ones ("<hex>.repl-<random>", removed at start-up if a crash interrupts it) while its block
// checksums are computed from the bytes as they arrive. commit() fsyncs it, reads it back to check
// what reached the disk, and only then hands it to the store to install at its version.

import type { FileHandle } from 'node:fs/promises';
import { GfsError, asGfsError } from '../protocol/errors.js';
import type { ChunkHandle } from '../protocol/messages.js';
import { BlockCrcBuilder } from './checksum.js';
import { readAll, unlinkQuietly, writeAll, writeDurably } from './fsutil.js';
import { encodeCrcs, encodeHeader } from './sidecar.js';

/** What Incoming needs from the store. */
export interface Installer {
  install(handle: ChunkHandle, version: number, length: number, crcs: number[], tmpData: string, tmpMeta: string): Promise<void>;
}

export class Incoming {
  private readonly crc: BlockCrcBuilder;
  private done = false;

  constructor(
    private readonly store: Installer,
    readonly handle: ChunkHandle,
    private readonly tmpData: string,
    private readonly fh: FileHandle,
    private readonly blockSize: number,
    private readonly maxLength: number,
  ) {
    this.crc = new BlockCrcBuilder(blockSize);
  }

  get length(): number {
    return this.crc.length;
  }

  async append(data: Uint8Array): Promise<void> {
    if (this.crc.length + data.length > this.maxLength) throw new GfsError('EINVAL', `replica of chunk ${this.handle} exceeds the chunk size`);
    try {
      await writeAll(this.fh.fd, data, this.crc.length);
    } catch (e) {
      throw asGfsError(e);
    }
    this.crc.add(data);
  }

  /**
   * Make it durable, read it back to check what reached the disk against the checksums of what
   * arrived, then install it as the replica at version.
   */
  async commit(version: number): Promise<void> {
    const tmpMeta = `${this.tmpData}.meta`;
    try {
      const crcs = this.crc.finish();
      const length = this.crc.length;
      await this.fh.sync();
      const back = new BlockCrcBuilder(this.blockSize);
      const piece = Buffer.allocUnsafe(1024 * 1024);
      for (let pos = 0; pos < length; ) {
        const n = await readAll(this.fh.fd, piece.subarray(0, Math.min(piece.length, length - pos)), pos);
        if (n === 0) break;
        back.add(piece.subarray(0, n));
        pos += n;
      }
      const check = back.finish();
      if (back.length !== length || check.some((c, i) => c !== crcs[i])) {
        throw new GfsError('EIO', `replica of chunk ${this.handle} did not read back as written`);
      }
      await this.fh.close();
      this.done = true;
      await writeDurably(tmpMeta, Buffer.concat([encodeHeader(this.blockSize, version), encodeCrcs(crcs)]));
      await this.store.install(this.handle, version, length, crcs, this.tmpData, tmpMeta);
    } catch (e) {
      await this.abort();
      await unlinkQuietly(tmpMeta);
      throw asGfsError(e);
    }
  }

  async abort(): Promise<void> {
    if (!this.done) {
      this.done = true;
      await this.fh.close().catch(() => {});
    }
    await unlinkQuietly(this.tmpData);
  }
}
