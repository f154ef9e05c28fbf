// client/size-updates.ts: sizes from background pushes wait for a create to carry them, and go
// in a request of their own (all that wait, in one) when none does in time, when someone hurries
// them, or when the create did not settle them.

import { describe, expect, it } from 'vitest';
import { GfsError } from '../src/protocol/errors.js';
import type { Attr, SizeUpdate } from '../src/protocol/messages.js';
import { SizeUpdates } from '../src/client/size-updates.js';

const attrOf = (u: SizeUpdate): Attr =>
  ({ ino: u.ino, type: 'file', mode: 0o100644, uid: 0, gid: 0, size: u.size, nlink: 1, atime: [0, 0], mtime: [0, 0], ctime: [0, 0] }) as Attr;

/** alone: every size sent in a request of its own; requests: how many such requests went. */
function queue(waitMs: number) {
  const alone: SizeUpdate[] = [];
  const requests: SizeUpdate[][] = [];
  const q = new SizeUpdates(async (us) => (alone.push(...us), requests.push(us), us.map(attrOf)), waitMs);
  return { q, alone, requests };
}

describe('size updates', () => {
  it('go alone after waitMs when no create takes them', async () => {
    const { q, alone } = queue(20);
    const p = q.add({ ino: 5, size: 100 });
    await new Promise((r) => setTimeout(r, 5));
    expect(alone).toEqual([]);
    expect((await p).size).toBe(100);
    expect(alone).toEqual([{ ino: 5, size: 100 }]);
  });

  it('a create takes them all; its outcomes settle each one, and what it did not settle goes alone', async () => {
    const { q, alone } = queue(60_000);
    const ps = [q.add({ ino: 1, size: 10 }), q.add({ ino: 2, size: 20 }), q.add({ ino: 3, size: 30 })];
    const taken = q.take()!;
    expect(taken.updates.map((u) => u.ino)).toEqual([1, 2, 3]);
    expect(q.take()).toBeUndefined();
    taken.settle([attrOf({ ino: 1, size: 11 }), { code: 'ENOENT', message: 'gone' }]);
    expect((await ps[0]).size).toBe(11);
    await expect(ps[1]).rejects.toSatisfy((e) => e instanceof GfsError && e.code === 'ENOENT');
    expect((await ps[2]).size).toBe(30); // no outcome for it: sent alone
    expect(alone).toEqual([{ ino: 3, size: 30 }]);
  });

  it('sizes a create holds up for long go alone as well; the first outcome counts', async () => {
    const { q, alone } = queue(60_000);
    const p = q.add({ ino: 9, size: 90 });
    const taken = q.take()!;
    expect((await p).size).toBe(90); // the create never answered: sent alone after 100 ms
    expect(alone).toEqual([{ ino: 9, size: 90 }]);
    taken.settle([{ code: 'EIO', message: 'late' }]); // too late to count
    expect(alone.length).toBe(1);
  });

  it('what waits goes in one request, whose outcomes settle each one', async () => {
    const failing = new SizeUpdates(async (us) => us.map((u) => (u.ino === 2 ? { code: 'ENOENT' as const, message: 'gone' } : attrOf(u))), 60_000);
    const ps = [failing.add({ ino: 1, size: 10 }), failing.add({ ino: 2, size: 20 })];
    failing.hurry();
    expect((await ps[0]).size).toBe(10);
    await expect(ps[1]).rejects.toSatisfy((e) => e instanceof GfsError && e.code === 'ENOENT');
    const { q, requests } = queue(20);
    const batch = [q.add({ ino: 3, size: 30 }), q.add({ ino: 4, size: 40 }), q.add({ ino: 5, size: 50 })];
    expect((await Promise.all(batch)).map((a) => a.size)).toEqual([30, 40, 50]);
    expect(requests.map((r) => r.map((u) => u.ino))).toEqual([[3, 4, 5]]);
    // A request that fails fails each of its sizes.
    const down = new SizeUpdates(async () => Promise.reject(new GfsError('EUNAVAIL', 'no master')), 60_000);
    const lost = down.add({ ino: 6, size: 60 });
    down.hurry();
    await expect(lost).rejects.toSatisfy((e) => e instanceof GfsError && e.code === 'EUNAVAIL');
  });

  it('a failed create leaves them to a request of their own; hurry sends what waits at once', async () => {
    const { q, alone } = queue(60_000);
    const p = q.add({ ino: 7, size: 70 });
    q.take()!.settle(undefined);
    expect((await p).size).toBe(70);
    const p2 = q.add({ ino: 8, size: 80 });
    q.hurry();
    expect((await p2).size).toBe(80);
    expect(alone.map((u) => u.ino)).toEqual([7, 8]);
  });
});
