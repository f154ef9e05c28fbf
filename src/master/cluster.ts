// What the master knows of its chunkservers and of where replicas are. None of it is persisted:
// after a restart it is rebuilt from registrations and heartbeats (paper §2.6.2). Drain marks live
// here too (by server id, so they survive a reconnect), and are lost with a master restart.

import type { ChunkHandle, ChunkserverControlApi, ChunkserverStatus, MasterChunkserverApi, ServerAddress } from '../protocol/messages.js';
import type { Peer } from '../protocol/rpc.js';
import { nearness } from './nearness.js';

export type ChunkserverPeer = Peer<ChunkserverControlApi, MasterChunkserverApi>;

export interface Chunkserver {
  id: string;
  address: ServerAddress;
  peer: ChunkserverPeer;
  alive: boolean;
  /**
   * Bumped each time the server is found dead or registers anew. A lease remembers the epochs of
   * its replicas: a replica whose server went away meanwhile may have missed mutations even if it
   * is back now, so the chunk's version must move on without it.
   */
  epoch: number;
  lastHeartbeat: number;
  freeBytes: number;
  usedBytes: number;
  load: number;
  /** Replicas it holds at the current version. */
  chunks: Set<ChunkHandle>;
}

/** Chunks placed on or copied to a server but not reported yet, and chunks about to leave it. */
export interface Pending {
  incoming(serverId: string): number;
  outgoing(serverId: string): number;
}

const noPending: Pending = { incoming: () => 0, outgoing: () => 0 };

export class Cluster {
  readonly servers = new Map<string, Chunkserver>();
  /** handle → ids of live servers holding the current version. */
  readonly locations = new Map<ChunkHandle, Set<string>>();
  /** Ids of servers being drained: they take no new replicas and their replicas do not count. */
  readonly draining = new Set<string>();
  pending: Pending = noPending;

  constructor(
    private readonly deadAfterMs: number,
    /** A server needs this much free space to take a new replica (a replica may grow to a chunk). */
    readonly minFreeBytes = 0,
  ) {}

  alive(): Chunkserver[] {
    return [...this.servers.values()].filter((s) => s.alive);
  }

  byAddress(address: ServerAddress): Chunkserver | undefined {
    for (const s of this.servers.values()) if (s.address === address) return s;
    return undefined;
  }

  isDraining(s: Chunkserver): boolean {
    return this.draining.has(s.id);
  }

  /**
   * Live servers holding the current version of handle: nearest to `near` (a client's host) first,
   * then least loaded, servers being drained last.
   */
  replicasOf(handle: ChunkHandle, near?: string): Chunkserver[] {
    const ids = this.locations.get(handle);
    if (!ids) return [];
    const out: Chunkserver[] = [];
    for (const id of ids) {
      const s = this.servers.get(id);
      if (s?.alive) out.push(s);
    }
    const dist = (s: Chunkserver) => (near === undefined ? 0 : nearness(s.address, near));
    return out.sort((a, b) => Number(this.isDraining(a)) - Number(this.isDraining(b)) || dist(a) - dist(b) || a.load - b.load);
  }

  /** How many live replicas a chunk has, and how many of them count (not on draining servers); no allocation, for scans. */
  liveCounts(handle: ChunkHandle): { live: number; counted: number } {
    let live = 0;
    let counted = 0;
    for (const id of this.locations.get(handle) ?? []) {
      if (!this.servers.get(id)?.alive) continue;
      live++;
      if (!this.draining.has(id)) counted++;
    }
    return { live, counted };
  }

  /** Live replicas that count towards the replication goal (those on draining servers do not). */
  countedReplicasOf(handle: ChunkHandle): Chunkserver[] {
    return this.replicasOf(handle).filter((s) => !this.isDraining(s));
  }

  addReplica(handle: ChunkHandle, server: Chunkserver): void {
    let ids = this.locations.get(handle);
    if (!ids) this.locations.set(handle, (ids = new Set()));
    ids.add(server.id);
    server.chunks.add(handle);
  }

  removeReplica(handle: ChunkHandle, server: Chunkserver): void {
    const ids = this.locations.get(handle);
    ids?.delete(server.id);
    if (ids && ids.size === 0) this.locations.delete(handle);
    server.chunks.delete(handle);
  }

  forgetChunk(handle: ChunkHandle): void {
    for (const id of this.locations.get(handle) ?? []) this.servers.get(id)?.chunks.delete(handle);
    this.locations.delete(handle);
  }

  /** A server is dead: its replicas no longer count. */
  markDead(server: Chunkserver): void {
    server.alive = false;
    server.epoch++;
    for (const h of server.chunks) {
      const ids = this.locations.get(h);
      ids?.delete(server.id);
      if (ids && ids.size === 0) this.locations.delete(h);
    }
    server.chunks.clear();
  }

  /** Servers whose heartbeats stopped; returns those newly found dead. */
  expire(now: number): Chunkserver[] {
    const dead: Chunkserver[] = [];
    for (const s of this.servers.values()) {
      if (s.alive && now - s.lastHeartbeat > this.deadAfterMs) {
        this.markDead(s);
        dead.push(s);
      }
    }
    return dead;
  }

  /** Replicas a server will hold once the copies to it land and the moves off it are done. */
  expectedChunks(s: Chunkserver): number {
    return s.chunks.size + this.pending.incoming(s.id) - this.pending.outgoing(s.id);
  }

  /** Servers that may take a new replica: alive, not draining, with room for a whole chunk. */
  eligible(exclude: Set<string> = new Set()): Chunkserver[] {
    return this.alive().filter((s) => !exclude.has(s.id) && this.mayTake(s));
  }

  /** Whether s may take a new replica: alive, not draining, with room for a whole chunk. */
  mayTake(s: Chunkserver): boolean {
    return s.alive && !this.isDraining(s) && s.freeBytes > this.minFreeBytes;
  }

  /** Fewer of the servers up and in service have room for a new replica than a new chunk needs. */
  shortOfRoom(replication: number): boolean {
    const inService = this.alive().filter((s) => !this.isDraining(s)).length;
    return inService > 0 && this.eligible().length < Math.min(replication, inService);
  }

  /** The ids of the servers up and in service that have no room for a new replica. */
  outOfRoom(): Set<string> {
    return new Set(this.alive().filter((s) => !this.isDraining(s) && s.freeBytes <= this.minFreeBytes).map((s) => s.id));
  }

  /** Whether one of the servers ids holds a replica of handle (up or not). */
  holdsAny(handle: ChunkHandle, ids: Set<string>): boolean {
    for (const id of this.locations.get(handle) ?? []) if (ids.has(id)) return true;
    return false;
  }

  /**
   * Where new replicas should go (the seeds' placement by free space, chunk count and nearness):
   * servers with the fewest chunks (counting copies on their way) first, then the least full disk,
   * then the nearest to `near` (the host a copy will come from). also(s): chunks to count on s
   * besides (the chunk pool's, placed but in no file yet).
   */
  pickTargets(count: number, exclude: Set<string> = new Set(), near?: string, also: (s: Chunkserver) => number = () => 0): Chunkserver[] {
    const dist = (s: Chunkserver) => (near === undefined ? 0 : nearness(s.address, near));
    return this.eligible(exclude)
      .map((s) => ({ s, n: this.expectedChunks(s) + also(s), u: utilisation(s), d: dist(s) }))
      .sort((a, b) => a.n - b.n || a.u - b.u || a.d - b.d)
      .slice(0, count)
      .map((x) => x.s);
  }

  status(now: number): ChunkserverStatus[] {
    return [...this.servers.values()].map((s) => ({
      id: s.id, address: s.address, alive: s.alive, draining: this.isDraining(s), freeBytes: s.freeBytes, usedBytes: s.usedBytes,
      chunks: s.chunks.size, load: s.load, lastHeartbeatMsAgo: now - s.lastHeartbeat,
    }));
  }
}

/**
 * Used share of the disk: ranks servers the same way whether each has a disk of its own or they
 * share one (then free space is the same for all and only the used bytes differ).
 */
function utilisation(s: Chunkserver): number {
  const total = s.usedBytes + s.freeBytes;
  return total > 0 ? s.usedBytes / total : 1;
}
