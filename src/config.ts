// Every tunable of gfs, with its default, in one place. Daemons take the user-facing ones as CLI
// options (src/cli.ts); tests pass small values (e.g. 4 MiB chunks, 1 s heartbeats) the same way.

export const MiB = 1024 * 1024;

export interface GfsConfig {
  /** Bytes per chunk (the paper's 64 MiB). A file's byte N lives in chunk floor(N / chunkSize). */
  chunkSize: number;
  /** Replicas per chunk (the paper's 3). */
  replication: number;
  /**
   * Bytes covered by one checksum on a chunkserver. The paper has 64 KiB; 4 KiB (HDFS has 512
   * bytes) lets a 4 KiB write replace whole blocks without reading and verifying 64 KiB first,
   * and a 4 KiB read check 4 KiB; it costs 4 bytes per block on disk and in the chunkserver's
   * memory (64 KiB per full 64 MiB chunk). Replicas keep the block size they were made with.
   */
  checksumBlock: number;
  /** How long a primary's lease lasts (the paper's 60 s). */
  leaseMs: number;
  /** How often a chunkserver reports to the master. */
  heartbeatMs: number;
  /** A chunkserver silent for this long is dead. */
  deadAfterMs: number;
  /** Time-out of one request on the wire (a chunk write of up to writeBufferBytes must fit in it). */
  rpcTimeoutMs: number;
  /** How long a client operation keeps retrying while the master or replicas are away before EIO. */
  clientRetryMs: number;
  /** Largest frame any daemon accepts; bigger frames close the connection. */
  maxFrameBytes: number;
  /** Bytes a client buffers per open file before it pushes them to the chunkservers. */
  writeBufferBytes: number;
  /** Bytes a client reads ahead per open file on sequential reads. */
  readAheadBytes: number;
  /**
   * A random read fetches the whole aligned block of this many bytes around it (a chunkserver
   * sends 64 KiB nearly as fast as 4 KiB); the mount hands the rest to the kernel's page cache,
   * so later reads nearby need no request at all.
   */
  readAroundBytes: number;
  /**
   * A chunk read of at least this many bytes from a chunkserver whose disk is this host's reads
   * the replica file directly, checking its checksums (client/local-reads.ts; 0: never). Smaller
   * reads go through the chunkserver: for them opening the file costs more than it saves.
   */
  localReadBytes: number;
  /** How long a client trusts attributes it has seen (0: ask the master every time). */
  attrCacheMs: number;
  /**
   * Changes a client may answer before the master has made them durable, at most this many under
   * way at once (0: every unlink and create waits for the master): unlinks of names it knows, and
   * creates in directories it made and holds (client/dir-delegations.ts; these need write-behind
   * too). As on a local disk, fsync of the directory makes them durable; a mount killed before
   * they reach the master leaves removed names in place and loses files made
   * (client/deferred-changes.ts). While the mount's callers keep it busy (writeBehindHoldMs), they
   * wait to go until the callers pause, or this many are queued: 4096 lets `cp -r` of a tree of
   * a few thousand files (and 2000 new small files in a loop) run without the master's share of
   * the CPU; at 256 the creates in such a loop waited for the master again.
   */
  deferredChanges: number;
  /**
   * Closed files whose writes a mount may still be pushing in the background, under the write
   * delegations the master grants (client/write-behind.ts); 0 = every close waits for its writes.
   */
  writeBehindFiles: number;
  /**
   * How long a closed file's writes (at offsets), and the namespace changes answered ahead
   * (deferredChanges), may wait while the mount's callers keep it busy; they go once the callers
   * pause (writeBehindQuietMs), or when something needs them (a read, stat or fsync of the file,
   * another client). 0: they go at once. What is held is lost if the mount is killed, as dirty pages are
   * when a machine loses power (client/busy-hold.ts).
   */
  writeBehindHoldMs: number;
  /**
   * Callers of a mount that sent it no request for this long (and are waiting for none) have
   * paused: what writeBehindHoldMs holds back goes then. At least 1. 20: a program making files
   * one after another comes back within a few ms, and a pause of a shell or of a person is far
   * longer; on a machine whose CPUs are busy with other work the callers' own gaps grow, and what
   * was held goes sooner (no harm: it was to go anyway).
   */
  writeBehindQuietMs: number;
  /** Most bytes of closed files held back that way; a close beyond it lets them all go. */
  writeBehindHoldBytes: number;
  /**
   * 1: while a mount's requests are small, its FUSE threads and its JS thread share one CPU, so a
   * request needs no wake-up of another CPU (measured on a 2-vCPU VM: shell appends 1.5-2x as
   * fast; bulk reads and writes lift it). 0: the scheduler places them.
   */
  pinFuseThreads: number;
  /**
   * 1: a mount answers the kernel's READDIRPLUS, a listing with every entry's attributes, so
   * `ls -l`, `find` and `du` need no lookup per entry after it (fuse/native/readdir-plus.h). 0: plain
   * READDIR, each entry looked up on its own.
   */
  readdirPlus: number;
  /**
   * Microseconds after each FUSE request during which a mount keeps the idle CPUs polling (one
   * lowest-priority thread per CPU, SCHED_IDLE) instead of letting them halt, so that the next
   * request's wake-ups find them running (fuse/native/busy-poll.h: on a VM whose idle vCPUs halt, a
   * wake-up of one costs 20-30 us, more than a small request's work). It spends only CPU time no
   * other thread wants, during bursts of requests and this long after. 0: never.
   */
  busyPollUs: number;
  /**
   * Most new chunks the master has chunkservers make ahead of need, in one request per server,
   * so a new file's first chunk costs a log record instead of a round of setVersion calls on its
   * way (master/chunk-pool.ts; 0: every new chunk is placed when a writer asks for it). The pool
   * fills only when chunks are taken from it, as many as recent demand asks for up to this; unused
   * ones go after half a lease.
   */
  chunkPoolSize: number;
  /**
   * Op-log records after which the master starts a new log and a worker thread writes a checkpoint
   * (the last one with the logs since replayed): a restart replays at most about this many records.
   */
  checkpointEvery: number;
  /** How long a deleted file stays in the trash, restorable with `gfs undelete` (the paper's 3 days). */
  trashGraceMs: number;
  /** Copies of chunks one chunkserver receives at a time (re-replication, rebalancing, drain). */
  copiesPerServer: number;
  /** A chunkserver verifies one idle replica's checksums every this many ms (0: no background scan). */
  scrubIntervalMs: number;
  /** A replica read or written within this long counts as busy, not idle: the scan skips it. */
  scrubIdleMs: number;
}

export const defaults: GfsConfig = {
  chunkSize: 64 * MiB,
  replication: 3,
  checksumBlock: 4 * 1024,
  leaseMs: 60_000,
  heartbeatMs: 2_000,
  deadAfterMs: 15_000,
  rpcTimeoutMs: 30_000,
  clientRetryMs: 90_000, // longer than a lease: writes may wait one out after a master restart
  maxFrameBytes: 20 * MiB,
  writeBufferBytes: 8 * MiB,
  readAheadBytes: 8 * MiB,
  readAroundBytes: 64 * 1024,
  localReadBytes: 256 * 1024,
  chunkPoolSize: 64,
  checkpointEvery: 100_000,
  trashGraceMs: 3 * 24 * 3600 * 1000,
  copiesPerServer: 2,
  scrubIntervalMs: 10_000, // a 64 MiB chunk every 10 s: about 6 MB/s of disk reads at most
  scrubIdleMs: 60_000,
  attrCacheMs: 1_000,
  deferredChanges: 4096,
  writeBehindFiles: 64,
  writeBehindHoldMs: 5_000,
  writeBehindQuietMs: 20,
  writeBehindHoldBytes: 128 * MiB,
  pinFuseThreads: 1,
  readdirPlus: 1,
  busyPollUs: 200,
};

/** Bytes of data one frame can carry: its limit less room for the envelope around the data. */
export const framePayloadBytes = (cfg: Pick<GfsConfig, 'maxFrameBytes'>): number => cfg.maxFrameBytes - 64 * 1024;

/** Largest record a record append takes: a quarter of a chunk, as in the paper (§3.3). */
export const maxRecordBytes = (cfg: Pick<GfsConfig, 'chunkSize'>): number => Math.floor(cfg.chunkSize / 4);

export function configFrom(partial: Partial<GfsConfig>): GfsConfig {
  const cfg = { ...defaults, ...partial };
  if (cfg.chunkSize % cfg.checksumBlock !== 0) {
    throw new Error(`chunk size ${cfg.chunkSize} must be a multiple of ${cfg.checksumBlock}`);
  }
  if (cfg.replication < 1) throw new Error('replication must be at least 1');
  if (cfg.checkpointEvery < 1) throw new Error('checkpoint-every must be at least 1 (op-log records per checkpoint)');
  // A whole write buffer travels in one frame; keep some room for the envelope.
  cfg.writeBufferBytes = Math.min(cfg.writeBufferBytes, framePayloadBytes(cfg), cfg.chunkSize);
  return cfg;
}
