// Chunks placed ahead of need. A new chunk used to cost a round of setVersion calls (master to
// every replica, one chunk each) on the way of its first write: for a small file that was three
// of the master's six requests and one of each chunkserver's two. The pool has chunkservers make
// new chunks in batches (one makeChunks per server for many chunks, each leased to one of its
// replicas there and then) and gives them to files with nothing more than log records.
//
// Safety:
// - The handles are logged as taken (reserveHandles) before any chunkserver hears of them: a
//   restarted master never hands them out again. It does not know its old pool, so those
//   replicas are garbage at the next heartbeats (repair.ts) and are deleted.
// - Until a file has it, a pooled chunk is not garbage to repair (holds()).
// - A chunk is given out only while every replica's server has been up without a break since it
//   made it (same epoch) and may still take new replicas (not draining, room for a chunk), and at
//   least half a lease is left; the writer then runs under the lease the primary took when it
//   made the chunk (Leases.adopt). Others are dropped, to be deleted as garbage.
// - The pool fills when chunks are taken from it, so an idle master keeps nothing placed. How many
//   it keeps follows demand: a tenth of the new chunks asked for in the last second (what a batch
//   takes to make, with room to spare), at least MIN_WANT, at most chunkPoolSize; a file made
//   now and then costs a couple of chunks made for nothing, not a whole batch.

import { asGfsError } from '../protocol/errors.js';
import type { ChunkHandle, WriteTarget } from '../protocol/messages.js';
import type { Logger } from '../log.js';
import type { Chunkserver, Cluster } from './cluster.js';
import type { Leases } from './leases.js';
import type { Inode, Namespace } from './namespace.js';
import type { NsOp } from './ops.js';

/** makeChunks takes at most this many at once (chunkserver/control.ts). */
const MAX_BATCH = 1024;
/** The fewest chunks the pool aims to keep once asked for one. */
const MIN_WANT = 2;

interface Placed {
  handle: ChunkHandle;
  primary: Chunkserver;
  replicas: Chunkserver[];
  /** The replicas' epochs when they made it. */
  epochs: number[];
  /** The master's view of the primary's lease (it ends later than the primary's own). */
  expiresAt: number;
}

export class ChunkPool {
  private ready: Placed[] = [];
  /** Handles being made or ready: no file has them yet. */
  private readonly held = new Set<ChunkHandle>();
  private filling = false;
  /** New chunks asked for in the current second (from start) and in the one before it. */
  private readonly demand = { start: 0, now: 0, before: 0 };

  constructor(
    private readonly ns: Namespace,
    private readonly cluster: Cluster,
    private readonly leases: Leases,
    private readonly commit: (op: NsOp) => Promise<void>,
    private readonly cfg: { chunkPoolSize: number; leaseMs: number; replication: number },
    private readonly log: Logger,
  ) {}

  /** Whether a chunkserver's replica of handle is one of the pool's (not garbage). */
  holds(handle: ChunkHandle): boolean {
    return this.held.has(handle);
  }

  /**
   * A placed chunk as the file's chunk at index (the caller saw none there), leased: answered once
   * its two log records are on disk. undefined when the pool has none ready (it fills meanwhile).
   */
  place(node: Inode, index: number): Promise<WriteTarget> | undefined {
    const p = this.take();
    if (!p) return undefined;
    const add: NsOp = { t: 'addChunk', ino: node.ino, index, handle: p.handle };
    const made: NsOp = { t: 'version', handle: p.handle, version: 1 };
    this.ns.apply(add);
    this.ns.apply(made);
    for (const s of p.replicas) this.cluster.addReplica(p.handle, s);
    const target = this.leases.adopt(p.handle, index, p.primary, p.replicas, p.expiresAt);
    return Promise.all([this.commit(add), this.commit(made)]).then(() => target);
  }

  /** Drop what can no longer be given out (called on the master's tick). */
  sweep(now: number): void {
    const gone = this.ready.filter((p) => !this.usable(p, now));
    if (gone.length === 0) return;
    for (const p of gone) this.held.delete(p.handle);
    this.ready = this.ready.filter((p) => this.held.has(p.handle));
  }

  private take(): Placed | undefined {
    const now = Date.now();
    let got: Placed | undefined;
    const d = this.demand;
    if (now - d.start >= 1000) {
      d.before = now - d.start < 2000 ? d.now : 0;
      d.start = now;
      d.now = 0;
    }
    d.now++;
    while (!got && this.ready.length > 0) {
      const p = this.ready.shift()!;
      this.held.delete(p.handle);
      if (this.usable(p, now)) got = p;
    }
    this.fill();
    return got;
  }

  private usable(p: Placed, now: number): boolean {
    return (
      p.expiresAt - now >= this.cfg.leaseMs / 2 &&
      p.replicas.every((s, i) => s.epoch === p.epochs[i] && this.cluster.servers.get(s.id) === s && this.cluster.mayTake(s))
    );
  }

  private fill(): void {
    const perSecond = Math.max(this.demand.now, this.demand.before);
    const want = Math.min(this.cfg.chunkPoolSize, MAX_BATCH, Math.max(MIN_WANT, Math.ceil(perSecond / 10)));
    // Topped up while a quarter is gone: making a batch takes a while, and meanwhile creates go on.
    if (this.filling || want === 0 || this.ready.length > (want * 3) / 4) return;
    this.filling = true;
    this.make(want - this.ready.length)
      .catch((e) => this.log.warn(`chunk pool: ${asGfsError(e).message}`))
      .finally(() => {
        this.filling = false;
      });
  }

  private async make(count: number): Promise<void> {
    // Placed chunk by chunk as single chunks are (fewest chunks first, counting the pool's own),
    // so a batch spreads over the servers instead of landing on three of them.
    const pooled = new Map<string, number>();
    const count1 = (s: Chunkserver) => pooled.set(s.id, (pooled.get(s.id) ?? 0) + 1);
    for (const p of this.ready) p.replicas.forEach(count1);
    const first = this.ns.nextHandle;
    const placed: Array<Omit<Placed, 'expiresAt'>> = [];
    for (let i = 0; i < count; i++) {
      const replicas = this.cluster.pickTargets(this.cfg.replication, undefined, undefined, (s) => pooled.get(s.id) ?? 0);
      // Short of servers: chunks are placed one by one when asked for, on as many as there are.
      if (replicas.length < this.cfg.replication) break;
      replicas.forEach(count1);
      // Primaries take turns, so that no one server leads every chain.
      const primary = replicas[(first + i) % replicas.length];
      placed.push({ handle: first + i, primary, replicas, epochs: replicas.map((s) => s.epoch) });
    }
    if (placed.length === 0) return;
    const reserve: NsOp = { t: 'reserveHandles', next: first + placed.length };
    this.ns.apply(reserve);
    for (const p of placed) this.held.add(p.handle);
    const servers = [...new Set(placed.flatMap((p) => p.replicas))];
    let results: Array<PromiseSettledResult<{ made: ChunkHandle[] }>> = [];
    try {
      await this.commit(reserve); // on disk before any chunkserver hears of the handles
      results = await Promise.allSettled(
        servers.map((s) => {
          const mine = placed.filter((p) => p.replicas.includes(s));
          const lead = mine.filter((p) => p.primary === s).map((p) => p.handle);
          return s.peer.call('makeChunks', { handles: mine.map((p) => p.handle), lead, version: 1, leaseMs: this.cfg.leaseMs });
        }),
      );
    } finally {
      // Measured after the primaries answered: their own lease clocks started earlier.
      const expiresAt = Date.now() + this.cfg.leaseMs;
      const madeOn = new Map(servers.map((s, i) => [s, new Set(results[i]?.status === 'fulfilled' ? results[i].value.made : [])]));
      for (const p of placed) {
        if (p.replicas.every((s) => madeOn.get(s)!.has(p.handle))) this.ready.push({ ...p, expiresAt });
        else this.held.delete(p.handle);
      }
    }
    const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [`${servers[i].address}: ${asGfsError(r.reason).message}`] : []));
    if (failed.length) this.log.warn(`chunk pool: ${failed.join('; ')}`);
  }
}
