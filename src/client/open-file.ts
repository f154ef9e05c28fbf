// One open file of a client.
// - Writes go to a write-back buffer of extents (adjacent writes merge); once it holds
//   cfg.writeBufferBytes they are pushed to the chunkservers in the background, a few batches at
//   a time, so the kernel can hand over more data meanwhile. A batch never overtakes an earlier
//   one that overlaps it.
// - Writes on an O_APPEND handle are gathered into one record append (atomic: never split, no
//   other writer's bytes inside) sent at flush, or when a record is full. The kernel sends one
//   write() in pieces when it crosses into a page it has not cached (split at the page boundary)
//   or is longer than max_write; a flush for someone else (a reader, a recall) never sends a
//   first piece without the rest (flushFinished).
// - Reads use read-ahead windows that grow while the reader goes forward; a random read fetches
//   the aligned block around it (cfg.readAroundBytes). A window that answered a read is offered
//   once to the kernel's page cache (pagesToStore), so later reads in it need no request.
// Everything buffered is on every replica before flush(), fsync() or close() returns
// (close-to-open consistency); errors of background pushes surface there, or at the next write.

import { GfsError, asGfsError } from '../protocol/errors.js';
import type { ChunkHandle, ServerAddress } from '../protocol/messages.js';
import type { GfsClient } from './client.js';

/** Buffered bytes [start, end) of the file, in buf[0, end - start); buf may have room to spare. */
interface Extent {
  start: number;
  end: number;
  buf: Buffer;
}

interface Batch {
  extents: Array<{ start: number; end: number }>;
  done: Promise<void>;
}

interface Window {
  start: number;
  end: number;
  /** Consecutive pieces, as they came from the chunkservers. */
  data: Promise<Buffer[]>;
  /** The write generation it was fetched in: a write to the file since makes it stale. */
  gen: number;
  /** The pieces, once they are here. */
  pieces?: Buffer[];
  /** Handed to the kernel's page cache already. */
  stored: boolean;
}

const MAX_WINDOWS = 4;
/** Windows fetched ahead of a sequential reader (the window it reads in is another). */
const AHEAD_WINDOWS = 2;
const MAX_BATCHES_IN_FLIGHT = 4;
const MIN_READ_AHEAD = 256 * 1024;
/** The most pieces one store into the kernel's page cache takes (PAGE_STORE_MAX_PIECES). */
const MAX_STORE_PIECES = 64;
/** A write at least this big is likely the first of a stream: its extent starts with STREAM_ROOM. */
const STREAM_WRITE = 64 * 1024;
/**
 * Room a stream's extent starts with; past it, the extent grows to a whole batch at once (one copy
 * of this much per batch). Not a whole batch at once: `cp -r` of small files allocated 8 MiB per
 * file, and the mount spent 7% of its time collecting garbage.
 */
const STREAM_ROOM = 512 * 1024;
/** The kernel's page size: where it cuts a write() it sends in pieces. */
const PAGE = 4096;
/** How long a flush for someone else waits for the rest of a write() the kernel is sending. */
const REST_OF_WRITE_MS = 5;

const totalLength = (pieces: Buffer[]): number => pieces.reduce((n, p) => n + p.length, 0);

/** Bytes [from, to) of consecutive pieces (fewer at their end): a view when one piece holds them. */
function slice(pieces: Buffer[], from: number, to: number): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (const p of pieces) {
    if (at >= to) break;
    if (at + p.length > from) parts.push(p.subarray(Math.max(0, from - at), Math.min(p.length, to - at)));
    at += p.length;
  }
  return parts.length === 1 ? parts[0] : Buffer.concat(parts);
}

const overlaps = (a: { start: number; end: number }, b: { start: number; end: number }) => a.start < b.end && b.start < a.end;

export class OpenFile {
  private extents: Extent[] = [];
  private buffered = 0;
  private batches: Batch[] = [];
  private records: Buffer[] = [];
  private recordsLen = 0;
  /**
   * The last `unfinished` records may be the first pieces of a write() whose rest the kernel has
   * yet to send: each ended at a page boundary (of the kernel's offsets). A piece that ends
   * elsewhere ends its write(). (A write() that ended at a boundary by chance waits for company.)
   */
  private unfinished = 0;
  /** Flushes waiting for the next piece. */
  private pieceWaiters: Array<() => void> = [];
  private failed: GfsError | null = null;
  /** Highest end written that the master may not know yet. */
  private dirtyEnd = 0;
  private windows: Window[] = [];
  /** Bumped by every write to the file through this client (dropWindows). */
  private gen = 0;
  private readEnd = -1;
  private readAhead = 0;
  /** Replicas written since the last fsync. */
  readonly touched = new Map<ChunkHandle, ServerAddress[]>();

  constructor(
    private readonly client: GfsClient,
    readonly ino: number,
    readonly append: boolean,
    readonly writable: boolean,
  ) {}

  /** The size this handle has written up to (for getattr while writing). */
  get pendingEnd(): number {
    let end = this.dirtyEnd;
    for (const e of this.extents) end = Math.max(end, e.end);
    return end;
  }

  /** Bytes written at offsets and not yet on their way. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Bytes written to this O_APPEND handle and not yet handed to the append queue. */
  get pendingRecordBytes(): number {
    return this.recordsLen;
  }

  /** Closed (its last flush may still be on its way): only that flush sends what it holds. */
  closed = false;

  /** Writes at offsets buffered here or on their way. */
  get writesAtOffsets(): boolean {
    return this.buffered > 0 || this.batches.length > 0;
  }

  get dirty(): boolean {
    return this.buffered > 0 || this.recordsLen > 0 || this.batches.length > 0 || this.dirtyEnd > 0;
  }

  async read(pos: number, len: number): Promise<Buffer> {
    // A window fetched from here on holds every write made before this point (flushed first); a
    // write that comes while we wait makes it stale for later reads (not for this one: the kernel
    // does not read pages while it writes them).
    const gen = this.gen;
    await this.client.flushInode(this.ino, false);
    // The kernel reads ahead with several requests at once, not always in order: near enough counts.
    const sequential = this.readEnd >= 0 && Math.abs(pos - this.readEnd) <= this.client.cfg.readAheadBytes;
    this.readEnd = Math.max(sequential ? this.readEnd : 0, pos + len);
    this.readAhead = sequential ? Math.min(Math.max(this.readAhead * 2, MIN_READ_AHEAD), this.client.cfg.readAheadBytes) : 0;
    let w = this.windowAt(pos);
    if (w && pos + len > w.end) {
      // The kernel's requests need not line up with our windows: one may end in the next window.
      const next = this.windowAt(w.end);
      if (next && pos + len <= next.end) return this.readAcross(w, next, pos, len);
      w = undefined;
    }
    // A miss fetches up to the next window at most: the kernel sends its read-ahead requests a few
    // at a time and out of order, and a miss that re-read what a window already holds would
    // start a second chain of windows beside the first, reading the file twice (measured: up to
    // 2 GB fetched for a 1 GiB dd).
    if (!w) {
      // A random read takes the whole aligned block around it: the rest goes to the page cache.
      const around = this.client.cfg.readAroundBytes;
      const start = sequential ? pos : pos - (pos % around);
      const need = pos + len - start;
      w = this.fetch(start, this.room(start, Math.max(need, sequential ? this.readAhead : around), need), gen);
    }
    const data = await w.data;
    const full = totalLength(data) === w.end - w.start;
    // Read ahead only while no write to the file waits in this client: the next window would miss it.
    if (sequential && full && !this.client.hasBufferedWrites(this.ino)) this.readAheadFrom(w);
    return slice(data, pos - w.start, pos - w.start + len);
  }

  /**
   * The window that has just answered a read of [pos, pos + len), once, for the kernel to keep in
   * its page cache: only if it holds more than that read, was fetched after the last write through
   * this client (windowAt) and no handle of this client may write the file (page-store.h).
   */
  pagesToStore(pos: number, len: number): { pos: number; pieces: Buffer[] } | undefined {
    const w = this.windowAt(pos);
    if (!w?.pieces || w.stored || w.end - w.start <= len || this.client.hasWriters(this.ino)) return undefined;
    const pieces = w.pieces.filter((p) => p.length > 0);
    if (pieces.length === 0 || pieces.length > MAX_STORE_PIECES) return undefined;
    w.stored = true;
    return { pos: w.start, pieces };
  }

  /**
   * Keep AHEAD_WINDOWS windows fetched or on their way after w. Once a window is in the kernel's
   * page cache the reader goes through it at memory speed: with a single window ahead it would
   * then wait for each window's whole fetch in turn.
   */
  private readAheadFrom(w: Window): void {
    let at = w.end;
    for (let i = 0; i < AHEAD_WINDOWS; i++) {
      const next = this.windowAt(at) ?? this.fetch(at, this.room(at, Math.max(this.readAhead, w.end - w.start), 1), this.gen);
      at = next.end;
    }
  }

  /** The current window holding byte pos, if any. */
  private windowAt(pos: number): Window | undefined {
    return this.windows.find((x) => x.gen === this.gen && pos >= x.start && pos < x.end);
  }

  /** want bytes from start, cut short (to no less than need) where a current window begins. */
  private room(start: number, want: number, need: number): number {
    let end = start + want;
    for (const x of this.windows) if (x.gen === this.gen && x.start > start && x.start < end) end = x.start;
    return Math.max(end - start, need);
  }

  private async readAcross(a: Window, b: Window, pos: number, len: number): Promise<Buffer> {
    const [first, second] = await Promise.all([a.data, b.data]);
    // A short first window is the end of the file (as it was then): nothing after it.
    if (totalLength(first) < a.end - a.start) return slice(first, pos - a.start, a.end - a.start);
    return Buffer.concat([slice(first, pos - a.start, a.end - a.start), slice(second, 0, pos + len - b.start)]);
  }

  async write(pos: number, data: Buffer): Promise<number> {
    this.throwIfFailed();
    this.client.invalidateReads(this.ino);
    this.client.noteChange(this.ino);
    // The kernel reuses its buffer once we answer: what we keep is a copy.
    if (this.append) {
      // Full: the finished write()s go; a single write() bigger than a record cannot be one.
      if (this.recordsLen + data.length > this.client.maxRecordBytes) await this.sendRecords(false, true);
      if (this.recordsLen + data.length > this.client.maxRecordBytes) await this.sendRecords();
      this.records.push(Buffer.from(data));
      this.recordsLen += data.length;
      this.unfinished = (pos + data.length) % PAGE === 0 ? this.unfinished + 1 : 0;
      if (this.pieceWaiters.length > 0) for (const wake of this.pieceWaiters.splice(0)) wake();
      return data.length;
    }
    const end = pos + data.length;
    const last = this.extents[this.extents.length - 1];
    if (last && last.end === pos) {
      this.grow(last, data.length);
      data.copy(last.buf, last.end - last.start);
      last.end = end;
    } else {
      // A rewrite of buffered bytes: send what is buffered first, so the order of writes holds.
      if (this.extents.some((e) => overlaps(e, { start: pos, end }))) await this.sendBuffered();
      const room = data.length >= STREAM_WRITE ? Math.max(data.length, Math.min(STREAM_ROOM, this.client.cfg.writeBufferBytes)) : data.length;
      const buf = this.client.writeBuffer(room);
      data.copy(buf);
      this.extents.push({ start: pos, end, buf });
    }
    this.buffered += data.length;
    if (this.buffered >= this.client.cfg.writeBufferBytes) await this.sendBuffered();
    return data.length;
  }

  /** Make room for more bytes at the end of an extent (doubling, then a whole batch: copies stay few). */
  private grow(e: Extent, more: number): void {
    const used = e.end - e.start;
    if (used + more <= e.buf.length) return;
    const next = e.buf.length >= STREAM_ROOM ? this.client.cfg.writeBufferBytes : e.buf.length * 2;
    const buf = this.client.writeBuffer(Math.max(used + more, next));
    e.buf.copy(buf, 0, 0, used);
    e.buf = buf;
  }

  /**
   * Everything written so far is on every replica and the master knows the size. behind: the flush
   * of a close answered already (write-behind): its records may wait a moment for company.
   */
  async flush(behind = false): Promise<void> {
    await this.sendRecords(behind);
    await this.push(behind);
  }

  /**
   * flush() for a reader or a recall, which may come while the kernel is between the pieces of
   * a write() to this handle: it waits a moment for the rest, and leaves what may still be
   * unfinished for the next write or flush of the handle. Sent alone, a first piece would be a
   * record of its own, and another writer's record could land between the two halves of a line.
   */
  async flushFinished(behind = false): Promise<void> {
    const until = performance.now() + REST_OF_WRITE_MS;
    while (this.unfinished > 0 && performance.now() < until) {
      await new Promise<void>((go) => {
        const wake = () => (clearTimeout(timer), go());
        const timer = setTimeout(() => {
          this.pieceWaiters = this.pieceWaiters.filter((w) => w !== wake);
          go();
        }, until - performance.now());
        this.pieceWaiters.push(wake);
      });
    }
    await this.sendRecords(behind, true);
    await this.push(behind);
  }

  /**
   * The buffered writes go out; the master learns the size; all of it awaited. behind: a push after
   * the close (write-behind), whose size may wait a moment to go with a create (size-updates.ts).
   */
  private async push(behind = false): Promise<void> {
    await this.sendBuffered(behind);
    // The master takes the new size while the last writes travel (a record append's offset is
    // known only once it is done, so appends have been awaited above). Not earlier: sent with a
    // new file's lease request it held up that request's fsync behind its own (measured). Nothing
    // of this flush is acknowledged before both are done; a write that fails may leave the size
    // covering the range it did not fill, which then reads as zeros (as a failed writeback does
    // on a local disk) - the flush reports the error either way.
    const end = this.dirtyEnd;
    const extended = end > 0 ? this.client.extend(this.ino, end, behind) : null;
    extended?.catch(() => {}); // awaited below, after the writes
    while (this.batches.length > 0) await this.batches[0].done;
    if (extended) {
      await extended;
      // Only now: until the master has the size, getattr must still add it (pendingEnd), or the
      // kernel would take the old size and cut its cached pages and i_size to it.
      if (this.dirtyEnd <= end) this.dirtyEnd = 0;
    }
    this.throwIfFailed();
  }

  /** flush(), then every replica written since the last fsync forces it to disk. */
  async fsync(): Promise<void> {
    await this.flush();
    if (this.touched.size === 0) return;
    const touched = new Map(this.touched);
    this.touched.clear();
    await this.client.io.sync(touched);
  }

  dropWindows(): void {
    this.windows = [];
    this.gen++;
  }

  private fetch(start: number, length: number, gen: number): Window {
    const w: Window = { start, end: start + length, data: this.client.io.read(this.ino, start, length), gen, stored: false };
    w.data.then(
      (pieces) => (w.pieces = pieces),
      () => (this.windows = this.windows.filter((x) => x !== w)),
    );
    this.windows.push(w);
    if (this.windows.length > MAX_WINDOWS) this.windows.shift();
    return w;
  }

  /** Send the gathered records as one record append (finishedOnly: not the unfinished pieces). */
  private async sendRecords(linger = false, finishedOnly = false): Promise<void> {
    if (this.records.length === 0) return;
    if (!linger) await this.client.beforePush(this.ino); // (linger: a close's background flush)
    const n = finishedOnly ? this.records.length - this.unfinished : this.records.length;
    if (n === 0) return;
    const sent = this.records.splice(0, n);
    if (!finishedOnly) this.unfinished = 0;
    const record = sent.length === 1 ? sent[0] : Buffer.concat(sent);
    this.recordsLen -= record.length;
    try {
      // A record lands at the end as it is when it is appended: what other open handles of the
      // file wrote at offsets before it must be there first (as on a local disk).
      await this.client.pushWritesAtOffsets(this, linger);
      const { offset, attr } = await this.client.appends.append(this.ino, record, this.touched, linger);
      // The primary has normally had the master take the new size already (attr); if it could
      // not, the flush tells the master itself.
      if (attr) this.client.noteAttr(attr);
      else this.dirtyEnd = Math.max(this.dirtyEnd, offset + record.length);
    } catch (e) {
      this.failed ??= asGfsError(e);
      throw this.failed;
    }
  }

  /**
   * Start pushing the buffered extents as one batch, in the background. Waits first while too many
   * batches are out, and for any earlier batch that overlaps this one (writes keep their order).
   */
  private async sendBuffered(behind = false): Promise<void> {
    if (this.extents.length === 0) return;
    if (!behind) {
      await this.client.beforePush(this.ino);
      if (this.extents.length === 0) return; // (a close's background flush of this handle took them)
    }
    const extents = this.extents;
    this.extents = [];
    this.buffered = 0;
    const ranges = extents.map(({ start, end }) => ({ start, end }));
    for (const e of ranges) this.dirtyEnd = Math.max(this.dirtyEnd, e.end);
    const earlier = this.batches.filter((b) => b.extents.some((x) => ranges.some((r) => overlaps(x, r))));
    const batch: Batch = { extents: ranges, done: Promise.resolve() };
    batch.done = Promise.all(earlier.map((b) => b.done))
      .then(() =>
        this.client.io.write(
          this.ino,
          extents.map((e) => ({ start: e.start, data: e.buf.subarray(0, e.end - e.start) })),
          this.touched,
        ),
      )
      .then(
        () => {},
        (e) => {
          this.failed ??= asGfsError(e);
        },
      )
      .finally(() => {
        this.batches = this.batches.filter((b) => b !== batch);
      });
    this.batches.push(batch);
    while (this.batches.length > MAX_BATCHES_IN_FLIGHT) await this.batches[0].done;
    this.throwIfFailed();
  }

  private throwIfFailed(): void {
    if (this.failed) throw this.failed;
  }
}
