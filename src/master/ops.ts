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
  | { t: 'extend'; ino: number; size: number; time: Timespec }
  /** A new chunk at index of file ino, version 0 (not placed yet). */
  | { t: 'addChunk'; ino: number; index: number; handle: ChunkHandle }
  /** A chunk's version moved on (a lease was granted): replicas below it are stale. */
  | { t: 'version'; handle: ChunkHandle; version: number };

export function nowTimespec(): Timespec {
  const ms = Date.now();
  return [Math.floor(ms / 1000), (ms % 1000) * 1_000_000];
}
