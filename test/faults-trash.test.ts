// The trash as namespace ops (no processes): what goes in, undelete, purge, and the checkpoint image.

import { describe, expect, it } from 'vitest';
import { Namespace } from '../src/master/namespace.js';
import { Trash } from '../src/master/trash.js';
import { logger } from '../src/log.js';
import type { Timespec } from '../src/protocol/messages.js';

const t = (s: number): Timespec => [s, 0];

function withFile(ns: Namespace, path: string, ino: number, handle: number): void {
  ns.apply({ t: 'create', path, mode: 0o644, uid: 0, gid: 0, ino, time: t(1) });
  ns.apply({ t: 'addChunk', ino, index: 0, handle });
  ns.apply({ t: 'version', handle, version: 1 });
}

describe('trash', () => {
  it('keeps a file whose last name is gone, with its chunks, until undelete or purge', () => {
    const ns = new Namespace();
    withFile(ns, '/a', 10, 100);
    withFile(ns, '/b', 11, 101);
    ns.apply({ t: 'link', from: '/a', to: '/a2', time: t(2) });
    ns.apply({ t: 'unlink', path: '/a', time: t(3) });
    expect(ns.trash.size).toBe(0); // another name is left
    ns.apply({ t: 'unlink', path: '/a2', time: t(4) });
    ns.apply({ t: 'rename', from: '/b', to: '/c', time: t(5) });
    withFile(ns, '/d', 12, 102);
    ns.apply({ t: 'rename', from: '/d', to: '/c', time: t(6) }); // over /c: the old /c (ino 11) goes too
    expect([...ns.trash]).toEqual([
      [10, { path: '/a2', deletedAt: 4000 }],
      [11, { path: '/c', deletedAt: 6000 }],
    ]);
    expect(ns.versions.get(100)).toBe(1); // chunks kept: chunkservers keep the replicas
    expect(ns.get(10).nlink).toBe(0); // still readable through an open handle

    // The checkpoint image carries the trash.
    const copy = Namespace.fromImage(ns.image());
    expect([...copy.trash]).toEqual([...ns.trash]);

    expect(() => ns.apply({ t: 'undelete', ino: 11, path: '/c', time: t(7) })).toThrow(/exists/);
    ns.apply({ t: 'undelete', ino: 11, path: '/c.old', time: t(7) });
    expect(ns.resolve('/c.old').ino).toBe(11);
    expect(ns.get(11).nlink).toBe(1);
    ns.apply({ t: 'purge', ino: 10 });
    expect(ns.versions.has(100)).toBe(false);
    expect(() => ns.get(10)).toThrow();
    expect(ns.trash.size).toBe(0);
    expect(() => ns.apply({ t: 'purge', ino: 11 })).toThrow(/not in the trash/);
  });

  it('purges early only while short of room, oldest first, and only files that free room where it lacks', async () => {
    const ns = new Namespace();
    for (let i = 0; i < 4; i++) {
      withFile(ns, `/f${i}`, 10 + i, 100 + i);
      ns.apply({ t: 'extend', ino: 10 + i, size: 1000, time: t(1) });
      ns.apply({ t: 'unlink', path: `/f${i}`, time: t(2 + i) });
    }
    const trash = new Trash(ns, async (op) => ns.apply(op), 60_000, 1000, logger('test'));
    const left = () => [...ns.trash.keys()];
    trash.tick(10_000); // room everywhere: nothing before its grace period is over
    expect(left()).toEqual([10, 11, 12, 13]);
    const onFullServer = new Set([11, 12, 13]); // ino 10's replicas are all on servers with room
    trash.tick(10_000, (ino) => onFullServer.has(ino));
    expect(left()).toEqual([10, 12, 13]); // 1,000 bytes a tick: the oldest file that helps
    trash.tick(10_000, (ino) => onFullServer.has(ino));
    trash.tick(10_000, (ino) => onFullServer.has(ino));
    expect(left()).toEqual([10]); // kept: purging it makes no room where it lacks
    trash.tick(2_000 + 60_000 + 1); // its grace period is over
    expect(left()).toEqual([]);
  });
});
