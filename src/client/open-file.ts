// One open file of a client: a write-back buffer (contiguous writes gathered into large chunk
// writes), record appends for O_APPEND handles (writes gathered into one atomic record, never
// split), and read-ahead windows. Everything buffered is on every replica before flush(), fsync()
// or close() returns (close-to-open consistency); errors of background pushes surface there.

import { GfsError, asGfsError } from '../protocol/errors.js';
import type { ChunkHandle, ServerAddress } from '../protocol/messages.js';
import type { GfsClient } from './client.js';

interface Window {
  start: number;
  end: number;
  data: Promise<Buffer>;
}

const MAX_WINDOWS = 4;

export class OpenFile {
  private buf: Buffer[] = [];
  private bufStart = 0;
  private bufLen = 0;
  private records: Buffer[] = [];
  private recordsLen = 0;
  private inflight: Promise<void> | null = null;
  private failed: GfsError | null = null;
  /** Highest end written that the master may not know yet. */
  private dirtyEnd = 0;
  private windows: Window[] = [];
  /** Replicas written since the last fsync. */
  readonly touched = new Map<ChunkHandle, ServerAddress[]>();

  constructor(
    private readonly client: GfsClient,
    readonly ino: number,
    readonly append: boolean,
  ) {}

  /** Bytes this handle knows of past the master's size (for getattr while writing). */
  get pendingEnd(): number {
    return Math.max(this.dirtyEnd, this.bufLen ? this.bufStart + this.bufLen : 0);
  }

  get dirty(): boolean {
    return this.bufLen > 0 || this.recordsLen > 0 || this.inflight !== null || this.dirtyEnd > 0;
  }

  async read(pos: number, len: number): Promise<Buffer> {
    await this.client.flushInode(this.ino, false);
    let w = this.windows.find((x) => pos >= x.start && pos + len <= x.end);
    if (!w) {
      const ra = this.client.cfg.readAheadBytes;
      w = this.fetch(pos, Math.max(len, ra));
    }
    const data = await w.data;
    // Sequential reader past the middle of this window: fetch the next one now.
    if (pos - w.start >= (w.end - w.start) / 2 && data.length === w.end - w.start && !this.windows.some((x) => x.start === w!.end)) {
      this.fetch(w.end, w.end - w.start);
    }
    return data.subarray(pos - w.start, Math.min(data.length, pos - w.start + len));
  }

  async write(pos: number, data: Buffer): Promise<number> {
    this.throwIfFailed();
    this.client.invalidateReads(this.ino);
    // The kernel reuses its buffer once we answer: keep a copy.
    const copy = Buffer.from(data);
    if (this.append) {
      if (this.recordsLen + copy.length > this.client.maxRecordBytes) await this.flushRecords();
      this.records.push(copy);
      this.recordsLen += copy.length;
      return copy.length;
    }
    if (this.bufLen > 0 && pos !== this.bufStart + this.bufLen) await this.flushBuffer(true);
    if (this.bufLen === 0) this.bufStart = pos;
    this.buf.push(copy);
    this.bufLen += copy.length;
    const cs = this.client.cfg.chunkSize;
    const atChunkEnd = (this.bufStart + this.bufLen) % cs === 0;
    if (this.bufLen >= this.client.cfg.writeBufferBytes || atChunkEnd) await this.flushBuffer(false);
    return copy.length;
  }

  /** Everything written so far is on every replica and the master knows the size. */
  async flush(): Promise<void> {
    await this.flushRecords();
    await this.flushBuffer(true);
    if (this.dirtyEnd > 0) {
      const end = this.dirtyEnd;
      this.dirtyEnd = 0;
      await this.client.extend(this.ino, end);
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
  }

  private fetch(start: number, length: number): Window {
    const w: Window = { start, end: start + length, data: this.client.io.read(this.ino, start, length) };
    w.data.catch(() => {
      this.windows = this.windows.filter((x) => x !== w);
    });
    this.windows.push(w);
    if (this.windows.length > MAX_WINDOWS) this.windows.shift();
    return w;
  }

  /** Send the gathered records as one record append (atomic: no other writer's bytes inside). */
  private async flushRecords(): Promise<void> {
    if (this.recordsLen === 0) return;
    const record = this.records.length === 1 ? this.records[0] : Buffer.concat(this.records);
    this.records = [];
    this.recordsLen = 0;
    try {
      const offset = await this.client.io.append(this.ino, record, this.touched);
      this.dirtyEnd = Math.max(this.dirtyEnd, offset + record.length);
    } catch (e) {
      this.failed ??= asGfsError(e);
      throw this.failed;
    }
  }

  /**
   * Push the write buffer. wait=false lets it go on in the background (one push at a time) so the
   * kernel can hand us the next piece meanwhile; its error shows at the next write or flush.
   */
  private async flushBuffer(wait: boolean): Promise<void> {
    if (this.inflight) await this.inflight;
    if (this.bufLen > 0) {
      const start = this.bufStart;
      const data = this.buf.length === 1 ? this.buf[0] : Buffer.concat(this.buf, this.bufLen);
      this.buf = [];
      this.bufLen = 0;
      this.dirtyEnd = Math.max(this.dirtyEnd, start + data.length);
      const p = this.client.io.write(this.ino, start, data, this.touched).catch((e) => {
        this.failed ??= asGfsError(e);
      });
      this.inflight = p.finally(() => {
        if (this.inflight === done) this.inflight = null;
      });
      const done = this.inflight;
    }
    if (wait && this.inflight) await this.inflight;
    this.throwIfFailed();
  }

  private throwIfFailed(): void {
    if (this.failed) throw this.failed;
  }
}
