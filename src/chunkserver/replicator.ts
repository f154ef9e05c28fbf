// Carries out the master's 'replicate' commands: pull a chunk from the first reachable source
// with ordinary checksum-verified reads (the source verifies its blocks before it answers),
// write it under a temporary name while checksumming what arrives, read it back, and only then
// install it under its real name at the given version. At most a few copies run at once so
// re-replication after a failure cannot starve client traffic; the rest wait in a queue.

import { asGfsError, GfsError } from '../protocol/errors.js';
import type { ChunkHandle, ServerAddress } from '../protocol/messages.js';
import type { PeerPool } from '../protocol/pool.js';
import type { Logger } from '../log.js';
import type { ChunkStore } from './store.js';

export interface ReplicateJob {
  handle: ChunkHandle;
  version: number;
  from: ServerAddress[];
}

export interface ReplicatorOptions {
  store: ChunkStore;
  pool: PeerPool;
  log: Logger;
  chunkSize(): number;
  self(): ServerAddress;
  /** Bytes per read (each must fit in one frame). */
  pieceBytes: number;
  maxConcurrent: number;
  /** Called after a replica was installed (e.g. to report it early). */
  onInstalled?(handle: ChunkHandle): void;
}

export class Replicator {
  private readonly queue: ReplicateJob[] = [];
  /** Handles queued or being copied: a repeated command for one of them is ignored. */
  private readonly pending = new Set<ChunkHandle>();
  private running = 0;
  private stopped = false;
  private readonly active = new Set<Promise<void>>();

  constructor(private readonly o: ReplicatorOptions) {}

  enqueue(job: ReplicateJob): void {
    if (this.stopped || this.pending.has(job.handle)) return;
    const have = this.o.store.info(job.handle);
    if (have && !have.corrupt && have.version === job.version) return; // already holds it
    this.pending.add(job.handle);
    this.queue.push(job);
    this.pump();
  }

  get inFlight(): number {
    return this.pending.size;
  }

  /** Handles queued or being copied (the heartbeat tells the master, which so learns of failed ones). */
  handles(): ChunkHandle[] {
    return [...this.pending];
  }

  /** Stop taking jobs and wait for the running ones to settle. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.queue.length = 0;
    await Promise.allSettled([...this.active]);
  }

  private pump(): void {
    while (!this.stopped && this.running < this.o.maxConcurrent && this.queue.length > 0) {
      const job = this.queue.shift()!;
      this.running++;
      const p = this.run(job)
        .catch((e) => this.o.log.warn(`chunk ${job.handle}: replication failed: ${asGfsError(e).message}`))
        .finally(() => {
          this.running--;
          this.pending.delete(job.handle);
          this.active.delete(p);
          this.pump();
        });
      this.active.add(p);
    }
  }

  private async run(job: ReplicateJob): Promise<void> {
    const errors: string[] = [];
    for (const src of job.from) {
      if (this.stopped) return;
      if (src === this.o.self()) continue;
      try {
        const length = await this.copyFrom(job, src);
        this.o.log.info(`chunk ${job.handle}: replicated v${job.version} (${length} bytes) from ${src}`);
        this.o.onInstalled?.(job.handle);
        return;
      } catch (e) {
        const err = asGfsError(e);
        errors.push(`${src}: ${err.code} ${err.message}`);
      }
    }
    this.o.log.warn(`chunk ${job.handle}: replication failed (${errors.join('; ') || 'no source'})`);
  }

  private async copyFrom(job: ReplicateJob, src: ServerAddress): Promise<number> {
    const chunkSize = this.o.chunkSize();
    const inc = await this.o.store.incoming(job.handle, chunkSize);
    try {
      let offset = 0;
      for (;;) {
        if (this.stopped) throw new GfsError('EUNAVAIL', 'chunkserver stopping');
        const length = Math.min(this.o.pieceBytes, chunkSize - offset);
        const { data, chunkLength } = await this.o.pool.call(src, 'read', { handle: job.handle, version: job.version, offset, length });
        if (!(data instanceof Uint8Array) || typeof chunkLength !== 'number') throw new GfsError('EPROTO', 'malformed read reply');
        if (data.length > length) throw new GfsError('EPROTO', 'read reply longer than asked');
        await inc.append(data);
        offset += data.length;
        if (offset >= chunkLength || offset >= chunkSize) break;
        if (data.length === 0) throw new GfsError('EIO', `source returned no data at ${offset} of ${chunkLength}`);
      }
      await inc.commit(job.version);
      return offset;
    } catch (e) {
      await inc.abort();
      throw e;
    }
  }
}
