// The client library: namespace calls to the master, data through ChunkIo, and the open files of
// this client. The FUSE adapter is one user of it; tests and tools can use it directly.

import { GfsError } from '../protocol/errors.js';
import { nameTooLong, typeBits } from '../protocol/modes.js';
import type { Attr, ChangeResult, DeferredChange, DirEntry, FsStats, MasterClientApi, SetAttr } from '../protocol/messages.js';
import { PeerPool } from '../protocol/pool.js';
import { maxRecordBytes, type GfsConfig } from '../config.js';
import { logger, type Logger } from '../log.js';
import { AttrCache, joinPath, parentPath } from './attr-cache.js';
import { ChunkIo } from './chunk-io.js';
import type { AlignedAlloc } from './local-reads.js';
import { DeferredChanges } from './deferred-changes.js';
import { BusyHold } from './busy-hold.js';
import { DirDelegations, type HeldDir } from './dir-delegations.js';
import { DirListings } from './dir-listings.js';
import { MasterLink } from './master-link.js';
import { OpenFile } from './open-file.js';
import { AppendQueue } from './append-queue.js';
import { WriteBehind } from './write-behind.js';
import { SIZE_WAIT_MS, SizeUpdates } from './size-updates.js';

/** Write buffers at least this big come from alignedAlloc (its smallest block is 256 KiB). */
const WRITE_POOL_MIN = 256 * 1024;
const later = (a: Attr['ctime'], b: Attr['ctime']): boolean => a[0] > b[0] || (a[0] === b[0] && a[1] > b[1]);

export class GfsClient {
  readonly io: ChunkIo;
  private readonly master: MasterLink;
  private readonly pool: PeerPool;
  private readonly open = new Map<number, Set<OpenFile>>();
  private readonly attrs: AttrCache;
  private readonly listings: DirListings;
  private readonly changes: DeferredChanges;
  /** Directories this client made and holds: it answers creates in them itself. */
  private readonly dirs: DirDelegations;
  /** Creates in held directories are answered here (cfg.deferredChanges and write-behind on). */
  private readonly createsAhead: boolean;
  private readonly behind: WriteBehind;
  /** Background work held back while the mount's callers keep it busy (busy-hold.ts); undefined: none. */
  private readonly hold: BusyHold<number | 'changes'> | undefined;
  /** Sizes from background pushes, waiting to go with the next create (size-updates.ts). */
  private readonly sizes = new SizeUpdates(async (sizes) => (await this.ask('extendMany', { sizes })).sized, SIZE_WAIT_MS);
  /** When files were last written here (for their times until the master has the writes). */
  private readonly changedAt = new Map<number, Attr['ctime']>();
  private readonly idleTimer: NodeJS.Timeout;
  /** Record appends of this client, merged per file while one is on its way (append-queue.ts). */
  readonly appends: AppendQueue;
  maxRecordBytes: number;
  readonly cfg: GfsConfig;

  constructor(
    masterUrl: string,
    cfg: GfsConfig,
    private readonly log: Logger = logger('client'),
    /**
     * Aligned buffers whose memory is reused once they are garbage: for O_DIRECT reads of replicas
     * on this host (local-reads.ts) and for large write buffers (writeBuffer). The mount passes its addon's.
     */
    private readonly alignedAlloc?: AlignedAlloc,
    /** Whether a caller (pid) sleeps waiting for a request's answer (busy-hold.ts); the mount passes its addon's. */
    waitsOnRequest?: (pid: number) => boolean,
  ) {
    this.cfg = { ...cfg };
    this.hold = cfg.writeBehindHoldMs > 0 ? new BusyHold(Math.max(1, cfg.writeBehindQuietMs), cfg.writeBehindHoldMs, waitsOnRequest) : undefined;
    const giveBack = (inos: number[]) => {
      for (const ino of inos) this.attrs.renew(ino); // (the last moment they are known right)
      return this.master.call('giveBack', { inos });
    };
    this.behind = new WriteBehind(cfg.writeBehindFiles, giveBack, log, this.hold, cfg.writeBehindHoldBytes);
    this.master = new MasterLink(masterUrl, cfg, log, { recall: ({ ino, grant }) => this.recall(ino, grant).then(() => ({})) }, () => {
      this.behind.dropAll();
      this.dirs.dropAll();
    });
    this.idleTimer = setInterval(() => {
      this.behind.tick(Date.now(), (ino) => this.open.has(ino));
      this.giveBackDirs(this.dirs.idle(Date.now()));
    }, 500);
    this.idleTimer.unref();
    this.pool = new PeerPool({ maxFrameBytes: cfg.maxFrameBytes, timeoutMs: cfg.rpcTimeoutMs, log });
    this.io = new ChunkIo(this.master, this.pool, this.cfg, log, (ino) => this.changes.whenMade(ino), alignedAlloc);
    this.maxRecordBytes = maxRecordBytes(cfg);
    this.appends = new AppendQueue((ino, data, touched) => this.io.append(ino, data, touched, this.changedAt.get(ino)), () => this.maxRecordBytes, (attr) => this.noteAttr(attr));
    this.attrs = new AttrCache(cfg.attrCacheMs, (ino) => this.behind.holds(ino));
    this.listings = new DirListings(cfg.attrCacheMs);
    this.dirs = new DirDelegations(this.listings, (count) => this.master.call('reserveInos', { count }), (e) => log.debug(`inode numbers not reserved: ${e.message}`));
    this.createsAhead = cfg.deferredChanges > 0 && cfg.writeBehindFiles > 0 && cfg.attrCacheMs > 0;
    this.changes = new DeferredChanges(cfg.deferredChanges, (changes) => this.sendChanges(changes), log, this.hold && (() => this.hold!.wait('changes')));
  }

  /** One batch of changes answered ahead, with the sizes waiting for a create to carry them. */
  private async sendChanges(changes: DeferredChange[]): Promise<ChangeResult[]> {
    const sizes = this.sizes.take();
    const sent = this.master.call('changes', { items: changes.map((c) => ({ ...c, rid: this.master.requestId() })), ...(sizes ? { sizes: sizes.updates } : {}) });
    sent.then((r) => sizes?.settle(r.sized), () => sizes?.settle(undefined));
    return (await sent).results;
  }

  /**
   * Dial the master and learn the cluster's chunk size (the master owns it: every client must cut
   * files at the same offsets). Fails fast when the master cannot be reached at all.
   */
  async connect(): Promise<void> {
    await this.master.connectOnce();
    const { chunkSize } = await this.master.call('statfs', {});
    this.cfg.chunkSize = chunkSize;
    this.cfg.writeBufferBytes = Math.min(this.cfg.writeBufferBytes, chunkSize);
    this.maxRecordBytes = maxRecordBytes(this.cfg);
  }

  /** Changes answered ahead that the master has not taken yet are dropped: settled() first. */
  close(): void {
    clearInterval(this.idleTimer);
    this.master.close();
    this.pool.closeAll();
  }

  /**
   * A request of one of the mount's callers begins or is answered: while they keep the mount busy,
   * background work that can wait does (busy-hold.ts).
   */
  requestBegun(pid = 0): void {
    this.hold?.begin(pid);
  }

  requestAnswered(): void {
    this.hold?.done();
  }

  /** Wait until the master has every change this client answered for ahead of it (unmount). */
  async settled(): Promise<void> {
    this.sizes.hurry();
    await Promise.all([this.changes.settled(), this.behind.settleAll()]);
  }

  /** timeoutMs: Infinity for a request that may wait as long as it takes (a lock wait). */
  call<K extends keyof MasterClientApi & string>(type: K, body: MasterClientApi[K][0], timeoutMs?: number): Promise<MasterClientApi[K][1]> {
    return this.ask(type, body, timeoutMs);
  }

  /**
   * A request to the master, sent once the changes answered ahead before it are done: the master
   * must see this client's changes in the order it made them (deferred-changes.ts).
   */
  private ask<K extends keyof MasterClientApi & string>(type: K, body: MasterClientApi[K][0], timeoutMs?: number): Promise<MasterClientApi[K][1]> {
    if (this.changes.size === 0) return this.master.call(type, body, undefined, timeoutMs);
    return this.changes.settled().then(() => this.master.call(type, body, undefined, timeoutMs));
  }

  // ------------------------------------------------------------------ namespace

  /**
   * A look-up in dir, or its listing: it waits only for the changes answered ahead that change
   * dir's listing (or make or remove dir or a directory above it), not for every one (ask()).
   */
  private askIn<K extends 'lookup' | 'readdir'>(dir: string, type: K, body: MasterClientApi[K][0]): Promise<MasterClientApi[K][1]> {
    if (!this.changes.touches(dir)) return this.master.call(type, body);
    return this.changes.settled().then(() => this.master.call(type, body));
  }

  /** path is not there, as far as this client knows: lookup(path) would throw ENOENT without asking. */
  knownAbsent(path: string): boolean {
    return this.attrs.get(path) === undefined && this.listings.absent(path);
  }

  /** Attributes of path; fresh=true always asks the master (open: close-to-open consistency). */
  async lookup(path: string, fresh = false, delegate = false): Promise<Attr> {
    let attr = fresh ? undefined : this.attrs.get(path);
    // Not in a directory whose every name is known (the look-up before each create): no such name.
    if (!attr && !fresh && this.listings.absent(path)) throw new GfsError('ENOENT', `no such file or directory: ${path}`);
    if (!attr) {
      const { delegated, ...got } = await this.askIn(parentPath(path), 'lookup', { path, ...(delegate ? { delegate } : {}) }).catch((e: unknown) => {
        // Gone (removed by another client): the next look-up must not find it in the cache either.
        if (e instanceof GfsError && e.code === 'ENOENT') this.attrs.drop(path);
        throw e;
      });
      if (delegated) this.behind.took(path, got.ino, delegated);
      this.attrs.set(path, (attr = got));
    }
    return this.withPending(attr);
  }

  /**
   * The file an open of path opens: looked up afresh at the master (close-to-open), unless this
   * client holds its write delegation (then nobody else has changed it). A writer asks for one.
   */
  async openLookup(path: string, writable: boolean): Promise<{ ino: number; type: Attr['type']; delegated?: true }> {
    const ino = this.behind.inoOf(path);
    if (ino !== undefined) return { ino, type: 'file', delegated: true };
    return this.lookup(path, true, writable && this.behind.enabled);
  }

  async getattr(ino: number): Promise<Attr> {
    let attr = this.attrs.getIno(ino);
    if (!attr) {
      attr = await this.ask('getattr', { ino });
      this.attrs.update(attr);
    }
    return this.withPending(attr);
  }

  async readdir(path: string): Promise<DirEntry[]> {
    const known = this.heldListing(path);
    if (known) return known;
    const { entries } = await this.askIn(path, 'readdir', { path });
    this.listings.set(path, entries.map((e) => e.name));
    for (const e of entries) this.attrs.set(joinPath(path, e.name), e.attr);
    return entries.map((e) => ({ name: e.name, attr: this.withPending(e.attr) }));
  }

  /**
   * The listing of a directory this client holds, answered here: nobody else can add, remove or
   * rename a name in it without recalling it first, so the names are those the master has once our
   * changes are applied. Only when every entry's attributes are cached (as fresh as a look-up's).
   * `rm -rf` of a tree this mount just made then costs no master round trip per directory (traced:
   * a READDIR of 100 entries took a median 707 us at a master busy with the unlinks, 159 us here).
   */
  private heldListing(path: string): DirEntry[] | undefined {
    const names = this.listings.held(path);
    if (!names) return undefined;
    const entries: DirEntry[] = [];
    for (const name of names) {
      const attr = this.attrs.get(joinPath(path, name));
      if (!attr) return undefined;
      entries.push({ name, attr: this.withPending(attr) });
    }
    return entries;
  }

  mkdir(path: string, mode: number, uid: number, gid: number): Promise<Attr> {
    const ahead = this.mkdirAhead(path, mode, uid, gid);
    if (ahead) return ahead;
    const made = this.ask('mkdir', { path, mode, uid, gid, ...(this.createsAhead ? { delegate: true } : {}) });
    return this.created(
      path,
      made.then(({ delegated, ...attr }) => {
        if (delegated) this.dirs.took(path, attr, delegated);
        return attr;
      }),
    );
  }

  /** forWriting: the caller is about to write, so a new file's first chunk is leased with the create. */
  create(path: string, mode: number, uid: number, gid: number, exclusive: boolean, forWriting = false): Promise<Attr> {
    const ahead = this.createAhead(path, mode, uid, gid, forWriting);
    if (ahead) return ahead;
    // The first chunk is leased along with the create (one round trip instead of two). Under a
    // delegation only if the master has one placed ahead: the push after the close places it
    // otherwise, off the create's way.
    const wants = !forWriting ? {} : this.behind.enabled ? { delegate: true, target: true } : { target: true };
    const sizes = this.sizes.take();
    const made = this.ask('create', { path, mode, uid, gid, exclusive, ...wants, ...(sizes ? { sizes: sizes.updates } : {}) });
    made.then((r) => sizes?.settle(r.sized), () => sizes?.settle(undefined));
    return this.created(
      path,
      made.then(({ target, delegated, sized: _, ...attr }) => {
        if (target) this.io.firstTarget(attr.ino, target);
        if (delegated) this.behind.took(path, attr.ino, delegated);
        return attr;
      }),
    );
  }

  /**
   * What answering a new name here needs: a directory this client holds and knows every name of,
   * a name the master will take, and an inode number the master reserved for us. undefined: ask
   * the master.
   */
  private ahead(path: string): { dir: string; held: HeldDir; ino: number; time: Attr['ctime'] } | undefined {
    if (!this.createsAhead) return undefined;
    const dir = parentPath(path);
    const held = this.dirs.holder(dir);
    if (!held || !this.listings.complete(dir) || !this.listings.absent(path)) return undefined;
    if (nameTooLong(path.slice(dir.length + 1))) return undefined; // (the master's to refuse)
    const ino = this.dirs.takeIno();
    return ino === undefined ? undefined : { dir, held, ino, time: this.changeTime() };
  }

  /**
   * A new file, answered here (ahead()); the create goes to the master in the next batch
   * (deferred-changes.ts). Its write delegation and first chunk come with the answer, which its
   * first push waits for.
   */
  private createAhead(path: string, mode: number, uid: number, gid: number, write: boolean): Promise<Attr> | undefined {
    const a = this.ahead(path);
    if (!a) return undefined;
    const { dir, held, ino, time } = a;
    const attr: Attr = { ino, type: 'file', mode: typeBits.file | mode, uid, gid: held.setgidGroup ?? gid, size: 0, nlink: 1, atime: time, mtime: time, ctime: time };
    // Known at once: a second create of the name, or a look-up, is answered from these.
    this.listings.added(path);
    this.attrs.set(path, attr);
    this.touchDir(dir, time);
    this.behind.took(path, ino, 0);
    const undo = () => {
      this.listings.forget(dir); // what is there: ask the master
      this.forgetUnlinked(path, ino);
      this.behind.drop(ino);
    };
    const made = (r: ChangeResult) => {
      if (!('code' in r) && r.delegated) this.behind.took(path, ino, r.delegated);
      else this.behind.drop(ino); // (a retried batch's answer carries no grant: closes wait then)
      if (!('code' in r) && r.target) this.io.firstTarget(ino, r.target);
    };
    return this.changes.add(dir, { op: 'create', path, mode, uid, gid, ino, time, ...(write ? { write } : {}) }, undo, made).then(() => attr);
  }

  /**
   * A new directory, answered here (ahead()) like a file: held by us from the start (its grant
   * comes with the master's answer), so names made in it are answered here too.
   */
  private mkdirAhead(path: string, mode: number, uid: number, gid: number): Promise<Attr> | undefined {
    const a = this.ahead(path);
    if (!a) return undefined;
    const { dir, held, ino, time } = a;
    const sg = held.setgidGroup !== undefined;
    const attr: Attr = { ino, type: 'dir', mode: typeBits.dir | mode | (sg ? 0o2000 : 0), uid, gid: held.setgidGroup ?? gid, size: 0, nlink: 2, atime: time, mtime: time, ctime: time };
    this.listings.added(path);
    this.attrs.set(path, attr);
    this.listings.set(path, []);
    this.touchDir(dir, time, 1);
    this.dirs.took(path, attr, 0);
    const undo = () => {
      this.giveBackDirs(this.dirs.forgetTree(path));
      this.listings.forget(dir);
      this.listings.forgetTree(path);
      this.attrs.drop(dir);
      this.attrs.dropTree(path);
    };
    const made = (r: ChangeResult) => {
      if (!('code' in r) && r.delegated) this.dirs.took(path, attr, r.delegated);
      else this.dirs.forgetTree(path); // (a retried batch's answer carries no grant)
    };
    return this.changes.add(dir, { op: 'mkdir', path, mode, uid, gid, ino, time }, undo, made).then(() => attr);
  }

  /**
   * A name made or removed in dir, answered here: dir's times (and link count, for a directory
   * made or removed) as the master will have them once the change reaches it with this time
   * (find relies on nlink; make and rsync on times).
   */
  private touchDir(dir: string, time: Attr['ctime'], links = 0): void {
    const d = this.attrs.get(dir);
    if (d) this.attrs.set(dir, { ...d, nlink: d.nlink + links, mtime: time, ctime: time });
  }

  async unlink(path: string): Promise<void> {
    const known = this.attrs.get(path);
    if (known && known.type !== 'dir' && this.cfg.deferredChanges > 0) {
      // There (as far as this client knows): answered now, sent to the master in the background.
      this.forgetUnlinked(path, known.ino);
      const dir = parentPath(path);
      const time = this.changeTime();
      this.touchDir(dir, time);
      // The master takes our time only for a directory we hold: another mount may have changed
      // one we do not since, and its times must not go back.
      const held = this.dirs.holder(dir) !== undefined;
      return this.changes.add(dir, { op: 'unlink', path, ...(held ? { time } : {}) }, () => {
        this.listings.forget(dir); // the name may still be there: ask the master next time
        this.attrs.drop(path);
      });
    }
    await this.changed(this.ask('unlink', { path }), [path]);
    this.forgetUnlinked(path, known?.ino);
  }

  private forgetUnlinked(path: string, ino: number | undefined): void {
    this.behind.forgetPath(path);
    this.attrs.drop(path);
    this.listings.removed(path);
    if (ino !== undefined) this.attrs.dropIno(ino); // other names of it: one link fewer
  }

  /**
   * fsync of a directory: the unlinks in it that were answered ahead of the master are durable
   * (or their failure is reported).
   */
  syncDir(path: string): Promise<void> {
    return this.changes.sync(path);
  }

  /** Give back directory delegations dropped here, once the creates made under them are at the master. */
  private giveBackDirs(inos: number[]): void {
    if (inos.length === 0) return;
    this.changes
      .answered()
      .then(() => this.master.call('giveBack', { inos }))
      .catch((e: Error) => this.log.debug(`give back of ${inos.length} directories: ${e.message}`));
  }

  async rmdir(path: string): Promise<void> {
    // Before its own delegation goes: while held, its listing stays known (it would have expired
    // attrCacheMs after the mkdir, and every rmdir of `rm -rf` went to the master).
    const ahead = this.rmdirAhead(path);
    this.giveBackDirs(this.dirs.forget(path)); // (empty, so nothing beneath it is held)
    if (ahead) return ahead;
    if (!(await this.rmdirBehindUnlinks(path))) await this.changed(this.ask('rmdir', { path }), [parentPath(path)], [path]);
    this.listings.removed(path);
  }

  /**
   * rmdir of a directory this client knows to be empty, in a directory it holds: answered here and
   * sent in the next batch of changes, behind the unlinks that emptied it (another mount that looks
   * recalls the parent, and so waits for it). undefined: ask the master. Only while this client
   * holds the directory itself too: no other client can then have made a name in it (a listing
   * merely cached could miss one, and the master would refuse the rmdir after it was answered).
   * (Only a directory has a listing; its attributes may have expired.)
   */
  private rmdirAhead(path: string): Promise<void> | undefined {
    const dir = parentPath(path);
    if (this.cfg.deferredChanges === 0 || !this.dirs.holder(dir) || !this.dirs.holder(path) || !this.listings.knownEmpty(path)) return undefined;
    const time = this.changeTime();
    this.listings.removed(path);
    this.attrs.dropTree(path);
    this.behind.forgetTree(path);
    this.touchDir(dir, time, -1);
    return this.changes.add(dir, { op: 'rmdir', path, time }, () => {
      this.listings.forget(dir); // it may still be there: ask the master
      this.attrs.drop(dir);
    });
  }

  /**
   * rm -rf has just emptied path: its unlinks go now and the rmdir right behind them on the same
   * connection, instead of one round trip after the other. false if there were none, or if the
   * master still found it not empty (an unlink waiting there for a recall): then ask again once
   * they are done.
   */
  private async rmdirBehindUnlinks(path: string): Promise<boolean> {
    // Not behind names made in it: the master could take the rmdir first and refuse those
    // (ask() then waits for them, and the master answers ENOTEMPTY).
    if (this.changes.size === 0 || this.changes.makesIn(path)) return false;
    this.changes.flush();
    return this.changed(this.master.call('rmdir', { path }), [parentPath(path)], [path]).then(
      () => true,
      (e: unknown) => {
        if (e instanceof GfsError && e.code === 'ENOTEMPTY') return false;
        throw e;
      },
    );
  }

  async rename(from: string, to: string): Promise<void> {
    this.giveBackDirs(this.dirs.forgetTree(from)); // (the paths they are held by change)
    this.giveBackDirs(this.dirs.forgetTree(to)); // (what the rename replaces goes)
    await this.changed(this.ask('rename', { from, to }), [parentPath(from), parentPath(to)], [from, to]);
    this.listings.removed(from);
    this.listings.removed(to); // what was there, and beneath it, is gone
    this.listings.added(to);
  }

  async link(from: string, to: string): Promise<Attr> {
    const attr = await this.created(to, this.ask('link', { from, to }));
    this.attrs.update(attr);
    return attr;
  }

  symlink(target: string, path: string, uid: number, gid: number): Promise<Attr> {
    return this.created(path, this.ask('symlink', { path, target, uid, gid }));
  }

  async readlink(path: string): Promise<string> {
    return (await this.ask('readlink', { path })).target;
  }

  /** Forget what is cached of path's inode (under every name): its attributes changed. */
  forgetAttrs(path: string): void {
    const ino = this.attrs.get(path)?.ino;
    if (ino !== undefined) this.attrs.dropIno(ino);
    else this.attrs.drop(path);
  }

  async setattr(path: string, set: SetAttr): Promise<Attr> {
    const attr = await this.changed(this.ask('setattr', { path, set }), [path]);
    this.attrs.set(path, attr);
    this.attrs.update(attr);
    return attr;
  }

  statfs(): Promise<FsStats> {
    return this.ask('statfs', {});
  }

  /** Set the file's size: pending writes go first, then the master, then the replicas are cut. */
  async truncate(ino: number, size: number): Promise<Attr> {
    await this.flushInode(ino, true);
    this.invalidateReads(ino);
    const { attr, cut, cutLength } = await this.ask('truncate', { ino, size });
    this.attrs.update(attr);
    if (cut) await this.io.cut(cut, ino, cutLength);
    this.io.forget(ino);
    // Chunks past the new end are gone at the master: a cached lease on one would let the next
    // write land in a deleted chunk (read back as a hole).
    this.io.forgetTargets(ino);
    return attr;
  }

  /**
   * The file has bytes up to size on its replicas, written here at the time noteChange took.
   * behind: pushed after its close, so the size may wait a moment for a create to carry it.
   */
  async extend(ino: number, size: number, behind = false): Promise<void> {
    const mtime = this.changedAt.get(ino);
    const update = { ino, size, ...(mtime ? { mtime } : {}) };
    this.noteAttr(await (behind ? this.sizes.add(update) : this.ask('extend', update)));
  }

  /** Attributes the master sent back after a change made for this client (a size update). */
  noteAttr(attr: Attr): void {
    this.attrs.update(attr);
  }

  /** A namespace change: whatever it touched leaves the cache, whether it worked or not. */
  private async changed<T>(work: Promise<T>, paths: string[], trees: string[] = []): Promise<T> {
    try {
      return await work;
    } catch (e) {
      // Maybe applied, maybe not: the directories' listings cannot be followed.
      for (const p of [...paths, ...trees]) this.listings.forget(parentPath(p));
      for (const p of trees) this.listings.forgetTree(p);
      throw e;
    } finally {
      for (const p of paths) {
        this.attrs.drop(p);
        this.behind.forgetPath(p);
      }
      for (const p of trees) {
        this.attrs.dropTree(p);
        this.behind.forgetTree(p);
      }
    }
  }

  /** A new name: its parent's attributes changed, and its own are known. */
  private async created(path: string, work: Promise<Attr>): Promise<Attr> {
    const attr = await work.catch((e: unknown) => {
      this.listings.forget(parentPath(path)); // maybe made, maybe not (EEXIST: there all along)
      throw e;
    });
    // A new directory changes its parent's link count, which find and friends rely on; a new
    // file only its times, which may lag like any cached attribute.
    if (attr.type === 'dir') {
      this.attrs.drop(parentPath(path));
      this.listings.set(path, []); // just made: empty
    }
    this.listings.added(path);
    this.attrs.set(path, attr);
    return attr;
  }

  // ------------------------------------------------------------------ open files

  openFile(ino: number, mode: { append: boolean; writable: boolean }): OpenFile {
    this.io.forget(ino); // close-to-open: an open sees what was closed before it, anywhere
    const f = new OpenFile(this, ino, mode.append, mode.writable);
    let set = this.open.get(ino);
    if (!set) this.open.set(ino, (set = new Set()));
    set.add(f);
    return f;
  }

  /** The last close of a handle: its writes are pushed (in the background under a delegation). */
  async closeFile(f: OpenFile): Promise<void> {
    f.closed = true;
    const forget = () => {
      const set = this.open.get(f.ino);
      set?.delete(f);
      if (set?.size === 0) this.open.delete(f.ino);
    };
    if (!this.writesBehind(f)) {
      try {
        await f.flush();
      } finally {
        forget();
      }
      return;
    }
    const failed = this.behind.takeError(f.ino);
    // It stays among the open files until its writes are done: reads, stats and truncates of the
    // file here wait for them (flushInode, getattr).
    await this.behind.defer(f.ino, () => f.flush(true).finally(forget), f.touched, !f.append, f.bufferedBytes);
    if (failed) throw failed;
  }

  /** A close of a handle that may stay open (a dup): like closeFile, without forgetting it. */
  async flushFile(f: OpenFile): Promise<void> {
    if (!this.writesBehind(f)) return f.flush();
    const failed = this.behind.takeError(f.ino);
    if (f.dirty) await this.behind.defer(f.ino, () => f.flush(true), f.touched, !f.append, f.bufferedBytes);
    if (failed) throw failed;
  }

  /** flush, and every replica written since the file's last fsync here is on disk. */
  async fsyncFile(f: OpenFile): Promise<void> {
    this.appends.hurry(f.ino);
    this.sizes.hurry();
    await this.behind.settle(f.ino);
    for (const [h, servers] of this.behind.takeUnsynced(f.ino) ?? []) f.touched.set(h, servers);
    await f.fsync();
    const failed = this.behind.takeError(f.ino);
    if (failed) throw failed;
  }

  private writesBehind(f: OpenFile): boolean {
    return f.writable && this.behind.holds(f.ino);
  }

  /** The master wants ino back for another client: everything written to it here goes out first. */
  private async recall(ino: number, grant: number): Promise<void> {
    const dir = this.dirs.holdsIno(ino);
    this.dirs.recall(ino, grant); // (also noted for a directory whose mkdir reply is still coming)
    if (dir) return this.changes.settled(); // the creates answered in it reach the master first
    await this.behind.recall(ino, grant, () => this.flushInode(ino, true));
    this.attrs.dropIno(ino); // another client is about to change it
  }

  /**
   * Before a record of f is appended: the writes at offsets that other open handles of the file
   * hold are pushed (closed ones are pushed in order by their own flush, which appends wait for).
   */
  async pushWritesAtOffsets(f: OpenFile, behind: boolean): Promise<void> {
    for (const g of this.open.get(f.ino) ?? []) {
      // (A failure there is g's to report, at its own flush or close. behind: f's is a close's
      // background flush, which g's push must not wait for as beforePush() would.)
      if (g !== f && !g.closed && g.writesAtOffsets) await g.flushFinished(behind).catch(() => {});
    }
  }

  /**
   * Before a push that is not itself a close's background flush: the writes of ino's closed
   * handles land first (a later write must not be overtaken by an earlier one), and what is held
   * of other files goes now too, so that writes reach the chunkservers about in the order they
   * were made (a file closed before a disk filled up keeps its room).
   */
  async beforePush(ino: number): Promise<void> {
    this.hold?.releaseAll();
    if (this.behind.busy(ino)) await this.behind.settle(ino);
  }

  /**
   * A buffer for bytes of writes to gather in. A large one comes from alignedAlloc when there is
   * one: fresh memory is faulted in and zeroed page by page as the writes are copied in (perf, a
   * 1 GiB `dd` into a mount: ~90K page faults), where a reused block is mapped already.
   */
  writeBuffer(bytes: number): Buffer {
    return (bytes >= WRITE_POOL_MIN && this.alignedAlloc?.(bytes)) || Buffer.allocUnsafe(bytes);
  }

  /** Some open file of ino has writes that are not on the chunkservers (or the master) yet. */
  hasBufferedWrites(ino: number): boolean {
    if (this.behind.busy(ino)) return true;
    for (const f of this.open.get(ino) ?? []) if (f.dirty) return true;
    return false;
  }

  /** Some handle of this client may write ino. */
  hasWriters(ino: number): boolean {
    for (const f of this.open.get(ino) ?? []) if (f.writable) return true;
    return false;
  }

  /** Make this client's buffered writes to ino visible (before a read, stat or truncate of it). */
  async flushInode(ino: number, all: boolean): Promise<void> {
    const set = this.open.get(ino);
    // A closed handle's writes go by its close's background flush (settled below, in the order of
    // the closes), not pushed here ahead of the closes before it.
    const background = this.behind.busy(ino);
    if (set) for (const f of [...set]) if ((all || f.dirty) && !(f.closed && background)) await f.flushFinished();
    this.appends.hurry(ino);
    this.sizes.hurry();
    await this.behind.settle(ino);
  }

  /**
   * Forget what is cached about ino (read windows, chunk locations) and every cached attribute:
   * another client may have changed the file, and the names next to it (sqlite's -journal), under
   * the lock this client has just taken. NFS revalidates on lock the same way.
   */
  revalidate(ino: number): void {
    this.invalidateReads(ino);
    this.io.forget(ino);
    this.attrs.clear();
    this.listings.clear();
  }

  invalidateReads(ino: number): void {
    for (const f of this.open.get(ino) ?? []) f.dropWindows();
  }

  /**
   * The master's attributes, with the size this client has written but not yet reported: writes
   * at offsets end where they end; records to append come after those and what the master has
   * (the only writer's, under a delegation; the size grows further only if a record must skip to
   * the next chunk).
   */
  private withPending(attr: Attr): Attr {
    let appending = this.appends.pendingBytes(attr.ino);
    const set = this.open.get(attr.ino);
    if (!set && appending === 0) return attr;
    let size = attr.size;
    let dirty = appending > 0;
    for (const f of set ?? []) {
      size = Math.max(size, f.pendingEnd);
      appending += f.pendingRecordBytes;
      dirty ||= f.dirty;
    }
    // Records land after the writes at offsets closed before them (write-behind.ts), so after
    // their end (an overestimate while a write past the end follows an append still on its way).
    size += appending;
    const changed = this.changedAt.get(attr.ino);
    if (!dirty || !changed) {
      if (!dirty) this.changedAt.delete(attr.ino);
      return size === attr.size ? attr : { ...attr, size };
    }
    // Changed here, not yet at the master (a close answered ahead of its writes): make on this
    // mount compares the file's time with other files' right after the close.
    const time = later(changed, attr.mtime) ? changed : attr.mtime;
    return { ...attr, size, mtime: time, ctime: time };
  }

  /** A write to ino: the time its change will show until the master has it (withPending). */
  noteChange(ino: number): void {
    if (this.changedAt.size >= 100_000) this.changedAt.clear();
    this.changedAt.set(ino, this.changeTime());
  }

  /** A time for a change not yet at the master: now, and later than every master time seen here. */
  private changeTime(): Attr['ctime'] {
    const us = Math.floor((performance.timeOrigin + performance.now()) * 1000);
    const now: Attr['ctime'] = [Math.floor(us / 1e6), (us % 1e6) * 1000];
    const [s, ns] = this.attrs.latestTime;
    const after: Attr['ctime'] = ns >= 999_999_999 ? [s + 1, 0] : [s, ns + 1];
    return later(now, after) ? now : after;
  }
}

export { GfsError };
