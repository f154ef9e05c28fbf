// Leases (paper §3.1): one primary per chunk at a time. A grant bumps the chunk's version (logged
// before any replica hears of it), so a replica that misses the grant is stale from then on.
// The master never grants while an earlier lease may still run: not before it expires, and after
// a restart (when it has forgotten its leases) not before one whole lease period has passed.
//
// A lease remembers which replicas took it (and the epoch of their servers). If one of them is
// lost while the lease runs, it may miss the next mutations yet come back at the same version; so
// the master moves the version on at once, granting the lease again to the same primary (never a
// second one) with the replicas that are left. A replica that did not take a grant is distrusted
// at that version even if it applies it later.

import { GfsError, asGfsError } from '../protocol/errors.js';
import type { ChunkHandle, WriteTarget } from '../protocol/messages.js';
import type { Cluster, Chunkserver } from './cluster.js';
import type { Namespace } from './namespace.js';
import type { NsOp } from './ops.js';
import type { Logger } from '../log.js';

interface Lease {
  primary: string;
  expiresAt: number;
  /** Server id → its epoch when it took the grant. */
  holders: Map<string, number>;
}

export class Leases {
  private readonly leases = new Map<ChunkHandle, Lease>();
  private readonly granting = new Map<ChunkHandle, Promise<WriteTarget>>();
  /** handle → server id → the version that server failed to take: its replica at or below it is stale. */
  private readonly missed = new Map<ChunkHandle, Map<string, number>>();
  private readonly noGrantBefore: number;
  /** Whose turn it is to be primary (see grant). */
  private turn = 0;

  constructor(
    private readonly ns: Namespace,
    private readonly cluster: Cluster,
    private readonly commit: (op: NsOp) => Promise<void>,
    private readonly cfg: { leaseMs: number; replication: number },
    recovered: boolean,
    private readonly log: Logger,
  ) {
    this.noGrantBefore = recovered ? Date.now() + cfg.leaseMs : 0;
  }

  /** The chunk's primary and secondaries, granting a lease if none runs. index is only echoed back. */
  target(handle: ChunkHandle, index: number): Promise<WriteTarget> {
    const now = Date.now();
    const lease = this.leases.get(handle);
    if (lease && lease.expiresAt > now) {
      const primary = this.cluster.servers.get(lease.primary);
      const replicas = this.cluster.replicasOf(handle);
      if (primary?.alive && replicas.includes(primary) && primary.epoch === lease.holders.get(primary.id)) {
        const holders = replicas.filter((s) => lease.holders.get(s.id) === s.epoch);
        if (holders.length === lease.holders.size) {
          return Promise.resolve(this.describe(handle, index, primary, holders, lease.expiresAt - now));
        }
        // A replica went away under the lease: same primary, new version, without it.
        return this.once(handle, () => this.grant(handle, index, primary));
      }
      throw new GfsError('ESTALE', `chunk ${handle}: its primary is gone; a new lease in ${Math.ceil((lease.expiresAt - now) / 1000)} s`);
    }
    return this.once(handle, () => this.grant(handle, index));
  }

  /**
   * A chunk placed ahead of need (chunk-pool.ts) became a file's: its lease, granted to primary
   * when the replicas were made, is the running one from now on.
   */
  adopt(handle: ChunkHandle, index: number, primary: Chunkserver, holders: Chunkserver[], expiresAt: number): WriteTarget {
    this.leases.set(handle, { primary: primary.id, expiresAt, holders: new Map(holders.map((s) => [s.id, s.epoch])) });
    return this.describe(handle, index, primary, holders, expiresAt - Date.now());
  }

  /**
   * Whether a primary may be mutating the chunk now (as far as this master can know): then a copy
   * of it could miss writes, so re-replication and moves wait.
   */
  active(handle: ChunkHandle): boolean {
    const now = Date.now();
    if (now < this.noGrantBefore && (this.ns.versions.get(handle) ?? 0) > 0) return true;
    const lease = this.leases.get(handle);
    return (lease !== undefined && lease.expiresAt > now) || this.granting.has(handle);
  }

  /** A server's replica at this version missed a grant: it must not be taken as current. */
  missedGrant(handle: ChunkHandle, serverId: string, version: number): boolean {
    const v = this.missed.get(handle)?.get(serverId);
    return v !== undefined && version <= v;
  }

  distrustedOn(serverId: string): ChunkHandle[] {
    const out: ChunkHandle[] = [];
    for (const [h, m] of this.missed) if (m.has(serverId)) out.push(h);
    return out;
  }

  distrustedFor(handle: ChunkHandle): string[] {
    return [...(this.missed.get(handle)?.keys() ?? [])];
  }

  /** The server holds no replica of handle any more: nothing left to distrust. */
  forgetMissed(handle: ChunkHandle, serverId: string): void {
    const m = this.missed.get(handle);
    if (m?.delete(serverId) && m.size === 0) this.missed.delete(handle);
  }

  /** Heartbeat: a primary asks to keep leases on chunks it is mutating. */
  extend(server: Chunkserver, handles: ChunkHandle[]): ChunkHandle[] {
    const now = Date.now();
    const extended: ChunkHandle[] = [];
    for (const h of handles) {
      const lease = this.leases.get(h);
      if (lease && lease.primary === server.id && lease.expiresAt > now && this.ns.versions.has(h)) {
        lease.expiresAt = now + this.cfg.leaseMs;
        extended.push(h);
      }
    }
    return extended;
  }

  /** Leases of deleted chunks, and expired ones, are dropped. */
  sweep(): void {
    const now = Date.now();
    for (const [h, l] of this.leases) if (l.expiresAt <= now || !this.ns.versions.has(h)) this.leases.delete(h);
    for (const h of this.missed.keys()) if (!this.ns.versions.has(h)) this.missed.delete(h);
  }

  private once(handle: ChunkHandle, grant: () => Promise<WriteTarget>): Promise<WriteTarget> {
    let p = this.granting.get(handle);
    if (!p) {
      p = grant().finally(() => this.granting.delete(handle));
      this.granting.set(handle, p);
    }
    return p;
  }

  /** A new lease (version + 1); to `keep` when it already holds the running one. */
  private async grant(handle: ChunkHandle, index: number, keep?: Chunkserver): Promise<WriteTarget> {
    const version = this.ns.versions.get(handle);
    if (version === undefined) throw new GfsError('ESTALE', `chunk ${handle} no longer exists`);
    const fresh = version === 0; // never placed: no replica and no lease can exist anywhere
    if (!fresh && !keep && Date.now() < this.noGrantBefore) {
      const s = Math.ceil((this.noGrantBefore - Date.now()) / 1000);
      throw new GfsError('ESTALE', `the master restarted: it grants leases again in ${s} s`);
    }
    let replicas = fresh ? this.cluster.pickTargets(this.cfg.replication) : this.cluster.replicasOf(handle);
    if (keep) {
      const held = this.leases.get(handle)?.holders;
      replicas = [keep, ...replicas.filter((s) => s !== keep && held?.get(s.id) === s.epoch)];
    } else if (replicas.length > 1) {
      // The first is the primary and the head of the data chain (the busiest: it takes the data
      // from the client and passes it on). Placement ranks servers the same way for chunk after
      // chunk, so without turns one server led every chain of a file (measured: 1 GiB dd on a
      // fresh cluster 116-130 MB/s, 165-178 once the order happened to vary).
      const k = this.turn++ % replicas.length;
      replicas = [...replicas.slice(k), ...replicas.slice(0, k)];
    }
    if (replicas.length === 0) {
      if (!fresh) throw new GfsError('EIO', `no live replica of chunk ${handle}`);
      // Servers that are up but full will not make room by themselves soon: ENOSPC now (EUNAVAIL
      // would have the client wait its whole retry time, minutes for a file of a few chunks, and
      // then fail with EIO). With no server up at all, waiting for one to come back is right.
      const up = this.cluster.alive().length;
      if (up > 0) throw new GfsError('ENOSPC', `no chunkserver has room for a new chunk (${up} up; none in service with more than ${this.cluster.minFreeBytes} bytes free)`);
      throw new GfsError('EUNAVAIL', 'no chunkserver is up to take a new chunk');
    }
    const next = version + 1;
    const op: NsOp = { t: 'version', handle, version: next };
    this.ns.apply(op);
    // A bump must be on disk before any replica hears of it, or a restarted master could find
    // replicas newer than itself. A fresh chunk has no replica to confuse: its creation and the log
    // write go side by side, and the target is handed out only once both are done.
    const logged = this.commit(op);
    if (!fresh) await logged;
    else logged.catch(() => {}); // awaited below; not an unhandled rejection meanwhile
    const [primary] = replicas;
    if (keep) this.log.info(`chunk ${handle}: a replica was lost under the lease; v${next} with ${replicas.map((s) => s.address).join(', ')}`);
    const epochs = new Map(replicas.map((s) => [s.id, s.epoch]));
    const results = await Promise.allSettled(
      replicas.map((s) =>
        s.peer.call('setVersion', { handle, version: next, create: fresh, ...(s === primary ? { leaseMs: this.cfg.leaseMs } : {}) }),
      ),
    );
    const holders: Chunkserver[] = [];
    results.forEach((r, i) => {
      const s = replicas[i];
      if (r.status === 'fulfilled' && s.alive && s.epoch === epochs.get(s.id)) {
        holders.push(s);
        if (fresh) this.cluster.addReplica(handle, s);
      } else {
        const why = r.status === 'rejected' ? (r.reason as Error).message : 'its server went away meanwhile';
        this.log.warn(`setVersion ${handle} v${next} on ${s.address} failed: ${why}`);
        this.cluster.removeReplica(handle, s);
        // It may still apply the version late, without the mutations that follow: distrust it.
        let m = this.missed.get(handle);
        if (!m) this.missed.set(handle, (m = new Map()));
        m.set(s.id, next);
      }
    });
    await logged;
    if (!holders.includes(primary)) {
      // No replica has room for it (a new chunk on full disks): ENOSPC, which the writer is told at
      // once. Otherwise retrying is right: the next grant goes to the replicas that took this one.
      const reasons = results.flatMap((r) => (r.status === 'rejected' ? [asGfsError(r.reason)] : []));
      if (holders.length === 0 && reasons.some((e) => e.code === 'ENOSPC')) throw new GfsError('ENOSPC', `chunk ${handle}: no chunkserver had room for it`);
      throw new GfsError('EUNAVAIL', `chunk ${handle}: primary ${primary.address} did not take the lease`);
    }
    // Measured from now, after the primary answered: the primary's own clock started earlier, so
    // its lease always ends before the master's view of it.
    const expiresAt = Date.now() + this.cfg.leaseMs;
    this.leases.set(handle, { primary: primary.id, expiresAt, holders: new Map(holders.map((s) => [s.id, s.epoch])) });
    return this.describe(handle, index, primary, holders, this.cfg.leaseMs);
  }

  private describe(handle: ChunkHandle, index: number, primary: Chunkserver, replicas: Chunkserver[], leaseMs: number): WriteTarget {
    return {
      index, handle, version: this.ns.versions.get(handle)!, primary: primary.address,
      secondaries: replicas.filter((s) => s !== primary).map((s) => s.address), leaseMs,
    };
  }
}
