// Replicas on disk: one file per chunk under <dataDir>/chunks/, named from the handle as 16 hex
// digits (never from a client path, so no client input ever becomes a file name), plus a sidecar
// "<hex>.meta" with the version and a CRC32 per block (sidecar.ts), plus "<hex>.bad" once the
// replica failed a checksum (so it stays quarantined across restarts).
//
// The replica's length is its data file's size. Checksums live in memory and in the sidecar;
// every read verifies the blocks it touches, and a mutation that keeps part of an old block
// verifies that block before folding its bytes into a new checksum, so corruption is never
// silently blessed. A replica that fails is marked corrupt: never served again (EIO), reported
// through onCorrupt, kept until the master deletes it.
//
// Data is written before checksums: a crash in between leaves a mismatch that the next read
// catches, and the master then re-replicates from a good copy (as in the paper, §5.2).

import { renameSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, stat, statfs, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { crc32 } from '../protocol/crc32.js';
import { GfsError, asGfsError } from '../protocol/errors.js';
import type { ChunkHandle, ChunkReport } from '../protocol/messages.js';
import type { Logger } from '../log.js';
import { CrcTable, crcOf, zeros } from './checksum.js';
import { datasyncFd, readAll, syncFd, truncateFd, unlinkQuietly, writeAll } from './fsutil.js';
import { Incoming } from './incoming.js';
import { DIRECT_MIN_BYTES, DirectWriter } from './direct-io.js';
import { FileCache } from './files.js';
import { SpareFiles } from './spares.js';
import { Mutex, RwLock } from './locks.js';
import { crcOffset, decodeSidecar, encodeCrcs, encodeHeader } from './sidecar.js';

export const handleName = (handle: ChunkHandle): string => handle.toString(16).padStart(16, '0');
const HANDLE_FILE = /^[0-9a-f]{16}$/;
const TEMP_FILE = /^[0-9a-f]{16}\.(?:repl|tmp)-/;

interface Replica {
  readonly handle: ChunkHandle;
  readonly dataPath: string;
  readonly metaPath: string;
  version: number;
  length: number;
  /** Bytes per checksum block (B), from its sidecar: replicas made under another setting keep theirs. */
  blockSize: number;
  /** crcs[i] covers bytes [i*B, min((i+1)*B, length)). */
  crcs: CrcTable;
  corrupt: boolean;
  /** Removed from the store; operations that still hold it must fail. */
  gone: boolean;
  /** The write of the ".bad" marker, awaited before the marker may be removed. */
  marking?: Promise<void>;
  readonly io: RwLock;
  /** Last read or mutation (ms), and last whole-replica check by the background scan (ms). */
  usedAt: number;
  verifiedAt: number;
}

export interface ReplicaInfo {
  handle: ChunkHandle;
  version: number;
  length: number;
  corrupt: boolean;
}

export interface StoreOptions {
  dataDir: string;
  blockSize: number;
  log: Logger;
  /**
   * Descriptors kept open (files.ts), 512 unless given. Enough that the two files of each chunk
   * the master's pool had made ahead (up to chunkPoolSize, 64) are still open when the chunk's
   * first write comes: with 128 they were mostly closed by then and opened again (strace over
   * 2000 small files: 5,637 opens on a chunkserver; 4,002 with room, the creates alone).
   */
  maxOpenFiles?: number;
  /** false: every write goes through the page cache (tests compare the two). */
  directWrites?: boolean;
}

export class ChunkStore {
  /** Called once when a replica turns corrupt (the chunkserver reports it to the master). */
  onCorrupt: (handle: ChunkHandle) => void = () => {};
  readonly dir: string;
  private readonly replicas = new Map<ChunkHandle, Replica>();
  private readonly files: FileCache;
  private readonly spares: SpareFiles;
  /** Serializes changes to which replicas exist (create, install, remove). */
  private readonly ns = new Mutex();
  private readonly blockSize: number;
  private readonly log: Logger;
  /** Writes large writes' aligned middles O_DIRECT (null: the file system cannot). */
  private direct: DirectWriter | null = null;

  private constructor(private readonly opts: StoreOptions) {
    this.dir = join(opts.dataDir, 'chunks');
    this.blockSize = opts.blockSize;
    this.log = opts.log;
    this.files = new FileCache(opts.maxOpenFiles ?? 512);
    this.spares = new SpareFiles(join(opts.dataDir, 'spare'));
  }

  static async open(opts: StoreOptions): Promise<ChunkStore> {
    if (!Number.isSafeInteger(opts.blockSize) || opts.blockSize <= 0) throw new Error(`bad checksum block ${opts.blockSize}`);
    const store = new ChunkStore(opts);
    await mkdir(store.dir, { recursive: true });
    store.direct = opts.directWrites === false ? null : DirectWriter.forDir(store.dir);
    if (!store.direct && opts.directWrites !== false) store.log.info(`${store.dir} takes no O_DIRECT writes: all writes go through the page cache`);
    await store.spares.start();
    await store.load();
    return store;
  }

  // ---- what we hold ----

  info(handle: ChunkHandle): ReplicaInfo | undefined {
    const r = this.replicas.get(handle);
    return r && { handle, version: r.version, length: r.length, corrupt: r.corrupt };
  }

  /** Good replicas as [handle, version]. */
  reports(): ChunkReport[] {
    const out: ChunkReport[] = [];
    for (const r of this.replicas.values()) if (!r.corrupt) out.push([r.handle, r.version]);
    return out;
  }

  corruptHandles(): ChunkHandle[] {
    const out: ChunkHandle[] = [];
    for (const r of this.replicas.values()) if (r.corrupt) out.push(r.handle);
    return out;
  }

  /** Bytes written around the page cache so far (direct-io.ts). */
  get directBytes(): number {
    return this.direct?.written ?? 0;
  }

  /** Bytes of replica files (corrupt ones included: they still take the disk). */
  usedBytes(): number {
    let n = 0;
    for (const r of this.replicas.values()) n += r.length;
    return n;
  }

  async freeBytes(): Promise<number> {
    const s = await statfs(this.opts.dataDir);
    return s.bavail * s.bsize;
  }

  get count(): number {
    return this.replicas.size;
  }

  // ---- namespace ----

  /**
   * A new, empty replica at version. Not fsync'd: an empty replica lost in a machine crash is just
   * a missing replica (the master copies the chunk again), and the data written into it later is
   * only forced to disk by sync() — which also syncs the directory, and so the new names.
   * fromSpare false: made in place, for a create off any writer's way (a chunk placed ahead of
   * need): two renames cost more than making the files, and spares are for creates in a hurry.
   */
  create(handle: ChunkHandle, version: number, fromSpare = true): Promise<void> {
    return this.ns.run(async () => {
      if (this.replicas.has(handle)) return;
      const r = this.newReplica(handle, version, 0, new CrcTable(), false);
      try {
        const spare = fromSpare ? this.spares.take() : undefined;
        if (spare) {
          renameSync(spare.meta, r.metaPath);
          renameSync(spare.data, r.dataPath);
        } else {
          await this.files.create(r.metaPath, () => undefined);
          await this.files.create(r.dataPath, () => undefined);
        }
        await this.files.use(r.metaPath, (fd) => writeAll(fd, encodeHeader(r.blockSize, version), 0));
      } catch (e) {
        this.files.invalidate(r.dataPath);
        this.files.invalidate(r.metaPath);
        await unlinkQuietly(r.dataPath);
        await unlinkQuietly(r.metaPath);
        throw asGfsError(e);
      }
      this.replicas.set(handle, r);
    });
  }

  /**
   * Drop a replica and its files (absent is fine: deletes are idempotent). With atMost, only if
   * its version is at most that (the master may have re-leased a newer one meanwhile); true if
   * it was removed.
   */
  remove(handle: ChunkHandle, atMost = Infinity): Promise<boolean> {
    return this.ns.run(async () => {
      const r = this.replicas.get(handle);
      if (!r) return false;
      return r.io.write(async () => {
        if (r.version > atMost) return false;
        r.gone = true;
        this.replicas.delete(handle);
        this.files.invalidate(r.dataPath);
        this.files.invalidate(r.metaPath);
        await unlinkQuietly(r.dataPath);
        await unlinkQuietly(r.metaPath);
        await r.marking;
        await unlinkQuietly(r.dataPath + '.bad');
        return true;
      });
    });
  }

  /** Receive a whole replica in order (replication); installed only by commit(). */
  async incoming(handle: ChunkHandle, maxLength: number): Promise<Incoming> {
    const base = join(this.dir, `${handleName(handle)}.repl-${randomBytes(4).toString('hex')}`);
    const fh = await open(base, 'wx+').catch((e) => {
      throw asGfsError(e);
    });
    return new Incoming(this, handle, base, fh, this.blockSize, maxLength);
  }

  /** Called by Incoming.commit: swap the verified temp files in as the replica. */
  async install(handle: ChunkHandle, version: number, length: number, crcs: number[], tmpData: string, tmpMeta: string): Promise<void> {
    await this.ns.run(async () => {
      const existing = this.replicas.get(handle);
      const r = existing ?? this.newReplica(handle, version, length, new CrcTable(crcs), false);
      await r.io.write(async () => {
        this.files.invalidate(r.dataPath);
        this.files.invalidate(r.metaPath);
        await rename(tmpData, r.dataPath);
        await rename(tmpMeta, r.metaPath);
        await r.marking;
        await unlinkQuietly(r.dataPath + '.bad');
        await this.syncDir();
        r.version = version;
        r.length = length;
        r.blockSize = this.blockSize;
        r.crcs = new CrcTable(crcs);
        r.corrupt = false;
        r.gone = false;
      });
      this.replicas.set(handle, r);
    });
  }

  // ---- versions ----

  /** Set and persist (fsync) the version; nothing is written when it is unchanged. */
  async setVersion(handle: ChunkHandle, version: number): Promise<void> {
    const r = this.need(handle);
    await r.io.write(async () => {
      if (r.gone) throw missing(handle);
      if (r.version === version) return;
      await this.files.use(r.metaPath, async (fd) => {
        await writeAll(fd, encodeHeader(r.blockSize, version), 0);
        await datasyncFd(fd);
      });
      r.version = version;
    });
  }

  // ---- data ----

  /** Checksum-verified bytes [offset, offset+length) clipped at the end, with the replica's length. */
  async read(handle: ChunkHandle, offset: number, length: number): Promise<{ data: Buffer; chunkLength: number }> {
    const r = this.need(handle);
    return r.io.read(async () => {
      this.usable(r);
      const end = Math.min(offset + length, r.length);
      if (offset >= end) return { data: Buffer.alloc(0), chunkLength: r.length };
      const B = r.blockSize;
      const first = Math.floor(offset / B);
      const from = first * B;
      const to = Math.min(Math.ceil(end / B) * B, r.length);
      const buf = await this.readData(r, from, to - from);
      for (let i = 0, at = 0; at < buf.length; i++, at += B) {
        this.verify(r, first + i, buf.subarray(at, Math.min(at + B, buf.length)));
      }
      return { data: buf.subarray(offset - from, end - from), chunkLength: r.length };
    });
  }

  /**
   * Where [offset, offset + length) of a replica is on disk, widened to whole checksum blocks and
   * cut at the replica's end, with those blocks' CRCs: a client on this host reads and checks
   * the bytes itself. Taken under the read lock, so the CRCs match the file as it is now; a later
   * write changes both, and the client's check then fails and it reads through us instead.
   */
  async whereIs(handle: ChunkHandle, offset: number, length: number): Promise<{ path: string; from: number; length: number; blockSize: number; crcs: Buffer; chunkLength: number }> {
    const r = this.need(handle);
    return r.io.read(async () => {
      this.usable(r);
      const B = r.blockSize;
      const end = Math.min(offset + length, r.length);
      const first = Math.floor(offset / B);
      const to = offset < end ? Math.min(Math.ceil(end / B) * B, r.length) : first * B;
      const blocks = Math.ceil((to - first * B) / B);
      const crcs = Buffer.allocUnsafe(4 * blocks);
      for (let i = 0; i < blocks; i++) crcs.writeUInt32LE(r.crcs.get(first + i) >>> 0, 4 * i);
      return { path: resolve(r.dataPath), from: first * B, length: to - first * B, blockSize: B, crcs, chunkLength: r.length };
    });
  }

  /** Write data at offset; a gap past the current end is zero-filled (and checksummed). */
  async write(handle: ChunkHandle, offset: number, data: Uint8Array): Promise<void> {
    const r = this.need(handle);
    await r.io.write(async () => {
      this.usable(r);
      if (data.length > 0) await this.extent(r, offset, data);
    });
  }

  /** Zero-extend the replica to length (no-op when it is that long already). */
  async pad(handle: ChunkHandle, length: number): Promise<void> {
    const r = this.need(handle);
    await r.io.write(async () => {
      this.usable(r);
      if (length > r.length) await this.extent(r, length, new Uint8Array(0));
    });
  }

  /** Cut (or zero-extend) the replica to length. */
  async truncate(handle: ChunkHandle, length: number): Promise<void> {
    const r = this.need(handle);
    await r.io.write(async () => {
      this.usable(r);
      if (length > r.length) await this.extent(r, length, new Uint8Array(0));
      else if (length < r.length) await this.shrink(r, length);
    });
  }

  /** fsync a replica's data and checksums. */
  async sync(handle: ChunkHandle): Promise<void> {
    const r = this.need(handle);
    await r.io.read(async () => {
      if (r.gone) throw missing(handle);
      await this.files.use(r.dataPath, syncFd);
      await this.files.use(r.metaPath, syncFd);
    });
    await this.syncDir(); // names of replicas created since (create() does not sync them)
  }

  // ---- background scan (scrubber.ts) ----

  /** The idle, good replica whose last whole check is oldest (never checked first). */
  scrubCandidate(idleMs: number, now = Date.now()): ChunkHandle | undefined {
    let best: Replica | undefined;
    for (const r of this.replicas.values()) {
      if (r.corrupt || r.gone || now - r.usedAt < idleMs) continue;
      if (!best || r.verifiedAt < best.verifiedAt) best = r;
    }
    return best?.handle;
  }

  /**
   * Check every block of a replica against its checksum, a piece at a time so that a writer waits
   * for one piece at most. A mismatch quarantines the replica as a failed read would (EIO thrown).
   * Returns the bytes checked.
   */
  async verifyAll(handle: ChunkHandle, pieceBytes = 1024 * 1024): Promise<number> {
    const r = this.replicas.get(handle);
    if (!r) return 0;
    const B = r.blockSize;
    const piece = Math.max(B, Math.floor(pieceBytes / B) * B);
    let checked = 0;
    for (let pos = 0; ; pos += piece) {
      const more = await r.io.read(async () => {
        if (r.gone || r.corrupt || pos >= r.length) return false;
        const n = Math.min(piece, r.length - pos);
        const buf = await this.readData(r, pos, n);
        for (let at = 0; at < n; at += B) this.verify(r, (pos + at) / B, buf.subarray(at, Math.min(at + B, n)));
        checked += n;
        return true;
      });
      if (!more) break;
    }
    r.verifiedAt = Date.now();
    return checked;
  }

  async close(): Promise<void> {
    await this.spares.stop();
    await this.files.closeAll();
  }

  // ---- internals ----

  private need(handle: ChunkHandle): Replica {
    const r = this.replicas.get(handle);
    if (!r) throw missing(handle);
    return r;
  }

  /** Every read and mutation checks this first; it also marks the replica busy for the background scan. */
  private usable(r: Replica): void {
    if (r.gone) throw missing(r.handle);
    if (r.corrupt) throw new GfsError('EIO', `replica of chunk ${r.handle} is corrupt`);
    r.usedAt = Date.now();
  }

  private verify(r: Replica, block: number, bytes: Uint8Array): void {
    if (crc32(bytes) >>> 0 !== r.crcs.get(block)) {
      this.markCorrupt(r, `checksum mismatch in block ${block}`);
      throw new GfsError('EIO', `replica of chunk ${r.handle} is corrupt (block ${block})`);
    }
  }

  private markCorrupt(r: Replica, why: string): void {
    if (r.corrupt) return;
    r.corrupt = true;
    this.log.warn(`chunk ${r.handle}: ${why}; replica quarantined`);
    // Remember across restarts; best effort (the heartbeat reports it either way).
    r.marking = writeFile(r.dataPath + '.bad', why + '\n').catch(() => {});
    try {
      this.onCorrupt(r.handle);
    } catch {
      // A reporting failure must not turn into a failed read of some other kind.
    }
  }

  private async readData(r: Replica, pos: number, n: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(n);
    const got = await this.files.use(r.dataPath, (fd) => readAll(fd, buf, pos));
    if (got < n) {
      this.markCorrupt(r, `file shorter than its recorded length ${r.length}`);
      throw new GfsError('EIO', `replica of chunk ${r.handle} is truncated`);
    }
    return buf;
  }

  /**
   * Put data at offset, zero-filling [length, offset). Only the first and last touched blocks can
   * keep old bytes; those are read and verified, then every touched block's checksum is rebuilt
   * from its pieces: old prefix, zero gap, new data, old suffix.
   */
  private async extent(r: Replica, offset: number, data: Uint8Array): Promise<void> {
    const B = r.blockSize;
    const oldLen = r.length;
    const end = offset + data.length;
    const newLen = Math.max(oldLen, end);
    const start = Math.min(offset, oldLen);
    const bs = Math.floor(start / B);
    const be = Math.ceil(end / B);

    const old = new Map<number, Buffer>();
    for (const i of new Set([bs, be - 1])) {
      const bStart = i * B;
      const oldEnd = Math.min(bStart + B, oldLen);
      if (oldEnd <= bStart) continue;
      const keepsPrefix = i === bs && start > bStart;
      const keepsSuffix = i === be - 1 && end < oldEnd;
      if (!keepsPrefix && !keepsSuffix) continue;
      const bytes = await this.readData(r, bStart, oldEnd - bStart);
      this.verify(r, i, bytes);
      old.set(i, bytes);
    }

    const crcs: number[] = [];
    for (let i = bs; i < be; i++) {
      const bStart = i * B;
      const bEnd = Math.min(bStart + B, newLen);
      const o = old.get(i);
      const pieces: Uint8Array[] = [];
      if (o && start > bStart) pieces.push(o.subarray(0, start - bStart));
      const g0 = Math.max(bStart, oldLen);
      const g1 = Math.min(offset, bEnd);
      if (g1 > g0) pieces.push(zeros(g1 - g0));
      const d0 = Math.max(bStart, offset);
      const d1 = Math.min(end, bEnd);
      if (d1 > d0) pieces.push(data.subarray(d0 - offset, d1 - offset));
      const s0 = Math.max(bStart, end);
      const s1 = Math.min(bEnd, oldLen);
      if (o && s1 > s0) pieces.push(o.subarray(s0 - bStart, s1 - bStart));
      crcs.push(crcOf(pieces) >>> 0);
    }

    try {
      await this.files.use(r.dataPath, async (fd) => {
        if (offset > oldLen) await truncateFd(fd, offset); // the file system zero-fills the gap
        if (data.length > 0) await this.writeData(r, fd, data, offset);
      });
    } catch (e) {
      // Leave the replica as long as it was (best effort) so memory and disk agree on its length.
      if (newLen > oldLen) await this.files.use(r.dataPath, (fd) => truncateFd(fd, oldLen)).catch(() => {});
      throw asGfsError(e);
    }
    // The data is on disk: memory now describes it, whatever happens to the sidecar write.
    for (let i = bs; i < be; i++) r.crcs.set(i, crcs[i - bs]);
    r.length = newLen;
    await this.files.use(r.metaPath, (fd) => writeAll(fd, encodeCrcs(crcs), crcOffset(bs))).catch((e) => {
      throw asGfsError(e);
    });
  }

  /** Write data at offset through fd; the aligned middle of a large write goes around the page cache. */
  private async writeData(r: Replica, fd: number, data: Uint8Array, offset: number): Promise<void> {
    const direct = this.direct;
    const mid = direct && DirectWriter.middle(offset, data.length, DIRECT_MIN_BYTES);
    if (!direct || !mid) return writeAll(fd, data, offset);
    const head = mid.from - offset;
    const tail = mid.to - offset;
    if (head > 0) await writeAll(fd, data.subarray(0, head), offset);
    if (tail < data.length) await writeAll(fd, data.subarray(tail), mid.to);
    const middle = data.subarray(head, tail);
    if (!(await this.files.useDirect(r.dataPath, (dfd) => direct.write(dfd, middle, mid.from)))) await writeAll(fd, middle, mid.from);
  }

  private async shrink(r: Replica, length: number): Promise<void> {
    const B = r.blockSize;
    const last = Math.floor(length / B);
    let lastCrc: number | null = null;
    if (length % B !== 0) {
      // The new last block keeps old bytes: check them before they get a fresh checksum.
      const bStart = last * B;
      const bytes = await this.readData(r, bStart, Math.min(bStart + B, r.length) - bStart);
      this.verify(r, last, bytes);
      lastCrc = crc32(bytes.subarray(0, length - bStart)) >>> 0;
    }
    const blocks = Math.ceil(length / B);
    try {
      await this.files.use(r.dataPath, (fd) => truncateFd(fd, length));
    } catch (e) {
      throw asGfsError(e);
    }
    r.length = length;
    r.crcs.truncate(blocks);
    if (lastCrc !== null) r.crcs.set(last, lastCrc);
    await this.files
      .use(r.metaPath, async (fd) => {
        if (lastCrc !== null) await writeAll(fd, encodeCrcs([lastCrc]), crcOffset(last));
        await truncateFd(fd, crcOffset(blocks));
      })
      .catch((e) => {
        throw asGfsError(e);
      });
  }

  private newReplica(handle: ChunkHandle, version: number, length: number, crcs: CrcTable, corrupt: boolean): Replica {
    const name = handleName(handle);
    return {
      handle,
      dataPath: join(this.dir, name),
      metaPath: join(this.dir, `${name}.meta`),
      version,
      length,
      blockSize: this.blockSize,
      crcs,
      corrupt,
      gone: false,
      io: new RwLock(),
      usedAt: 0,
      verifiedAt: 0,
    };
  }

  async syncDir(): Promise<void> {
    const fh = await open(this.dir, 'r');
    try {
      await fh.sync();
    } catch {
      // Some file systems refuse fsync on a directory; the rename is still there.
    } finally {
      await fh.close();
    }
  }

  /** Rebuild the table from disk at start-up (the checksums themselves are verified lazily, on use). */
  private async load(): Promise<void> {
    const names = new Set(await readdir(this.dir));
    for (const name of names) {
      if (TEMP_FILE.test(name)) {
        // Left by a replication that did not finish.
        await unlinkQuietly(join(this.dir, name));
        continue;
      }
      if (name.endsWith('.meta') && !names.has(name.slice(0, -5)) && HANDLE_FILE.test(name.slice(0, -5))) {
        await unlinkQuietly(join(this.dir, name)); // its replica was being removed
        continue;
      }
      if (name.endsWith('.bad') && !names.has(name.slice(0, -4))) {
        await unlinkQuietly(join(this.dir, name));
        continue;
      }
      if (!HANDLE_FILE.test(name)) continue;
      const handle = parseInt(name, 16);
      if (!Number.isSafeInteger(handle)) {
        this.log.warn(`ignoring chunk file ${name}: handle beyond 2^53`);
        continue;
      }
      const r = this.newReplica(handle, 0, 0, new CrcTable(), false);
      r.length = (await stat(r.dataPath)).size;
      const meta = names.has(`${name}.meta`) ? decodeSidecar(await readFile(r.metaPath)) : null;
      if (meta) r.version = meta.version;
      let bad: string | null = null;
      if (!meta) bad = 'sidecar missing or unreadable';
      else if (!validBlockSize(meta.blockSize)) bad = `sidecar has ${meta.blockSize}-byte blocks`;
      else if (meta.crcs.length < Math.ceil(r.length / meta.blockSize)) bad = 'sidecar has fewer checksums than the data has blocks';
      else if (names.has(`${name}.bad`)) bad = 'marked corrupt earlier';
      if (meta && !bad) {
        r.blockSize = meta.blockSize;
        r.crcs = new CrcTable(meta.crcs.subarray(0, Math.ceil(r.length / meta.blockSize)));
      }
      if (bad) {
        r.corrupt = true;
        this.log.warn(`chunk ${handle}: ${bad}; reported as corrupt`);
      }
      this.replicas.set(handle, r);
    }
  }
}

/** A block size a sidecar may carry: a power of two from 512 bytes to 1 MiB. */
const validBlockSize = (n: number): boolean => n >= 512 && n <= 1024 * 1024 && (n & (n - 1)) === 0;

function missing(handle: ChunkHandle): GfsError {
  return new GfsError('ENOENT', `no replica of chunk ${handle}`);
}
