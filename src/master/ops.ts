// The op log's records: every change to the master's persistent state is one of these. They carry
// every value chosen at run time (inode numbers, handles, times) so that replay is deterministic.

import type { ChunkHandle, SetAttr, Timespec } from '../protocol/messages.js';

export type NsOp =
  | { t: 'mkdir'; path: string; mode: number; uid: number; gid: number; ino: number; time: Timespec }
  | { t: 'create'; path: string; mode: number; uid: number; gid: number; ino: number; time: Timespec }
  | { t: 'symlink'; path: string; target: string; uid: number; gid: number; ino: number; time: Timespec }
  | { t: 'link'; from: string; to: string; time: Timespec }
  | { t: 'unlink'; path: string; time: Timespec }
  | { t: 'rmdir'; path: string; time: Timespec }
  | { t: 'rename'; from: string; to: string; time: Timespec }
  | { t: 'setattr'; ino: number; set: SetAttr; time: Timespec }
  /** keep: how many chunks the file keeps (the rest are dropped). */
  | { t: 'truncate'; ino: number; size: number; keep: number; time: Timespec }
  /** mtime: when the writer wrote the bytes (write-behind); else time. */
  | { t: 'extend'; ino: number; size: number; time: Timespec; mtime?: Timespec }
  /** A new chunk at index of file ino, version 0 (not placed yet). */
  | { t: 'addChunk'; ino: number; index: number; handle: ChunkHandle }
  /**
   * Handles below next are taken: the chunk pool (chunk-pool.ts) has chunkservers make chunks
   * under them before any file has them, so a restarted master must never hand them out again.
   */
  | { t: 'reserveHandles'; next: ChunkHandle }
  /** Inode numbers below next are taken: a client answers creates with them (reserveInos). */
  | { t: 'reserveInos'; next: number }
  /** A new chunk that no chunkserver could make is forgotten: the index is a hole again. */
  | { t: 'dropChunk'; ino: number; index: number; handle: ChunkHandle }
  /** A chunk's version moved on (a lease was granted): replicas below it are stale. */
  | { t: 'version'; handle: ChunkHandle; version: number }
  /** A file in the trash gets a name again (the path's directory must exist, the name must not). */
  | { t: 'undelete'; ino: number; path: string; time: Timespec }
  /** A file's grace period in the trash is over: it and its chunks are gone. */
  | { t: 'purge'; ino: number }
  | { t: 'setxattr'; ino: number; name: string; value: Buffer; only?: 'create' | 'replace'; time: Timespec }
  | { t: 'removexattr'; ino: number; name: string; time: Timespec };

let lastNs = 0n;

/**
 * The time for a change, with microseconds, and later than every time handed out before by this
 * process (by 1 ns at least): two changes never share an mtime, so make and caches that compare
 * mtimes always see that a file changed, even twice within one tick of the clock.
 */
export function nowTimespec(): Timespec {
  let ns = BigInt(Math.floor((performance.timeOrigin + performance.now()) * 1000)) * 1000n;
  const wall = BigInt(Date.now()) * 1_000_000n;
  // performance.now() is monotonic but drifts from the wall clock over days: never run ahead of it
  // by more than a millisecond, nor behind it.
  if (ns > wall + 1_000_000n || ns < wall) ns = wall;
  if (ns <= lastNs) ns = lastNs + 1n;
  lastNs = ns;
  return [Number(ns / 1_000_000_000n), Number(ns % 1_000_000_000n)];
}
