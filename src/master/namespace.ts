// The master's persistent state: inodes (directories, files, symlinks), the file → chunk map and
// chunk versions. apply() is the only way it changes: the server calls it for a new op (it throws a
// GfsError, changing nothing, when the op is not valid) and replay calls it for logged ops.

import { GfsError } from '../protocol/errors.js';
import type { Attr, ChunkHandle, FileType, Timespec } from '../protocol/messages.js';
import { nameTooLong, typeBits } from '../protocol/modes.js';
import type { NsOp } from './ops.js';
import { InodeTable, type Inode } from './inode-table.js';

export type { Inode };

export const ROOT_INO = 1;

/** Bytes of extended attributes (names and values) one inode may hold. */
export const XATTR_MAX_BYTES = 256 * 1024;

/** One inode as a checkpoint stores it. */
export interface InodeImage {
  ino: number;
  type: FileType;
  perm: number;
  uid: number;
  gid: number;
  nlink: number;
  size: number;
  atime: Timespec;
  mtime: Timespec;
  ctime: Timespec;
  chunks?: ChunkHandle[];
  target?: string;
  children?: Array<[string, number]>;
  parent?: number;
  xattrs?: Record<string, Buffer>;
}

/** A snapshot of the whole state, as the checkpoint stores it. */
export interface NamespaceImage {
  inodes: InodeImage[];
  nextIno: number;
  nextHandle: number;
  versions: Array<[ChunkHandle, number]>;
  trash?: Array<[number, Trashed]>;
}

/** A file whose last name is gone: kept whole (inode, chunks) until purged after the grace period. */
export interface Trashed {
  /** Where its last name was. */
  path: string;
  /** When (ms since the epoch, from the op's time, so replay agrees). */
  deletedAt: number;
}

export function splitPath(path: string): string[] {
  if (typeof path !== 'string' || !path.startsWith('/')) throw new GfsError('EINVAL', `not an absolute path: ${String(path)}`);
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  for (const p of parts) {
    if (p === '..') throw new GfsError('EINVAL', `path may not contain '..': ${path}`);
    if (nameTooLong(p)) throw new GfsError('ENAMETOOLONG', `name too long: ${p.slice(0, 40)}...`);
  }
  return parts;
}

export class Namespace {
  readonly inodes = new InodeTable();
  /** Current version of every live chunk. A handle not here is garbage. */
  readonly versions = new Map<ChunkHandle, number>();
  /** Deleted files by inode (see Trashed); gfs undelete brings one back, a purge op ends it. */
  readonly trash = new Map<number, Trashed>();
  nextIno = ROOT_INO + 1;
  nextHandle = 1;

  constructor(time: Timespec = [0, 0]) {
    this.inodes.add(ROOT_INO, 'dir', 0o755, 0, 0, time, ROOT_INO);
  }

  // ------------------------------------------------------------------ look-ups

  get(ino: number): Inode {
    const node = this.inodes.get(ino);
    if (!node) throw new GfsError('ENOENT', `no inode ${ino}`);
    return node;
  }

  resolve(path: string): Inode {
    return this.walk(splitPath(path), path);
  }

  /** The inode at path, or undefined (no error is built: for look-ups that may well miss). */
  find(path: string): Inode | undefined {
    let node: Inode | undefined = this.inodes.get(ROOT_INO);
    for (const name of splitPath(path)) {
      const ino: number | undefined = node?.children?.get(name);
      node = ino === undefined ? undefined : this.inodes.get(ino);
      if (!node) return undefined;
    }
    return node;
  }

  /** The inodes on the way to path (path's own last), as far as the names exist. */
  along(path: string): Inode[] {
    const out: Inode[] = [];
    let node: Inode | undefined = this.inodes.get(ROOT_INO);
    for (const name of splitPath(path)) {
      const ino: number | undefined = node?.children?.get(name);
      node = ino === undefined ? undefined : this.inodes.get(ino);
      if (!node) break;
      out.push(node);
    }
    return out;
  }

  /** The directory that holds path's last component, and that name. */
  parentOf(path: string): { dir: Inode; name: string } {
    const parts = splitPath(path);
    const name = parts.pop();
    if (name === undefined) throw new GfsError('EEXIST', 'the root directory always exists');
    const dir = this.walk(parts, path);
    if (dir.type !== 'dir') throw new GfsError('ENOTDIR', `not a directory: /${parts.join('/')}`);
    return { dir, name };
  }

  /** The inode at the end of names, from the root (path: for messages). */
  private walk(names: string[], path: string): Inode {
    let node = this.get(ROOT_INO);
    for (const name of names) {
      if (node.type !== 'dir') throw new GfsError('ENOTDIR', `not a directory on the way to ${path}`);
      const ino = node.children!.get(name);
      if (ino === undefined) throw GfsError.answer('ENOENT', `no such file or directory: ${path}`);
      node = this.get(ino);
    }
    return node;
  }

  attr(node: Inode): Attr {
    return {
      ino: node.ino, type: node.type, mode: typeBits[node.type] | node.perm, uid: node.uid, gid: node.gid,
      size: node.type === 'symlink' ? Buffer.byteLength(node.target!) : node.size,
      nlink: node.nlink, atime: node.atime, mtime: node.mtime, ctime: node.ctime,
      ...(node.xattrs ? { xattrs: true } : {}),
    };
  }

  get fileCount(): number {
    return this.inodes.count - this.trash.size;
  }

  // ------------------------------------------------------------------ the state machine

  apply(op: NsOp): Inode | undefined {
    switch (op.t) {
      case 'mkdir': return this.addNode(op.path, op.ino, 'dir', op.mode, op.uid, op.gid, op.time);
      case 'create': return this.addNode(op.path, op.ino, 'file', op.mode, op.uid, op.gid, op.time);
      case 'symlink': {
        const node = this.addNode(op.path, op.ino, 'symlink', 0o777, op.uid, op.gid, op.time, op.target);
        return node;
      }
      case 'link': return this.link(op.from, op.to, op.time);
      case 'unlink': return this.unlink(op.path, op.time);
      case 'rmdir': return this.rmdir(op.path, op.time);
      case 'rename': return this.rename(op.from, op.to, op.time);
      case 'setattr': {
        const node = this.get(op.ino);
        const s = op.set;
        if (s.mode !== undefined) node.perm = s.mode & 0o7777;
        if (s.uid !== undefined && s.uid !== -1) node.uid = s.uid;
        if (s.gid !== undefined && s.gid !== -1) node.gid = s.gid;
        if (s.atime) node.atime = s.atime;
        if (s.mtime) node.mtime = s.mtime;
        node.ctime = op.time;
        return node;
      }
      case 'truncate': {
        const node = this.file(op.ino);
        if (!Number.isSafeInteger(op.size) || op.size < 0) throw new GfsError('EINVAL', `bad size ${op.size}`);
        node.size = op.size;
        for (const h of node.cutChunks(op.keep)) if (h) this.versions.delete(h);
        node.mtime = node.ctime = op.time;
        return node;
      }
      case 'extend': {
        const node = this.file(op.ino);
        if (op.size > node.size) node.size = op.size;
        node.mtime = op.mtime ?? op.time;
        node.ctime = op.time;
        return node;
      }
      case 'addChunk': {
        const node = this.file(op.ino);
        if (node.chunks![op.index]) throw new GfsError('EEXIST', `chunk ${op.index} of inode ${op.ino} exists`);
        node.setChunk(op.index, op.handle);
        this.versions.set(op.handle, 0); // 0: not yet on any chunkserver; the first lease makes it 1
        if (op.handle >= this.nextHandle) this.nextHandle = op.handle + 1;
        return node;
      }
      case 'reserveHandles': {
        if (op.next > this.nextHandle) this.nextHandle = op.next;
        return undefined;
      }
      case 'reserveInos': {
        if (op.next > this.nextIno) this.nextIno = op.next;
        return undefined;
      }
      case 'dropChunk': {
        const node = this.file(op.ino);
        if (node.chunks![op.index] !== op.handle) return node; // another chunk there by now
        if (op.index === node.chunks!.length - 1) node.cutChunks(op.index);
        else node.setChunk(op.index, 0);
        this.versions.delete(op.handle); // replicas made late are garbage at the next heartbeats
        return node;
      }
      case 'undelete': return this.undelete(op.ino, op.path, op.time);
      case 'purge': {
        const node = this.get(op.ino);
        if (!this.trash.delete(op.ino)) throw new GfsError('ENOENT', `inode ${op.ino} is not in the trash`);
        for (const h of node.chunks ?? []) if (h) this.versions.delete(h); // replicas go at the next heartbeats
        this.inodes.remove(op.ino);
        return undefined;
      }
      case 'version': {
        if (!this.versions.has(op.handle)) throw new GfsError('ENOENT', `no chunk ${op.handle}`);
        this.versions.set(op.handle, op.version);
        return undefined;
      }
      case 'setxattr': return this.setXattr(op.ino, op.name, op.value, op.only, op.time);
      case 'removexattr': {
        const node = this.get(op.ino);
        if (!node.xattrs || !Object.hasOwn(node.xattrs, op.name)) throw new GfsError('ENODATA', `no attribute ${op.name}`);
        delete node.xattrs[op.name];
        if (Object.keys(node.xattrs).length === 0) node.xattrs = undefined;
        node.ctime = op.time;
        return node;
      }
    }
  }

  private setXattr(ino: number, name: string, value: Buffer, only: 'create' | 'replace' | undefined, time: Timespec): Inode {
    const node = this.get(ino);
    const xattrs = node.xattrs ?? {};
    const exists = Object.hasOwn(xattrs, name);
    if (only === 'create' && exists) throw new GfsError('EEXIST', `attribute ${name} exists`);
    if (only === 'replace' && !exists) throw new GfsError('ENODATA', `no attribute ${name}`);
    let bytes = Buffer.byteLength(name) + value.length;
    for (const [n, v] of Object.entries(xattrs)) if (n !== name) bytes += Buffer.byteLength(n) + v.length;
    if (bytes > XATTR_MAX_BYTES) throw new GfsError('ENOSPC', `extended attributes of inode ${ino} over ${XATTR_MAX_BYTES} bytes`);
    xattrs[name] = value;
    node.xattrs = xattrs;
    node.ctime = time;
    return node;
  }

  private file(ino: number): Inode {
    const node = this.get(ino);
    if (node.type === 'dir') throw new GfsError('EISDIR', `inode ${ino} is a directory`);
    if (node.type !== 'file') throw new GfsError('EINVAL', `inode ${ino} is not a regular file`);
    return node;
  }

  private addNode(path: string, ino: number, type: FileType, mode: number, uid: number, gid: number, time: Timespec, target?: string): Inode {
    const { dir, name } = this.parentOf(path);
    if (dir.children!.has(name)) throw new GfsError('EEXIST', `file exists: ${path}`);
    const node = this.inodes.add(ino, type, mode & 0o7777, uid, gid, time, dir.ino);
    if (type === 'dir') dir.nlink++;
    if (type === 'symlink') node.target = target;
    dir.children!.set(name, ino);
    dir.mtime = dir.ctime = time;
    if (ino >= this.nextIno) this.nextIno = ino + 1;
    return node;
  }

  private link(from: string, to: string, time: Timespec): Inode {
    const node = this.resolve(from);
    if (node.type === 'dir') throw new GfsError('EPERM', `hard link to a directory: ${from}`);
    const { dir, name } = this.parentOf(to);
    if (dir.children!.has(name)) throw new GfsError('EEXIST', `file exists: ${to}`);
    dir.children!.set(name, node.ino);
    dir.mtime = dir.ctime = time;
    node.nlink++;
    node.ctime = time;
    return node;
  }

  private unlink(path: string, time: Timespec): Inode {
    const { dir, name } = this.parentOf(path);
    const ino = dir.children!.get(name);
    if (ino === undefined) throw new GfsError('ENOENT', `no such file or directory: ${path}`);
    const node = this.get(ino);
    if (node.type === 'dir') throw new GfsError('EISDIR', `is a directory: ${path}`);
    dir.children!.delete(name);
    dir.mtime = dir.ctime = time;
    this.dropLink(node, time, path);
    return node;
  }

  private dropLink(node: Inode, time: Timespec, path: string): void {
    node.nlink--;
    node.ctime = time;
    if (node.nlink > 0) return;
    // Last name gone: a file goes to the trash whole (open handles keep working, gfs undelete can
    // bring it back); a purge op after the grace period drops it and its chunks, and chunkservers
    // delete the replicas when their next heartbeat reports handles the master no longer knows.
    if (node.type === 'file') this.trash.set(node.ino, { path, deletedAt: time[0] * 1000 + Math.floor(time[1] / 1e6) });
    else this.inodes.remove(node.ino);
  }

  private undelete(ino: number, path: string, time: Timespec): Inode {
    const node = this.get(ino);
    if (!this.trash.has(ino)) throw new GfsError('ENOENT', `inode ${ino} is not in the trash`);
    const { dir, name } = this.parentOf(path);
    if (dir.children!.has(name)) throw new GfsError('EEXIST', `file exists: ${path}`);
    this.trash.delete(ino);
    dir.children!.set(name, ino);
    dir.mtime = dir.ctime = time;
    node.nlink = 1;
    node.ctime = time;
    return node;
  }

  private rmdir(path: string, time: Timespec): Inode {
    const { dir, name } = this.parentOf(path);
    const ino = dir.children!.get(name);
    if (ino === undefined) throw new GfsError('ENOENT', `no such file or directory: ${path}`);
    const node = this.get(ino);
    if (node.type !== 'dir') throw new GfsError('ENOTDIR', `not a directory: ${path}`);
    if (node.children!.size > 0) throw new GfsError('ENOTEMPTY', `directory not empty: ${path}`);
    dir.children!.delete(name);
    dir.nlink--;
    dir.mtime = dir.ctime = time;
    this.inodes.remove(ino);
    return node;
  }

  private rename(from: string, to: string, time: Timespec): Inode {
    const src = this.parentOf(from);
    const ino = src.dir.children!.get(src.name);
    if (ino === undefined) throw new GfsError('ENOENT', `no such file or directory: ${from}`);
    const node = this.get(ino);
    const dst = this.parentOf(to);
    if (node.type === 'dir') {
      // A directory may not move beneath itself.
      for (let d = dst.dir; ; d = this.get(d.parent!)) {
        if (d.ino === node.ino) throw new GfsError('EINVAL', `cannot move ${from} into itself`);
        if (d.ino === ROOT_INO) break;
      }
    }
    const existing = dst.dir.children!.get(dst.name);
    if (existing === ino) return node; // rename to itself (or to another name of the same inode)
    if (existing !== undefined) {
      const victim = this.get(existing);
      if (victim.type === 'dir') {
        if (node.type !== 'dir') throw new GfsError('EISDIR', `is a directory: ${to}`);
        if (victim.children!.size > 0) throw new GfsError('ENOTEMPTY', `directory not empty: ${to}`);
        dst.dir.nlink--;
        this.inodes.remove(existing);
      } else {
        if (node.type === 'dir') throw new GfsError('ENOTDIR', `not a directory: ${to}`);
        this.dropLink(victim, time, to);
      }
    }
    // One step: the entry leaves src and appears in dst, so no one ever sees both or neither.
    src.dir.children!.delete(src.name);
    dst.dir.children!.set(dst.name, ino);
    if (node.type === 'dir') {
      src.dir.nlink--;
      dst.dir.nlink++;
      node.parent = dst.dir.ino;
    }
    src.dir.mtime = src.dir.ctime = time;
    dst.dir.mtime = dst.dir.ctime = time;
    node.ctime = time;
    return node;
  }

  // ------------------------------------------------------------------ checkpoint image

  /** The whole state as one value (the checkpoint file is written piecewise: see checkpoint.ts). */
  image(): NamespaceImage {
    return {
      inodes: [...this.inodes.all()].map(inodeImage), nextIno: this.nextIno, nextHandle: this.nextHandle,
      versions: [...this.versions], trash: [...this.trash],
    };
  }

  static fromImage(img: NamespaceImage): Namespace {
    const ns = new Namespace();
    ns.inodes.remove(ROOT_INO);
    for (const n of img.inodes) {
      const node = ns.inodes.add(n.ino, n.type, n.perm, n.uid, n.gid, n.atime, n.parent ?? ROOT_INO);
      node.mtime = n.mtime;
      node.ctime = n.ctime;
      node.nlink = n.nlink;
      node.size = n.size;
      if (n.target !== undefined) node.target = n.target;
      if (n.xattrs) node.xattrs = n.xattrs;
      if (n.children) for (const [name, ino] of n.children) node.children!.set(name, ino);
      if (n.chunks && n.chunks.length > 0) ns.inodes.chunks.set(n.ino, n.chunks);
    }
    ns.nextIno = img.nextIno;
    ns.nextHandle = img.nextHandle;
    for (const [h, v] of img.versions) ns.versions.set(h, v);
    for (const [ino, t] of img.trash ?? []) ns.trash.set(ino, t);
    return ns;
  }
}

/** One inode as the checkpoint stores it. */
export function inodeImage(n: Inode): InodeImage {
  const img: InodeImage = {
    ino: n.ino, type: n.type, perm: n.perm, uid: n.uid, gid: n.gid, nlink: n.nlink, size: n.size,
    atime: n.atime, mtime: n.mtime, ctime: n.ctime,
  };
  if (n.type === 'file') img.chunks = [...n.chunks!];
  if (n.type === 'symlink') img.target = n.target;
  if (n.type === 'dir') {
    img.children = [...n.children!];
    img.parent = n.parent;
  }
  if (n.xattrs) img.xattrs = n.xattrs;
  return img;
}
