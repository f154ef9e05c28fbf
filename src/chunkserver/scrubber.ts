// The background scan (paper §5.2: "during idle periods, chunkservers can scan and verify the
// contents of inactive chunks"): every scrubIntervalMs, one replica that nobody read or wrote for
// scrubIdleMs — the one checked longest ago — is read whole and checked against its checksums.
// Busy replicas need no scan: every read verifies the blocks it touches. A bad block quarantines
// the replica (never served again) and the store reports it to the master, which copies a good
// replica elsewhere and then deletes this one. One replica at a time, so the scan stays slow.

import { asGfsError } from '../protocol/errors.js';
import type { Logger } from '../log.js';
import type { ChunkStore } from './store.js';

export class Scrubber {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  /** Replicas checked and bytes read since start (for logs and tests). */
  checked = 0;
  bytes = 0;

  constructor(
    private readonly store: ChunkStore,
    private readonly intervalMs: number,
    private readonly idleMs: number,
    private readonly log: Logger,
  ) {}

  start(): void {
    if (this.intervalMs > 0) this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.running = this.once().finally(() => {
        this.running = null;
        this.schedule();
      });
    }, this.intervalMs);
    this.timer.unref();
  }

  /** Check one idle replica, if there is one. */
  async once(): Promise<void> {
    const handle = this.store.scrubCandidate(this.idleMs);
    if (handle === undefined) return;
    try {
      this.bytes += await this.store.verifyAll(handle);
      this.checked++;
    } catch (e) {
      const err = asGfsError(e);
      // A checksum mismatch was logged and reported by the store; anything else is worth a line.
      if (!/corrupt|truncated/.test(err.message)) this.log.warn(`scan of chunk ${handle}: ${err.message}`);
    }
  }
}
