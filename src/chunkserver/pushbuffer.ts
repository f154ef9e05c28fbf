// Data pushed ahead of a write (paper §3.2: data flow is decoupled from control flow). Entries
// live in memory under their dataId until they expire (60 s) or the byte cap forces them out.
// An entry is kept after a mutation used it, because a client that saw a failure retries the
// same write with the same dataId; under pressure, entries already used go before unused ones.

export interface PushBufferOptions {
  maxBytes: number;
  ttlMs: number;
  now?: () => number;
}

interface Entry {
  data: Buffer;
  expires: number;
  used: boolean;
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
    this.entries.set(dataId, { data, expires: this.now() + this.opts.ttlMs, used: false });
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

  /** A mutation applied this data: it may go first when room is needed. */
  markUsed(dataId: string): void {
    const e = this.entries.get(dataId);
    if (e) e.used = true;
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

  /** Over the cap: drop used entries oldest first, then unused ones; never the one just put. */
  private evict(keep: string): void {
    for (const usedPass of [true, false]) {
      for (const [id, e] of this.entries) {
        if (this.bytes <= this.opts.maxBytes) return;
        if (id !== keep && e.used === usedPass) this.delete(id);
      }
    }
  }
}
