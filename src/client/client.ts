// The client library: namespace calls to the master, data through ChunkIo, and the open files of
// this client. The FUSE adapter is one user of it; tests and tools can use it directly.

import { GfsError } from '../protocol/errors.js';
import type { Attr, DirEntry, FsStats, MasterClientApi, SetAttr } from '../protocol/messages.js';
import { PeerPool } from '../protocol/pool.js';
import { maxRecordBytes, type GfsConfig } from '../config.js';
import { logger, type Logger } from '../log.js';
import { ChunkIo } from './chunk-io.js';
import { MasterLink } from './master-link.js';
import { OpenFile } from './open-file.js';

export class GfsClient {
  readonly io: ChunkIo;
  private readonly master: MasterLink;
  private readonly pool: PeerPool;
  private readonly open = new Map<number, Set<OpenFile>>();
  maxRecordBytes: number;
  readonly cfg: GfsConfig;

  constructor(
    masterUrl: string,
    cfg: GfsConfig,
    private readonly log: Logger = logger('client'),
  ) {
    this.cfg = { ...cfg };
    this.master = new MasterLink(masterUrl, cfg, log);
    this.pool = new PeerPool({ maxFrameBytes: cfg.maxFrameBytes, timeoutMs: cfg.rpcTimeoutMs, log });
    this.io = new ChunkIo(this.master, this.pool, this.cfg, log);
    this.maxRecordBytes = maxRecordBytes(cfg);
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

  close(): void {
    this.master.close();
    this.pool.closeAll();
  }

  call<K extends keyof MasterClientApi & string>(type: K, body: MasterClientApi[K][0]): Promise<MasterClientApi[K][1]> {
    return this.master.call(type, body);
  }

  // ------------------------------------------------------------------ namespace

  async lookup(path: string): Promise<Attr> {
    return this.withPending(await this.master.call('lookup', { path }));
  }

  async getattr(ino: number): Promise<Attr> {
    return this.withPending(await this.master.call('getattr', { ino }));
  }

  async readdir(path: string): Promise<DirEntry[]> {
    const { entries } = await this.master.call('readdir', { path });
    return entries.map((e) => ({ name: e.name, attr: this.withPending(e.attr) }));
  }

  mkdir(path: string, mode: number, uid: number, gid: number): Promise<Attr> {
    return this.master.call('mkdir', { path, mode, uid, gid });
  }

  create(path: string, mode: number, uid: number, gid: number, exclusive: boolean): Promise<Attr> {
    return this.master.call('create', { path, mode, uid, gid, exclusive });
  }

  async unlink(path: string): Promise<void> {
    await this.master.call('unlink', { path });
  }

  async rmdir(path: string): Promise<void> {
    await this.master.call('rmdir', { path });
  }

  async rename(from: string, to: string): Promise<void> {
    await this.master.call('rename', { from, to });
  }

  link(from: string, to: string): Promise<Attr> {
    return this.master.call('link', { from, to });
  }

  symlink(target: string, path: string, uid: number, gid: number): Promise<Attr> {
    return this.master.call('symlink', { path, target, uid, gid });
  }

  async readlink(path: string): Promise<string> {
    return (await this.master.call('readlink', { path })).target;
  }

  setattr(path: string, set: SetAttr): Promise<Attr> {
    return this.master.call('setattr', { path, set });
  }

  statfs(): Promise<FsStats> {
    return this.master.call('statfs', {});
  }

  /** Set the file's size: pending writes go first, then the master, then the replicas are cut. */
  async truncate(ino: number, size: number): Promise<Attr> {
    await this.flushInode(ino, true);
    this.invalidateReads(ino);
    const { attr, cut, cutLength } = await this.master.call('truncate', { ino, size });
    if (cut) await this.io.cut(cut, ino, cutLength);
    this.io.forget(ino);
    return attr;
  }

  async extend(ino: number, size: number): Promise<void> {
    await this.master.call('extend', { ino, size });
  }

  // ------------------------------------------------------------------ open files

  openFile(ino: number, append: boolean): OpenFile {
    this.io.forget(ino); // close-to-open: an open sees what was closed before it, anywhere
    const f = new OpenFile(this, ino, append);
    let set = this.open.get(ino);
    if (!set) this.open.set(ino, (set = new Set()));
    set.add(f);
    return f;
  }

  async closeFile(f: OpenFile): Promise<void> {
    try {
      await f.flush();
    } finally {
      const set = this.open.get(f.ino);
      set?.delete(f);
      if (set?.size === 0) this.open.delete(f.ino);
    }
  }

  /** Make this client's buffered writes to ino visible (before a read, stat or truncate of it). */
  async flushInode(ino: number, all: boolean): Promise<void> {
    const set = this.open.get(ino);
    if (!set) return;
    for (const f of set) if (all || f.dirty) await f.flush();
  }

  invalidateReads(ino: number): void {
    for (const f of this.open.get(ino) ?? []) f.dropWindows();
  }

  /** The master's attributes, with the size this client has written but not yet reported. */
  private withPending(attr: Attr): Attr {
    const set = this.open.get(attr.ino);
    if (!set) return attr;
    let size = attr.size;
    for (const f of set) size = Math.max(size, f.pendingEnd);
    return size === attr.size ? attr : { ...attr, size };
  }
}

export { GfsError };
