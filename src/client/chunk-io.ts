// Data to and from chunkservers (paper §3): reads go straight to a replica and fail over to the
// next (also on a checksum error, which is reported); writes push the data along the replica chain
// and then ask the primary to commit; record appends let the primary pick the offset and move on to
// a new chunk when it says the last one is full. Chunk locations and lease holders are cached.

import { randomBytes } from 'node:crypto';
import { GfsError, asGfsError } from '../protocol/errors.js';
import type { ChunkHandle, ChunkLocation, ServerAddress, WriteTarget } from '../protocol/messages.js';
import type { PeerPool } from '../protocol/pool.js';
import type { GfsConfig } from '../config.js';
import type { Logger } from '../log.js';
import { isUnreachable, withRetry, type MasterLink } from './master-link.js';

/** Write-path errors worth another try with fresh lease information. */
const writeRetryable = (e: GfsError) => isUnreachable(e) || e.code === 'ESTALE' || e.code === 'EIO';

interface Locations {
  size: number;
  chunks: Map<number, ChunkLocation>;
  /** Chunk indexes [0, covered) have been asked for. */
  covered: number;
}

const LOCATION_BATCH = 64;
/** Large reads go as pieces of this size, side by side and spread over the replicas. */
const READ_PIECE = 1024 * 1024;

export class ChunkIo {
  private readonly locations = new Map<number, Locations>();
  private readonly targets = new Map<string, { target: WriteTarget; until: number }>();
  private readonly clientId = randomBytes(6).toString('hex');
  private seq = 0;
  private spread = 0;

  constructor(
    private readonly master: MasterLink,
    private readonly pool: PeerPool,
    private readonly cfg: GfsConfig,
    private readonly log: Logger,
  ) {}

  /** Forget what is cached about ino's chunks (at open: close-to-open consistency). */
  forget(ino: number): void {
    this.locations.delete(ino);
  }

  // ------------------------------------------------------------------ reads

  /** Up to length bytes at offset; shorter at the end of the file; holes read as zeros. */
  async read(ino: number, offset: number, length: number): Promise<Buffer> {
    const cs = this.cfg.chunkSize;
    let locs = await this.locate(ino, Math.floor(offset / cs), Math.ceil((offset + length) / cs));
    if (offset + length > locs.size) {
      // Maybe the file grew since we looked: ask once more before cutting the read short.
      this.locations.delete(ino);
      locs = await this.locate(ino, Math.floor(offset / cs), Math.ceil((offset + length) / cs));
    }
    const end = Math.min(offset + length, locs.size);
    if (end <= offset) return Buffer.alloc(0);
    const out = Buffer.alloc(end - offset);
    const pieces: Promise<void>[] = [];
    for (let pos = offset; pos < end; ) {
      const index = Math.floor(pos / cs);
      const inChunk = pos - index * cs;
      const n = Math.min(end - pos, cs - inChunk, READ_PIECE);
      const at = pos - offset;
      pieces.push(this.readChunk(ino, index, inChunk, n, this.spread++).then((data) => void data.copy(out, at)));
      pos += n;
    }
    await Promise.all(pieces);
    return out;
  }

  /** Each read starts at the next replica in turn: the load spreads over all of them. */
  private async readChunk(ino: number, index: number, offset: number, length: number, spread: number): Promise<Buffer> {
    return withRetry(this.cfg.clientRetryMs, (e) => isUnreachable(e) || e.code === 'EIO', async () => {
      const locs = await this.locate(ino, index, index + 1);
      const loc = locs.chunks.get(index);
      if (!loc) return Buffer.alloc(0); // a hole: zeros
      let last: GfsError = new GfsError('EUNAVAIL', `no live replica of chunk ${loc.handle}`);
      const n = loc.replicas.length;
      for (let i = 0; i < n; i++) {
        const address = loc.replicas[(i + spread) % n];
        try {
          const r = await this.pool.call(address, 'read', { handle: loc.handle, version: loc.version, offset, length });
          return r.data;
        } catch (e) {
          last = asGfsError(e);
          this.log.debug(`read of chunk ${loc.handle} from ${address} failed: ${last.message}`);
          if (last.code === 'EIO') void this.master.call('reportBad', { handle: loc.handle, server: address }).catch(() => {});
        }
      }
      this.locations.delete(ino); // replicas moved or died: ask the master again next time
      throw last.code === 'ESTALE' ? new GfsError('EUNAVAIL', last.message) : last;
    });
  }

  private async locate(ino: number, first: number, end: number): Promise<Locations> {
    let locs = this.locations.get(ino);
    if (locs && end <= locs.covered) return locs;
    const from = locs ? locs.covered : 0;
    const start = Math.min(from, first);
    const count = Math.max(end - start, LOCATION_BATCH);
    const r = await this.master.call('chunks', { ino, first: start, count });
    locs = this.locations.get(ino) ?? { size: r.size, chunks: new Map(), covered: 0 };
    locs.size = r.size;
    for (const c of r.chunks) locs.chunks.set(c.index, c);
    if (start <= locs.covered) locs.covered = Math.max(locs.covered, start + count);
    this.locations.set(ino, locs);
    return locs;
  }

  // ------------------------------------------------------------------ writes

  /** Write data at offset (split at chunk boundaries); resolves when every replica has it. */
  async write(ino: number, offset: number, data: Buffer, touched: Map<ChunkHandle, ServerAddress[]>): Promise<void> {
    const cs = this.cfg.chunkSize;
    const pieces: Promise<void>[] = [];
    for (let pos = 0; pos < data.length; ) {
      const fileOff = offset + pos;
      const index = Math.floor(fileOff / cs);
      const inChunk = fileOff - index * cs;
      const n = Math.min(data.length - pos, cs - inChunk);
      pieces.push(this.writeChunk(ino, index, inChunk, data.subarray(pos, pos + n), touched));
      pos += n;
    }
    await Promise.all(pieces);
    this.locations.delete(ino);
  }

  private writeChunk(ino: number, index: number, offset: number, data: Buffer, touched: Map<ChunkHandle, ServerAddress[]>): Promise<void> {
    const key = `${ino}:${index}`;
    return withRetry(this.cfg.clientRetryMs, writeRetryable, async () => {
      const t = await this.target(key, () => this.master.call('writeTarget', { ino, index }, writeRetryable));
      try {
        const dataId = await this.push(t, data);
        await this.pool.call(t.primary, 'write', { handle: t.handle, version: t.version, offset, dataId, secondaries: t.secondaries });
        touched.set(t.handle, [t.primary, ...t.secondaries]);
      } catch (e) {
        this.targets.delete(key);
        throw e;
      }
    });
  }

  /** Append data as one record; returns the file offset the primary chose for it. */
  async append(ino: number, data: Buffer, touched: Map<ChunkHandle, ServerAddress[]>): Promise<number> {
    if (data.length > Math.floor(this.cfg.chunkSize / 4)) throw new GfsError('EFBIG', `record of ${data.length} bytes is over a quarter chunk`);
    const key = `append:${ino}`;
    let full: ChunkHandle | undefined;
    for (;;) {
      const outcome: { offset?: number; full?: ChunkHandle } = await withRetry(this.cfg.clientRetryMs, writeRetryable, async () => {
        const t = await this.target(key, () => this.master.call('appendTarget', { ino, ...(full !== undefined ? { full } : {}) }, writeRetryable));
        try {
          const dataId = await this.push(t, data);
          const r = await this.pool.call(t.primary, 'append', { handle: t.handle, version: t.version, dataId, secondaries: t.secondaries });
          touched.set(t.handle, [t.primary, ...t.secondaries]);
          return { offset: t.index * this.cfg.chunkSize + r.offset };
        } catch (e) {
          this.targets.delete(key);
          const err = asGfsError(e);
          if (err.code === 'ECHUNKFULL') return { full: t.handle } as { offset?: number; full?: ChunkHandle };
          throw err;
        }
      });
      if (outcome.offset !== undefined) {
        this.locations.delete(ino);
        return outcome.offset;
      }
      full = outcome.full; // the primary padded that chunk: go on to the next
    }
  }

  /** Cut every replica of a chunk to length (after the master shrank the file). */
  async cut(first: WriteTarget, ino: number, length: number): Promise<void> {
    let t = first;
    await withRetry(this.cfg.clientRetryMs, writeRetryable, async () => {
      try {
        await this.pool.call(t.primary, 'truncate', { handle: t.handle, version: t.version, length, secondaries: t.secondaries });
      } catch (e) {
        t = await this.master.call('writeTarget', { ino, index: t.index }, writeRetryable);
        throw e;
      }
    });
    this.locations.delete(ino);
  }

  /** fsync the given replicas on their chunkservers. */
  async sync(touched: Map<ChunkHandle, ServerAddress[]>): Promise<void> {
    const byServer = new Map<ServerAddress, ChunkHandle[]>();
    for (const [h, servers] of touched) {
      for (const s of servers) {
        let list = byServer.get(s);
        if (!list) byServer.set(s, (list = []));
        list.push(h);
      }
    }
    await Promise.all([...byServer].map(([s, handles]) => this.pool.call(s, 'sync', { handles })));
  }

  private async target(key: string, fetch: () => Promise<WriteTarget>): Promise<WriteTarget> {
    const cached = this.targets.get(key);
    if (cached && cached.until > Date.now()) return cached.target;
    const target = await fetch();
    // Keep it a little less than the lease: the primary refuses work once its lease has run out.
    this.targets.set(key, { target, until: Date.now() + Math.max(0, target.leaseMs - 2000) });
    return target;
  }

  /** Send data down the chain primary → secondaries; resolves when all of them hold it. */
  private async push(t: WriteTarget, data: Buffer): Promise<string> {
    const dataId = `${this.clientId}-${++this.seq}`;
    await this.pool.call(t.primary, 'push', { dataId, data, chain: t.secondaries });
    return dataId;
  }
}
