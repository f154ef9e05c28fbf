// What the master knows of its chunkservers and of where replicas are. None of it is persisted:
// after a restart it is rebuilt from registrations and heartbeats (paper §2.6.2).

import type { ChunkHandle, ChunkserverControlApi, ChunkserverStatus, MasterChunkserverApi, ServerAddress } from '../protocol/messages.js';
import type { Peer } from '../protocol/rpc.js';

export type ChunkserverPeer = Peer<ChunkserverControlApi, MasterChunkserverApi>;

export interface Chunkserver {
  id: string;
  address: ServerAddress;
  peer: ChunkserverPeer;
  alive: boolean;
  lastHeartbeat: number;
  freeBytes: number;
  usedBytes: number;
  load: number;
  /** Replicas it holds at the current version. */
  chunks: Set<ChunkHandle>;
}

export class Cluster {
  readonly servers = new Map<string, Chunkserver>();
  /** handle → ids of live servers holding the current version. */
  readonly locations = new Map<ChunkHandle, Set<string>>();

  constructor(private readonly deadAfterMs: number) {}

  alive(): Chunkserver[] {
    return [...this.servers.values()].filter((s) => s.alive);
  }

  byAddress(address: ServerAddress): Chunkserver | undefined {
    for (const s of this.servers.values()) if (s.address === address) return s;
    return undefined;
  }

  /** Live servers holding the current version of handle, least loaded first. */
  replicasOf(handle: ChunkHandle): Chunkserver[] {
    const ids = this.locations.get(handle);
    if (!ids) return [];
    const out: Chunkserver[] = [];
    for (const id of ids) {
      const s = this.servers.get(id);
      if (s?.alive) out.push(s);
    }
    return out.sort((a, b) => a.load - b.load);
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

  /**
   * Where a new replica should go: live servers not in `exclude`, most free space first, then
   * fewest chunks (the seeds' placement by free space and chunk count).
   */
  pickTargets(count: number, exclude: Set<string> = new Set()): Chunkserver[] {
    return this.alive()
      .filter((s) => !exclude.has(s.id) && s.freeBytes > 0)
      .sort((a, b) => b.freeBytes - a.freeBytes || a.chunks.size - b.chunks.size)
      .slice(0, count);
  }

  status(now: number): ChunkserverStatus[] {
    return [...this.servers.values()].map((s) => ({
      id: s.id, address: s.address, alive: s.alive, freeBytes: s.freeBytes, usedBytes: s.usedBytes,
      chunks: s.chunks.size, load: s.load, lastHeartbeatMsAgo: now - s.lastHeartbeat,
    }));
  }
}
