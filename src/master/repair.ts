// Background repair: the master compares what chunkservers report with what should be, and hands
// out instructions in heartbeat replies — delete garbage, stale, corrupt and surplus replicas; copy
// chunks that have fewer counted replicas than the goal (fewest first, a bounded number at a time,
// each from the source nearest the target); and, when nothing needs repair, move replicas from
// the fullest servers to the emptiest (rebalance.ts) and off servers being drained.
//
// A chunk is never copied while a lease on it may run: a primary could mutate it under the copy
// and the new replica, at the same version, would silently miss the write. Leases are short and
// a copy waits at most one; a grant that happens during a copy bumps the version, so the copy
// arrives stale and is deleted.

import type { ChunkHandle, ChunkReport, MasterCommand } from '../protocol/messages.js';
import type { Cluster, Chunkserver, Pending } from './cluster.js';
import type { Namespace } from './namespace.js';
import type { Logger } from '../log.js';
import { nearestFirst } from './nearness.js';
import { planMoves } from './rebalance.js';

interface Copy {
  target: string;
  /** When it was scheduled, or last seen in progress on the target. */
  startedAt: number;
  /** Its command went out in a heartbeat reply: from then on the target lists it while it works. */
  delivered: boolean;
  /** A move (rebalance or drain): the server whose replica becomes surplus once this lands. */
  from?: string;
}

/** What repair needs to know of leases. */
export interface LeaseView {
  active(handle: ChunkHandle): boolean;
  missedGrant(handle: ChunkHandle, serverId: string, version: number): boolean;
  forgetMissed(handle: ChunkHandle, serverId: string): void;
  /** Chunks whose replica on this server missed a grant. */
  distrustedOn(serverId: string): ChunkHandle[];
  /** Servers whose replica of this chunk missed a grant. */
  distrustedFor(handle: ChunkHandle): string[];
}

export interface RepairConfig {
  replication: number;
  rpcTimeoutMs: number;
  /** Copies one chunkserver receives at a time (and, times the servers, the cluster's cap). */
  copiesPerServer: number;
}

export class Repair implements Pending {
  private readonly queued = new Map<string, MasterCommand[]>();
  private readonly copies = new Map<ChunkHandle, Copy>();
  /** Replicas found corrupt: handle → ids of servers holding a bad copy. */
  private readonly corrupt = new Map<ChunkHandle, Set<string>>();
  /** Moves that landed: handle → the server whose replica is now surplus. */
  private readonly leaving = new Map<ChunkHandle, string>();
  /**
   * Deletes sent and not yet done: server id → handle → the version named. A heartbeat can still
   * list such a replica (the delete waits there behind a read of it, say): it is not counted
   * again, or the next surplus check would delete a second, good replica. The delete is sent
   * again instead; the entry goes once the server no longer lists the replica.
   */
  private readonly deleting = new Map<string, Map<ChunkHandle, number>>();
  /** Under-replicated chunks the last tick found, fewest replicas first, not yet being copied. */
  private backlog: ChunkHandle[] = [];

  constructor(
    private readonly ns: Namespace,
    private readonly cluster: Cluster,
    private readonly leases: LeaseView,
    private readonly cfg: RepairConfig,
    private readonly log: Logger,
    /** Whether a replica no file has is a chunk placed ahead of need (chunk-pool.ts), not garbage. */
    private readonly placedAhead: (handle: ChunkHandle) => boolean = () => false,
  ) {
    cluster.pending = this;
  }

  /**
   * Reconcile one server's full chunk report (registration or heartbeat) with the namespace.
   * replicating: the copies it is working on (absent: unknown, e.g. at registration).
   */
  report(server: Chunkserver, chunks: ChunkReport[], corrupt: ChunkHandle[], replicating?: ChunkHandle[]): void {
    const remove: ChunkReport[] = [];
    const current = new Set<ChunkHandle>();
    const reported = new Set<ChunkHandle>();
    let stale = 0;
    const ordered = this.deleting.get(server.id);
    for (const [handle, version] of chunks) {
      reported.add(handle);
      const want = this.ns.versions.get(handle);
      const doomed = ordered?.get(handle);
      if (doomed !== undefined && version <= doomed) {
        remove.push([handle, doomed]); // still being deleted there
      } else if (want === undefined) {
        // Garbage: no file has it any more (or yet, if the chunk pool placed it ahead of need).
        if (!this.placedAhead(handle)) remove.push([handle, version]);
      } else if (version < want || this.leases.missedGrant(handle, server.id, version)) {
        remove.push([handle, version]); // stale: missed a lease grant (never served: reads name the version)
        stale++;
      } else current.add(handle); // (a version above ours cannot be: every bump is logged first)
    }
    for (const h of server.chunks) if (!current.has(h)) this.cluster.removeReplica(h, server);
    let settled = false;
    for (const h of current) {
      this.cluster.addReplica(h, server);
      // The server itself says this replica is good: a fresh copy replaced the bad one there.
      this.corrupt.get(h)?.delete(server.id);
      if (this.corrupt.get(h)?.size === 0) this.corrupt.delete(h);
      const c = this.copies.get(h);
      if (c?.target === server.id) {
        this.copies.delete(h);
        settled = true;
        if (c.from !== undefined) this.leaving.set(h, c.from);
      }
    }
    for (const h of corrupt) {
      reported.add(h);
      const doomed = ordered?.get(h);
      if (doomed !== undefined) remove.push([h, doomed]);
      else if (this.ns.versions.has(h)) this.markCorrupt(h, server);
      else remove.push([h, Number.MAX_SAFE_INTEGER]); // a bad replica of no file's chunk: just garbage
    }
    if (replicating) {
      const working = new Set(replicating);
      for (const [h, c] of this.copies) {
        if (c.target !== server.id || !c.delivered || current.has(h)) continue;
        if (working.has(h)) c.startedAt = Date.now();
        else {
          this.copies.delete(h); // it failed there (the target logged why): schedule it again
          settled = true;
        }
      }
    }
    for (const [h] of remove) if (!this.ns.versions.has(h)) this.leases.forgetMissed(h, server.id);
    for (const h of this.leases.distrustedOn(server.id)) if (!reported.has(h)) this.leases.forgetMissed(h, server.id);
    if (ordered) for (const h of ordered.keys()) if (!reported.has(h)) ordered.delete(h); // done
    if (stale > 0) this.log.info(`${server.address} holds ${stale} stale replica(s) (older version): deleting them`);
    this.deleteOn(server.id, remove);
    // Copies finished: start the next ones now (this server's go out in this very reply) rather
    // than at the next tick, so that recovery runs at copy speed, not at tick speed.
    if (settled) this.refill(Date.now());
  }

  /** A replica a reader found bad: it no longer counts, and is deleted once replaced. */
  markCorrupt(handle: ChunkHandle, server: Chunkserver): void {
    if (!this.ns.versions.has(handle)) return;
    if (!this.corrupt.get(handle)?.has(server.id)) this.log.warn(`corrupt replica of chunk ${handle} on ${server.address}: not served, to be replaced`);
    let ids = this.corrupt.get(handle);
    if (!ids) this.corrupt.set(handle, (ids = new Set()));
    ids.add(server.id);
    this.cluster.removeReplica(handle, server);
  }

  /** Commands waiting for this server's next heartbeat. */
  take(serverId: string): MasterCommand[] {
    const cmds = this.queued.get(serverId) ?? [];
    this.queued.delete(serverId);
    for (const c of this.copies.values()) if (c.target === serverId) c.delivered = true;
    return cmds;
  }

  /** One pass: copies for under-replicated chunks, deletes for bad and surplus ones, then moves. */
  tick(now: number): void {
    const copyTimeout = 4 * this.cfg.rpcTimeoutMs;
    for (const [h, c] of this.copies) {
      if (now - c.startedAt > copyTimeout || !this.cluster.servers.get(c.target)?.alive || !this.ns.versions.has(h)) this.copies.delete(h);
    }
    for (const id of this.queued.keys()) if (!this.cluster.servers.get(id)?.alive) this.queued.delete(id);
    for (const id of this.deleting.keys()) if (!this.cluster.servers.has(id)) this.deleting.delete(id);
    for (const h of this.leaving.keys()) if (!this.ns.versions.has(h)) this.leaving.delete(h);
    for (const h of this.corrupt.keys()) if (!this.ns.versions.has(h)) this.corrupt.delete(h);

    const needy: Array<[ChunkHandle, number]> = [];
    for (const [handle, version] of this.ns.versions) {
      if (version === 0) continue;
      const { live, counted } = this.cluster.liveCounts(handle);
      if (counted < this.cfg.replication) {
        if (live > 0 && !this.copies.has(handle) && !this.leases.active(handle)) needy.push([handle, counted]);
      } else {
        this.dropBadCopies(handle);
        if (live <= this.cfg.replication) this.leaving.delete(handle); // nothing above the goal (any more)
        else if (!this.copies.has(handle) && !this.leases.active(handle)) this.dropSurplus(handle);
      }
    }
    needy.sort((a, b) => a[1] - b[1]); // fewest counted replicas first
    this.backlog = needy.map(([h]) => h);
    this.refill(now);
    if (needy.length === 0 && this.corrupt.size === 0) {
      const room = (s: Chunkserver) => this.cfg.copiesPerServer - this.incoming(s.id);
      for (const m of planMoves(this.cluster, this.cfg.replication, this.cap() - this.copies.size, room, this.movable)) {
        this.scheduleCopy(m.handle, now, m.to, m.from);
      }
    }
  }

  // ---- what status shows ----

  get inFlight(): number {
    let n = 0;
    for (const c of this.copies.values()) if (c.from === undefined) n++;
    return n;
  }

  get movesInFlight(): number {
    return this.copies.size - this.inFlight;
  }

  get corruptCount(): number {
    let n = 0;
    for (const ids of this.corrupt.values()) n += ids.size;
    return n;
  }

  /** Chunks below their goal, and chunks with no live replica at all (version 0 ones are not placed yet). */
  counts(): { underReplicated: number; lost: number } {
    let under = 0;
    let lost = 0;
    for (const [h, v] of this.ns.versions) {
      if (v === 0) continue;
      const { live, counted } = this.cluster.liveCounts(h);
      if (counted < this.cfg.replication) under++;
      if (live === 0) lost++;
    }
    return { underReplicated: under, lost };
  }

  // ---- Pending (for placement) ----

  incoming(serverId: string): number {
    let n = 0;
    for (const c of this.copies.values()) if (c.target === serverId) n++;
    return n;
  }

  outgoing(serverId: string): number {
    let n = 0;
    for (const c of this.copies.values()) if (c.from === serverId) n++;
    for (const id of this.leaving.values()) if (id === serverId) n++;
    return n;
  }

  // ---- internals ----

  /** Total copies at once: enough to keep every server busy, few enough that clients are served. */
  private cap(): number {
    return Math.max(1, this.cfg.copiesPerServer * this.cluster.alive().length);
  }

  /** Copies for the backlog, in its order, up to the cap; those placed (or no longer needed) leave it. */
  private refill(now: number): void {
    const rest: ChunkHandle[] = [];
    let i = 0;
    // (rest.length bounds the work when every target is busy: the rest waits for the next call)
    for (; i < this.backlog.length && this.copies.size < this.cap() && rest.length < 1000; i++) {
      const h = this.backlog[i];
      if (!this.ns.versions.has(h) || this.copies.has(h) || this.cluster.liveCounts(h).counted >= this.cfg.replication) continue;
      if (this.leases.active(h)) continue; // the next tick looks again
      // Only short because a replica sits on a server being drained: a move off that server.
      const drained = this.cluster.replicasOf(h).find((s) => this.cluster.isDraining(s));
      if (!this.scheduleCopy(h, now, undefined, drained)) rest.push(h); // no room on a target now
    }
    this.backlog = rest.concat(this.backlog.slice(i));
  }

  /** Whether a chunk may be moved to `to` now (for rebalance.ts). */
  private readonly movable = (handle: ChunkHandle, to: Chunkserver): boolean =>
    !this.copies.has(handle) &&
    !this.leaving.has(handle) &&
    !this.leases.active(handle) &&
    !this.corrupt.get(handle)?.has(to.id) &&
    !this.deleting.get(to.id)?.has(handle) &&
    !this.leases.distrustedFor(handle).includes(to.id);

  /** Queue a copy of handle (to `to`, or the best target); false when no target has room. */
  private scheduleCopy(handle: ChunkHandle, now: number, to?: Chunkserver, from?: Chunkserver): boolean {
    const holders = this.cluster.replicasOf(handle);
    if (holders.length === 0) return false;
    let target = to;
    if (!target) {
      const exclude = new Set(holders.map((s) => s.id));
      for (const id of this.leases.distrustedFor(handle)) exclude.add(id);
      // (A server still deleting its replica would take the command as done: it holds one.)
      for (const [id, doomed] of this.deleting) if (doomed.has(handle)) exclude.add(id);
      const pick = () =>
        this.cluster.pickTargets(Infinity, exclude, holders[0].address).find((s) => this.incoming(s.id) < this.cfg.copiesPerServer);
      // A server holding a bad copy only as a last resort (the good copy then replaces it in place).
      const bad = [...(this.corrupt.get(handle) ?? [])];
      for (const id of bad) exclude.add(id);
      target = pick();
      if (!target && bad.length > 0) {
        for (const id of bad) exclude.delete(id);
        target = pick();
      }
    }
    if (!target) return false;
    // A move reads the replica it leaves behind first: that replica is then checked block by block
    // (a bad one fails the read, is reported and the copy goes on from the next source) rather
    // than deleted unread once the copy lands, and the read falls on the fuller server.
    const sources = nearestFirst(holders, (s) => s.address, target.address).sort((a, b) => Number(b.id === from?.id) - Number(a.id === from?.id));
    this.copies.set(handle, { target: target.id, startedAt: now, delivered: false, ...(from ? { from: from.id } : {}) });
    this.queue(target.id, { op: 'replicate', handle, version: this.ns.versions.get(handle)!, from: sources.map((s) => s.address) });
    const why = from ? (this.cluster.isDraining(from) ? `draining ${from.address}` : `rebalancing from ${from.address}`) : `${this.cluster.countedReplicasOf(handle).length} counted`;
    this.log.info(`copying chunk ${handle} (${why}) to ${target.address}`);
    return true;
  }

  private dropBadCopies(handle: ChunkHandle): void {
    const bad = this.corrupt.get(handle);
    if (!bad) return;
    const version = this.ns.versions.get(handle)!;
    for (const id of bad) this.deleteOn(id, [[handle, version]]);
    this.corrupt.delete(handle);
  }

  /**
   * Replicas above the goal go: first those on servers being drained, then the one a move left
   * behind, then those on the servers with the most chunks.
   */
  private dropSurplus(handle: ChunkHandle): void {
    const live = this.cluster.replicasOf(handle);
    const counted = live.filter((s) => !this.cluster.isDraining(s));
    const victims = live.filter((s) => this.cluster.isDraining(s));
    const extra = counted.length - this.cfg.replication;
    if (extra > 0) {
      const leavingId = this.leaving.get(handle);
      const order = [...counted].sort(
        (a, b) => Number(b.id === leavingId) - Number(a.id === leavingId) || this.cluster.expectedChunks(b) - this.cluster.expectedChunks(a),
      );
      victims.push(...order.slice(0, extra));
    }
    this.leaving.delete(handle);
    if (victims.length === 0) return;
    const version = this.ns.versions.get(handle)!;
    for (const s of victims) {
      this.cluster.removeReplica(handle, s);
      this.deleteOn(s.id, [[handle, version]]);
    }
  }

  /** Send a server deletes of these replicas (each at or below its version), and remember them. */
  private deleteOn(serverId: string, chunks: ChunkReport[]): void {
    if (chunks.length === 0) return;
    let doomed = this.deleting.get(serverId);
    if (!doomed) this.deleting.set(serverId, (doomed = new Map()));
    for (const [h, v] of chunks) doomed.set(h, Math.max(v, doomed.get(h) ?? 0));
    this.queue(serverId, { op: 'delete', chunks });
  }

  private queue(serverId: string, cmd: MasterCommand): void {
    let list = this.queued.get(serverId);
    if (!list) this.queued.set(serverId, (list = []));
    list.push(cmd);
  }
}
