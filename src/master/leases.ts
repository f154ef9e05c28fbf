// Leases (paper §3.1): one primary per chunk at a time. A grant bumps the chunk's version (logged
// before any replica hears of it), so a replica that misses the grant is stale from then on.
// The master never grants while an earlier lease may still run: not before it expires, and after
// a restart (when it has forgotten its leases) not before one whole lease period has passed.

import { GfsError } from '../protocol/errors.js';
import type { ChunkHandle, WriteTarget } from '../protocol/messages.js';
import type { Cluster, Chunkserver } from './cluster.js';
import type { Namespace } from './namespace.js';
import type { NsOp } from './ops.js';
import type { Logger } from '../log.js';

interface Lease {
  primary: string;
  expiresAt: number;
}

export class Leases {
  private readonly leases = new Map<ChunkHandle, Lease>();
  private readonly granting = new Map<ChunkHandle, Promise<WriteTarget>>();
  private readonly noGrantBefore: number;

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
      if (primary?.alive && replicas.includes(primary)) {
        return Promise.resolve(this.describe(handle, index, primary, replicas, lease.expiresAt - now));
      }
      throw new GfsError('ESTALE', `chunk ${handle}: its primary is gone; a new lease in ${Math.ceil((lease.expiresAt - now) / 1000)} s`);
    }
    let p = this.granting.get(handle);
    if (!p) {
      p = this.grant(handle, index).finally(() => this.granting.delete(handle));
      this.granting.set(handle, p);
    }
    return p;
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
  }

  private async grant(handle: ChunkHandle, index: number): Promise<WriteTarget> {
    const version = this.ns.versions.get(handle);
    if (version === undefined) throw new GfsError('ESTALE', `chunk ${handle} no longer exists`);
    const fresh = version === 0; // never placed: no replica and no lease can exist anywhere
    if (!fresh && Date.now() < this.noGrantBefore) {
      const s = Math.ceil((this.noGrantBefore - Date.now()) / 1000);
      throw new GfsError('ESTALE', `the master restarted: it grants leases again in ${s} s`);
    }
    const replicas = fresh ? this.cluster.pickTargets(this.cfg.replication) : this.cluster.replicasOf(handle);
    if (replicas.length === 0) {
      throw new GfsError(fresh ? 'EUNAVAIL' : 'EIO', fresh ? 'no live chunkserver has room for a new chunk' : `no live replica of chunk ${handle}`);
    }
    const next = version + 1;
    const op: NsOp = { t: 'version', handle, version: next };
    this.ns.apply(op);
    await this.commit(op);
    const [primary] = replicas;
    const results = await Promise.allSettled(
      replicas.map((s) =>
        s.peer.call('setVersion', { handle, version: next, create: fresh, ...(s === primary ? { leaseMs: this.cfg.leaseMs } : {}) }),
      ),
    );
    const holders: Chunkserver[] = [];
    results.forEach((r, i) => {
      const s = replicas[i];
      if (r.status === 'fulfilled') {
        holders.push(s);
        if (fresh) this.cluster.addReplica(handle, s);
      } else {
        this.log.warn(`setVersion ${handle} v${next} on ${s.address} failed: ${(r.reason as Error).message}`);
        this.cluster.removeReplica(handle, s);
      }
    });
    if (!holders.includes(primary)) throw new GfsError('EUNAVAIL', `chunk ${handle}: primary ${primary.address} did not take the lease`);
    // Measured from now, after the primary answered: the primary's own clock started earlier, so
    // its lease always ends before the master's view of it.
    const expiresAt = Date.now() + this.cfg.leaseMs;
    this.leases.set(handle, { primary: primary.id, expiresAt });
    return this.describe(handle, index, primary, holders, this.cfg.leaseMs);
  }

  private describe(handle: ChunkHandle, index: number, primary: Chunkserver, replicas: Chunkserver[], leaseMs: number): WriteTarget {
    return {
      index, handle, version: this.ns.versions.get(handle)!, primary: primary.address,
      secondaries: replicas.filter((s) => s !== primary).map((s) => s.address), leaseMs,
    };
  }
}
