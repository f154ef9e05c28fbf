// The trash (paper §4.4): a deleted file keeps its inode and chunks for a grace period, listed by
// `gfs trash` and restorable with `gfs undelete`; then a purge op drops it, and the chunkservers
// delete its replicas when their next heartbeat reports handles the master no longer knows.
// Deletion, undelete and purge are all op-log records, so the trash survives master restarts.
// While the chunkservers are out of room for new chunks, the oldest files that hold replicas on
// the full servers go early: a user who removes files to make room would otherwise still get
// ENOSPC for the whole grace period. Files whose replicas are all elsewhere stay: purging them
// would cost the undelete safety net and make no room where it is lacking.

import { GfsError } from '../protocol/errors.js';
import type { Attr, MasterApi, TrashEntry } from '../protocol/messages.js';
import type { Handlers } from '../protocol/rpc.js';
import type { Logger } from '../log.js';
import type { Inode, Namespace } from './namespace.js';
import { nowTimespec, type NsOp } from './ops.js';

export class Trash {
  constructor(
    private readonly ns: Namespace,
    private readonly mutate: (op: NsOp) => Promise<Inode | undefined>,
    private readonly graceMs: number,
    /**
     * Bytes of files purged early per tick while short of room: the space shows only once the
     * chunkservers have deleted the replicas and reported (heartbeats), so a little at a time.
     */
    private readonly earlyBytesPerTick: number,
    private readonly log: Logger,
  ) {}

  /**
   * Purge every file whose grace period is over; while the chunkservers lack room for new chunks
   * (frees given: whether a file has replicas on the servers out of room), also the oldest files
   * that would free some there, up to earlyBytesPerTick (at least one file).
   */
  tick(now: number, frees?: (ino: number) => boolean): void {
    let early = 0;
    for (const [ino, t] of this.ns.trash) { // in the order they were deleted
      const due = t.deletedAt + this.graceMs <= now;
      if (!due) {
        if (!frees || early >= this.earlyBytesPerTick || !frees(ino)) continue;
        early += Math.max(1, this.ns.get(ino).size);
      }
      const why = due ? '' : ' early: the chunkservers are out of room';
      // apply() runs before the first await: the next tick no longer sees this one.
      this.mutate({ t: 'purge', ino }).then(
        () => this.log.info(`purged ${t.path} (inode ${ino}) from the trash${why}`),
        (e) => this.log.warn(`purge of inode ${ino}: ${(e as Error).message}`),
      );
    }
  }

  entries(): TrashEntry[] {
    return [...this.ns.trash]
      .map(([ino, t]) => ({ ino, path: t.path, size: this.ns.get(ino).size, deletedAt: t.deletedAt, purgeAt: t.deletedAt + this.graceMs }))
      .sort((a, b) => a.deletedAt - b.deletedAt || a.ino - b.ino);
  }

  /** The file most recently deleted at path, back at `to` (default: where it was). */
  async undelete(path: string, to?: string): Promise<Attr> {
    if (typeof path !== 'string' || (to !== undefined && typeof to !== 'string')) throw new GfsError('EINVAL', 'undelete: path must be a string');
    const norm = (p: string) => '/' + p.split('/').filter((x) => x !== '' && x !== '.').join('/');
    let found: TrashEntry | undefined;
    for (const e of this.entries()) if (norm(e.path) === norm(path)) found = e;
    if (!found) throw new GfsError('ENOENT', `nothing deleted at ${path} is in the trash`);
    const node = await this.mutate({ t: 'undelete', ino: found.ino, path: to ?? found.path, time: nowTimespec() });
    this.log.info(`undeleted ${found.path} (inode ${found.ino})${to ? ` as ${to}` : ''}`);
    return this.ns.attr(node!);
  }

  handlers(): Pick<Handlers<MasterApi>, 'trash' | 'undelete'> {
    return {
      trash: () => ({ entries: this.entries() }),
      undelete: ({ path, to }) => this.undelete(path, to),
    };
  }
}
