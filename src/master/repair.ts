// Background repair: the master compares what chunkservers report with what should be, and hands
// out instructions in heartbeat replies — delete garbage, stale and surplus replicas; copy chunks
// that have fewer live replicas than the goal (fewest first, a bounded number at a time).

import type { ChunkHandle, ChunkReport, MasterCommand } from '../protocol/messages.js';
import type { Cluster, Chunkserver } from './cluster.js';
import type { Namespace } from './namespace.js';
import type { Logger } from '../log.js';

interface Copy {
  target: string;
  startedAt: number;
}

export class Repair {
  private readonly queued = new Map<string, MasterCommand[]>();
  private readonly copies = new Map<ChunkHandle, Copy>();
  /** Replicas found corrupt: handle → ids of servers holding a bad copy. */
  private readonly corrupt = new Map<ChunkHandle, Set<string>>();

  constructor(
    private readonly ns: Namespace,
    private readonly cluster: Cluster,
    private readonly cfg: { replication: number; rpcTimeoutMs: number; maxCopies: number },
    private readonly log: Logger,
  ) {}

  /** Reconcile one server's full chunk report (registration or heartbeat) with the namespace. */
  report(server: Chunkserver, chunks: ChunkReport[], corrupt: ChunkHandle[]): void {
    const remove: ChunkReport[] = [];
    const current = new Set<ChunkHandle>();
    for (const [handle, version] of chunks) {
      const want = this.ns.versions.get(handle);
      if (want === undefined) remove.push([handle, version]); // garbage: no file has it any more
      else if (version < want) remove.push([handle, version]); // stale: missed a lease grant
      else current.add(handle); // (a version above ours cannot be: every bump is logged first)
    }
    for (const h of server.chunks) if (!current.has(h)) this.cluster.removeReplica(h, server);
    for (const h of current) {
      this.cluster.addReplica(h, server);
      if (this.copies.get(h)?.target === server.id) this.copies.delete(h);
    }
    for (const h of corrupt) this.markCorrupt(h, server);
    if (remove.length) this.queue(server.id, { op: 'delete', chunks: remove });
  }

  /** A replica a reader found bad: it no longer counts, and is deleted once replaced. */
  markCorrupt(handle: ChunkHandle, server: Chunkserver): void {
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
    return cmds;
  }

  /** One pass: schedule copies for under-replicated chunks, deletes for bad and surplus ones. */
  tick(now: number): void {
    for (const [h, c] of this.copies) {
      if (now - c.startedAt > this.cfg.rpcTimeoutMs * 2 || !this.cluster.servers.get(c.target)?.alive) this.copies.delete(h);
    }
    const needy: Array<[ChunkHandle, number]> = [];
    for (const [handle, version] of this.ns.versions) {
      if (version === 0) continue;
      const live = this.cluster.replicasOf(handle);
      if (live.length < this.cfg.replication && live.length > 0 && !this.copies.has(handle)) needy.push([handle, live.length]);
      else if (live.length >= this.cfg.replication) this.dropBadCopies(handle);
    }
    needy.sort((a, b) => a[1] - b[1]); // fewest live replicas first
    for (const [handle] of needy) {
      if (this.copies.size >= this.cfg.maxCopies) break;
      const holders = this.cluster.replicasOf(handle);
      const exclude = new Set(holders.map((s) => s.id));
      for (const id of this.corrupt.get(handle) ?? []) exclude.add(id);
      const [target] = this.cluster.pickTargets(1, exclude);
      if (!target) continue;
      this.copies.set(handle, { target: target.id, startedAt: now });
      this.queue(target.id, { op: 'replicate', handle, version: this.ns.versions.get(handle)!, from: holders.map((s) => s.address) });
      this.log.info(`re-replicating chunk ${handle} (${holders.length} live) to ${target.address}`);
    }
    for (const h of this.corrupt.keys()) if (!this.ns.versions.has(h)) this.corrupt.delete(h);
  }

  get inFlight(): number {
    return this.copies.size;
  }

  get corruptCount(): number {
    return this.corrupt.size;
  }

  private dropBadCopies(handle: ChunkHandle): void {
    const bad = this.corrupt.get(handle);
    if (!bad) return;
    const version = this.ns.versions.get(handle)!;
    for (const id of bad) this.queue(id, { op: 'delete', chunks: [[handle, version]] });
    this.corrupt.delete(handle);
  }

  private queue(serverId: string, cmd: MasterCommand): void {
    let list = this.queued.get(serverId);
    if (!list) this.queued.set(serverId, (list = []));
    list.push(cmd);
  }
}
