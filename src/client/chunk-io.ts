// Data to and from chunkservers (paper §3): reads go straight to a replica and fail over to the
// next (also on a checksum error, which is reported); writes push the data along the replica chain
// and then ask the primary to commit; record appends let the primary pick the offset and move on to
// a new chunk when it says the last one is full. Chunk locations and lease holders are cached.

import { randomBytes } from 'node:crypto';
import { GfsError, asGfsError } from '../protocol/errors.js';
import type { Attr, ChunkHandle, ChunkLocation, Extent, ServerAddress, WriteTarget } from '../protocol/messages.js';
import type { PeerPool } from '../protocol/pool.js';
import { framePayloadBytes, type GfsConfig } from '../config.js';
import { LocalReads, type AlignedAlloc } from './local-reads.js';
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
/** Writes up to this size travel inside the mutation instead of being pushed first. */
const INLINE_MAX = 256 * 1024;
/** Large reads go as pieces of this size, side by side and spread over the replicas. */
const READ_PIECE = 1024 * 1024;
/**
 * Once a replica is known to be on this host's disk: pieces this large (up to a read-ahead
 * window), one `readLocal` each. Spreading over replicas buys nothing from one disk, and every
 * piece costs a round trip to a chunkserver (measured on a 1 GiB read: ~13% of the machine's CPU
 * went to the chunkservers answering 1 MiB `readLocal`s).
 */
const LOCAL_READ_PIECE = 8 * 1024 * 1024;

function padded(data: Buffer, length: number): Buffer {
  const out = Buffer.alloc(length);
  data.copy(out);
  return out;
}

export class ChunkIo {
  private readonly locations = new Map<number, Locations>();
  private readonly targets = new Map<string, { target: WriteTarget; until: number }>();
  private readonly clientId = randomBytes(6).toString('hex');
  /** Reads of replicas on this host's disk, straight from their files. */
  readonly localReads: LocalReads;
  private seq = 0;
  private spread = 0;

  constructor(
    private readonly master: MasterLink,
    private readonly pool: PeerPool,
    private readonly cfg: GfsConfig,
    private readonly log: Logger,
    /**
     * While a create answered ahead of the master (deferred-changes.ts) is on its way: its answer,
     * which must come before anything asks the master about the file.
     */
    private readonly whenMade: (ino: number) => Promise<void> | undefined = () => undefined,
    /** Aligned buffers for O_DIRECT reads of local replicas (none: through the page cache). */
    alignedAlloc?: AlignedAlloc,
  ) {
    this.localReads = new LocalReads(alignedAlloc);
  }

  /** Forget what is cached about ino's chunks (at open: close-to-open consistency). */
  forget(ino: number): void {
    this.locations.delete(ino);
  }

  /** Forget the cached write targets (leases) of ino's chunks (after a truncate dropped chunks). */
  forgetTargets(ino: number): void {
    this.targets.delete(`append:${ino}`);
    for (const key of [...this.targets.keys()]) if (key.startsWith(`${ino}:`)) this.targets.delete(key);
  }

  // ------------------------------------------------------------------ reads

  /**
   * Up to length bytes at offset, as consecutive pieces (not joined: a large read-ahead window
   * would otherwise be zero-filled and copied once more); shorter at the end of the file; holes
   * read as zeros.
   */
  async read(ino: number, offset: number, length: number): Promise<Buffer[]> {
    const cs = this.cfg.chunkSize;
    let locs = await this.locate(ino, Math.floor(offset / cs), Math.ceil((offset + length) / cs));
    if (offset + length > locs.size) {
      // Maybe the file grew since we looked: ask once more before cutting the read short.
      this.locations.delete(ino);
      locs = await this.locate(ino, Math.floor(offset / cs), Math.ceil((offset + length) / cs));
    }
    const end = Math.min(offset + length, locs.size);
    // Pieces side by side, spread over the replicas; a short one ends in a hole: zeros.
    const pieces: Promise<Buffer>[] = [];
    // (A local piece that cannot be read locally is read through a chunkserver: one frame.)
    const pieceBytes = this.localReads.found ? Math.max(READ_PIECE, Math.min(LOCAL_READ_PIECE, framePayloadBytes(this.cfg))) : READ_PIECE;
    for (let pos = offset; pos < end; ) {
      const index = Math.floor(pos / cs);
      const inChunk = pos - index * cs;
      const n = Math.min(end - pos, cs - inChunk, pieceBytes);
      pieces.push(this.readChunk(ino, index, inChunk, n, this.spread++).then((data) => (data.length === n ? data : padded(data, n))));
      pos += n;
    }
    return Promise.all(pieces);
  }

  /** Each read starts at the next replica in turn: the load spreads over all of them. */
  private async readChunk(ino: number, index: number, offset: number, length: number, spread: number): Promise<Buffer> {
    return withRetry(this.cfg.clientRetryMs, (e) => isUnreachable(e) || e.code === 'EIO', async () => {
      const locs = await this.locate(ino, index, index + 1);
      const loc = locs.chunks.get(index);
      if (!loc) return Buffer.alloc(0); // a hole: zeros
      let last: GfsError = new GfsError('EUNAVAIL', `no live replica of chunk ${loc.handle}`);
      const n = loc.replicas.length;
      const order = loc.replicas.map((_, i) => loc.replicas[(i + spread) % n]);
      // Replicas known to be on another host last (the sort is stable: the others keep their turns,
      // so reads still spread over several chunkservers on this host).
      order.sort((a, b) => Number(this.localReads.maybeLocal(b)) - Number(this.localReads.maybeLocal(a)));
      for (const address of order) {
        try {
          const req = { handle: loc.handle, version: loc.version, offset, length };
          if (this.cfg.localReadBytes > 0 && length >= this.cfg.localReadBytes && this.localReads.maybeLocal(address)) {
            const data = await this.localReads.read(address, await this.pool.call(address, 'readLocal', req), offset, length);
            if (data) return data;
          }
          return (await this.pool.call(address, 'read', req)).data;
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
    const made = this.whenMade(ino);
    if (made) await made;
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
  /**
   * Write each extent at its file offset; resolves when every replica has all of them. The
   * extents that fall in one chunk go as one (vectored) mutation, the chunks side by side.
   */
  async write(ino: number, extents: Array<{ start: number; data: Buffer }>, touched: Map<ChunkHandle, ServerAddress[]>): Promise<void> {
    const cs = this.cfg.chunkSize;
    const byChunk = new Map<number, Array<[offset: number, data: Buffer]>>();
    for (const { start, data } of extents) {
      for (let pos = 0; pos < data.length; ) {
        const index = Math.floor((start + pos) / cs);
        const inChunk = start + pos - index * cs;
        const n = Math.min(data.length - pos, cs - inChunk);
        let list = byChunk.get(index);
        if (!list) byChunk.set(index, (list = []));
        list.push([inChunk, data.subarray(pos, pos + n)]);
        pos += n;
      }
    }
    await Promise.all([...byChunk].map(([index, pieces]) => this.writeChunk(ino, index, pieces, touched)));
    this.locations.delete(ino);
  }

  private writeChunk(ino: number, index: number, pieces: Array<[offset: number, data: Buffer]>, touched: Map<ChunkHandle, ServerAddress[]>): Promise<void> {
    const key = `${ino}:${index}`;
    const data = pieces.length === 1 ? pieces[0][1] : Buffer.concat(pieces.map((p) => p[1]));
    const offset = pieces[0][0];
    const extents = pieces.length === 1 ? {} : { extents: pieces.map(([off, d]): Extent => [off, d.length]) };
    return withRetry(this.cfg.clientRetryMs, writeRetryable, async () => {
      const t = await this.target(key, ino, () => this.master.call('writeTarget', { ino, index }, writeRetryable));
      try {
        const { dataId, inline } = await this.stage(t, data);
        await this.pool.call(t.primary, 'write', { handle: t.handle, version: t.version, offset, dataId, ...inline, ...extents, secondaries: t.secondaries });
        touched.set(t.handle, [t.primary, ...t.secondaries]);
      } catch (e) {
        this.targets.delete(key);
        throw e;
      }
    });
  }

  /**
   * Append data as one record; returns the file offset the primary chose for it, and the file's
   * attributes if the primary had the master take the new size (else the caller must extend).
   */
  async append(ino: number, data: Buffer, touched: Map<ChunkHandle, ServerAddress[]>, mtime?: Attr['mtime']): Promise<{ offset: number; attr?: Attr }> {
    if (data.length > Math.floor(this.cfg.chunkSize / 4)) throw new GfsError('EFBIG', `record of ${data.length} bytes is over a quarter chunk`);
    const key = `append:${ino}`;
    let full: ChunkHandle | undefined;
    for (;;) {
      const outcome: { offset?: number; attr?: Attr; full?: ChunkHandle } = await withRetry(this.cfg.clientRetryMs, writeRetryable, async () => {
        const t = await this.target(key, ino, () => this.master.call('appendTarget', { ino, ...(full !== undefined ? { full } : {}) }, writeRetryable));
        try {
          const { dataId, inline } = await this.stage(t, data);
          const base = t.index * this.cfg.chunkSize;
          const r = await this.pool.call(t.primary, 'append', { handle: t.handle, version: t.version, dataId, ...inline, secondaries: t.secondaries, size: { ino, base, ...(mtime ? { mtime } : {}) } });
          touched.set(t.handle, [t.primary, ...t.secondaries]);
          return { offset: base + r.offset, ...(r.attr ? { attr: r.attr } : {}) };
        } catch (e) {
          this.targets.delete(key);
          const err = asGfsError(e);
          if (err.code === 'ECHUNKFULL') return { full: t.handle } as { offset?: number; full?: ChunkHandle };
          throw err;
        }
      });
      if (outcome.offset !== undefined) {
        this.locations.delete(ino);
        return { offset: outcome.offset, ...(outcome.attr ? { attr: outcome.attr } : {}) };
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

  /**
   * fsync the given replicas on their chunkservers. A replica whose server died since, or that the
   * master moved away (ESTALE), is no longer a live replica and is skipped; each chunk must still be
   * synced on at least one server.
   */
  async sync(touched: Map<ChunkHandle, ServerAddress[]>): Promise<void> {
    const byServer = new Map<ServerAddress, ChunkHandle[]>();
    for (const [h, servers] of touched) {
      for (const s of servers) {
        let list = byServer.get(s);
        if (!list) byServer.set(s, (list = []));
        list.push(h);
      }
    }
    const synced = new Set<ChunkHandle>();
    let gone: GfsError | null = null;
    await Promise.all(
      [...byServer].map(async ([s, handles]) => {
        try {
          await this.pool.call(s, 'sync', { handles });
          for (const h of handles) synced.add(h);
        } catch (e) {
          const err = asGfsError(e);
          if (!isUnreachable(err) && err.code !== 'ESTALE') throw err;
          gone = err;
          this.log.debug(`sync on ${s} skipped: ${err.message}`);
        }
      }),
    );
    for (const h of touched.keys()) if (!synced.has(h)) throw new GfsError('EIO', `no replica of chunk ${h} could be synced: ${(gone as GfsError | null)?.message}`);
  }

  private async target(key: string, ino: number, fetch: () => Promise<WriteTarget>): Promise<WriteTarget> {
    const made = this.whenMade(ino);
    if (made) await made; // (its answer may bring the first chunk's target)
    const cached = this.targets.get(key);
    if (cached && cached.until > Date.now()) return cached.target;
    const target = await fetch();
    this.keepTarget(key, target);
    return target;
  }

  /** A new file's first chunk, leased along with its create: its writes and appends start there. */
  firstTarget(ino: number, target: WriteTarget): void {
    this.keepTarget(`${ino}:0`, target);
    this.keepTarget(`append:${ino}`, target);
  }

  private keepTarget(key: string, target: WriteTarget): void {
    // Kept a little less than the lease: the primary refuses work once its lease has run out.
    this.targets.set(key, { target, until: Date.now() + Math.max(0, target.leaseMs - 2000) });
  }

  /**
   * Get data to the replicas for a mutation: large data is pushed down the chain primary →
   * secondaries first (each link carries it once, as in the paper); small data rides inside the
   * mutation itself, which saves a round trip through the whole chain.
   */
  private async stage(t: WriteTarget, data: Buffer): Promise<{ dataId: string; inline: { data?: Buffer } }> {
    const dataId = `${this.clientId}-${++this.seq}`;
    if (data.length <= INLINE_MAX) return { dataId, inline: { data } };
    await this.pool.call(t.primary, 'push', { dataId, data, chain: t.secondaries });
    return { dataId, inline: {} };
  }
}
