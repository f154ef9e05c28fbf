// Data pushed ahead of a write (paper §3.2: data flow is decoupled from control flow). Entries
// live in memory under their dataId until a mutation uses them, they expire (60 s) or the byte
// cap forces them out (oldest first).
//
// A used entry goes at once: nothing applies a dataId twice (a client retrying a failed write or
// append pushes its data again under a new dataId, chunk-io.ts `stage`). Kept until the cap, as
// it once was, every chunkserver held the last 512 MiB pushed to it: a 1 GiB write faulted in
// ~290K fresh pages per server (a third of the chunkserver's CPU, measured with perf), where
// buffers that go at once are mostly freed and reused.

export interface PushBufferOptions {
  maxBytes: number;
  ttlMs: number;
  now?: () => number;
}

interface Entry {
  data: Buffer;
  expires: number;
}

export class PushBuffer {
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;
  private readonly now: () => number;

  constructor(private readonly opts: PushBufferOptions) {
    this.now = opts.now ?? (() => performance.now());
  }

  put(dataId: string, data: Buffer): void {
    this.delete(dataId);
    this.sweep();
    this.entries.set(dataId, { data, expires: this.now() + this.opts.ttlMs });
    this.bytes += data.length;
    this.evict(dataId);
  }

  /** The data pushed under dataId, or undefined (never pushed, expired or evicted). */
  get(dataId: string): Buffer | undefined {
    const e = this.entries.get(dataId);
    if (!e) return undefined;
    if (e.expires <= this.now()) {
      this.delete(dataId);
      return undefined;
    }
    return e.data;
  }

  /** A mutation applied this data: nothing needs it again. */
  used(dataId: string): void {
    this.delete(dataId);
  }

  get size(): number {
    return this.bytes;
  }

  get count(): number {
    return this.entries.size;
  }

  /** Drop expired entries (also run on a timer, so idle servers give memory back). */
  sweep(): void {
    const now = this.now();
    for (const [id, e] of this.entries) if (e.expires <= now) this.delete(id);
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }

  private delete(dataId: string): void {
    const e = this.entries.get(dataId);
    if (!e) return;
    this.entries.delete(dataId);
    this.bytes -= e.data.length;
  }

  /** Over the cap: drop entries oldest first; never the one just put. */
  private evict(keep: string): void {
    for (const id of this.entries.keys()) {
      if (this.bytes <= this.opts.maxBytes) return;
      if (id !== keep) this.delete(id);
    }
  }
}
