// Attributes by path, kept for a short time (cfg.attrCacheMs) so that `ls -l`, `stat` and path
// walks do not each cost a master round trip. It is filled by look-ups and directory listings and
// corrected at once by this client's own changes; another client's changes show within the TTL,
// as NFS attribute caching does. open() always asks the master (close-to-open consistency).
// The attributes of a file whose write delegation this client holds do not expire: nobody else can
// change the file without recalling it first, and this client's own changes correct them. When it
// is given back they count as just read (then known right), so they last one more TTL.

import type { Attr } from '../protocol/messages.js';
import { PathMap } from './path-tree.js';

export { joinPath, parentPath } from './path-tree.js';

const MAX_ENTRIES = 200_000;

/** a is older than b (the master gives every change a ctime later than all before it). */
const older = (a: Attr['ctime'], b: Attr['ctime']) => a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]);

export class AttrCache {
  private readonly byPath = new PathMap<{ attr: Attr; until: number }>();
  private readonly byIno = new Map<number, Set<string>>();
  /**
   * The latest ctime seen per inode. A reply that was on its way while this client changed the
   * file (a look-up racing a write's size update) carries older attributes: caching them would
   * make the size go backwards, and the kernel then cuts its page cache and size to match.
   */
  private readonly newest = new Map<number, Attr['ctime']>();

  /** The latest time in any attributes the master sent (its clock, as this client has seen it). */
  latestTime: Attr['ctime'] = [0, 0];

  constructor(
    private readonly ttlMs: number,
    /** Whether this client holds ino's write delegation (its attributes then cannot go stale). */
    private readonly held: (ino: number) => boolean = () => false,
  ) {}

  /** Note attr's ctime; false if a newer one was seen already (attr is stale). */
  private fresh(attr: Attr): boolean {
    if (older(this.latestTime, attr.ctime)) this.latestTime = attr.ctime;
    const seen = this.newest.get(attr.ino);
    if (seen && older(attr.ctime, seen)) return false;
    if (this.newest.size >= MAX_ENTRIES) this.newest.clear();
    this.newest.set(attr.ino, attr.ctime);
    return true;
  }

  get(path: string): Attr | undefined {
    const e = this.byPath.get(path);
    if (!e) return undefined;
    const now = Date.now();
    if (e.until < now) {
      if (!this.held(e.attr.ino)) {
        this.drop(path);
        return undefined;
      }
      e.until = now + this.ttlMs;
    }
    return e.attr;
  }

  /** ino's attributes are known right now (its delegation is being given back): one more TTL. */
  renew(ino: number): void {
    const until = Date.now() + this.ttlMs;
    for (const path of this.byIno.get(ino) ?? []) {
      const e = this.byPath.get(path);
      if (e) e.until = Math.max(e.until, until);
    }
  }

  set(path: string, attr: Attr): void {
    if (this.ttlMs <= 0 || !this.fresh(attr)) return;
    if (this.byPath.size >= MAX_ENTRIES) this.clear();
    const old = this.byPath.get(path);
    if (old && old.attr.ino !== attr.ino) this.unindex(path, old.attr.ino);
    this.byPath.set(path, { attr, until: Date.now() + this.ttlMs });
    let paths = this.byIno.get(attr.ino);
    if (!paths) this.byIno.set(attr.ino, (paths = new Set()));
    paths.add(path);
  }

  /** Attributes of an inode under any cached name (fstat of an open file). */
  getIno(ino: number): Attr | undefined {
    for (const path of this.byIno.get(ino) ?? []) {
      const attr = this.get(path);
      if (attr) return attr;
    }
    return undefined;
  }

  /** New attributes of an inode, for every cached path that names it (hard links too). */
  update(attr: Attr): void {
    if (!this.fresh(attr)) return;
    for (const path of this.byIno.get(attr.ino) ?? []) {
      const e = this.byPath.get(path);
      if (e) e.attr = attr;
    }
  }

  /** Forget an inode under every name (its attributes changed in a way we did not see). */
  dropIno(ino: number): void {
    for (const path of [...(this.byIno.get(ino) ?? [])]) this.drop(path);
  }

  drop(path: string): void {
    const e = this.byPath.get(path);
    if (!e) return;
    this.byPath.delete(path);
    this.unindex(path, e.attr.ino);
  }

  /** Forget path and everything beneath it (a directory renamed or removed). */
  dropTree(path: string): void {
    for (const p of this.byPath.under(path)) this.drop(p);
  }

  clear(): void {
    this.byPath.clear();
    this.byIno.clear();
  }

  private unindex(path: string, ino: number): void {
    const paths = this.byIno.get(ino);
    paths?.delete(path);
    if (paths?.size === 0) this.byIno.delete(ino);
  }
}
