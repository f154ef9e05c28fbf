// gfs attributes as the kernel wants them.

import type { Attr } from '../protocol/messages.js';
import type { Stat } from './native/api.js';

/** Preferred I/O size: cp and friends size their buffers from it; one FUSE write is this big. */
export const IO_BLOCK = 131072;

/** What a directory's size reads as: one block, as ext4 shows for small directories. */
const DIR_SIZE = 4096;

export function toStat(a: Attr): Stat {
  const size = a.type === 'dir' ? DIR_SIZE : a.size;
  return {
    mode: a.mode, uid: a.uid, gid: a.gid, size, nlink: a.nlink, ino: a.ino,
    blksize: IO_BLOCK, blocks: Math.ceil(size / 512),
    atime: a.atime, mtime: a.mtime, ctime: a.ctime,
  };
}
