// The client's side of directory delegations (master/delegations.ts). A directory this client
// made is granted to it with the mkdir: until the master recalls it, no other client can look
// into it, so this client knows every name in it and answers a create there itself, with an inode
// number the master reserved for it, sending the create later in a batch (deferred-changes.ts).
// `cp -r` and an unpacking make their files in directories they just made: each file then costs
// no master round trip in the foreground.
//
// A recall (another client wants to look into the directory) stops the creates answered here and
// is answered once the ones made are at the master. A delegation unused for IDLE_MS is given back
// (after its creates are at the master) so the master keeps few and others need no recall. When
// the connection to the master drops, all are dropped here too (the master may have restarted).

import type { Attr } from '../protocol/messages.js';
import type { DirListings } from './dir-listings.js';
import { PathMap } from './path-tree.js';

/**
 * A delegation unused this long is given back. Longer than a file's: a tree is often read or
 * removed by its maker a little after it was made (a build, `cp -r` then `rm -rf`), and another
 * mount that looks pays one recall, not one per name.
 */
const IDLE_MS = 30_000;
/** Inode numbers asked for at a time, and how few left make us ask for more. */
const RESERVE = 1024;
const LOW = 256;

export interface HeldDir {
  ino: number;
  grant: number;
  /** New entries take this group (a set-group-ID directory), as the master gives them. */
  setgidGroup: number | undefined;
  lastUse: number;
}

export class DirDelegations {
  private readonly held = new PathMap<HeldDir>();
  private readonly pathOf = new Map<number, string>();
  /** Inode → the last grant recalled: a mkdir reply read after its recall must not make us holder. */
  private readonly recalled = new Map<number, number>();
  private inos = { next: 0, end: 0 };
  private refilling = false;

  constructor(
    /** Our listings: a held directory's stays complete (pinned) as long as we hold it. */
    private readonly listings: DirListings,
    /** Asks the master for inode numbers of our own. */
    private readonly reserve: (count: number) => Promise<{ first: number; end: number }>,
    private readonly onError: (e: Error) => void,
  ) {}

  get size(): number {
    return this.held.size;
  }

  /** The master granted the directory at path (attr: its attributes) to our mkdir. */
  took(path: string, attr: Attr, grant: number): void {
    const r = this.recalled.get(attr.ino);
    if (r !== undefined && r >= grant) return;
    this.held.set(path, { ino: attr.ino, grant, setgidGroup: attr.mode & 0o2000 ? attr.gid : undefined, lastUse: Date.now() });
    this.pathOf.set(attr.ino, path);
    this.listings.pin(path);
    this.topUp();
  }

  /** The delegation of the directory at path, if we hold it (marked used: names made or removed in it). */
  holder(dir: string): HeldDir | undefined {
    const d = this.held.get(dir);
    if (d) d.lastUse = Date.now();
    return d;
  }

  holdsIno(ino: number): boolean {
    return this.pathOf.has(ino);
  }

  /** An inode number of ours for a new file, or undefined if none is left (ask the master then). */
  takeIno(): number | undefined {
    this.topUp();
    return this.inos.next < this.inos.end ? this.inos.next++ : undefined;
  }

  /** The master recalls ino's grant: creates in it go to the master from now on. */
  recall(ino: number, grant: number): void {
    if (this.recalled.size >= 100_000) this.recalled.clear();
    this.recalled.set(ino, Math.max(grant, this.recalled.get(ino) ?? 0));
    const path = this.pathOf.get(ino);
    if (path !== undefined && this.held.get(path)!.grant <= grant) this.drop(path);
  }

  /** The directory at path was removed here: its inode, to give back, if we held it. */
  forget(path: string): number[] {
    const d = this.held.get(path);
    if (!d) return [];
    this.drop(path);
    return [d.ino];
  }

  /**
   * The directory at path, or one beneath it, was renamed or removed here: the paths we hold
   * them by no longer lead to them. Returns their inodes, to give back.
   */
  forgetTree(path: string): number[] {
    const gone: number[] = [];
    for (const p of this.held.under(path)) {
      gone.push(this.held.get(p)!.ino);
      this.drop(p);
    }
    return gone;
  }

  /** Drop the delegations unused for IDLE_MS; returns their inodes, to give back. */
  idle(now: number): number[] {
    const gone: number[] = [];
    for (const [p, d] of this.held) {
      if (now - d.lastUse >= IDLE_MS) {
        gone.push(d.ino);
        this.drop(p);
      }
    }
    return gone;
  }

  /** The master has forgotten every delegation of ours (the connection dropped). */
  dropAll(): void {
    for (const path of this.held.keys()) this.listings.unpin(path);
    this.held.clear();
    this.pathOf.clear();
    this.recalled.clear();
  }

  private drop(path: string): void {
    const d = this.held.get(path);
    if (!d) return;
    this.held.delete(path);
    this.pathOf.delete(d.ino);
    this.listings.unpin(path);
  }

  /** Ask for more inode numbers when few are left (the rest of the old range goes unused). */
  private topUp(): void {
    if (this.refilling || this.inos.end - this.inos.next >= LOW) return;
    this.refilling = true;
    this.reserve(RESERVE)
      .then(({ first, end }) => void (this.inos = { next: first, end }), this.onError)
      .finally(() => (this.refilling = false));
  }
}
