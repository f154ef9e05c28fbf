// Namespace changes answered before the master has made them durable (cfg.deferredChanges), as a
// local file system answers unlink(2) and creat(2) before its journal reaches the disk: `rm -rf`
// then costs one trip into the mount per file instead of a trip to the master and its op-log fsync
// as well, and so does a file made in a directory this client holds (dir-delegations.ts).
//
// What keeps this safe:
// - Only an unlink of a name this client knows to be there (a fresh cached attribute of a file or
//   symlink) is answered this way; the kernel has checked the caller's permission on the directory
//   already (default_permissions), so the master has nothing left to refuse but a name gone
//   meanwhile.
// - Only a create in a directory whose delegation this client holds, whose every name it knows: no
//   other client can make or see a name there before the master has recalled the directory, and
//   the recall waits for these creates (client.ts). The inode number is one the master reserved
//   for this client; the file's first chunk and write delegation come with the answer (whenMade).
// - They go to the master in batches (one `changes` request, each change exactly once by its own
//   request id), applied in the order they were made here, and every other request of this client
//   first waits until they are done (settled()), so the master sees this client's changes in the
//   order it made them, even across a reconnect.
// - A failure never loses data silently: at worst a removed name shows again, or a file made here
//   is not there. It is logged and reported by the next fsync of that directory (fsync of a
//   directory is what makes its changes durable on a local disk too). An fsync of a file and an
//   unmount wait for them all.
//
// Why batches: one request per unlink, sent as each is answered, kept the mount, the master and
// the kernel's loopback busy enough on two cores to double the time of every FUSE request
// (measured: 239 us per unlink(2) against 114 us with batches, 64 us for a file system that does
// nothing).

import { GfsError, asGfsError } from '../protocol/errors.js';
import type { ChangeResult, DeferredChange } from '../protocol/messages.js';
import type { Logger } from '../log.js';
import { parentPath } from './attr-cache.js';

/** A batch goes out this long after its first change, or when it has MAX_BATCH, or at settled(). */
const BATCH_MS = 5;
const MAX_BATCH = 256;

/** Sends changes to the master as one request; resolves with one result per change, in order. */
export type SendChanges = (changes: DeferredChange[]) => Promise<ChangeResult[]>;

function count(m: Map<string, number>, key: string, by: 1 | -1): void {
  const n = (m.get(key) ?? 0) + by;
  if (n > 0) m.set(key, n);
  else m.delete(key);
}

/** A promise and its resolve (Promise.withResolvers is newer than Node 20). */
function signal(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

interface Queued {
  dir: string;
  change: DeferredChange;
  /** The master refused it (an unlink of a name already gone counts as done). */
  onFailure: () => void;
  /** The master made it (a create): what came with it. */
  onDone?: (result: ChangeResult) => void;
}

export class DeferredChanges {
  private queue: Queued[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** The batch being queued waits for the hold. */
  private held = false;
  private readonly inFlight = new Set<Promise<void>>();
  /** Changes queued or on their way. */
  private count = 0;
  /** Directory -> the first failure of a deferred change in it not reported by an fsync yet. */
  private readonly failures = new Map<string, GfsError>();
  /** Inode → the answer to the batch its create is in, while it is queued or on its way. */
  private readonly making = new Map<number, Promise<void>>();
  /** Resolves once the batch now being queued is answered. */
  private batchDone = signal();
  /** Directory → changes queued or on their way that change its listing. */
  private readonly inDir = new Map<string, number>();
  /** Path → mkdirs and rmdirs of it queued or on their way. */
  private readonly ofDir = new Map<string, number>();
  /** Directory → creates and mkdirs in it queued or on their way. */
  private readonly madeIn = new Map<string, number>();

  constructor(
    /** The most changes queued or under way at once; the next one waits for room. */
    private readonly limit: number,
    private readonly send: SendChanges,
    private readonly log: Logger,
    /**
     * Resolves when a batch may go while the mount's callers keep it busy (busy-hold.ts): then
     * batches go when it does, or when one is needed (settled(), whenMade()), or with `limit` out.
     * undefined: a batch goes BATCH_MS after its first change, or when it has MAX_BATCH.
     */
    private readonly hold?: () => Promise<void>,
  ) {}

  get size(): number {
    return this.count;
  }

  /**
   * Queue a change in dir; resolves at once, unless more than `limit` are out (then once they
   * are not).
   * onFailure runs if the master refuses it, onDone with its result if it took it.
   */
  async add(dir: string, change: DeferredChange, onFailure: () => void, onDone?: (result: ChangeResult) => void): Promise<void> {
    // Queued at once, and only then held back: a recall of its directory (settled()) must find
    // it among the changes to send.
    this.count++;
    this.queue.push({ dir, change, onFailure, ...(onDone ? { onDone } : {}) });
    this.note(dir, change, 1);
    if (change.op === 'create') this.making.set(change.ino, this.batchDone.promise);
    if (this.hold) this.holdBatch(this.hold);
    else if (this.queue.length >= MAX_BATCH) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), BATCH_MS);
    while (this.count > this.limit) {
      this.flush();
      await Promise.race(this.inFlight);
    }
  }

  /**
   * While ino's create (answered here) has not reached the master: the answer to it, which
   * anything that asks the master about ino (a write target for its first push) must wait for.
   */
  whenMade(ino: number): Promise<void> | undefined {
    const made = this.making.get(ino);
    if (made && made === this.batchDone.promise) this.flush(); // (still queued: it is needed now)
    return made;
  }

  private holdBatch(hold: () => Promise<void>): void {
    if (this.held) return;
    this.held = true;
    void hold().then(() => {
      this.held = false;
      this.flush();
    });
  }

  /**
   * Some change queued or on its way changes dir's listing, or makes or removes dir or a directory
   * above it: a listing of dir, or a look-up in it, must wait for them (settled()).
   */
  touches(dir: string): boolean {
    if (this.count === 0) return false;
    if (this.inDir.has(dir)) return true;
    for (let p = dir; ; p = parentPath(p)) {
      if (this.ofDir.has(p)) return true;
      if (p === '/') return false;
    }
  }

  /** Some create or mkdir in dir is queued or on its way (an rmdir of dir must wait for it). */
  makesIn(dir: string): boolean {
    return this.madeIn.has(dir);
  }

  private note(dir: string, change: DeferredChange, by: 1 | -1): void {
    count(this.inDir, dir, by);
    if (change.op === 'create' || change.op === 'mkdir') count(this.madeIn, dir, by);
    if (change.op === 'mkdir' || change.op === 'rmdir') count(this.ofDir, change.path, by);
  }

  /** Resolves once every change queued before this call has been answered by the master. */
  async settled(): Promise<void> {
    this.flush();
    await Promise.all([...this.inFlight]);
  }

  /** Like settled(), but what is queued goes when it is due (for what may wait: a give-back). */
  async answered(): Promise<void> {
    await Promise.all([...this.inFlight, ...(this.queue.length > 0 ? [this.batchDone.promise] : [])]);
  }

  /** settled(), then throw the failure of a deferred change in dir since the last report (once). */
  async sync(dir: string): Promise<void> {
    await this.settled();
    const err = this.failures.get(dir);
    this.failures.delete(dir);
    if (err) throw err;
  }

  /** Send what is queued now, MAX_BATCH changes a request (the answers come later: settled()). */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.queue.length === 0) return;
    const queued = this.queue;
    const answered = this.batchDone;
    this.queue = [];
    this.batchDone = signal();
    const sends: Array<Promise<void>> = [];
    for (let i = 0; i < queued.length; i += MAX_BATCH) sends.push(this.sendBatch(queued.slice(i, i + MAX_BATCH)));
    void Promise.all(sends).then(() => answered.resolve());
  }

  private sendBatch(batch: Queued[]): Promise<void> {
    const sent: Promise<void> = this.send(batch.map((q) => q.change)).then(
      (results) => {
        batch.forEach((q, i) => {
          const r = results[i];
          if (r && 'code' in r) this.failed(q, new GfsError(r.code, r.message));
          else q.onDone?.(r ?? {});
        });
      },
      (e: unknown) => {
        for (const q of batch) this.failed(q, asGfsError(e));
      },
    );
    const done = sent.finally(() => {
      this.inFlight.delete(done);
      this.count -= batch.length;
      for (const q of batch) {
        this.note(q.dir, q.change, -1);
        if (q.change.op === 'create') this.making.delete(q.change.ino); // (inode numbers are never reused)
      }
    });
    this.inFlight.add(done);
    return done;
  }

  private failed(q: Queued, err: GfsError): void {
    const { op, path } = q.change;
    if ((op === 'unlink' || op === 'rmdir') && err.code === 'ENOENT') return; // removed by someone else first: the name is gone all the same
    const outcome = op === 'unlink' || op === 'rmdir' ? 'the name stays' : op === 'create' ? 'the file is not there' : 'the directory is not there';
    this.log.warn(`${op} ${path} (answered already) failed at the master: ${err.message}; ${outcome}`);
    if (!this.failures.has(q.dir)) this.failures.set(q.dir, new GfsError(err.code, `an earlier ${op} in ${q.dir} failed: ${err.message}`));
    q.onFailure();
  }
}
