// The master process: namespace and chunk map behind one RPC server that clients, the CLI and
// chunkservers all dial. Mutations are applied in memory, logged, and answered after the fsync.

import { mkdir } from 'node:fs/promises';
import { GfsError, asGfsError, type ErrorCode } from '../protocol/errors.js';
import type { Attr, ChangeResult, ChunkLocation, DeferredChange, MasterApi, SetAttr, SizeUpdate, Timespec, WriteTarget } from '../protocol/messages.js';
import { withoutSetId } from '../protocol/modes.js';
import { RpcServer, type Handlers } from '../protocol/rpc.js';
import type { GfsConfig } from '../config.js';
import { logger, type Logger } from '../log.js';
import { Cluster, type Chunkserver, type ChunkserverPeer } from './cluster.js';
import { Leases } from './leases.js';
import { ChunkPool } from './chunk-pool.js';
import type { Inode } from './namespace.js';
import { OpLog } from './oplog.js';
import { nowTimespec, type NsOp } from './ops.js';
import { Repair } from './repair.js';
import { adminHandlers } from './admin.js';
import { Trash } from './trash.js';
import { Replies } from './replies.js';
import { LockTable, lockHandlers } from './locks.js';
import { Delegations, type ClientPeer } from './delegations.js';
import { xattrHandlers } from './xattrs.js';

export interface MasterOptions {
  dataDir: string;
  host: string;
  port: number;
  cfg: GfsConfig;
  log?: Logger;
}

export interface RunningMaster {
  address: string;
  stop(): Promise<void>;
}

const num = (v: unknown, what: string): number => {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new GfsError('EINVAL', `${what} must be a non-negative integer`);
  return v;
};

/**
 * A change of owner or group clears a non-directory's set-user-ID bit, and its set-group-ID bit if
 * it is group-executable, as Linux does for root too; the mounts leave that to the master
 * (clearsSetId). Logged as an explicit mode, so a replay needs no rule.
 */
function withSetIdCleared(node: Inode, set: SetAttr): SetAttr {
  const chown = (set.uid !== undefined && set.uid !== -1) || (set.gid !== undefined && set.gid !== -1);
  if (!chown || node.type === 'dir' || set.mode !== undefined) return set;
  const cleared = withoutSetId(node.perm);
  return cleared === node.perm ? set : { ...set, mode: cleared };
}

const isTimespec = (t: unknown): t is Timespec =>
  Array.isArray(t) && t.length === 2 && Number.isSafeInteger(t[0]) && Number.isInteger(t[1]) && t[1] >= 0 && t[1] < 1e9;
const before = (a: Timespec, b: Timespec) => a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]);

/**
 * The mtime a writer says it wrote at (a push after its close), kept between the file's last mtime
 * and now: a client's clock never moves a file's time back, nor ahead of the master's.
 */
function writtenAt(said: unknown, last: Timespec, now: Timespec): { mtime?: Timespec } {
  if (!isTimespec(said)) return {};
  const t = before(now, said) ? now : said;
  return { mtime: before(t, last) ? last : t };
}

export async function startMaster(opts: MasterOptions): Promise<RunningMaster> {
  const { cfg } = opts;
  const log = opts.log ?? logger('master');
  await mkdir(opts.dataDir, { recursive: true });
  const t0 = Date.now();
  const replies = new Replies();
  const { ns, log: oplog, recovered, replayed } = await OpLog.open(
    opts.dataDir, cfg.chunkSize, cfg.checkpointEvery, (op, after) => replies.replayed(op, after), (m) => log.warn(m),
  );
  log.info(`namespace loaded: ${ns.fileCount} inodes, ${ns.versions.size} chunks, ${replayed} log records replayed in ${Date.now() - t0} ms`);

  const cluster = new Cluster(cfg.deadAfterMs, cfg.chunkSize);
  const commit = (op: NsOp) => oplog.append(op);
  const leases = new Leases(ns, cluster, commit, cfg, recovered, log);
  const pool = new ChunkPool(ns, cluster, leases, commit, cfg, log);
  const repair = new Repair(ns, cluster, leases, cfg, log, (h) => pool.holds(h));
  const delegations = new Delegations(ns, cfg.rpcTimeoutMs, log);
  const isClient = (peer: { tag: string | undefined }) => peer.tag === undefined; // chunkservers tag theirs at register
  /** attr, with the write delegation of its file granted to peer if it asked and may have it. */
  const delegated = <A extends { type: string; ino: number }>(attr: A, ask: unknown, peer: ClientPeer): A & { delegated?: number } => {
    const grant = ask === true && attr.type === 'file' && isClient(peer) ? delegations.grant(attr.ino, peer) : 0;
    return grant > 0 ? { ...attr, delegated: grant } : attr;
  };

  /** Apply op now; `logged` resolves once it is on disk (with the request id of a retried request: replies.ts). */
  function applyAndLog(op: NsOp): { node: Inode | undefined; logged: Promise<void> } {
    const node = ns.apply(op);
    return { node, logged: commit(replies.tag(op)) };
  }
  /** Apply a namespace op now and answer once it is durable. */
  async function mutate(op: NsOp): Promise<Inode | undefined> {
    const { node, logged } = applyAndLog(op);
    await logged;
    return node;
  }
  const attrOf = (node: Inode | undefined): Attr => ns.attr(node!);
  const trash = new Trash(ns, mutate, cfg.trashGraceMs, cfg.chunkSize, log);
  /** path's directory if it is set-group-ID: new entries then take its group (and new directories the bit), as on ext4. */
  const setgidDir = (path: string): Inode | undefined => {
    const { dir } = ns.parentOf(path);
    return dir.perm & 0o2000 ? dir : undefined;
  };
  const fileNode = (ino: number): Inode => {
    const node = ns.get(num(ino, 'ino'));
    if (node.type !== 'file') throw new GfsError(node.type === 'dir' ? 'EISDIR' : 'EINVAL', `inode ${ino} is not a regular file`);
    return node;
  };

  /**
   * The chunk at index, added (version 0) if missing. Its log record is not waited for here: the
   * lease grant that follows logs the version bump after it, and waits for that fsync, which
   * covers both (one fsync per new chunk, not two).
   */
  function allocate(node: Inode, index: number): number {
    const existing = node.chunks![index];
    if (existing) return existing;
    const op: NsOp = { t: 'addChunk', ino: node.ino, index, handle: ns.nextHandle };
    ns.apply(op);
    commit(op).catch((e) => log.warn(`op log: ${(e as Error).message}`));
    return op.handle;
  }

  /** A lease on the file's chunk at index (made, or taken from the pool, if the file has none there). */
  async function chunkTarget(node: Inode, index: number): Promise<WriteTarget> {
    const placed = node.chunks![index] ? undefined : pool.place(node, index);
    if (placed) return placed;
    const handle = allocate(node, index);
    const fresh = ns.versions.get(handle) === 0;
    try {
      return await leases.target(handle, index);
    } catch (e) {
      // A new chunk that no chunkserver managed to make (full disks) has a version but no replica:
      // kept, it would read as lost and every later write to it would fail. Forgotten, the next
      // write makes a new one.
      const unmade = fresh && node.chunks![index] === handle && (ns.versions.get(handle) ?? 0) > 0 && cluster.replicasOf(handle).length === 0;
      if (unmade) await mutate({ t: 'dropChunk', ino: node.ino, index, handle });
      throw e;
    }
  }

  function serverOf(peer: ChunkserverPeer): Chunkserver {
    const s = peer.tag ? cluster.servers.get(peer.tag) : undefined;
    if (!s || s.peer !== peer) throw new GfsError('EPROTO', 'register first');
    return s;
  }

  function extendOp({ ino, size, mtime }: SizeUpdate): NsOp {
    const node = fileNode(ino);
    const time = nowTimespec();
    return { t: 'extend', ino: node.ino, size: num(size, 'size'), time, ...writtenAt(mtime, node.mtime, time) };
  }

  /**
   * A size a create or extendMany carries (client/size-updates.ts): an extend, logged with the
   * create but not under its request id (a retried create's outcome is its own op; an extend may
   * happen twice).
   */
  async function carriedSize(update: SizeUpdate): Promise<Attr | { code: ErrorCode; message: string }> {
    try {
      const op = extendOp(update);
      const node = ns.apply(op);
      await commit(op);
      return attrOf(node);
    } catch (e) {
      const err = asGfsError(e);
      return { code: err.code, message: err.message };
    }
  }

  /**
   * The inode number and time of a create a client answered ahead (under its directory's
   * delegation): a number reserved for it and not in use, a time no later than now.
   */
  function answeredAhead(ino: unknown, time: unknown): { ino: number; time: Timespec } {
    if (ino === undefined) return { ino: ns.nextIno, time: nowTimespec() };
    if (num(ino, 'ino') >= ns.nextIno || ns.inodes.has(ino as number)) throw new GfsError('EINVAL', `inode ${ino} was not reserved or is in use`);
    return { ino: ino as number, time: changeTime(time) };
  }

  /** The time of a change: the client's, when it answered the change ahead and showed that time (never one in the future). */
  function changeTime(time: unknown): Timespec {
    const now = nowTimespec();
    return isTimespec(time) && before(time, now) ? time : now;
  }

  /** A new file at path (or the existing one, unless exclusive), maybe with its first chunk leased. */
  async function create(req: MasterApi['create'][0]): Promise<MasterApi['create'][1]> {
    const { path, mode, uid, gid, exclusive, target, delegate } = req;
    const { dir, name } = ns.parentOf(path);
    const existing = dir.children!.get(name);
    if (existing !== undefined) {
      if (exclusive) throw new GfsError('EEXIST', `file exists: ${path}`);
      const node = ns.get(existing);
      if (node.type === 'dir') throw new GfsError('EISDIR', `is a directory: ${path}`);
      return ns.attr(node);
    }
    const group = dir.perm & 0o2000 ? dir.gid : num(gid, 'gid');
    const op: NsOp = { t: 'create', path, mode: num(mode, 'mode'), uid: num(uid, 'uid'), gid: group, ...answeredAhead(req.ino, req.time) };
    if (target !== true) return attrOf(await mutate(op));
    // The first chunk's records join the create's log write, and its replicas are made while
    // that write is on its way.
    const { node, logged } = applyAndLog(op);
    // A delegated writer pushes after its close, off the create's way: it takes a placed chunk if
    // one is ready, and never waits for chunkservers here.
    const first = (delegate === true ? pool.place(node!, 0) ?? Promise.resolve(undefined) : chunkTarget(node!, 0)).catch((e: Error) => {
      log.warn(`create ${path}: no first chunk yet: ${e.message}`);
      return undefined;
    });
    await logged;
    const t = await first;
    return t ? { ...attrOf(node), target: t } : attrOf(node);
  }

  /** Client → once its last batch of changes is applied (they are applied one batch after another). */
  const batchesApplied = new WeakMap<object, Promise<void>>();

  /** One change a client answered ahead, through the (retry-aware) handler of its kind. */
  function applyChange(item: DeferredChange, peer: ClientPeer): Promise<ChangeResult> {
    if (typeof item?.path !== 'string') return Promise.reject(new GfsError('EINVAL', 'changes: an item without a path'));
    const rid = { rid: item.rid }; // (RequestId, read by replies.ts)
    if (item.op === 'unlink' || item.op === 'rmdir') return Promise.resolve(retrying[item.op]!({ path: item.path, time: item.time, ...rid }, peer)).then(() => ({}));
    if (item.op === 'mkdir') {
      const { path, mode, uid, gid, ino, time } = item;
      return Promise.resolve(retrying.mkdir!({ path, mode, uid, gid, ino, time, delegate: true, ...rid }, peer)).then(({ delegated }) => (delegated ? { delegated } : {}));
    }
    if (item.op !== 'create') return Promise.reject(new GfsError('EINVAL', `changes: unknown change ${String((item as { op?: unknown }).op)}`));
    const { path, mode, uid, gid, ino, time, write } = item;
    return Promise.resolve(retrying.create!({ path, mode, uid, gid, ino, time, exclusive: true, target: write === true, delegate: true, ...rid }, peer)).then(({ delegated, target }) => ({
      ...(delegated ? { delegated } : {}),
      ...(target ? { target } : {}),
    }));
  }

  const handlers: Handlers<MasterApi> = {
    lookup: ({ path, delegate }, peer) => delegated(ns.attr(ns.resolve(path)), delegate, peer as ClientPeer),
    giveBack: ({ inos }, peer) => {
      if (Array.isArray(inos)) delegations.giveBack(inos, peer as ClientPeer);
      return {};
    },
    getattr: ({ ino }) => ns.attr(ns.get(num(ino, 'ino'))),
    readdir: ({ path }) => {
      const dir = ns.resolve(path);
      if (dir.type !== 'dir') throw new GfsError('ENOTDIR', `not a directory: ${path}`);
      return { entries: [...dir.children!].map(([name, ino]) => ({ name, attr: ns.attr(ns.get(ino)) })) };
    },
    mkdir: async ({ path, mode, uid, gid, delegate, ino, time }, peer) => {
      const sg = setgidDir(path);
      const { node, logged } = applyAndLog({ t: 'mkdir', path, mode: num(mode, 'mode') | (sg ? 0o2000 : 0), uid: num(uid, 'uid'), gid: sg ? sg.gid : num(gid, 'gid'), ...answeredAhead(ino, time) });
      // Granted as it is made: no other client may see it empty and then make a name in it
      // unknown to the holder, whose listing of it is the empty one.
      const grant = delegate === true && isClient(peer) ? delegations.grant(node!.ino, peer as ClientPeer) : 0;
      await logged;
      return grant > 0 ? { ...attrOf(node), delegated: grant } : attrOf(node);
    },
    create: async (req, peer) => {
      const made = create(req); // its own op first: a retried create's outcome is that op (replies.ts)
      const sized = Array.isArray(req.sizes) ? Promise.all(req.sizes.map(carriedSize)) : undefined;
      const attr = delegated(await made, req.delegate, peer as ClientPeer);
      return sized ? { ...attr, sized: await sized } : attr;
    },
    unlink: async ({ path, time }) => (await mutate({ t: 'unlink', path, time: changeTime(time) }), {}),
    changes: async (req, peer) => {
      const { items, sizes } = req;
      if (!Array.isArray(items)) throw new GfsError('EINVAL', 'changes: items must be a list');
      // Applied in this order (the guard made the recalls they need first), and after the client's
      // batch before, which may still wait for a recall: an rmdir must not overtake the unlinks of
      // the names in it, a create the unlink of the old file of that name.
      // (Its recalls are made here, not by the guard: the place in line is taken on arrival.)
      const before = batchesApplied.get(peer);
      let applied!: () => void;
      batchesApplied.set(peer, new Promise<void>((r) => (applied = r)));
      let started: Array<Promise<ChangeResult>>;
      try {
        if (isClient(peer)) await delegations.before('changes', req, peer as ClientPeer);
        if (before) await before;
        started = items.map((item) => applyChange(item, peer as ClientPeer));
      } finally {
        applied(); // (the next batch goes on after the microtasks that apply these, queued already)
      }
      const done = await Promise.allSettled(started);
      const results = done.map((r): ChangeResult => {
        if (r.status === 'fulfilled') return r.value;
        const err = asGfsError(r.reason);
        return { code: err.code, message: err.message };
      });
      return Array.isArray(sizes) ? { results, sized: await Promise.all(sizes.map(carriedSize)) } : { results };
    },
    reserveInos: async ({ count }) => {
      const first = ns.nextIno;
      const end = first + Math.min(Math.max(1, num(count, 'count')), 65_536);
      await mutate({ t: 'reserveInos', next: end });
      return { first, end };
    },
    rmdir: async ({ path, time }) => (await mutate({ t: 'rmdir', path, time: changeTime(time) }), {}),
    rename: async ({ from, to }) => (await mutate({ t: 'rename', from, to, time: nowTimespec() }), {}),
    link: async ({ from, to }) => attrOf(await mutate({ t: 'link', from, to, time: nowTimespec() })),
    symlink: async ({ path, target, uid, gid }) => {
      if (typeof target !== 'string' || target.length === 0) throw new GfsError('EINVAL', 'empty symlink target');
      const group = setgidDir(path)?.gid ?? num(gid, 'gid');
      return attrOf(await mutate({ t: 'symlink', path, target, uid: num(uid, 'uid'), gid: group, ino: ns.nextIno, time: nowTimespec() }));
    },
    readlink: ({ path }) => {
      const node = ns.resolve(path);
      if (node.type !== 'symlink') throw new GfsError('EINVAL', `not a symlink: ${path}`);
      return { target: node.target! };
    },
    setattr: async ({ path, set }) => {
      const node = ns.resolve(path);
      return attrOf(await mutate({ t: 'setattr', ino: node.ino, set: withSetIdCleared(node, set ?? {}), time: nowTimespec() }));
    },
    truncate: async ({ ino, size }) => {
      const node = fileNode(ino);
      num(size, 'size');
      const boundary = Math.min(node.size, size);
      const keep = Math.ceil(size / cfg.chunkSize);
      const attr = attrOf(await mutate({ t: 'truncate', ino: node.ino, size, keep, time: nowTimespec() }));
      const index = Math.floor(boundary / cfg.chunkSize);
      const cutLength = boundary % cfg.chunkSize;
      const handle = node.chunks![index];
      let cut: WriteTarget | null = null;
      if (cutLength > 0 && handle && ns.versions.get(handle)! > 0) cut = await leases.target(handle, index);
      return { attr, cut, cutLength };
    },
    extend: async (update) => attrOf(await mutate(extendOp(update))),
    extendMany: async ({ sizes }) => {
      if (!Array.isArray(sizes)) throw new GfsError('EINVAL', 'extendMany: sizes must be a list');
      return { sized: await Promise.all(sizes.map(carriedSize)) };
    },
    statfs: () => {
      let total = 0;
      let free = 0;
      for (const s of cluster.alive()) {
        total += s.freeBytes + s.usedBytes;
        free += s.freeBytes;
      }
      const r = Math.max(1, cfg.replication);
      return { totalBytes: Math.floor(total / r), freeBytes: Math.floor(free / r), files: ns.fileCount, chunkSize: cfg.chunkSize };
    },
    chunks: ({ ino, first, count }, peer) => {
      const node = fileNode(ino);
      const out: ChunkLocation[] = [];
      const end = Math.min(node.chunks!.length, num(first, 'first') + Math.min(num(count, 'count'), 4096));
      for (let index = first; index < end; index++) {
        const handle = node.chunks![index];
        const version = handle ? ns.versions.get(handle) : undefined;
        if (!handle || !version) continue; // a hole, or a chunk no one has written yet: zeros
        out.push({ index, handle, version, replicas: cluster.replicasOf(handle, peer.label).map((s) => s.address) });
      }
      return { size: node.size, chunks: out };
    },
    writeTarget: async ({ ino, index }) => {
      const node = fileNode(ino);
      if (num(index, 'index') * cfg.chunkSize > Number.MAX_SAFE_INTEGER) throw new GfsError('EFBIG', 'offset too large');
      return chunkTarget(node, index);
    },
    appendTarget: async ({ ino, full }) => {
      const node = fileNode(ino);
      const chunks = node.chunks!;
      let index = Math.max(0, chunks.length - 1);
      // The client saw the last chunk full (padded): move on to a new one, once, however many
      // clients report it at the same time.
      if (full !== undefined && chunks[index] === full) index++;
      return chunkTarget(node, index);
    },
    reportBad: ({ handle, server }) => {
      const s = cluster.byAddress(server);
      if (s) repair.markCorrupt(handle, s);
      return {};
    },
    ...xattrHandlers(ns, mutate),
    ...lockHandlers(new LockTable(), (ino) => void ns.get(num(ino, 'ino'))),
    ...adminHandlers(ns, cluster, repair, cfg.replication, log),
    ...trash.handlers(),
    // ---------------------------------------------------------- chunkservers
    register: (req, peer) => {
      const p = peer as ChunkserverPeer;
      if (typeof req.id !== 'string' || typeof req.address !== 'string' || !Array.isArray(req.chunks)) throw new GfsError('EINVAL', 'register: id, address and chunks are required');
      const old = cluster.servers.get(req.id);
      if (old && old.peer !== p) {
        cluster.markDead(old);
        old.peer.close();
      }
      const s: Chunkserver = {
        id: req.id, address: req.address, peer: p, alive: true, epoch: old ? old.epoch + 1 : 0, lastHeartbeat: Date.now(),
        freeBytes: req.freeBytes, usedBytes: req.usedBytes, load: 0, chunks: old?.chunks ?? new Set(),
      };
      cluster.servers.set(req.id, s);
      p.tag = req.id;
      p.onClose(() => {
        if (cluster.servers.get(s.id)?.peer === p && s.alive) {
          log.info(`chunkserver ${s.address} disconnected`);
          cluster.markDead(s);
        }
      });
      repair.report(s, req.chunks, []);
      log.info(`chunkserver ${req.address} (${req.id}) registered with ${req.chunks.length} chunks`);
      return { chunkSize: cfg.chunkSize, heartbeatMs: cfg.heartbeatMs };
    },
    heartbeat: (req, peer) => {
      const s = serverOf(peer as ChunkserverPeer);
      s.lastHeartbeat = Date.now();
      s.freeBytes = req.freeBytes;
      s.usedBytes = req.usedBytes;
      s.load = req.load;
      if (!s.alive) {
        s.alive = true;
        log.info(`chunkserver ${s.address} is back`);
      }
      repair.report(s, req.chunks ?? [], req.corrupt ?? [], Array.isArray(req.replicating) ? req.replicating : undefined);
      return { commands: repair.take(s.id), extended: leases.extend(s, req.extend ?? []) };
    },
  };

  /** The handlers, each retried request applied once per request id (replies.ts). */
  const retrying = replies.wrap(handlers, ns);
  const served = delegations.guard(retrying, isClient);
  const server = await RpcServer.listen<MasterApi>(
    { host: opts.host, port: opts.port, maxFrameBytes: cfg.maxFrameBytes, timeoutMs: cfg.rpcTimeoutMs, log },
    served,
  );
  const timer = setInterval(() => {
    const now = Date.now();
    for (const s of cluster.expire(now)) log.warn(`chunkserver ${s.address} missed its heartbeats: dead`);
    repair.tick(now);
    leases.sweep();
    pool.sweep(now);
    const full = cluster.shortOfRoom(cfg.replication) ? cluster.outOfRoom() : undefined;
    trash.tick(now, full && ((ino) => (ns.get(ino).chunks ?? []).some((h) => h !== 0 && cluster.holdsAny(h, full))));
  }, Math.max(100, Math.min(cfg.heartbeatMs, 1000)));
  log.info(`listening on ws://${server.address}`);

  return {
    address: server.address,
    async stop() {
      clearInterval(timer);
      await server.close();
      await oplog.close();
    },
  };
}
