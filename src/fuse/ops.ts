// POSIX file-system calls (as libfuse hands them over) turned into gfs client calls.
// Every handler answers through reply(): a value on success, the errno of a thrown error otherwise.

import type { GfsClient } from '../client/client.js';
import { GfsError } from '../protocol/errors.js';
import { withoutSetId } from '../protocol/modes.js';
import type { OpenFile } from '../client/open-file.js';
import { Errno, toErrno } from './errno.js';
import type { FuseOps, Stat, StatFs } from './native/api.js';
import { toStat } from './stat.js';
import { HiddenNames, isHiddenName } from './hidden-names.js';
import { lockOps } from './lock-ops.js';
import { xattrOps } from './xattr-ops.js';

const O_ACCMODE = 0o3;
const O_EXCL = 0o200;
const O_NONBLOCK = 0o4000;
const O_APPEND = 0o2000;
/** chown(2) passes -1 (as an unsigned 32-bit number here) for "leave it". */
const UNCHANGED = 0xffffffff;

const openMode = (flags: number) => ({ append: (flags & O_APPEND) !== 0, writable: (flags & O_ACCMODE) !== 0 });

function reply<T>(work: Promise<T>, done: (result: number, value?: T) => void): void {
  work.then(
    (value) => done(0, value),
    (e) => done(toErrno(e)),
  );
}

/** Like reply, for read/write whose result is a byte count. */
function replyCount(work: Promise<number>, done: (result: number) => void): void {
  work.then(done, (e) => done(toErrno(e)));
}

/** owner(): who is calling now (read it synchronously, first thing in a handler). */
export function fuseOps(client: GfsClient, owner: () => { uid: number; gid: number; killPrivs?: boolean }): FuseOps {
  const files = new Map<number, OpenFile>();
  let nextFd = 1;
  const hidden = new HiddenNames(
    (ino) => [...files.values()].some((f) => f.ino === ino),
    (path) => client.unlink(path),
  );

  const register = (f: OpenFile): number => {
    const fd = nextFd++;
    files.set(fd, f);
    return fd;
  };
  const withFile = <T>(fd: number, cb: (result: number, value?: T) => void, work: (f: OpenFile) => Promise<T>) => {
    const f = files.get(fd);
    if (!f) return cb(-Errno.EBADF);
    reply(work(f), cb);
  };

  /**
   * After a write or size change the kernel marked (killPrivs: a caller without CAP_FSETID), as a
   * local file system would: set-user-ID goes, and set-group-ID if group-executable.
   */
  const afterChange = <T>(path: string, work: Promise<T>): Promise<T> => {
    if (!owner().killPrivs) return work;
    return work.then(async (result) => {
      const { mode } = await client.lookup(path);
      const cleared = withoutSetId(mode);
      if (cleared !== mode) await client.setattr(path, { mode: cleared & 0o7777 });
      return result;
    });
  };

  /** A directory's stat for "." or ".." in a listing; only its type if it cannot be looked up. */
  const dirStat = (path: string): Promise<Stat> =>
    client.lookup(path).then(toStat, (): Stat => ({ mode: 0o40755, uid: 0, gid: 0, size: 4096, nlink: 2, atime: [0, 0], mtime: [0, 0], ctime: [0, 0] }));

  return {
    getattr: (path, cb) => {
      // The look-up before each create, when the listing says the name is not there: answered at
      // once, without an error object (its stack trace alone took ~30 us) or a promise.
      if (client.knownAbsent(path)) return cb(-Errno.ENOENT);
      reply(client.lookup(path).then(toStat), cb);
    },
    fgetattr: (path, fd, cb) => {
      const f = files.get(fd);
      reply((f ? client.getattr(f.ino) : client.lookup(path)).then(toStat), cb);
    },
    readdir: (path, cb) =>
      // "." and ".." need their inode numbers too (d_ino, with use_ino): usually cached look-ups,
      // and not worth failing the listing for.
      Promise.all([client.readdir(path), dirStat(path), dirStat(path.slice(0, Math.max(1, path.lastIndexOf('/'))))]).then(
        ([entries, self, parent]) => {
          const names = ['.', '..', ...entries.map((e) => e.name)];
          const stats: Stat[] = entries.map((e) => toStat(e.attr));
          cb(0, names, [self, parent, ...stats]);
        },
        (e) => cb(toErrno(e)),
      ),
    statfs: (_path, cb) =>
      reply(
        client.statfs().then((s): StatFs => {
          const bsize = 4096;
          return {
            bsize, frsize: bsize, blocks: Math.floor(s.totalBytes / bsize), bfree: Math.floor(s.freeBytes / bsize),
            bavail: Math.floor(s.freeBytes / bsize), files: s.files + 1_000_000, ffree: 1_000_000, favail: 1_000_000, namemax: 255,
          };
        }),
        cb,
      ),
    open: (path, flags, cb) =>
      reply(
        hidden.opened(path, () =>
          client.openLookup(path, openMode(flags).writable).then((a) => {
            if (a.type === 'dir') throw new GfsError('EISDIR', `is a directory: ${path}`);
            return { fd: register(client.openFile(a.ino, openMode(flags))), attrsKept: a.delegated === true };
          }),
        ),
        (result, opened) => cb(result, opened?.fd, opened?.attrsKept),
      ),
    create: (path, mode, flags, cb) => {
      const { uid, gid } = owner();
      client
        // touch(1) opens O_NONBLOCK and writes nothing: no chunk for it.
        .create(path, mode & 0o7777, uid, gid, (flags & O_EXCL) !== 0, (flags & O_ACCMODE) !== 0 && (flags & O_NONBLOCK) === 0)
        .then(async (a) => {
          const fd = register(client.openFile(a.ino, openMode(flags)));
          // What fgetattr would answer, which libfuse asks for next: sent along, it saves that call.
          const attr = await client.getattr(a.ino).catch(() => undefined);
          return { fd, stat: attr && toStat(attr) };
        })
        .then(
          ({ fd, stat }) => cb(0, fd, stat),
          (e) => cb(toErrno(e)),
        );
    },
    read: (_path, fd, buf, len, pos, cb) => {
      const f = files.get(fd);
      if (!f) return cb(-Errno.EBADF);
      f.read(pos, len).then(
        (data) => cb(data.copy(buf, 0, 0, Math.min(len, data.length)), f.pagesToStore(pos, len)),
        (e) => cb(toErrno(e)),
      );
    },
    write: (path, fd, buf, len, pos, cb) => {
      const f = files.get(fd);
      if (!f) return cb(-Errno.EBADF);
      replyCount(afterChange(path, f.write(pos, buf.subarray(0, len))), cb);
    },
    flush: (_path, fd, cb) => withFile(fd, cb, (f) => client.flushFile(f)),
    // Also waits for the unlinks answered ahead of the master (client/deferred-changes.ts).
    fsync: (_path, _datasync, fd, cb) => withFile(fd, cb, (f) => Promise.all([client.fsyncFile(f), client.settled()])),
    fsyncdir: (path, _datasync, cb) => reply(client.syncDir(path), cb),
    release: (_path, fd, cb) => {
      const f = files.get(fd);
      files.delete(fd);
      if (!f) return cb(0);
      const closing = client.closeFile(f);
      const after = () => hidden.released();
      closing.then(after, after);
      reply(closing, cb);
    },
    truncate: (path, size, cb) => reply(afterChange(path, client.lookup(path).then((a) => client.truncate(a.ino, size))), cb),
    ftruncate: (path, fd, size, cb) => withFile(fd, cb, (f) => afterChange(path, client.truncate(f.ino, size))),
    utimens: (path, atime, mtime, cb) =>
      reply(
        // Writes still buffered here would set mtime to "now" when they reach the master (at close):
        // push them first, so that times set on an open file (cp -a, tar, rsync) stay as set.
        client.lookup(path).then(async (a) => {
          await client.flushInode(a.ino, false);
          return client.setattr(path, { ...(atime ? { atime } : {}), ...(mtime ? { mtime } : {}) });
        }),
        cb,
      ),
    chmod: (path, mode, cb) => reply(client.setattr(path, { mode: mode & 0o7777 }), cb),
    chown: (path, uid, gid, cb) =>
      reply(client.setattr(path, { ...(uid !== UNCHANGED ? { uid } : {}), ...(gid !== UNCHANGED ? { gid } : {}) }), cb),
    unlink: (path, cb) => reply(isHiddenName(path) ? client.lookup(path).then((a) => hidden.unlink(path, a.ino)) : client.unlink(path), cb),
    rmdir: (path, cb) => reply(client.rmdir(path), cb),
    mkdir: (path, mode, cb) => {
      const { uid, gid } = owner();
      reply(client.mkdir(path, mode & 0o7777, uid, gid), cb);
    },
    rename: (src, dest, cb) => reply(client.rename(src, dest), cb),
    link: (src, dest, cb) => reply(client.link(src, dest), cb),
    symlink: (target, path, cb) => {
      const { uid, gid } = owner();
      reply(client.symlink(target, path, uid, gid), cb);
    },
    readlink: (path, cb) => reply(client.readlink(path), cb),
    ...xattrOps(client),
    ...lockOps(client, async (path, fd) => files.get(fd)?.ino ?? (await client.lookup(path)).ino),
  };
}

