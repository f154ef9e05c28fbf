// Every message that travels between master, chunkservers and clients, in one typed module.
// Each API below maps a request type to [request body, reply body]. The envelope and transport
// are in rpc.ts; data travels as msgpack bin (Buffer), never as text.

import type { ErrorCode } from './errors.js';

/** [seconds, nanoseconds]: POSIX times keep nanoseconds, a JS number of ns would not. */
export type Timespec = [sec: number, nsec: number];

/** A 64-bit chunk handle, carried as a msgpack uint64; we hand out values below 2^53. */
export type ChunkHandle = number;

/** A chunkserver's address as clients dial it: "host:port". */
export type ServerAddress = string;

export type FileType = 'file' | 'dir' | 'symlink';

export interface Attr {
  ino: number;
  type: FileType;
  /** st_mode: file type bits and permission bits together. */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  atime: Timespec;
  mtime: Timespec;
  ctime: Timespec;
  /** Set when the inode has extended attributes: without it a client answers "none" itself. */
  xattrs?: true;
}

export interface DirEntry {
  name: string;
  attr: Attr;
}

/** Where one chunk of a file lives (for reads). Index = file offset / chunk size. */
export interface ChunkLocation {
  index: number;
  handle: ChunkHandle;
  version: number;
  /** Live replicas holding the current version, in the order the client should try them. */
  replicas: ServerAddress[];
}

/** What a writer needs: the chunk, its primary (the lease holder) and the secondaries. */
export interface WriteTarget {
  index: number;
  handle: ChunkHandle;
  version: number;
  primary: ServerAddress;
  secondaries: ServerAddress[];
  /** Milliseconds the lease has left when the master answered; clients cache the target that long. */
  leaseMs: number;
}

export interface SetAttr {
  mode?: number;
  uid?: number;
  gid?: number;
  atime?: Timespec;
  mtime?: Timespec;
}

export interface FsStats {
  totalBytes: number;
  freeBytes: number;
  files: number;
  chunkSize: number;
}

export interface ChunkserverStatus {
  id: string;
  address: ServerAddress;
  alive: boolean;
  /** Being emptied (gfs drain): takes no new replicas, its replicas are copied elsewhere then deleted. */
  draining: boolean;
  freeBytes: number;
  usedBytes: number;
  chunks: number;
  load: number;
  lastHeartbeatMsAgo: number;
}

export interface ClusterStatus {
  chunkservers: ChunkserverStatus[];
  files: number;
  chunks: number;
  underReplicated: number;
  /** Chunks with no live replica at all (their data is unreadable until a holder comes back). */
  lost: number;
  /** Corrupt replicas found and not yet replaced. */
  corrupt: number;
  replicationsInFlight: number;
  /** Copies moving replicas for balance or off a draining server. */
  movesInFlight: number;
  /** Deleted files waiting out the grace period in the trash. */
  trash: number;
}

/** A deleted file in the trash: `gfs undelete` brings it back until purgeAt (ms since the epoch). */
export interface TrashEntry {
  ino: number;
  path: string;
  size: number;
  deletedAt: number;
  purgeAt: number;
}

/**
 * Locks, kept by the master for every client (not persisted: a master restart, or a client's
 * connection dropping, releases them). 'posix' locks are fcntl byte ranges, 'flock' locks cover
 * the whole file; the two kinds never conflict with each other, as on Linux.
 */
export type LockKind = 'posix' | 'flock';

export interface LockRequest {
  ino: number;
  kind: LockKind;
  /** Who holds it on the client (the kernel's lock owner); the master scopes it to the connection. */
  owner: string;
  type: 'read' | 'write' | 'unlock';
  /** The byte range (posix only): len 0 means to the end of the file, however long it grows. */
  start: number;
  len: number;
  /** The process that asked, for F_GETLK answers. */
  pid: number;
  /** Wait until it can be granted (F_SETLKW, flock without LOCK_NB) instead of failing with EAGAIN. */
  wait: boolean;
  /** Names the wait, for cancelLock (unique per connection). */
  waitId?: number;
}

/** A lock someone holds, as F_GETLK reports it. */
export interface HeldLock {
  type: 'read' | 'write';
  start: number;
  len: number;
  pid: number;
}

/** A chunk replica as a chunkserver reports it. */
export type ChunkReport = [handle: ChunkHandle, version: number];

/** What the master tells a chunkserver to do, in a heartbeat reply. */
export type MasterCommand =
  /** Delete each replica whose local version is at most the given one (a newer one was re-leased meanwhile: keep it). */
  | { op: 'delete'; chunks: ChunkReport[] }
  | { op: 'replicate'; handle: ChunkHandle; version: number; from: ServerAddress[] };

/**
 * Namespace changes a client sends again when it lost the reply (the master died, the connection
 * dropped). Their bodies may carry `rid` (RequestId), unique per client and request, the same on
 * every try; the master logs it with the change and answers a repeated rid with the first outcome
 * instead of applying the change twice: a retried O_EXCL create does not fail with EEXIST on the
 * file it made, a retried unlink does not fail with ENOENT.
 */
export const retriedRequests = ['mkdir', 'create', 'unlink', 'rmdir', 'rename', 'link', 'symlink'] as const;
export interface RequestId {
  rid?: string;
}

/**
 * A change a client answered ahead of the master: an unlink, or a create under a directory
 * delegation. time: when it was answered, which the client showed as its directory's new times.
 */
export type DeferredChange = (
  | { op: 'unlink'; path: string; time?: Timespec }
  /** write: the file was opened for writing (its first chunk comes with the answer). */
  | { op: 'create'; path: string; mode: number; uid: number; gid: number; ino: number; time: Timespec; write?: true }
  /** A directory made under its parent's delegation: its own delegation comes with the answer. */
  | { op: 'mkdir'; path: string; mode: number; uid: number; gid: number; ino: number; time: Timespec }
  /** A directory the client knows to be empty (it removed what it listed there). */
  | { op: 'rmdir'; path: string; time?: Timespec }
) &
  RequestId;
/** How one went: its error, or for a create the file's write delegation and first chunk (a mkdir: the directory's). */
export type ChangeResult = { code: ErrorCode; message: string } | { delegated?: number; target?: WriteTarget };

/** A file's new size after a writer's push, as extend takes it. */
export interface SizeUpdate {
  ino: number;
  size: number;
  mtime?: Timespec;
}

/** Requests a client (or the CLI) sends to the master. Paths are absolute, '/'-separated. */
export interface MasterClientApi {
  /**
   * delegate: the client opens the file for writing and asks for its write delegation
   * (master/delegations.ts); delegated: the grant's number: it holds it until it gives it back or
   * the master recalls that grant.
   */
  lookup: [{ path: string; delegate?: boolean }, Attr & { delegated?: number }];
  getattr: [{ ino: number }, Attr];
  readdir: [{ path: string }, { entries: DirEntry[] }];
  /**
   * delegate: the client asks for the new directory's delegation (master/delegations.ts): while it
   * holds it, it answers creates in it itself (client/deferred-changes.ts); delegated: the grant.
   * ino, time: as with create, for a directory made under its parent's delegation.
   */
  mkdir: [{ path: string; mode: number; uid: number; gid: number; delegate?: boolean; ino?: number; time?: Timespec }, Attr & { delegated?: number }];
  /**
   * exclusive: fail with EEXIST if the name exists (O_EXCL); otherwise return the existing file.
   * target: a new file's first chunk is placed and leased along with the create (one round trip,
   * one log write, instead of a writeTarget after it); left out if that fails or the file existed.
   * With delegate as well, only a chunk placed ahead of need (master/chunk-pool.ts) is given: such
   * a create never waits for chunkservers.
   * sizes: extends the client's background pushes made known (client/size-updates.ts), applied
   * after the create and logged with it; sized: each one's outcome, in order (left out when the
   * create failed, or was answered again for a retried id: the client then sends them alone).
   * ino, time: a create the client answered ahead, under its directory's delegation, with an inode
   * number the master reserved for it (reserveInos) and the time it gave the file.
   */
  create: [
    { path: string; mode: number; uid: number; gid: number; exclusive: boolean; target?: boolean; delegate?: boolean; sizes?: SizeUpdate[]; ino?: number; time?: Timespec },
    Attr & { target?: WriteTarget; delegated?: number; sized?: Array<Attr | { code: ErrorCode; message: string }> },
  ];
  /** Write delegations the client no longer needs (everything it wrote under them is flushed). */
  giveBack: [{ inos: number[] }, Record<string, never>];
  /** time: when a client answered it ahead (its directory's new mtime, if not in the future). */
  unlink: [{ path: string; time?: Timespec }, Record<string, never>];
  /**
   * Changes a client has answered already (client/deferred-changes.ts), applied in order, each once
   * per rid as a retried unlink or create is; results: one per item, in order. sizes, sized: as
   * with create (applied after the items).
   */
  changes: [{ items: DeferredChange[]; sizes?: SizeUpdate[] }, { results: ChangeResult[]; sized?: Array<Attr | { code: ErrorCode; message: string }> }];
  /** Inode numbers [first, end) are this client's, for creates it answers ahead. */
  reserveInos: [{ count: number }, { first: number; end: number }];
  rmdir: [{ path: string; time?: Timespec }, Record<string, never>];
  rename: [{ from: string; to: string }, Record<string, never>];
  link: [{ from: string; to: string }, Attr];
  symlink: [{ path: string; target: string; uid: number; gid: number }, Attr];
  readlink: [{ path: string }, { target: string }];
  setattr: [{ path: string; set: SetAttr }, Attr];
  /**
   * Shrink or grow a file to size. Chunks wholly past the end are dropped; if min(old, new size)
   * falls inside a chunk, that chunk comes back as a write target so the client cuts its replicas to
   * cutLength (bytes past the old end must read as zeros once the file grows again).
   */
  truncate: [{ ino: number; size: number }, { attr: Attr; cut: WriteTarget | null; cutLength: number }];
  /**
   * Record that a writer has put bytes up to size (grows only) and touch mtime: to mtime if given
   * (when the writer wrote them, for writes pushed after their close), kept between the file's last
   * mtime and now.
   */
  extend: [SizeUpdate, Attr];
  /** Several extends in one request (client/size-updates.ts); sized: each one's outcome, in order. */
  extendMany: [{ sizes: SizeUpdate[] }, { sized: Array<Attr | { code: ErrorCode; message: string }> }];
  statfs: [Record<string, never>, FsStats];
  /** Chunk locations for reads: chunks [first, first + count) that exist (holes are left out). */
  chunks: [{ ino: number; first: number; count: number }, { size: number; chunks: ChunkLocation[] }];
  /** The chunk at index with a lease: allocated (on distinct chunkservers) if missing. */
  writeTarget: [{ ino: number; index: number }, WriteTarget];
  /**
   * The chunk to record-append to: the file's last chunk, or a new one when `full` names the
   * current last chunk (the primary padded it).
   */
  appendTarget: [{ ino: number; full?: ChunkHandle }, WriteTarget];
  /** A client found a replica bad (checksum mismatch): the master re-replicates and drops it. */
  reportBad: [{ handle: ChunkHandle; server: ServerAddress }, Record<string, never>];
  status: [Record<string, never>, ClusterStatus];
  /** Files in the trash, oldest first. */
  trash: [Record<string, never>, { entries: TrashEntry[] }];
  /** Bring back the file most recently deleted at path (to `to` if given). ENOENT: none in the trash. */
  undelete: [{ path: string; to?: string }, Attr];
  /** Move every replica off a chunkserver (cancel: take it back into service); replies its replica count. */
  drain: [{ address: ServerAddress; cancel?: boolean }, { chunks: number }];
  /** Extended attributes (user.*, trusted.*, security.*). only: fail unless the name is new / exists. */
  setxattr: [{ path: string; name: string; value: Buffer; only?: 'create' | 'replace' }, Record<string, never>];
  /** ENODATA when the inode has no attribute of that name. */
  getxattr: [{ path: string; name: string }, { value: Buffer }];
  listxattr: [{ path: string }, { names: string[] }];
  removexattr: [{ path: string; name: string }, Record<string, never>];
  /**
   * Take, change or release a lock. EAGAIN when another owner holds a conflicting one and wait is
   * false; with wait, the reply comes once it is granted (EDEADLK if that can never happen, EINTR
   * if cancelled). Callers wait without a time-out.
   */
  lock: [LockRequest, Record<string, never>];
  /** F_GETLK: a lock of another owner that conflicts with this one, or null. */
  testLock: [{ ino: number; owner: string; type: 'read' | 'write'; start: number; len: number }, { conflict: HeldLock | null }];
  /** Give up the wait of a lock request (its caller got a signal): that request fails with EINTR. */
  cancelLock: [{ waitId: number }, Record<string, never>];
}

/** Requests the master sends to a client over the connection the client opened. */
export interface ClientApi {
  /**
   * Another client wants the file: push everything written to it under the write delegation to
   * the chunkservers and the master, then forget the delegation; the reply says it is done. grant:
   * the grant's number (the reply that granted it may not have been read yet: it must not count).
   */
  recall: [{ ino: number; grant: number }, Record<string, never>];
}

/** Requests a chunkserver sends to the master over the connection it keeps open. */
export interface MasterChunkserverApi {
  register: [
    { id: string; address: ServerAddress; chunks: ChunkReport[]; freeBytes: number; usedBytes: number },
    { chunkSize: number; heartbeatMs: number },
  ];
  heartbeat: [
    {
      id: string;
      chunks: ChunkReport[];
      freeBytes: number;
      usedBytes: number;
      load: number;
      /** Replicas that failed a checksum: never served, kept until the master has a good copy elsewhere. */
      corrupt: ChunkHandle[];
      /** Chunks this server is primary for and that saw mutations lately: asks for a longer lease. */
      extend: ChunkHandle[];
      /** Chunks it is copying on the master's command (one it was told to copy and that is missing here failed). */
      replicating?: ChunkHandle[];
    },
    { commands: MasterCommand[]; extended: ChunkHandle[] },
  ];
  reportBad: [{ handle: ChunkHandle; server: ServerAddress }, Record<string, never>];
  /** A primary passes on a record append's new file size (see ChunkserverDataApi.append). */
  extend: [{ ino: number; size: number }, Attr];
}

export type MasterApi = MasterClientApi & MasterChunkserverApi;

/** Requests the master sends to a chunkserver (over the chunkserver's own connection). */
export interface ChunkserverControlApi {
  /**
   * New version for a chunk (creating an empty replica if this server has none and create is set).
   * leaseMs is set for the one replica that becomes primary.
   */
  setVersion: [{ handle: ChunkHandle; version: number; create: boolean; leaseMs?: number }, Record<string, never>];
  /**
   * New empty replicas the master places ahead of need (master/chunk-pool.ts), all at version;
   * this server holds the lease (leaseMs) of those in lead. Handles it already holds are left
   * alone. made: the ones it now holds (ENOSPC and the like only when it made none).
   */
  makeChunks: [{ handles: ChunkHandle[]; lead: ChunkHandle[]; version: number; leaseMs: number }, { made: ChunkHandle[] }];
}

/** [offset in the chunk, length]: one piece of a vectored write; the data holds the pieces in order. */
export type Extent = [offset: number, length: number];

/** The mutation a primary forwards to its secondaries, in the order it applied it. */
export type Mutation =
  /**
   * data: the bytes themselves, for small writes sent without a push (see write).
   * extents: several pieces in one mutation, as in write.
   */
  | { op: 'write'; offset: number; dataId: string; data?: Buffer; extents?: Extent[] }
  | { op: 'pad'; length: number }
  | { op: 'truncate'; length: number };

/** Requests clients and other chunkservers send to a chunkserver. */
export interface ChunkserverDataApi {
  /** Keep data under dataId for a coming write; pass it on along chain first. */
  push: [{ dataId: string; data: Buffer; chain: ServerAddress[] }, Record<string, never>];
  /**
   * To the primary: write pushed data at offset, on every replica, in primary order. Small writes
   * carry their bytes in `data` instead of a push first (one round trip less; the primary passes
   * them on inside the mutation). With extents, the data is several pieces written at their own
   * offsets as one mutation (offset is then ignored): many small random writes, one round trip.
   */
  write: [
    {
      handle: ChunkHandle;
      version: number;
      offset: number;
      dataId: string;
      data?: Buffer;
      extents?: Extent[];
      secondaries: ServerAddress[];
    },
    Record<string, never>,
  ];
  /**
   * To the primary: append pushed data where the primary chooses. ECHUNKFULL: padded, use the next
   * chunk. With `size`, the primary also has the master set file `ino`'s size to at least
   * base + offset + length while the secondaries apply the record; `attr` in the reply says the
   * master took it (without it the client must tell the master itself).
   */
  append: [
    { handle: ChunkHandle; version: number; dataId: string; data?: Buffer; secondaries: ServerAddress[]; size?: { ino: number; base: number; mtime?: Timespec } },
    { offset: number; attr?: Attr },
  ];
  /** To the primary: cut every replica to length. */
  truncate: [
    { handle: ChunkHandle; version: number; length: number; secondaries: ServerAddress[] },
    Record<string, never>,
  ];
  /** Primary to secondary: apply one mutation; serial orders them per chunk. */
  apply: [{ handle: ChunkHandle; version: number; serial: number; mutation: Mutation }, Record<string, never>];
  /** Checksum-verified bytes; shorter than length past the replica's end. */
  read: [{ handle: ChunkHandle; version: number; offset: number; length: number }, { data: Buffer; chunkLength: number }];
  /**
   * For a client on this server's host (short-circuit read, as HDFS has): where the replica's
   * bytes [from, from + length) are on disk and the CRC32 of each checksum block in them (u32 LE
   * each), so the client reads the file itself and checks it. `id` and `idPath` (the file that
   * holds this server's id) let it prove that it sees this server's disk.
   */
  readLocal: [
    { handle: ChunkHandle; version: number; offset: number; length: number },
    { path: string; from: number; length: number; blockSize: number; crcs: Buffer; chunkLength: number; id: string; idPath: string },
  ];
  /** fsync these replicas to disk. */
  sync: [{ handles: ChunkHandle[] }, Record<string, never>];
}

export type ChunkserverApi = ChunkserverControlApi & ChunkserverDataApi;

/** Any API: request type → [request, reply]. */
export type Api<A> = { [K in keyof A]: [unknown, unknown] };
