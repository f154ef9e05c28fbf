// Empty files made ahead of time, so that a new replica is two renames instead of two creates.
//
// Measured on ext4 here: while other processes fsync (the master logs every mutation, clients
// fsync replicas), creating a file waits for the journal commit and takes ~0.7–1 ms, a rename
// ~30 µs. A new chunk is on the critical path of every small file (its first write waits for the
// replica to exist on all three servers), so the files are made in the background, off the
// event loop, and only taken on that path. They live in a folder of their own next to the
// replicas' (same file system, so a rename moves them); left-overs are removed at start-up.

import { mkdir, open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { unlinkQuietly } from './fsutil.js';

export interface SparePair {
  data: string;
  meta: string;
}

export class SpareFiles {
  private readonly ready: SparePair[] = [];
  private next = 0;
  /** The background fill under way, if any. */
  private filling: Promise<void> | null = null;
  private stopped = false;

  constructor(
    private readonly dir: string,
    private readonly want = 32,
  ) {}

  /** Drop spares left by an earlier run, then start making new ones. */
  async start(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    for (const name of await readdir(this.dir)) await unlinkQuietly(join(this.dir, name));
    this.fill();
  }

  /** A pair of empty files to rename into place, if one is ready. */
  take(): SparePair | undefined {
    const pair = this.ready.pop();
    this.fill();
    return pair;
  }

  /** No more spares are made; resolves once none is being made (no file of ours is left open). */
  stop(): Promise<void> {
    this.stopped = true;
    return this.filling ?? Promise.resolve();
  }

  private fill(): void {
    if (this.filling || this.stopped || this.ready.length >= this.want / 2) return;
    const make = async () => {
      try {
        while (!this.stopped && this.ready.length < this.want) {
          const base = join(this.dir, String(this.next++));
          const pair = { data: base, meta: `${base}.meta` };
          await (await open(pair.data, 'wx')).close();
          await (await open(pair.meta, 'wx')).close();
          this.ready.push(pair);
        }
      } catch {
        // A full or failing disk: creates fall back to making their own files (and report why).
      }
    };
    // (finally runs after this assignment, however soon make() ends)
    this.filling = make().finally(() => {
      this.filling = null;
    });
  }
}
