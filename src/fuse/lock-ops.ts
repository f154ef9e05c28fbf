// fcntl record locks and flock(2) at the mount, kept by the master (src/master/locks.ts) so they
// hold across processes and mounts. The kernel forwards them because the binding registers lock
// and flock handlers; libfuse then also asks, at every close(), to drop the closer's record locks.

import type { GfsClient } from '../client/client.js';
import { ClientLocks } from '../client/locks.js';
import { toErrno } from './errno.js';
import type { FuseOps, PosixLock } from './native/api.js';

// Linux values (the same on every 64-bit architecture).
const F_GETLK = 5;
const F_SETLKW = 7;
const F_RDLCK = 0;
const F_WRLCK = 1;
const F_UNLCK = 2;
const LOCK_SH = 1;
const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;

/** inoOf: the inode an open file (fd) or, failing that, a path names. */
export function lockOps(client: GfsClient, inoOf: (path: string, fd: number) => Promise<number>): Pick<FuseOps, 'lock' | 'flock'> {
  const locks = new ClientLocks(client);
  const owner = (o: bigint) => o.toString(16);

  return {
    lock: (path, fd, cmd, lk, lockOwner, cb, signal) => {
      const work = async (): Promise<PosixLock | undefined> => {
        const ino = await inoOf(path, fd);
        if (cmd === F_GETLK) {
          if (lk.type === F_UNLCK) return { ...lk, type: F_UNLCK };
          const c = await locks.test(ino, owner(lockOwner), lk.type === F_WRLCK ? 'write' : 'read', lk.start, lk.len);
          if (!c) return { ...lk, type: F_UNLCK };
          return { type: c.type === 'write' ? F_WRLCK : F_RDLCK, whence: 0, start: c.start, len: c.len, pid: c.pid };
        }
        const type = lk.type === F_UNLCK ? 'unlock' : lk.type === F_RDLCK ? 'read' : 'write';
        await locks.set('posix', ino, owner(lockOwner), { type, start: lk.start, len: lk.len, pid: lk.pid, wait: cmd === F_SETLKW, signal });
        return undefined;
      };
      work().then(
        (result) => cb(0, result),
        (e) => cb(toErrno(e)),
      );
    },
    flock: (path, fd, op, lockOwner, cb, signal) => {
      const base = op & ~LOCK_NB;
      const type = base === LOCK_UN ? 'unlock' : base === LOCK_EX ? 'write' : base === LOCK_SH ? 'read' : undefined;
      if (!type) return cb(-22);
      inoOf(path, fd)
        .then((ino) => locks.set('flock', ino, owner(lockOwner), { type, start: 0, len: 0, pid: 0, wait: (op & LOCK_NB) === 0, signal }))
        .then(
          () => cb(0),
          (e) => cb(toErrno(e)),
        );
    },
  };
}
