// Which chunks this server is primary for, and until when, on its own monotonic clock
// (performance.now(), so a wall-clock step cannot stretch a lease). The master grants a lease
// through setVersion and extends it in heartbeat replies; an extension counts from the time the
// heartbeat was sent, never from when its reply arrived, so this server's lease always ends no
// later than the master believes it does.

import type { ChunkHandle } from '../protocol/messages.js';

interface Lease {
  expires: number;
  /** A mutation went through since the last heartbeat: ask the master for more time. */
  mutated: boolean;
}

export class Leases {
  private readonly leases = new Map<ChunkHandle, Lease>();

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Primary until from + ms (from defaults to now). */
  grant(handle: ChunkHandle, ms: number, from = this.now()): void {
    this.leases.set(handle, { expires: from + ms, mutated: false });
  }

  drop(handle: ChunkHandle): void {
    this.leases.delete(handle);
  }

  isPrimary(handle: ChunkHandle): boolean {
    const l = this.leases.get(handle);
    if (!l) return false;
    if (l.expires <= this.now()) {
      this.leases.delete(handle);
      return false;
    }
    return true;
  }

  noteMutation(handle: ChunkHandle): void {
    const l = this.leases.get(handle);
    if (l) l.mutated = true;
  }

  /** Held leases that saw mutations, their flags cleared; give back with restore() if the heartbeat fails. */
  takeExtendRequests(): ChunkHandle[] {
    const out: ChunkHandle[] = [];
    for (const [h, l] of this.leases) {
      if (!this.isPrimary(h)) continue;
      if (l.mutated) {
        out.push(h);
        l.mutated = false;
      }
    }
    return out;
  }

  restore(handles: ChunkHandle[]): void {
    for (const h of handles) this.noteMutation(h);
  }

  /** The master extended these: the lease now ends at sentAt + ms (only for leases still held). */
  extend(handles: ChunkHandle[], sentAt: number, ms: number): void {
    for (const h of handles) {
      const l = this.leases.get(h);
      if (l && this.isPrimary(h)) l.expires = Math.max(l.expires, sentAt + ms);
    }
  }

  get count(): number {
    return this.leases.size;
  }
}
