// The contract between the FUSE adapter (src/fuse/ops.ts) and our fork of the fuse-native binding
// (src/fuse/native/index.ts + fuse-native.c). Every callback takes a result: 0 or a positive value
// on success, a negative errno on failure (as libfuse wants it).

/** A time with nanoseconds, as POSIX keeps it: [seconds since the epoch, nanoseconds 0..999999999]. */
export type Timespec = [sec: number, nsec: number];

export interface Stat {
  mode: number;
  uid: number;
  gid: number;
  size: number; // exact up to 2^53
  nlink: number;
  ino?: number;
  blksize?: number;
  blocks?: number; // 512-byte blocks
  atime: Timespec;
  mtime: Timespec;
  ctime: Timespec;
}

export interface StatFs {
  bsize: number;
  frsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  favail: number;
  namemax: number;
}

/** A POSIX record lock as fcntl(F_GETLK/F_SETLK/F_SETLKW) describes it; start/len are byte offsets. */
export interface PosixLock {
  type: number; // F_RDLCK 0, F_WRLCK 1, F_UNLCK 2
  whence: number; // always SEEK_SET (0) once libfuse hands it over
  start: number;
  len: number; // 0 = to the end of the file
  pid: number;
}

export type Done = (result: number) => void;

/**
 * Consecutive bytes of a file, from pos, that a read's reply hands to the kernel's page cache
 * (page-store.h: only bytes no write of this mount can have changed). At most 64 pieces.
 */
export interface PageStore {
  pos: number;
  pieces: Buffer[];
}

/** Who made a FUSE call (libfuse's fuse_get_context). */
export interface Caller {
  uid: number;
  gid: number;
  pid: number;
  /**
   * With MountOptions.clearsSetId: this write or size change must clear the file's set-user-ID
   * bit, and its set-group-ID bit if group-executable (the caller lacks CAP_FSETID).
   */
  killPrivs: boolean;
}

export interface FuseOps {
  init?(cb: Done): void;
  getattr(path: string, cb: (result: number, stat?: Stat) => void): void;
  /** fd is the number open/create returned. Called when the kernel refreshes the attributes of an open
   * file (lseek SEEK_END, ftruncate, right after create), also once it is unlinked (.fuse_hidden* path).
   * A plain fstat(2) arrives as getattr(path): the kernel sends no file handle with it (measured). */
  fgetattr?(path: string, fd: number, cb: (result: number, stat?: Stat) => void): void;
  access?(path: string, mode: number, cb: Done): void;
  statfs?(path: string, cb: (result: number, statfs?: StatFs) => void): void;
  readdir?(path: string, cb: (result: number, names?: string[], stats?: Stat[]) => void): void;
  /**
   * attrsKept: no other mount can have changed the file since the kernel cached its attributes
   * (this mount holds its write delegation), so the kernel may keep them; otherwise the open drops
   * them (close-to-open).
   */
  open?(path: string, flags: number, cb: (result: number, fd?: number, attrsKept?: boolean) => void): void;
  /**
   * flags are the open(2) flags (O_APPEND, O_EXCL, ...), which stock fuse-native drops. stat: the
   * new file's attributes as fgetattr would give them, which libfuse asks for next (answered
   * without another call when given).
   */
  create?(path: string, mode: number, flags: number, cb: (result: number, fd?: number, stat?: Stat) => void): void;
  /** cb(bytes read) or cb(-errno); buf is only valid until cb is called. */
  /** store: bytes of the file (from pos) for the kernel's page cache, put there after the reply. */
  read?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (result: number, store?: PageStore) => void): void;
  /** cb(bytes written) or cb(-errno); buf is only valid until cb is called. */
  write?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: Done): void;
  flush?(path: string, fd: number, cb: Done): void;
  fsync?(path: string, datasync: boolean, fd: number, cb: Done): void;
  /** fsync(2) of a directory: its entries' changes are durable (path is the directory). */
  fsyncdir?(path: string, datasync: boolean, cb: Done): void;
  release?(path: string, fd: number, cb: Done): void;
  truncate?(path: string, size: number, cb: Done): void;
  ftruncate?(path: string, fd: number, size: number, cb: Done): void;
  /** null means UTIME_OMIT (leave that time alone); UTIME_NOW arrives as the current time. */
  utimens?(path: string, atime: Timespec | null, mtime: Timespec | null, cb: Done): void;
  chmod?(path: string, mode: number, cb: Done): void;
  chown?(path: string, uid: number, gid: number, cb: Done): void;
  unlink?(path: string, cb: Done): void;
  rename?(src: string, dest: string, cb: Done): void;
  link?(src: string, dest: string, cb: Done): void;
  /** target is what the link points at, path is the new link's path. */
  symlink?(target: string, path: string, cb: Done): void;
  readlink?(path: string, cb: (result: number, target?: string) => void): void;
  mkdir?(path: string, mode: number, cb: Done): void;
  rmdir?(path: string, cb: Done): void;
  setxattr?(path: string, name: string, value: Buffer, flags: number, cb: Done): void;
  /** cb(0, value) or cb(-ENODATA). */
  getxattr?(path: string, name: string, cb: (result: number, value?: Buffer) => void): void;
  listxattr?(path: string, cb: (result: number, names?: string[]) => void): void;
  removexattr?(path: string, name: string, cb: Done): void;
  /** fcntl record locks. owner is libfuse's lock_owner (one per open file description / process).
   * signal (F_SETLKW only) aborts when the waiting process gets a signal: answer -EINTR then. */
  lock?(path: string, fd: number, cmd: number, lock: PosixLock, owner: bigint,
    cb: (result: number, lock?: PosixLock) => void, signal?: AbortSignal): void;
  /** flock(2): op is LOCK_SH/LOCK_EX/LOCK_UN, possibly | LOCK_NB; signal as for lock (blocking ops only). */
  flock?(path: string, fd: number, op: number, owner: bigint, cb: Done, signal?: AbortSignal): void;
}

export interface MountOptions {
  /** Extra -o options; the binding always adds what it needs (big_writes, max_write, ...). */
  fsname?: string;
  maxWrite?: number; // bytes per write request (big_writes is on whenever this is above 4096)
  maxRead?: number;
  /** How far the kernel reads ahead of a sequential reader (bytes): more requests in flight at once. */
  maxReadahead?: number;
  attrTimeout?: number; // seconds, 0 allowed (kernel attribute cache time-out)
  entryTimeout?: number; // seconds, 0 allowed
  negativeTimeout?: number;
  allowOther?: boolean;
  defaultPermissions?: boolean;
  /** st_ino is the file system's own inode number (Stat.ino, also in readdir), so hard links share
   * one; without it libfuse numbers every path on its own. */
  useIno?: boolean;
  /**
   * The file system clears set-user-ID/set-group-ID itself: on chown, and on writes and size
   * changes whose Caller.killPrivs is set (FUSE_HANDLE_KILLPRIV_V2). The kernel then no longer
   * asks getxattr("security.capability") before every write.
   */
  clearsSetId?: boolean;
  /**
   * While requests are small, keep the FUSE worker threads and the JS thread on one CPU (a
   * hand-off then needs no wake-up of another CPU; see thread-placement.h).
   */
  pinThreads?: boolean;
  /**
   * Answer the kernel's READDIRPLUS: each listing carries every entry's node and attributes, made
   * by lookups in the binding (readdir-plus.h), so the kernel needs no LOOKUP per entry after it.
   */
  readdirPlus?: boolean;
  /**
   * After each request, keep the idle CPUs polling this many microseconds (one SCHED_IDLE thread
   * per CPU) rather than halting, so the next request's wake-ups find them running (busy-poll.h).
   * 0 or absent: never.
   */
  busyPollUs?: number;
  /**
   * Called on the JS thread as each request comes in (before its handler), with the calling
   * process (0: the kernel's own, such as a write-back), and once it is answered.
   */
  onRequest?: (pid: number) => void;
  onAnswered?: () => void;
  debug?: boolean;
}

export interface FuseMountHandle {
  /** Resolves once the kernel has accepted the mount (init ran). */
  mount(): Promise<void>;
  /** Unmounts (fusermount -u, lazily if busy) and lets the process exit. */
  unmount(): Promise<void>;
}
