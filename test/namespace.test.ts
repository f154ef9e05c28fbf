// The namespace as ops on its inode table (no processes): attributes, chunks, directories,
// symlinks and extended attributes survive every kind of change and the checkpoint image.

import { describe, expect, it } from 'vitest';
import { Namespace } from '../src/master/namespace.js';
import type { Timespec } from '../src/protocol/messages.js';

const t = (s: number, ns = 0): Timespec => [s, ns];

function sample(): Namespace {
  const ns = new Namespace(t(1));
  ns.apply({ t: 'mkdir', path: '/d', mode: 0o2750, uid: 5, gid: 6, ino: 2, time: t(2, 5) });
  ns.apply({ t: 'create', path: '/d/f', mode: 0o640, uid: 7, gid: 8, ino: 3, time: t(3, 999_999_999) });
  ns.apply({ t: 'addChunk', ino: 3, index: 2, handle: 40 }); // chunks 0 and 1 are holes
  ns.apply({ t: 'addChunk', ino: 3, index: 0, handle: 41 });
  ns.apply({ t: 'version', handle: 40, version: 3 });
  ns.apply({ t: 'extend', ino: 3, size: 2 ** 40 + 5, time: t(4) });
  ns.apply({ t: 'symlink', path: '/d/l', target: 'f', uid: 1, gid: 1, ino: 4, time: t(5) });
  ns.apply({ t: 'setxattr', ino: 3, name: 'user.k', value: Buffer.from('v'), time: t(6) });
  ns.apply({ t: 'link', from: '/d/f', to: '/g', time: t(7) });
  ns.apply({ t: 'setattr', ino: 3, set: { atime: t(-10, 1), uid: 2 ** 32 - 2 }, time: t(8) });
  return ns;
}

describe('namespace', () => {
  it('keeps every attribute of every kind of inode, also through the checkpoint image', () => {
    for (const ns of [sample(), Namespace.fromImage(sample().image())]) {
      const f = ns.resolve('/g');
      expect(f.ino).toBe(3);
      expect(ns.attr(f)).toEqual({
        ino: 3, type: 'file', mode: 0o100640, uid: 2 ** 32 - 2, gid: 8, size: 2 ** 40 + 5, nlink: 2,
        atime: [-10, 1], mtime: [4, 0], ctime: [8, 0], xattrs: true,
      });
      expect(f.chunks).toEqual([41, 0, 40]);
      expect(ns.versions.get(40)).toBe(3);
      expect(f.xattrs!['user.k'].toString()).toBe('v');
      const d = ns.resolve('/d');
      expect(ns.attr(d)).toMatchObject({ type: 'dir', mode: 0o42750, uid: 5, gid: 6, nlink: 2, ctime: [5, 0] });
      expect([...d.children!.keys()].sort()).toEqual(['f', 'l']);
      expect(d.parent).toBe(1);
      expect(ns.resolve('/d/l').target).toBe('f');
      expect(ns.attr(ns.resolve('/d/l')).size).toBe(1);
      expect(ns.attr(ns.resolve('/')).nlink).toBe(3);
      expect(ns.fileCount).toBe(4);
      expect(ns.nextIno).toBe(5);
      expect(ns.nextHandle).toBe(42);
    }
  });

  it('frees what it removes, and cuts chunks on truncate', () => {
    const ns = sample();
    ns.apply({ t: 'truncate', ino: 3, size: 10, keep: 1, time: t(9) });
    expect(ns.get(3).chunks).toEqual([41]);
    expect(ns.versions.has(40)).toBe(false);
    ns.apply({ t: 'truncate', ino: 3, size: 0, keep: 0, time: t(10) });
    expect(ns.get(3).chunks).toEqual([]);
    expect(() => (ns.get(3).chunks as number[]).push(1)).toThrow(TypeError); // changed only through ops
    ns.apply({ t: 'unlink', path: '/d/l', time: t(11) });
    expect(() => ns.get(4)).toThrow(/no inode 4/);
    ns.apply({ t: 'unlink', path: '/d/f', time: t(12) });
    ns.apply({ t: 'rename', from: '/g', to: '/d/f', time: t(13) });
    ns.apply({ t: 'rename', from: '/d', to: '/e', time: t(14) });
    expect(ns.resolve('/e/f').ino).toBe(3);
    expect(() => ns.apply({ t: 'rmdir', path: '/e', time: t(15) })).toThrow(/not empty/);
    ns.apply({ t: 'unlink', path: '/e/f', time: t(15) });
    ns.apply({ t: 'rmdir', path: '/e', time: t(16) });
    expect(() => ns.get(2)).toThrow(/no inode 2/);
    expect(ns.trash.has(3)).toBe(true); // the file waits in the trash, whole
    ns.apply({ t: 'purge', ino: 3 });
    expect(ns.fileCount).toBe(1);
    expect(ns.image().inodes.map((n) => n.ino)).toEqual([1]);
  });

  it('forgets a chunk no chunkserver could make: a hole inside the file, cut at its end; never another chunk', () => {
    const ns = sample(); // ino 3: chunks [41, 0, 40]
    ns.apply({ t: 'dropChunk', ino: 3, index: 0, handle: 41 });
    expect(ns.get(3).chunks).toEqual([0, 0, 40]);
    expect(ns.versions.has(41)).toBe(false);
    ns.apply({ t: 'dropChunk', ino: 3, index: 2, handle: 99 }); // another chunk is there (a replay after a new one)
    expect(ns.get(3).chunks).toEqual([0, 0, 40]);
    ns.apply({ t: 'dropChunk', ino: 3, index: 2, handle: 40 });
    expect(ns.get(3).chunks).toEqual([0, 0]);
    expect(ns.versions.has(40)).toBe(false);
  });

  it('grows past many rows with every value in place', () => {
    const ns = new Namespace(t(1));
    const n = 150_000;
    for (let i = 0; i < n; i++) ns.apply({ t: 'create', path: `/f${i}`, mode: i & 0o777, uid: i, gid: 0, ino: ns.nextIno, time: t(i, i) });
    expect(ns.fileCount).toBe(n + 1);
    for (const i of [0, 1, 65_535, 65_536, 100_000, n - 1]) {
      const a = ns.attr(ns.resolve(`/f${i}`));
      expect(a).toMatchObject({ ino: i + 2, mode: 0o100000 | (i & 0o777), uid: i, mtime: [i, i] });
    }
  });
});

describe('inode table', () => {
  it('finds every live inode after many adds and removes in any order', async () => {
    const { InodeTable } = await import('../src/master/inode-table.js');
    const table = new InodeTable();
    const live = new Map<number, number>(); // ino -> uid written
    const inos: number[] = [];
    let seed = 7;
    const rand = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n);
    let next = 1;
    for (let step = 0; step < 60_000; step++) {
      if (inos.length > 0 && rand(3) === 0) {
        const at = rand(inos.length);
        const ino = inos[at];
        inos[at] = inos[inos.length - 1];
        inos.pop();
        table.remove(ino);
        live.delete(ino);
      } else {
        const ino = rand(10) === 0 ? 2 ** 40 + next++ : next++; // some far beyond 2^32
        table.add(ino, 'file', 0o644, ino % 1000, 0, [ino, 0]);
        live.set(ino, ino % 1000);
        inos.push(ino);
      }
    }
    expect(table.count).toBe(live.size);
    for (const [ino, uid] of live) {
      const node = table.get(ino)!;
      expect(node.uid).toBe(uid);
      expect(node.mtime).toEqual([ino, 0]);
    }
    for (let ino = 1; ino < next; ino += 97) if (!live.has(ino)) expect(table.get(ino)).toBeUndefined();
    expect([...table.all()].map((n) => n.ino).sort((a, b) => a - b)).toEqual([...live.keys()].sort((a, b) => a - b));
  });

  it('reuses the rows of removed inodes: memory follows the live inodes, not the numbers handed out', async () => {
    const { InodeTable } = await import('../src/master/inode-table.js');
    const table = new InodeTable();
    let ino = 1;
    for (let round = 0; round < 200; round++) {
      const made: number[] = [];
      for (let i = 0; i < 1000; i++) made.push(table.add(ino++, 'file', 0o644, 0, 0, [0, 0]).ino);
      for (const x of made) table.remove(x);
    }
    expect(table.count).toBe(0);
    // 200,000 inodes made, at most 1,000 alive at once: the first 65,536 rows (67 bytes each) are
    // all the columns ever hold; without reuse they would have grown past 200,000 rows (13 MB).
    expect(table.columnBytes).toBeLessThan(5 * 2 ** 20);
  });
});
