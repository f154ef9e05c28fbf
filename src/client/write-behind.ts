// The client's side of write delegations (master/delegations.ts). While this client holds a
// file's delegation, no other client can see or change the file before the master has recalled
// it from us, so
// - an open of it by a name we opened it by needs no fresh look-up at the master, and
// - a close answers at once: the handle's writes are pushed in the background (write-behind),
//   in order per file, at most `limit` closed files at a time; a recall (or a read, stat, fsync,
//   truncate of the file here) waits until they are all on the chunkservers and the master.
// - Writes at offsets wait while this mount's callers keep it busy (busy-hold.ts), up to a time,
//   a number of files and of bytes; whatever needs a file's data (the same recall, read, stat,
//   fsync, truncate) lets that file's go at once.
// An error of a write pushed in the background is reported at the next close or fsync of the file
// (as a local file system reports a failed writeback), and logged. Delegations unused for a while
// are given back, so that the master keeps few and others need no recall. When the connection to
// the master drops, the master no longer knows our delegations (it may have restarted): all are
// dropped here too.

import type { GfsError } from '../protocol/errors.js';
import { asGfsError } from '../protocol/errors.js';
import type { ChunkHandle, ServerAddress } from '../protocol/messages.js';
import type { Logger } from '../log.js';
import { PathMap } from './path-tree.js';
import type { BusyHold } from './busy-hold.js';

type Touched = Map<ChunkHandle, ServerAddress[]>;

/** A delegation unused this long is given back. */
const IDLE_MS = 2000;

/**
 * Most closed files held back at once (each is an open-file record and its buffers). A new
 * close beyond it, or beyond the bytes allowed, lets everything held go and waits for room.
 */
const MAX_HELD_FILES = 8192;

export class WriteBehind {
  /** Delegated inode → the grant's number, when it was last used, and the names we opened it by. */
  private readonly held = new Map<number, { grant: number; lastUse: number; paths: Set<string> }>();
  /**
   * Inode → the last grant recalled. A reply that grants it may be read after its recall (both can
   * arrive in one read of the socket, and the recall is handled first; or a second open's reply
   * repeats a grant already held): such a reply must not make us a holder again.
   */
  private readonly recalled = new Map<number, number>();
  private readonly byPath = new PathMap<number>();
  /** Inode → the background flushes of its closed handles still on their way. */
  private readonly pending = new Map<number, Set<Promise<void>>>();
  /** Inode → the last of them that writes at offsets: appends start after it. */
  private readonly lastInOrder = new Map<number, Promise<void>>();
  private running = 0;
  private readonly waiters: Array<() => void> = [];
  /** Closed files deferred and not done (held, waiting for a slot, or on their way), and their bytes. */
  private outstanding = 0;
  private outstandingBytes = 0;
  private readonly maxOutstanding: number;
  private readonly roomWaiters: Array<() => void> = [];
  private readonly errors = new Map<number, GfsError>();
  /** Replicas written by background flushes since the file's last fsync here. */
  private readonly unsynced = new Map<number, Touched>();

  constructor(
    /** Closed files whose writes may be on their way at once; 0: no write-behind (every close waits). */
    private readonly limit: number,
    private readonly giveBack: (inos: number[]) => Promise<unknown>,
    private readonly log: Logger,
    /** Holds writes at offsets back while the mount is busy (keyed by inode); undefined: never. */
    private readonly hold?: BusyHold<number | 'changes'>,
    /** Most bytes of closed files outstanding while holding. */
    private readonly holdBytes = Infinity,
  ) {
    this.maxOutstanding = limit + (hold ? MAX_HELD_FILES : 0);
  }

  get enabled(): boolean {
    return this.limit > 0;
  }

  holds(ino: number): boolean {
    return this.held.has(ino);
  }

  /** The delegated inode path leads to (as far as this client knows). */
  inoOf(path: string): number | undefined {
    const ino = this.byPath.get(path);
    const d = ino === undefined ? undefined : this.held.get(ino);
    if (!d) return undefined;
    d.lastUse = Date.now();
    return ino;
  }

  /**
   * The master granted ino's delegation (grant number grant) to an open or create of path; grant
   * 0: a create answered here (deferred-changes.ts), whose grant comes with the master's answer.
   */
  took(path: string, ino: number, grant: number): void {
    const recalled = this.recalled.get(ino);
    if (recalled !== undefined && recalled >= grant) return;
    let d = this.held.get(ino);
    if (!d || d.grant !== grant) this.held.set(ino, (d = { grant, lastUse: 0, paths: new Set() }));
    d.lastUse = Date.now();
    d.paths.add(path);
    this.byPath.set(path, ino);
  }

  /** The name changed here (unlink, rename): it may no longer lead to the inode. */
  forgetPath(path: string): void {
    const ino = this.byPath.get(path);
    if (ino === undefined) return;
    this.byPath.delete(path);
    this.held.get(ino)?.paths.delete(path);
  }

  /** Every name at or beneath path (a directory renamed or removed here). */
  forgetTree(path: string): void {
    for (const p of this.byPath.under(path)) this.forgetPath(p);
  }

  /**
   * Push a closed handle's writes in the background, in the order of the closes: writes at offsets
   * start once every earlier close of ino is pushed (a rewrite must land last, and after an append
   * it rewrites); record appends start once the earlier writes at offsets are done (an append
   * lands at the end as it is then: `cp f g && echo >> g` lost its line when the append overtook
   * the copy), but not after earlier appends, which the append queue keeps in order and merges.
   * Writes at offsets are held while the mount is busy (busy-hold.ts); at most `limit` pushes are
   * on their way at once. Waits first while too many files or bytes are outstanding. touched: the
   * replicas the flush wrote (for a later fsync); bytes: what the handle holds.
   */
  async defer(ino: number, flush: () => Promise<void>, touched: Touched, inOrder: boolean, bytes = 0): Promise<void> {
    while (this.outstanding >= this.maxOutstanding || (this.outstanding > 0 && this.outstandingBytes + bytes > this.holdBytes)) {
      this.hold?.releaseAll(); // too much is held: all of it goes
      await new Promise<void>((r) => this.roomWaiters.push(r));
    }
    this.outstanding++;
    this.outstandingBytes += bytes;
    let set = this.pending.get(ino);
    const after = inOrder ? Promise.all(set ?? []) : (this.lastInOrder.get(ino) ?? Promise.resolve());
    // Held from now, not from when the closes before it are done: a settle of ino lets all of
    // them go at once (one held after the other would be held anew once the first went). A close
    // that wrote nothing at offsets (`: > f`) is not held: appends after it would wait for it.
    const held = inOrder && bytes > 0 && this.hold ? this.hold.wait(ino) : undefined;
    const run = async (): Promise<void> => {
      await after;
      await held;
      // Slots go first come, first served, handed from one flush to the next waiting: a record
      // append that found a slot free as it came must not overtake appends waiting for one (5000
      // `echo >>` lines released at once came out of order).
      if (this.running < this.limit && this.waiters.length === 0) this.running++;
      else await new Promise<void>((r) => this.waiters.push(r));
      try {
        await flush();
      } finally {
        const next = this.waiters.shift();
        if (next) next(); // (the slot passes on: running stays)
        else this.running--;
      }
    };
    if (!set) this.pending.set(ino, (set = new Set()));
    const mine = set;
    const p: Promise<void> = run()
      .then(
        () => {
          let left = this.unsynced.get(ino);
          if (!left) this.unsynced.set(ino, (left = new Map()));
          for (const [h, servers] of touched) left.set(h, servers);
        },
        (e: unknown) => {
          const err = asGfsError(e);
          this.log.warn(`writes to inode ${ino} after its close failed: ${err.message} (reported at its next close or fsync)`);
          if (!this.errors.has(ino)) this.errors.set(ino, err);
        },
      )
      .finally(() => {
        this.outstanding--;
        this.outstandingBytes -= bytes;
        this.roomWaiters.shift()?.();
        mine.delete(p);
        if (mine.size === 0 && this.pending.get(ino) === mine) this.pending.delete(ino);
        if (this.lastInOrder.get(ino) === p) this.lastInOrder.delete(ino);
      });
    mine.add(p);
    if (inOrder) this.lastInOrder.set(ino, p);
  }

  /** Background flushes of ino are on their way. */
  busy(ino: number): boolean {
    return this.pending.has(ino);
  }

  /** Once the background flushes of ino begun so far are done (never rejects). */
  async settle(ino: number): Promise<void> {
    this.hold?.release(ino);
    const set = this.pending.get(ino);
    if (set) await Promise.all(set);
  }

  async settleAll(): Promise<void> {
    while (this.pending.size > 0) {
      this.hold?.releaseAll();
      await Promise.all([...this.pending.values()].flatMap((set) => [...set]));
    }
  }

  /** The error of a background flush of ino, once. */
  takeError(ino: number): GfsError | undefined {
    const e = this.errors.get(ino);
    this.errors.delete(ino);
    return e;
  }

  /** The replicas background flushes of ino wrote since its last fsync here (then forgotten). */
  takeUnsynced(ino: number): Touched | undefined {
    const t = this.unsynced.get(ino);
    this.unsynced.delete(ino);
    return t;
  }

  /**
   * The master recalls ino: from now on closes wait and opens ask the master; flushOpen pushes what
   * open handles hold; the reply goes once everything of ino is on the chunkservers and the master.
   */
  async recall(ino: number, grant: number, flushOpen: () => Promise<void>): Promise<void> {
    if (this.recalled.size >= 100_000) this.recalled.clear(); // (a reply read that late: not seen)
    this.recalled.set(ino, Math.max(grant, this.recalled.get(ino) ?? 0));
    const held = this.held.get(ino);
    if (held && held.grant <= grant) this.drop(ino);
    await flushOpen().catch(() => {}); // (their own flush or close reports it)
    await this.settle(ino);
  }

  /** The master has forgotten every delegation of ours (the connection dropped). */
  dropAll(): void {
    this.held.clear();
    this.byPath.clear();
    this.recalled.clear();
  }

  /** Give back the delegations unused for IDLE_MS whose writes are done and that no handle has open. */
  tick(now: number, open: (ino: number) => boolean): void {
    const idle: number[] = [];
    for (const [ino, d] of this.held) if (now - d.lastUse >= IDLE_MS && !this.pending.has(ino) && !open(ino)) idle.push(ino);
    if (idle.length === 0) return;
    for (const ino of idle) this.drop(ino); // first: no open may use one the master no longer knows
    this.giveBack(idle).catch((e: Error) => this.log.debug(`give back of ${idle.length} delegations: ${e.message}`));
  }

  /** ino is not ours after all (a create answered here that came back without its grant). */
  drop(ino: number): void {
    for (const p of this.held.get(ino)?.paths ?? []) if (this.byPath.get(p) === ino) this.byPath.delete(p);
    this.held.delete(ino);
  }
}
