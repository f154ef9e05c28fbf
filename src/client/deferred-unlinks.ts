// Unlinks answered before the master has made them durable (cfg.deferredUnlinks), as a local file
// system answers unlink(2) before its journal reaches the disk: `rm -rf` then costs one trip into
// the mount per file instead of one trip to the master and its op-log fsync as well.
//
// What keeps this safe:
// - Only a name this client knows to be there (a fresh cached attribute of a file or symlink) is
//   unlinked this way; the kernel has checked the caller's permission on the directory already
//   (default_permissions), so the master has nothing left to refuse but a name gone meanwhile.
// - They go to the master in batches (one `unlinks` request, each name exactly once by its own
//   request id), and every other request of this client first waits until they are done
//   (settled()), so the master sees this client's changes in the order it made them, even across
//   a reconnect. Among themselves their order does not matter: each removes a different name, and a
//   name made again was made by a request that waited.
// - A failure never loses data: at worst the name was not removed and shows again. It is logged
//   and reported by the next fsync of that directory (fsync of a directory is what makes its
//   changes durable on a local disk too). An fsync of a file and an unmount wait for them all.
//
// Why batches: one request per unlink, sent as each is answered, kept the mount, the master and
// the kernel's loopback busy enough on two cores to double the time of every FUSE request
// (measured: 239 us per unlink(2) against 114 us with batches, 64 us for a file system that does
// nothing).

import { GfsError, asGfsError, type ErrorCode } from '../protocol/errors.js';
import type { Logger } from '../log.js';

/** A batch goes out this long after its first unlink, or when it has MAX_BATCH, or at settled(). */
const BATCH_MS = 5;
const MAX_BATCH = 256;

/** Sends paths to the master as one request; resolves with the ones it refused. */
export type SendUnlinks = (paths: string[]) => Promise<Array<{ path: string; code: ErrorCode; message: string }>>;

interface Queued {
  dir: string;
  path: string;
  onFailure: () => void;
}

export class DeferredUnlinks {
  private queue: Queued[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  /** Unlinks queued or on their way. */
  private count = 0;
  /** Directory -> the first failure of a deferred unlink in it not reported by an fsync yet. */
  private readonly failures = new Map<string, GfsError>();

  constructor(
    /** The most unlinks queued or under way at once; the next one waits for room. */
    private readonly limit: number,
    private readonly send: SendUnlinks,
    private readonly log: Logger,
  ) {}

  get size(): number {
    return this.count;
  }

  /**
   * Queue the unlink of path (in dir) and resolve once it is queued (at once, unless `limit` are
   * out). onFailure runs if the master refuses it (a name already gone counts as done).
   */
  async add(dir: string, path: string, onFailure: () => void): Promise<void> {
    while (this.count >= this.limit) {
      this.flush();
      await Promise.race(this.inFlight);
    }
    this.count++;
    this.queue.push({ dir, path, onFailure });
    if (this.queue.length >= MAX_BATCH) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), BATCH_MS);
  }

  /** Resolves once every unlink queued before this call has been answered by the master. */
  async settled(): Promise<void> {
    this.flush();
    await Promise.all([...this.inFlight]);
  }

  /** settled(), then throw the failure of a deferred unlink in dir since the last report (once). */
  async sync(dir: string): Promise<void> {
    await this.settled();
    const err = this.failures.get(dir);
    this.failures.delete(dir);
    if (err) throw err;
  }

  /** Send what is queued now (its answer comes later: settled()). */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.queue.length === 0) return;
    const batch = this.queue;
    this.queue = [];
    const sent: Promise<void> = this.send(batch.map((q) => q.path)).then(
      (refused) => {
        const byPath = new Map(refused.map((r) => [r.path, new GfsError(r.code, r.message)]));
        for (const q of batch) {
          const err = byPath.get(q.path);
          if (err) this.failed(q, err);
        }
      },
      (e: unknown) => {
        for (const q of batch) this.failed(q, asGfsError(e));
      },
    );
    const done = sent.finally(() => {
      this.inFlight.delete(done);
      this.count -= batch.length;
    });
    this.inFlight.add(done);
  }

  private failed(q: Queued, err: GfsError): void {
    if (err.code === 'ENOENT') return; // removed by someone else first: the name is gone all the same
    this.log.warn(`unlink ${q.path} (answered already) failed at the master: ${err.message}; the name stays`);
    if (!this.failures.has(q.dir)) this.failures.set(q.dir, new GfsError(err.code, `an earlier unlink in ${q.dir} failed: ${err.message}`));
    q.onFailure();
  }
}
