// Durable master state: a checkpoint (the whole namespace image) plus an op log of the records
// applied since. Each log record is [u32 length][u32 crc32][msgpack op]; a torn or corrupt tail
// (a crash mid-write) ends replay there. Many ops share one synchronous write (group commit), and
// none is acknowledged before it is on disk.
//
// The log file is filled with zeros ahead of the records, LOG_STEP at a time: a record then lands
// in blocks that already exist, so its fdatasync flushes data only, not the file system's journal
// (measured here: 125 -> 88 us per write + fdatasync; and ext4's journal commits also hold up
// chunkservers' file creates). Replay stops at the zeros (no record has length 0).
//
// Files in the master's data dir:
//   checkpoint        the namespace as of the start of oplog.<gen> (checkpoint.ts)
//   oplog.<gen>       the records applied after checkpoint <gen>, and oplog.<gen+1>... after that
//
// A checkpoint starts a new log at once; a worker thread then builds the next checkpoint from the
// last one and the logs before the switch, as a restart would, and writes it, while the master goes
// on serving and logging to the new log (the paper's §2.6.3; HDFS's checkpoint node merges its
// image and edit log the same way). The master's state is never copied or walked for it: built on
// the event loop, a million files held every request up for ~2.9 s (scripts/bench-meta). Until the
// new checkpoint is on disk, the last one and every log since it are kept; a restart replays them
// in order.

import { constants } from 'node:fs';
import { open, readFile, rm, readdir, type FileHandle } from 'node:fs/promises';
import { crc32 } from '../protocol/crc32.js';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { decode, encode } from '../protocol/rpc.js';
import { readCheckpoint, syncDir, writeCheckpoint } from './checkpoint.js';
import { Namespace } from './namespace.js';
import { nowTimespec, type NsOp } from './ops.js';

/** Bytes of zeros the log is extended by when the records reach the end of what was filled. */
const LOG_STEP = 4 * 1024 * 1024;

/**
 * Open (or create) a log for positional writes (O_APPEND would ignore the positions). O_DSYNC: each
 * write returns once its data is on disk, as write + fdatasync would, in one trip to the thread
 * pool instead of two (bench-meta creates/s, 8 clients: 3,408 / 4,911 -> 5,837 / 6,136; one
 * client within its noise).
 */
const openLogFile = (path: string, truncate = false): Promise<FileHandle> =>
  open(path, constants.O_RDWR | constants.O_CREAT | constants.O_DSYNC | (truncate ? constants.O_TRUNC : 0), 0o644);

function frame(body: Buffer): Buffer {
  const head = Buffer.allocUnsafe(8);
  head.writeUInt32LE(body.length, 0);
  head.writeUInt32LE(crc32(body), 4);
  return Buffer.concat([head, body]);
}

/** The records of a log buffer up to the first torn or corrupt one, and where that one starts. */
export function parseRecords(buf: Buffer): { ops: NsOp[]; end: number } {
  const ops: NsOp[] = [];
  let at = 0;
  while (at + 8 <= buf.length) {
    const len = buf.readUInt32LE(at);
    const sum = buf.readUInt32LE(at + 4);
    if (len === 0 || at + 8 + len > buf.length) break; // no op encodes to nothing
    const body = buf.subarray(at + 8, at + 8 + len);
    if (crc32(body) !== sum) break;
    ops.push(decode(body) as NsOp);
    at += 8 + len;
  }
  return { ops, end: at };
}

export class OpLog {
  private pending: Buffer[] = [];
  private waiters: Array<{ resolve(): void; reject(e: Error): void }> = [];
  private flushing: Promise<void> | null = null;
  /** The checkpoint being written in the background, if one is. */
  private checkpointing: Promise<void> | null = null;
  private records = 0;
  /** End of the bytes a failed batch may have left after writeAt: the next batch zeroes them. */
  private scribbled = 0;

  private constructor(
    private readonly dir: string,
    private gen: number,
    private fh: FileHandle,
    /** Where the next record goes, and the end of the zeros written ahead of it. */
    private writeAt: number,
    private filled: number,
    private readonly chunkSize: number,
    private readonly checkpointEvery: number,
    /** Told when a background checkpoint fails (the logs since the last one are kept). */
    private readonly warn: (message: string) => void,
  ) {}

  /** Load the checkpoint and replay the logs after it; returns the namespace and an open log for new records. */
  static async open(
    dir: string,
    chunkSize: number,
    checkpointEvery: number,
    /** Sees every replayed op, and how many come after it (to rebuild the request ids of recent changes). */
    onReplay: (op: NsOp, after: number) => void = () => {},
    warn: (message: string) => void = (m) => process.stderr.write(`master WARN ${m}\n`),
  ): Promise<{ ns: Namespace; log: OpLog; recovered: boolean; replayed: number }> {
    const checkpointPath = join(dir, 'checkpoint');
    const ckpt = await readCheckpoint(checkpointPath);
    let ns: Namespace;
    let gen: number;
    if (ckpt) {
      if (ckpt.chunkSize !== chunkSize) {
        throw new Error(`this master's data was written with chunk size ${ckpt.chunkSize}, not ${chunkSize}`);
      }
      ns = Namespace.fromImage(ckpt.image);
      gen = ckpt.gen;
    } else {
      if ((await readdir(dir)).some((f) => f.startsWith('oplog.'))) {
        // Never left by a crash: the first checkpoint is on disk before the first log is made.
        throw new Error(`${dir} has op logs but no checkpoint: they cannot be replayed onto nothing`);
      }
      // A brand-new file system: its root is made now, and a first checkpoint pins the chunk size.
      ns = new Namespace(nowTimespec());
      gen = 0;
      await writeCheckpoint(checkpointPath, gen, chunkSize, ns);
    }
    // The logs this checkpoint needs, oldest first; older ones are left over from before it.
    await removeLogsBefore(dir, gen);
    const gens = await logGens(dir);
    if (gens.length === 0) gens.push(gen);
    const logs: Array<{ ops: NsOp[]; end: number; size: number }> = [];
    for (const g of gens) logs.push(await readLog(join(dir, `oplog.${g}`), true));
    const total = logs.reduce((n, l) => n + l.ops.length, 0);
    let replayed = 0;
    for (const { ops } of logs) {
      replay(ns, ops, (op, i) => onReplay(op, total - 1 - (replayed + i)));
      replayed += ops.length;
    }
    const last = logs[logs.length - 1];
    const fh = await openLogFile(join(dir, `oplog.${gens[gens.length - 1]}`));
    const log = new OpLog(dir, gens[gens.length - 1], fh, last.end, last.size, chunkSize, checkpointEvery, warn);
    log.records = replayed;
    return { ns, log, recovered: ckpt !== null || replayed > 0, replayed };
  }

  /** Resolves once op is on disk. Call after the op was applied in memory. */
  append(op: NsOp): Promise<void> {
    this.pending.push(frame(encode(op)));
    this.records++;
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    // Started after the current task, not inside it: records logged together (a new chunk and its
    // first version, in one request) then share one write and one fsync.
    if (!this.flushing) this.flushing = Promise.resolve().then(() => this.flushLoop());
    return done;
  }

  private async flushLoop(): Promise<void> {
    while (this.pending.length > 0) {
      await this.writeBatch();
      if (this.records >= this.checkpointEvery && !this.checkpointing) await this.startCheckpoint();
    }
    this.flushing = null;
  }

  /** Write what is pending as one batch (one write, O_DSYNC) and answer its callers. */
  private async writeBatch(): Promise<void> {
    const batch = Buffer.concat(this.pending);
    const waiters = this.waiters;
    this.pending = [];
    this.waiters = [];
    try {
      if (this.writeAt + batch.length > this.filled) {
        // Zeros ahead, in a write of their own (flushed on its own: once per LOG_STEP).
        const to = this.writeAt + batch.length + LOG_STEP;
        await this.fh.write(Buffer.alloc(to - this.filled), 0, to - this.filled, this.filled);
        this.filled = to;
      }
      // A failed batch is written over by the next one; what is left of it beyond is zeroed in the
      // same write, or replay could run on into records whose callers were told they failed.
      const leftover = this.scribbled - (this.writeAt + batch.length);
      const out = leftover > 0 ? Buffer.concat([batch, Buffer.alloc(leftover)]) : batch;
      this.scribbled = Math.max(this.scribbled, this.writeAt + batch.length);
      await this.fh.write(out, 0, out.length, this.writeAt); // O_DSYNC: on disk when it returns
      this.writeAt += batch.length;
      this.scribbled = 0;
      for (const w of waiters) w.resolve();
    } catch (e) {
      for (const w of waiters) w.reject(e as Error);
    }
  }

  /**
   * Start a new log, and a worker that makes the checkpoint of the state at the switch. Every record
   * before the switch is in the old logs, every one after in the new: the last checkpoint and all
   * logs, or the new checkpoint and the new log, replay to the same state.
   */
  private async startCheckpoint(): Promise<void> {
    const next = this.gen + 1;
    const nextPath = join(this.dir, `oplog.${next}`);
    try {
      const newLog = await openLogFile(nextPath, true); // empty, whatever a crash left
      try {
        await syncDir(this.dir); // its name lasts, or records acknowledged in it could vanish with it
        // Records that came meanwhile precede the switch: they go to the old log. So must the zeros
        // over a failed batch, which the next batch there would have written.
        while (this.pending.length > 0 || this.scribbled > this.writeAt) {
          if (this.pending.length > 0) await this.writeBatch();
          else await this.zeroScribbled();
        }
      } catch (e) {
        await newLog.close();
        await rm(nextPath, { force: true });
        throw e;
      }
      const old = this.fh;
      this.fh = newLog;
      this.gen = next;
      this.writeAt = 0;
      this.filled = 0;
      this.scribbled = 0;
      this.records = 0;
      this.checkpointing = old
        .close()
        .then(() => checkpointInWorker(this.dir, next, this.chunkSize))
        .catch((e: Error) => this.warn(`checkpoint ${next} failed (the last one and the op logs since are kept): ${e.message}`))
        .finally(() => (this.checkpointing = null));
    } catch (e) {
      // Tried again after as many records more, not at every flush (a full disk would make each
      // batch of records try, and warn, again).
      this.records = 0;
      this.warn(`checkpoint not started (op log ${this.gen} goes on): ${(e as Error).message}`);
    }
  }

  private async zeroScribbled(): Promise<void> {
    const n = this.scribbled - this.writeAt;
    await this.fh.write(Buffer.alloc(n), 0, n, this.writeAt);
    this.scribbled = 0;
  }

  /** Waits for the records under way and a checkpoint under way (a few seconds per million files). */
  async close(): Promise<void> {
    while (this.flushing || this.checkpointing) await (this.flushing ?? this.checkpointing);
    await this.fh.close();
  }
}

/** The generations of the op logs in dir, oldest first. */
async function logGens(dir: string): Promise<number[]> {
  const gens: number[] = [];
  for (const f of await readdir(dir)) {
    const m = /^oplog\.(\d+)$/.exec(f);
    if (m) gens.push(Number(m[1]));
  }
  return gens.sort((a, b) => a - b);
}

/** Remove the logs a checkpoint of generation gen makes obsolete. */
export async function removeLogsBefore(dir: string, gen: number): Promise<void> {
  for (const g of await logGens(dir)) if (g < gen) await rm(join(dir, `oplog.${g}`), { force: true });
}

/** A log's records, where they end and how long the file is; `mend`: zero a torn tail after them. */
async function readLog(path: string, mend: boolean): Promise<{ ops: NsOp[]; end: number; size: number }> {
  const buf = await readFile(path).catch(() => null);
  if (!buf) return { ops: [], end: 0, size: 0 };
  const { ops, end } = parseRecords(buf);
  // A torn tail (a crash mid-write) is zeroed: records written over it could otherwise be
  // followed by its leftovers, and replay stops at the first bad record.
  let last = buf.length;
  while (last > end && buf[last - 1] === 0) last--;
  if (mend && last > end) {
    process.stderr.write(`master WARN op log ${path}: ${last - end} bytes of torn or corrupt tail dropped\n`);
    const fh = await open(path, 'r+');
    try {
      await fh.write(Buffer.alloc(last - end), 0, last - end, end);
      await fh.sync();
    } finally {
      await fh.close();
    }
  }
  return { ops, end, size: buf.length };
}

/** Apply logged ops to ns; onApplied sees each that applied, and its index. */
function replay(ns: Namespace, ops: NsOp[], onApplied: (op: NsOp, index: number) => void): void {
  for (const [i, op] of ops.entries()) {
    try {
      ns.apply(op);
      onApplied(op, i);
    } catch (e) {
      // Only a bug can make a logged op invalid; keep the rest of the namespace rather than none.
      process.stderr.write(`master WARN replay of ${op.t} failed: ${(e as Error).message}\n`);
    }
  }
}

/**
 * The namespace as of the start of log `gen`: the checkpoint in dir with the logs after it and
 * before gen replayed (what the checkpoint worker writes as checkpoint gen).
 */
export async function stateBefore(dir: string, chunkSize: number, gen: number): Promise<Namespace> {
  const ckpt = await readCheckpoint(join(dir, 'checkpoint'));
  if (!ckpt || ckpt.chunkSize !== chunkSize || ckpt.gen >= gen) {
    throw new Error(`no checkpoint before generation ${gen} to build on in ${dir}`);
  }
  const ns = Namespace.fromImage(ckpt.image);
  for (const g of await logGens(dir)) {
    if (g >= ckpt.gen && g < gen) replay(ns, (await readLog(join(dir, `oplog.${g}`), false)).ops, () => {});
  }
  return ns;
}

/**
 * The worker runs compiled JavaScript: beside this module once compiled (dist/master), or in
 * dist/master when this module runs from its TypeScript source (under the tests).
 */
const WORKER_FILE = ((): string => {
  const here = fileURLToPath(import.meta.url);
  return here.endsWith('.ts') ? join(dirname(here), '../../dist/master/checkpoint-worker.js') : join(dirname(here), 'checkpoint-worker.js');
})();

/** Make checkpoint gen in a worker thread; resolves when it is on disk and the logs before it are gone. */
function checkpointInWorker(dir: string, gen: number, chunkSize: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(WORKER_FILE, { workerData: { dir, gen, chunkSize } });
    worker.once('error', reject);
    worker.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`the checkpoint worker exited with code ${code}`))));
  });
}
