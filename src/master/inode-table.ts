// The master's inodes, stored by column: one typed array per attribute, one row per inode. A
// million files then cost no object, no Map entry and no Timespec arrays each: ~67 bytes of
// columns and ~24 of index per inode instead of ~280 bytes of objects (measured by
// scripts/bench-meta; issue 5 asks for at most 200 bytes per file with its directory entry).
// What only some inodes have (chunks, directory entries, symlink targets, extended attributes)
// lives in Maps beside the columns.
//
// Inode numbers are never reused, so rows are not indexed by them (the columns would grow with
// every file ever made): an open-addressing hash maps ino -> row, and a removed inode's row is
// reused. Inode is a view of one row: short-lived, made by each look-up; reading or assigning a
// property reads or writes the columns, so the namespace code reads as if inodes were objects.

import type { ChunkHandle, FileType, Timespec } from '../protocol/messages.js';

const TYPES: readonly FileType[] = ['file', 'dir', 'symlink'];
/** Type column values: 0 is a free row. */
const typeCode = (t: FileType): number => TYPES.indexOf(t) + 1;

/** Rows added at a time at least (and a quarter of what there is): few copies, little slack. */
const GROW_MIN = 64 * 1024;
/** The index doubles when it is this full (linear probing stays short below ~70%). */
const INDEX_LOAD = 0.7;

/** The chunk list of a file that has none yet (frozen: chunks are added through the table). */
const NO_CHUNKS: ChunkHandle[] = Object.freeze([] as ChunkHandle[]) as ChunkHandle[];

interface Directory {
  children: Map<string, number>;
  parent: number;
}

export class InodeTable {
  // The storage, by row. Read and write it through Inode; the table adds and removes rows.
  type = new Uint8Array(0);
  inoOf = new Float64Array(0);
  perm = new Uint16Array(0);
  uid = new Uint32Array(0);
  gid = new Uint32Array(0);
  nlink = new Uint32Array(0);
  size = new Float64Array(0);
  /** a, m, c: seconds (a float: before 1970 and after 2106 too) and nanoseconds, three per row. */
  sec = new Float64Array(0);
  nsec = new Uint32Array(0);
  /** By inode number: only some inodes have these. */
  readonly chunks = new Map<number, ChunkHandle[]>();
  readonly dirs = new Map<number, Directory>();
  readonly targets = new Map<number, string>();
  readonly xattrs = new Map<number, Record<string, Buffer>>();
  /** ino -> row: open addressing with linear probing; key 0 is an empty slot (no inode 0). */
  private keys = new Float64Array(1024);
  private rowAt = new Uint32Array(1024);
  private readonly freeRows: number[] = [];
  /** Rows ever used (the rest of the columns is room to grow). */
  private rowsUsed = 0;
  /** Inodes in the table. */
  count = 0;

  has(ino: number): boolean {
    return this.keys[this.probe(ino)] === ino;
  }

  /** The inode, or undefined if there is none. */
  get(ino: number): Inode | undefined {
    const slot = this.probe(ino);
    return this.keys[slot] === ino ? new Inode(this, ino, this.rowAt[slot]) : undefined;
  }

  /** A new inode (ino must be free). Directories start with no entries, files with no chunks. */
  add(ino: number, type: FileType, perm: number, uid: number, gid: number, time: Timespec, parent = 0): Inode {
    if (!Number.isSafeInteger(ino) || ino <= 0) throw new RangeError(`bad inode number ${ino}`);
    if ((this.count + 1) / this.keys.length > INDEX_LOAD) this.rehash(this.keys.length * 2);
    const slot = this.probe(ino);
    if (this.keys[slot] === ino) throw new RangeError(`inode ${ino} exists`);
    let row = this.freeRows.pop();
    if (row === undefined) {
      if (this.rowsUsed === this.type.length) this.grow();
      row = this.rowsUsed++;
    }
    this.keys[slot] = ino;
    this.rowAt[slot] = row;
    this.count++;
    this.type[row] = typeCode(type);
    this.inoOf[row] = ino;
    this.perm[row] = perm & 0o7777;
    this.uid[row] = uid;
    this.gid[row] = gid;
    this.nlink[row] = type === 'dir' ? 2 : 1;
    this.size[row] = 0;
    for (let i = row * 3; i < row * 3 + 3; i++) {
      this.sec[i] = time[0];
      this.nsec[i] = time[1];
    }
    if (type === 'dir') this.dirs.set(ino, { children: new Map(), parent });
    return new Inode(this, ino, row);
  }

  remove(ino: number): void {
    const slot = this.probe(ino);
    if (this.keys[slot] !== ino) return;
    const row = this.rowAt[slot];
    this.type[row] = 0;
    this.freeRows.push(row);
    this.deleteSlot(slot);
    this.count--;
    this.chunks.delete(ino);
    this.dirs.delete(ino);
    this.targets.delete(ino);
    this.xattrs.delete(ino);
  }

  /** Every inode in the table. */
  *all(): IterableIterator<Inode> {
    for (let row = 0; row < this.rowsUsed; row++) if (this.type[row] !== 0) yield new Inode(this, this.inoOf[row], row);
  }

  /** The bytes the columns and the index take (typed arrays live outside the JS heap). */
  get columnBytes(): number {
    const cols = [this.type, this.inoOf, this.perm, this.uid, this.gid, this.nlink, this.size, this.sec, this.nsec, this.keys, this.rowAt];
    return cols.reduce((n, a) => n + a.byteLength, 0);
  }

  // ---- the index ----

  private home(ino: number): number {
    // Inode numbers come in order: a multiplicative hash spreads them; its high bits are the best.
    const h = Math.imul((ino >>> 0) ^ Math.imul(Math.floor(ino / 2 ** 32), 0x85ebca6b), 0x9e3779b1) >>> 0;
    return Math.floor((h / 2 ** 32) * this.keys.length);
  }

  /** The index slot holding ino, or the empty slot where it would go. */
  private probe(ino: number): number {
    const mask = this.keys.length - 1;
    let i = this.home(ino);
    while (this.keys[i] !== ino && this.keys[i] !== 0) i = (i + 1) & mask;
    return i;
  }

  /** Empty slot i and move later entries of its probe run back (no tombstones to pile up). */
  private deleteSlot(i: number): void {
    const mask = this.keys.length - 1;
    this.keys[i] = 0;
    for (let j = (i + 1) & mask; this.keys[j] !== 0; j = (j + 1) & mask) {
      const home = this.home(this.keys[j]);
      // Entry j may fill the hole at i unless its home lies cyclically in (i, j].
      if (i <= j ? home > i && home <= j : home > i || home <= j) continue;
      this.keys[i] = this.keys[j];
      this.rowAt[i] = this.rowAt[j];
      this.keys[j] = 0;
      i = j;
    }
  }

  private rehash(size: number): void {
    const keys = this.keys;
    const rows = this.rowAt;
    this.keys = new Float64Array(size);
    this.rowAt = new Uint32Array(size);
    for (let i = 0; i < keys.length; i++) {
      if (keys[i] === 0) continue;
      const slot = this.probe(keys[i]);
      this.keys[slot] = keys[i];
      this.rowAt[slot] = rows[i];
    }
  }

  private grow(): void {
    const n = this.type.length + Math.max(GROW_MIN, this.type.length >> 2);
    const widen = <T extends Uint8Array | Uint16Array | Uint32Array | Float64Array>(a: T, make: (n: number) => T, per = 1): T => {
      const b = make(n * per);
      b.set(a);
      return b;
    };
    this.type = widen(this.type, (k) => new Uint8Array(k));
    this.inoOf = widen(this.inoOf, (k) => new Float64Array(k));
    this.perm = widen(this.perm, (k) => new Uint16Array(k));
    this.uid = widen(this.uid, (k) => new Uint32Array(k));
    this.gid = widen(this.gid, (k) => new Uint32Array(k));
    this.nlink = widen(this.nlink, (k) => new Uint32Array(k));
    this.size = widen(this.size, (k) => new Float64Array(k));
    this.sec = widen(this.sec, (k) => new Float64Array(k), 3);
    this.nsec = widen(this.nsec, (k) => new Uint32Array(k), 3);
  }
}

/** A view of one inode's row. Valid while the inode exists. */
export class Inode {
  constructor(
    private readonly c: InodeTable,
    readonly ino: number,
    private readonly row: number,
  ) {}

  get type(): FileType {
    return TYPES[this.c.type[this.row] - 1];
  }

  /** Permission bits only (07777); the type bits come from type. */
  get perm(): number {
    return this.c.perm[this.row];
  }
  set perm(v: number) {
    this.c.perm[this.row] = v & 0o7777;
  }
  get uid(): number {
    return this.c.uid[this.row];
  }
  set uid(v: number) {
    this.c.uid[this.row] = v;
  }
  get gid(): number {
    return this.c.gid[this.row];
  }
  set gid(v: number) {
    this.c.gid[this.row] = v;
  }
  get nlink(): number {
    return this.c.nlink[this.row];
  }
  set nlink(v: number) {
    this.c.nlink[this.row] = v;
  }
  get size(): number {
    return this.c.size[this.row];
  }
  set size(v: number) {
    this.c.size[this.row] = v;
  }
  get atime(): Timespec {
    return this.time(0);
  }
  set atime(t: Timespec) {
    this.setTime(0, t);
  }
  get mtime(): Timespec {
    return this.time(1);
  }
  set mtime(t: Timespec) {
    this.setTime(1, t);
  }
  get ctime(): Timespec {
    return this.time(2);
  }
  set ctime(t: Timespec) {
    this.setTime(2, t);
  }

  /** Files: chunk handle per chunk index, 0 for a hole. Read-only: change it with setChunk/cutChunks. */
  get chunks(): readonly ChunkHandle[] | undefined {
    if (this.type !== 'file') return undefined;
    return this.c.chunks.get(this.ino) ?? NO_CHUNKS;
  }

  /** Files: set the handle at index (holes before it read 0). */
  setChunk(index: number, handle: ChunkHandle): void {
    let list = this.c.chunks.get(this.ino);
    // Made to measure: a list grown from [] by push keeps room for 16 more (136 bytes per file).
    if (!list) this.c.chunks.set(this.ino, (list = new Array<ChunkHandle>(index + 1).fill(0)));
    while (list.length < index) list.push(0);
    list[index] = handle;
  }

  /** Files: drop the chunks from index keep on; returns them. */
  cutChunks(keep: number): ChunkHandle[] {
    const list = this.c.chunks.get(this.ino);
    if (!list) return [];
    const gone = list.splice(keep);
    if (list.length === 0) this.c.chunks.delete(this.ino);
    return gone;
  }

  /** Directories: name → ino. */
  get children(): Map<string, number> | undefined {
    return this.c.dirs.get(this.ino)?.children;
  }

  /** Directories: the parent's ino (for rename loops and nlink). */
  get parent(): number | undefined {
    return this.c.dirs.get(this.ino)?.parent;
  }
  set parent(p: number | undefined) {
    const d = this.c.dirs.get(this.ino);
    if (d && p !== undefined) d.parent = p;
  }

  /** Symlinks: where it points. */
  get target(): string | undefined {
    return this.c.targets.get(this.ino);
  }
  set target(t: string | undefined) {
    if (t === undefined) this.c.targets.delete(this.ino);
    else this.c.targets.set(this.ino, t);
  }

  /** Extended attributes, name → value (absent while there are none). */
  get xattrs(): Record<string, Buffer> | undefined {
    return this.c.xattrs.get(this.ino);
  }
  set xattrs(x: Record<string, Buffer> | undefined) {
    if (x === undefined) this.c.xattrs.delete(this.ino);
    else this.c.xattrs.set(this.ino, x);
  }

  private time(i: number): Timespec {
    const at = this.row * 3 + i;
    return [this.c.sec[at], this.c.nsec[at]];
  }

  private setTime(i: number, t: Timespec): void {
    const at = this.row * 3 + i;
    this.c.sec[at] = t[0];
    this.c.nsec[at] = t[1];
  }
}
