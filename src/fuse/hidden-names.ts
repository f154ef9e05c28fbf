// The ".fuse_hidden..." names under which libfuse keeps open files that were renamed over or
// removed, and when they may really go.
//
// libfuse 2's high-level layer removes such a name when the file's last handle is released, but it
// counts a handle only once our open has answered. So a release on one handle could remove the name
// while an open of the same file (by that name: the file has no other) was under way in JS; that
// open then succeeded on a file the master had just deleted, and its fstat failed (ESTALE: seen
// with `cat` while a file was renamed over again and again). Here a removal of a hidden name waits
// until no handle of this mount holds the file and no open of the name is under way, and an open
// of a hidden name whose removal has begun fails (ENOENT, which the kernel sees as ESTALE and
// retries by name) instead of racing the removal to the master.

import { GfsError } from '../protocol/errors.js';

export const isHiddenName = (path: string): boolean => path.slice(path.lastIndexOf('/') + 1).startsWith('.fuse_hidden');

export class HiddenNames {
  /** Opens under way, by path. */
  private readonly opening = new Map<string, number>();
  /** Hidden names whose removal waits, with their inode. */
  private readonly waiting = new Map<string, number>();
  /** Hidden names being removed. */
  private readonly removing = new Set<string>();

  constructor(
    /** Does a handle of this mount hold the inode? */
    private readonly held: (ino: number) => boolean,
    private readonly remove: (path: string) => Promise<void>,
  ) {}

  /** An open of path, under way until the promise open() returns settles (counted for hidden names only). */
  opened<T>(path: string, open: () => Promise<T>): Promise<T> {
    if (!isHiddenName(path)) return open();
    if (this.removing.has(path)) return Promise.reject(new GfsError('ENOENT', `being removed: ${path}`));
    const work = open();
    this.opening.set(path, (this.opening.get(path) ?? 0) + 1);
    const settle = () => {
      const n = (this.opening.get(path) ?? 1) - 1;
      if (n > 0) this.opening.set(path, n);
      else this.opening.delete(path);
      this.removeIdle();
    };
    work.then(settle, settle);
    return work;
  }

  /** libfuse removes the hidden name path of inode ino: it waits while the file is held or being opened. */
  unlink(path: string, ino: number): Promise<void> {
    if (!this.busy(path, ino)) return this.removeNow(path);
    this.waiting.set(path, ino);
    return Promise.resolve();
  }

  /** A handle was released (and closed): hidden names nothing holds any more go now. */
  released(): void {
    if (this.waiting.size > 0) this.removeIdle();
  }

  private removeNow(path: string): Promise<void> {
    this.removing.add(path);
    const done = this.remove(path);
    const settle = () => this.removing.delete(path);
    done.then(settle, settle);
    return done;
  }

  private busy(path: string, ino: number): boolean {
    return this.opening.has(path) || this.held(ino);
  }

  private removeIdle(): void {
    for (const [path, ino] of this.waiting) {
      if (this.busy(path, ino)) continue;
      this.waiting.delete(path);
      // As libfuse does with its own removal at release: a name that cannot go stays behind.
      this.removeNow(path).catch(() => undefined);
    }
  }
}
