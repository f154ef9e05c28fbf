// A bounded LRU of open file handles. Opening a file per request costs two syscalls and a
// thousand replicas would exhaust descriptors if all stayed open; this keeps the recently used
// ones. A handle in use is never closed under its user: eviction and invalidation close it once
// the last user releases it (so the cap may be exceeded briefly while many are busy).

import { open, type FileHandle } from 'node:fs/promises';

interface Entry {
  path: string;
  fh: Promise<FileHandle>;
  users: number;
  /** Dropped from the cache: close when the last user leaves. */
  dead: boolean;
}

export class FileCache {
  private readonly entries = new Map<string, Entry>();
  private closed = false;

  constructor(private readonly max = 128) {}

  /** Run fn with the file at path open read-write (the file must exist). */
  async use<T>(path: string, fn: (fh: FileHandle) => Promise<T>): Promise<T> {
    if (this.closed) throw Object.assign(new Error('chunk store is closed'), { code: 'ECLOSED' });
    let e = this.entries.get(path);
    if (e) {
      // Most recently used goes last in the Map's order.
      this.entries.delete(path);
      this.entries.set(path, e);
    } else {
      e = { path, fh: open(path, 'r+'), users: 0, dead: false };
      this.entries.set(path, e);
      const entry = e;
      entry.fh.catch(() => this.drop(entry));
    }
    e.users++; // before evicting, so the entry we are about to use is never the one closed
    this.evict();
    try {
      return await fn(await e.fh);
    } finally {
      e.users--;
      if (e.dead && e.users === 0) void closeQuietly(e.fh);
    }
  }

  /** Forget (and close when idle) the handle for path: its file is about to be renamed or removed. */
  invalidate(path: string): void {
    const e = this.entries.get(path);
    if (e) this.drop(e);
  }

  async closeAll(): Promise<void> {
    this.closed = true;
    const all = [...this.entries.values()];
    for (const e of all) this.drop(e);
    await Promise.all(all.map((e) => e.fh.then(() => undefined, () => undefined)));
  }

  get size(): number {
    return this.entries.size;
  }

  private drop(e: Entry): void {
    if (this.entries.get(e.path) === e) this.entries.delete(e.path);
    if (e.dead) return;
    e.dead = true;
    if (e.users === 0) void closeQuietly(e.fh);
  }

  private evict(): void {
    if (this.entries.size <= this.max) return;
    for (const e of this.entries.values()) {
      if (this.entries.size <= this.max) break;
      if (e.users === 0) this.drop(e);
    }
  }
}

async function closeQuietly(fh: Promise<FileHandle>): Promise<void> {
  try {
    await (await fh).close();
  } catch {
    // Opening failed (nothing to close) or it is closed already.
  }
}
