// A bounded LRU of open file descriptors. Opening a file per request costs two syscalls and a
// thousand replicas would exhaust descriptors if all stayed open; this keeps the recently used
// ones. A descriptor in use is never closed under its user: eviction and invalidation close it
// once the last user releases it (so the cap may be exceeded briefly while many are busy).
//
// Opens and closes are synchronous: on a local file system they take microseconds, less than the
// thread-pool round trip an asynchronous open costs (measured: a new chunk's create went from
// ~2 ms to well under 1 ms with six processes sharing two cores).

import { closeSync, constants, openSync } from 'node:fs';

interface Entry {
  key: string;
  fd: number;
  users: number;
  /** Dropped from the cache: close when the last user leaves. */
  dead: boolean;
}

export class FileCache {
  private readonly entries = new Map<string, Entry>();
  private closed = false;

  constructor(private readonly max = 128) {}

  /** Run fn with the file at path open read-write (the file must exist). */
  use<T>(path: string, fn: (fd: number) => Promise<T> | T): Promise<T> {
    return this.run(path, 'r+', fn);
  }

  /** Run fn with the file at path open for O_DIRECT writes (direct-io.ts; a second descriptor). */
  useDirect<T>(path: string, fn: (fd: number) => Promise<T> | T): Promise<T> {
    return this.run(path, 'direct', fn);
  }

  /** Create (or empty) the file at path and run fn with it open; it stays cached. */
  create<T>(path: string, fn: (fd: number) => Promise<T> | T): Promise<T> {
    this.invalidate(path);
    return this.run(path, 'w+', fn);
  }

  /** Forget (and close when idle) the descriptor for path: its file is about to be renamed or removed. */
  invalidate(path: string): void {
    for (const key of [path, directKey(path)]) {
      const e = this.entries.get(key);
      if (e) this.drop(e);
    }
  }

  async closeAll(): Promise<void> {
    this.closed = true;
    for (const e of [...this.entries.values()]) this.drop(e);
  }

  get size(): number {
    return this.entries.size;
  }

  private async run<T>(path: string, flags: 'r+' | 'w+' | 'direct', fn: (fd: number) => Promise<T> | T): Promise<T> {
    if (this.closed) throw Object.assign(new Error('chunk store is closed'), { code: 'ECLOSED' });
    const key = flags === 'direct' ? directKey(path) : path;
    let e = this.entries.get(key);
    if (e) {
      // Most recently used goes last in the Map's order.
      this.entries.delete(key);
      this.entries.set(key, e);
    } else {
      e = { key, fd: openSync(path, flags === 'direct' ? constants.O_WRONLY | constants.O_DIRECT : flags), users: 0, dead: false };
      this.entries.set(key, e);
    }
    e.users++; // before evicting, so the entry we are about to use is never the one closed
    this.evict();
    try {
      return await fn(e.fd);
    } finally {
      e.users--;
      if (e.dead && e.users === 0) closeQuietly(e.fd);
    }
  }

  private drop(e: Entry): void {
    if (this.entries.get(e.key) === e) this.entries.delete(e.key);
    if (e.dead) return;
    e.dead = true;
    if (e.users === 0) closeQuietly(e.fd);
  }

  private evict(): void {
    if (this.entries.size <= this.max) return;
    for (const e of this.entries.values()) {
      if (this.entries.size <= this.max) break;
      if (e.users === 0) this.drop(e);
    }
  }
}

const directKey = (path: string): string => `${path}\0direct`;

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Closed already.
  }
}
