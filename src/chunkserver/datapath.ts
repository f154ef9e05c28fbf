// The data API (ChunkserverDataApi) that clients and other chunkservers call: pushes along a
// chain, mutations committed through the primary (paper §3.1), record appends (§3.3), reads.
//
// Ordering: every mutation of a chunk runs under that chunk's order lock. On the primary the lock
// is held across the local apply and the forwarding to every secondary, so secondaries receive a
// chunk's mutations in serial order over their connection; a secondary takes the lock before its
// first await, so it applies them in the order they arrived.

import { GfsError, asGfsError } from '../protocol/errors.js';
import type { Attr, ChunkHandle, ChunkserverDataApi, Extent, Mutation, ServerAddress, Timespec } from '../protocol/messages.js';
import type { PeerPool } from '../protocol/pool.js';
import type { Handlers } from '../protocol/rpc.js';
import type { Logger } from '../log.js';
import type { Leases } from './leases.js';
import { KeyedMutex } from './locks.js';
import type { PushBuffer } from './pushbuffer.js';
import type { ChunkStore, ReplicaInfo } from './store.js';
import {
  addressesField,
  dataField,
  dataIdField,
  extentsField,
  handleField,
  handlesField,
  mutationField,
  rangeField,
  sizeField,
  versionField,
} from './validate.js';

export interface DataPathDeps {
  store: ChunkStore;
  leases: Leases;
  pushes: PushBuffer;
  pool: PeerPool;
  log: Logger;
  /** Learned from the master's register reply. */
  chunkSize(): number;
  /** Our own address, left out of chains and secondaries so we never call ourselves. */
  self(): ServerAddress;
  /** Largest read reply (it must fit in one frame). */
  maxReadBytes: number;
  /** This server's id and the file that holds it: short-circuit readers check the two agree. */
  identity: { id: string; idPath: string };
  /** Have the master set a file's size to at least size (rejects when it cannot be reached). */
  extendFile(ino: number, size: number, mtime?: Timespec): Promise<Attr>;
}

type Req<K extends keyof ChunkserverDataApi> = ChunkserverDataApi[K][0];
type Rep<K extends keyof ChunkserverDataApi> = ChunkserverDataApi[K][1];

export class DataPath {
  /** Requests served since the master last asked (the heartbeat's load). */
  private served = 0;
  /** Serial numbers of the mutations this server ordered as primary; increasing, hence per chunk too. */
  private serial = 0;
  private readonly order = new KeyedMutex<ChunkHandle>();

  constructor(private readonly d: DataPathDeps) {}

  takeLoad(): number {
    const n = this.served;
    this.served = 0;
    return n;
  }

  handlers(): Handlers<ChunkserverDataApi> {
    const served = () => this.served++;
    return {
      push: (r) => (served(), this.push(r)),
      write: (r) => (served(), this.write(r)),
      append: (r) => (served(), this.append(r)),
      truncate: (r) => (served(), this.truncate(r)),
      apply: (r) => (served(), this.apply(r)),
      read: (r) => (served(), this.read(r)),
      readLocal: (r) => (served(), this.readLocal(r)),
      sync: (r) => (served(), this.sync(r)),
    };
  }

  // ---- data flow ----

  async push(req: Req<'push'>): Promise<Rep<'push'>> {
    const dataId = dataIdField(req.dataId);
    const data = dataField(req.data, this.d.chunkSize());
    const chain = addressesField(req.chain, 'chain').filter((a) => a !== this.d.self());
    this.d.pushes.put(dataId, data);
    // Pass it on and answer only when the rest of the chain holds it too.
    if (chain.length > 0) {
      try {
        await this.d.pool.call(chain[0], 'push', { dataId, data, chain: chain.slice(1) });
      } catch (e) {
        const err = asGfsError(e);
        throw new GfsError(err.code, `push to ${chain[0]}: ${err.message}`);
      }
    }
    return {};
  }

  // ---- mutations, on the primary ----

  async write(req: Req<'write'>): Promise<Rep<'write'>> {
    const handle = handleField(req.handle);
    const version = versionField(req.version);
    const chunkSize = this.d.chunkSize();
    const offset = rangeField(req.offset, 'offset', chunkSize);
    const dataId = dataIdField(req.dataId);
    const inline = req.data !== undefined ? dataField(req.data, chunkSize) : undefined;
    const extents = req.extents !== undefined ? extentsField(req.extents, chunkSize) : undefined;
    const secondaries = this.peers(req.secondaries);
    return this.order.run(handle, async () => {
      this.checkPrimary(handle, version);
      const data = inline ?? this.pushed(dataId);
      const serial = ++this.serial;
      const m: Mutation = { op: 'write', offset, dataId, ...(inline ? { data } : {}), ...(extents ? { extents } : {}) };
      await this.everywhere(handle, version, serial, m, secondaries, () => this.writePieces(handle, offset, data, extents, chunkSize));
      this.d.pushes.used(dataId);
      return {};
    });
  }

  /** A write's bytes at offset, or its pieces at their own offsets (a vectored write). */
  private async writePieces(handle: ChunkHandle, offset: number, data: Buffer, extents: Extent[] | undefined, chunkSize: number): Promise<void> {
    const pieces: Extent[] = extents ?? [[offset, data.length]];
    let total = 0;
    for (const [off, len] of pieces) {
      if (off + len > chunkSize) throw new GfsError('EINVAL', `write of ${len} bytes at ${off} passes the chunk size ${chunkSize}`);
      total += len;
    }
    if (total !== data.length) throw new GfsError('EINVAL', `extents cover ${total} bytes, the data has ${data.length}`);
    let at = 0;
    for (const [off, len] of pieces) {
      const piece = data.subarray(at, at + len);
      await this.local(() => this.d.store.write(handle, off, piece));
      at += len;
    }
  }

  async append(req: Req<'append'>): Promise<Rep<'append'>> {
    const handle = handleField(req.handle);
    const version = versionField(req.version);
    const dataId = dataIdField(req.dataId);
    const secondaries = this.peers(req.secondaries);
    const chunkSize = this.d.chunkSize();
    const inline = req.data !== undefined ? dataField(req.data, chunkSize) : undefined;
    const size = req.size === undefined ? undefined : sizeField(req.size);
    // The file's new size goes to the master while the secondaries apply the record, and is
    // awaited only after the chunk's order lock is let go: appends to one chunk do not queue
    // behind the master's fsync. If the record then fails on a replica the size may cover it;
    // the client retries the record further on, and the failed region is one of the inconsistent
    // regions a failed record append may leave (paper §3.3).
    let extended: Promise<Attr | undefined> | undefined;
    const { offset } = await this.order.run(handle, async () => {
      const info = this.checkPrimary(handle, version);
      const data = inline ?? this.pushed(dataId);
      const maxRecord = Math.floor(chunkSize / 4);
      if (data.length > maxRecord) throw new GfsError('EFBIG', `record of ${data.length} bytes exceeds ${maxRecord}`);
      const serial = ++this.serial;
      if (info.length + data.length > chunkSize) {
        // The record does not fit: fill the chunk on every replica so none of them can take more,
        // and send the client to the next chunk.
        await this.everywhere(handle, version, serial, { op: 'pad', length: chunkSize }, secondaries, () => this.local(() => this.d.store.pad(handle, chunkSize)));
        throw new GfsError('ECHUNKFULL', `chunk ${handle} is full; padded`);
      }
      // The primary picks the offset; secondaries get a plain write there, so all agree.
      const offset = info.length;
      if (size) {
        extended = this.d.extendFile(size.ino, size.base + offset + data.length, size.mtime).catch((e) => {
          this.d.log.debug(`size of inode ${size.ino} left to the client: ${asGfsError(e).message}`);
          return undefined;
        });
      }
      const m: Mutation = { op: 'write', offset, dataId, ...(inline ? { data } : {}) };
      await this.everywhere(handle, version, serial, m, secondaries, () => this.local(() => this.d.store.write(handle, offset, data)));
      this.d.pushes.used(dataId);
      return { offset };
    });
    const attr = await extended;
    return attr ? { offset, attr } : { offset };
  }

  async truncate(req: Req<'truncate'>): Promise<Rep<'truncate'>> {
    const handle = handleField(req.handle);
    const version = versionField(req.version);
    const length = rangeField(req.length, 'length', this.d.chunkSize());
    const secondaries = this.peers(req.secondaries);
    return this.order.run(handle, async () => {
      this.checkPrimary(handle, version);
      const serial = ++this.serial;
      await this.everywhere(handle, version, serial, { op: 'truncate', length }, secondaries, () => this.local(() => this.d.store.truncate(handle, length)));
      return {};
    });
  }

  // ---- mutations, on a secondary ----

  apply(req: Req<'apply'>): Promise<Rep<'apply'>> {
    // Everything up to order.run is synchronous: the lock is queued in arrival order.
    const handle = handleField(req.handle);
    const version = versionField(req.version);
    rangeField(req.serial, 'serial', Number.MAX_SAFE_INTEGER);
    const chunkSize = this.d.chunkSize();
    const m = mutationField(req.mutation, chunkSize);
    return this.order.run(handle, async () => {
      this.checkReplica(handle, version);
      switch (m.op) {
        case 'write': {
          const data = m.data ?? this.pushed(m.dataId);
          await this.writePieces(handle, m.offset, data, m.extents, chunkSize);
          this.d.pushes.used(m.dataId);
          break;
        }
        case 'pad':
          await this.local(() => this.d.store.pad(handle, m.length));
          break;
        case 'truncate':
          await this.local(() => this.d.store.truncate(handle, m.length));
          break;
      }
      return {};
    });
  }

  // ---- reads and syncs ----

  async read(req: Req<'read'>): Promise<Rep<'read'>> {
    const handle = handleField(req.handle);
    const version = versionField(req.version);
    const chunkSize = this.d.chunkSize();
    const offset = rangeField(req.offset, 'offset', chunkSize);
    const length = rangeField(req.length, 'length', Math.min(chunkSize - offset, this.d.maxReadBytes));
    // A stale replica (older version) must never be served.
    this.checkReplica(handle, version);
    return this.local(() => this.d.store.read(handle, offset, length));
  }

  async readLocal(req: Req<'readLocal'>): Promise<Rep<'readLocal'>> {
    const handle = handleField(req.handle);
    const version = versionField(req.version);
    const chunkSize = this.d.chunkSize();
    const offset = rangeField(req.offset, 'offset', chunkSize);
    const length = rangeField(req.length, 'length', chunkSize - offset);
    this.checkReplica(handle, version);
    return { ...(await this.local(() => this.d.store.whereIs(handle, offset, length))), ...this.d.identity };
  }

  async sync(req: Req<'sync'>): Promise<Rep<'sync'>> {
    const handles = handlesField(req.handles, 100_000);
    const errors: GfsError[] = [];
    await Promise.all(
      handles.map(async (h) => {
        try {
          this.checkReplicaExists(h);
          await this.local(() => this.d.store.sync(h));
        } catch (e) {
          errors.push(asGfsError(e));
        }
      }),
    );
    if (errors.length > 0) throw new GfsError(errors[0].code, errors.map((e) => e.message).join('; '));
    return {};
  }

  // ---- helpers ----

  private peers(v: unknown): ServerAddress[] {
    return addressesField(v, 'secondaries').filter((a) => a !== this.d.self());
  }

  private pushed(dataId: string): Buffer {
    const data = this.d.pushes.get(dataId);
    if (!data) throw new GfsError('EIO', `data not pushed (${dataId})`);
    return data;
  }

  private checkPrimary(handle: ChunkHandle, version: number): ReplicaInfo {
    if (!this.d.leases.isPrimary(handle)) throw new GfsError('ESTALE', `not primary for chunk ${handle}`);
    return this.checkReplica(handle, version);
  }

  private checkReplicaExists(handle: ChunkHandle): ReplicaInfo {
    const info = this.d.store.info(handle);
    if (!info) throw new GfsError('ESTALE', `no replica of chunk ${handle} here`);
    if (info.corrupt) throw new GfsError('EIO', `replica of chunk ${handle} is corrupt`);
    return info;
  }

  /** The replica exists, is not corrupt, and is at exactly this version. */
  private checkReplica(handle: ChunkHandle, version: number): ReplicaInfo {
    const info = this.checkReplicaExists(handle);
    if (info.version !== version) {
      throw new GfsError('ESTALE', `chunk ${handle} is at version ${info.version} here, not ${version}`);
    }
    return info;
  }

  /** Run a store operation; a replica deleted under us is stale to the caller, not missing. */
  private async local<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      const err = asGfsError(e);
      if (err.code === 'ENOENT') throw new GfsError('ESTALE', err.message);
      throw err;
    }
  }

  /**
   * Apply a mutation here and on every secondary at the same time (the forward is sent first,
   * still under the chunk's order lock, so secondaries see mutations in serial order). Either
   * failing fails the mutation: the client retries it, and the region may differ between replicas
   * until it does, as after any failed mutation in the paper (§3.3).
   */
  private async everywhere(handle: ChunkHandle, version: number, serial: number, m: Mutation, secondaries: ServerAddress[], here: () => Promise<void>): Promise<void> {
    const there = this.forward(handle, version, serial, m, secondaries);
    const [local, remote] = await Promise.allSettled([here(), there]);
    this.d.leases.noteMutation(handle);
    if (local.status === 'rejected') throw local.reason;
    if (remote.status === 'rejected') throw remote.reason;
  }

  /**
   * Send one mutation to every secondary at once; all must apply it or the client hears EIO, or
   * ENOSPC when a secondary had no room (a full disk is not worth retrying: the writer must hear it).
   */
  private async forward(handle: ChunkHandle, version: number, serial: number, mutation: Mutation, secondaries: ServerAddress[]): Promise<void> {
    const results = await Promise.allSettled(
      secondaries.map((s) => this.d.pool.call(s, 'apply', { handle, version, serial, mutation })),
    );
    const failed: string[] = [];
    let full = false;
    results.forEach((r, i) => {
      if (r.status === 'rejected') {
        const err = asGfsError(r.reason);
        failed.push(`${secondaries[i]}: ${err.code} ${err.message}`);
        full ||= err.code === 'ENOSPC';
      }
    });
    if (failed.length > 0) {
      this.d.log.debug(`chunk ${handle} serial ${serial}: ${failed.join('; ')}`);
      throw new GfsError(full ? 'ENOSPC' : 'EIO', `secondary failed: ${failed.join('; ')}`);
    }
  }
}
