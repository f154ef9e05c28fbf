// The chunkserver's one connection to the master. We dial it (the master calls setVersion back
// over the same socket), register with our id, address and every replica, then send heartbeats.
// The first registration must succeed or start-up fails; after that a lost connection is redialled
// forever, at most a second apart, and every new connection registers again: the master rebuilds
// chunk locations from these reports, so it may restart at any time.

import { GfsError, asGfsError } from '../protocol/errors.js';
import type { Attr, ChunkHandle, ChunkserverControlApi, MasterChunkserverApi, MasterCommand, ServerAddress, Timespec } from '../protocol/messages.js';
import { connect, type Handlers, type Peer } from '../protocol/rpc.js';
import type { GfsConfig } from '../config.js';
import type { Logger } from '../log.js';
import type { Leases } from './leases.js';
import type { ChunkStore } from './store.js';

type MasterPeer = Peer<MasterChunkserverApi, ChunkserverControlApi>;

export interface MasterLinkOptions {
  url: string;
  id: string;
  address: ServerAddress;
  cfg: GfsConfig;
  log: Logger;
  store: ChunkStore;
  leases: Leases;
  control: Handlers<ChunkserverControlApi>;
  /** Requests served since the last call. */
  takeLoad(): number;
  /** Chunks being copied on the master's command. */
  replicating(): ChunkHandle[];
  /** The master's register reply (chunk size, heartbeat period). */
  onRegistered(reply: { chunkSize: number; heartbeatMs: number }): void;
  onCommand(cmd: MasterCommand): void;
}

const MIN_RETRY_MS = 50;
const MAX_RETRY_MS = 1000;

export class MasterLink {
  private peer: MasterPeer | null = null;
  private stopped = false;
  private heartbeatMs: number;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private retryMs = MIN_RETRY_MS;
  private beating = false;

  constructor(private readonly o: MasterLinkOptions) {
    this.heartbeatMs = o.cfg.heartbeatMs;
  }

  get connected(): boolean {
    return this.peer !== null && this.peer.open;
  }

  /** Connect and register once; rejects (EUNAVAIL) if the master cannot be reached or refuses. */
  async start(): Promise<void> {
    await this.dial();
    this.scheduleHeartbeat();
  }

  /** Tell the master about a corrupt replica now (it is also in every heartbeat until deleted). */
  reportBad(handle: ChunkHandle): void {
    const peer = this.peer;
    if (!peer?.open) return;
    peer.call('reportBad', { handle, server: this.o.address }).catch((e) => {
      this.o.log.debug(`reportBad ${handle}: ${asGfsError(e).message}`);
    });
  }

  /** Have the master set a file's size to at least size (a record append's end, see DataPath). */
  extend(ino: number, size: number, mtime?: Timespec): Promise<Attr> {
    const peer = this.peer;
    if (!peer?.open) return Promise.reject(new GfsError('EUNAVAIL', 'not connected to the master'));
    return peer.call('extend', { ino, size, ...(mtime ? { mtime } : {}) });
  }

  /** Send a heartbeat now (tests, and after a replica was installed). */
  async heartbeatNow(): Promise<void> {
    await this.heartbeat();
  }

  stop(): void {
    this.stopped = true;
    if (this.heartbeatTimer) clearTimeout(this.heartbeatTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.heartbeatTimer = this.retryTimer = null;
    this.peer?.close();
    this.peer = null;
  }

  private async dial(): Promise<void> {
    const { cfg, log } = this.o;
    const peer = await connect<MasterChunkserverApi, ChunkserverControlApi>(
      this.o.url,
      { maxFrameBytes: cfg.maxFrameBytes, timeoutMs: cfg.rpcTimeoutMs, log },
      this.o.control,
    );
    try {
      if (this.stopped) throw new GfsError('EUNAVAIL', 'chunkserver stopping');
      const reply = await peer.call('register', {
        id: this.o.id,
        address: this.o.address,
        chunks: this.o.store.reports(),
        freeBytes: await this.freeBytes(),
        usedBytes: this.o.store.usedBytes(),
      });
      if (this.stopped) throw new GfsError('EUNAVAIL', 'chunkserver stopping');
      const chunkSize = reply?.chunkSize;
      const heartbeatMs = reply?.heartbeatMs;
      if (typeof chunkSize !== 'number' || !Number.isSafeInteger(chunkSize) || chunkSize <= 0) {
        throw new GfsError('EPROTO', `master sent chunk size ${String(chunkSize)}`);
      }
      if (typeof heartbeatMs === 'number' && Number.isFinite(heartbeatMs) && heartbeatMs > 0) this.heartbeatMs = heartbeatMs;
      this.o.onRegistered({ chunkSize, heartbeatMs: this.heartbeatMs });
    } catch (e) {
      peer.close();
      throw asGfsError(e);
    }
    this.peer = peer;
    this.retryMs = MIN_RETRY_MS;
    peer.onClose(() => {
      if (this.peer !== peer) return;
      this.peer = null;
      if (this.stopped) return;
      log.warn(`lost the master at ${this.o.url}; reconnecting`);
      this.scheduleRetry();
    });
    // The corrupt ones go in the first heartbeat; send it soon rather than a period later.
    if (this.o.store.corruptHandles().length > 0) setImmediate(() => void this.heartbeat());
  }

  private scheduleRetry(): void {
    if (this.stopped || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.dial().then(
        () => this.o.log.info(`registered again with the master at ${this.o.url}`),
        (e) => {
          this.o.log.debug(`master ${this.o.url}: ${asGfsError(e).message}`);
          this.retryMs = Math.min(this.retryMs * 2, MAX_RETRY_MS);
          this.scheduleRetry();
        },
      );
    }, this.retryMs);
  }

  private scheduleHeartbeat(): void {
    if (this.stopped) return;
    this.heartbeatTimer = setTimeout(() => {
      this.heartbeatTimer = null;
      void this.heartbeat().finally(() => this.scheduleHeartbeat());
    }, this.heartbeatMs);
  }

  private async heartbeat(): Promise<void> {
    const peer = this.peer;
    if (!peer?.open || this.beating || this.stopped) return;
    this.beating = true;
    // Lease extensions count from here, before anything else is awaited.
    const sentAt = performance.now();
    const extend = this.o.leases.takeExtendRequests();
    try {
      const reply = await peer.call('heartbeat', {
        id: this.o.id,
        chunks: this.o.store.reports(),
        freeBytes: await this.freeBytes(),
        usedBytes: this.o.store.usedBytes(),
        load: this.o.takeLoad(),
        corrupt: this.o.store.corruptHandles(),
        extend,
        replicating: this.o.replicating(),
      });
      const extended = Array.isArray(reply?.extended) ? reply.extended.filter((h) => typeof h === 'number') : [];
      this.o.leases.extend(extended, sentAt, this.o.cfg.leaseMs);
      if (Array.isArray(reply?.commands)) {
        for (const cmd of reply.commands) {
          try {
            this.o.onCommand(cmd);
          } catch (e) {
            this.o.log.warn(`bad command from master: ${asGfsError(e).message}`);
          }
        }
      }
    } catch (e) {
      this.o.leases.restore(extend);
      this.o.log.debug(`heartbeat: ${asGfsError(e).message}`);
    } finally {
      this.beating = false;
    }
  }

  private async freeBytes(): Promise<number> {
    try {
      return await this.o.store.freeBytes();
    } catch {
      return 0;
    }
  }
}
