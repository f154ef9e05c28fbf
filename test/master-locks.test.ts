// The master's lock table on its own: POSIX byte ranges (split, merge, conflicts, F_GETLK),
// waiters, deadlock detection, flock conversion, cancellation and clients that go away.

import { describe, expect, it } from 'vitest';
import { LockTable } from '../src/master/locks.js';
import type { LockRequest } from '../src/protocol/messages.js';

const req = (o: Partial<LockRequest>): LockRequest => ({ ino: 7, kind: 'posix', owner: 'p', type: 'write', start: 0, len: 0, pid: 1, wait: false, ...o });
const settled = async (p: Promise<unknown>) => {
  let state = 'pending';
  p.then(() => (state = 'granted'), (e: { code: string }) => (state = e.code));
  for (let i = 0; i < 5; i++) await Promise.resolve();
  return state;
};

describe('posix record locks', () => {
  it('conflict only on overlapping ranges of other owners where one is a write lock', async () => {
    const t = new LockTable();
    await t.request('s1', req({ owner: 'a', start: 10, len: 10 }));
    await expect(t.request('s2', req({ owner: 'b', start: 15, len: 1 }))).rejects.toMatchObject({ code: 'EAGAIN' });
    await t.request('s2', req({ owner: 'b', start: 20, len: 5 })); // touches, does not overlap
    await t.request('s1', req({ owner: 'a', start: 12, len: 2 })); // own lock: no conflict
    // Same client, another owner (another process on that mount): a conflict too.
    await expect(t.request('s1', req({ owner: 'c', start: 0, len: 0, type: 'read' }))).rejects.toMatchObject({ code: 'EAGAIN' });
    expect(t.test('s2', 7, 'b', 'read', 0, 0)).toEqual({ type: 'write', start: 10, len: 10, pid: 1 });
    expect(t.test('s1', 7, 'a', 'write', 0, 15)).toBeNull(); // own locks never conflict
  });

  it('unlocking the middle of a range splits it; read locks share; a whole-file unlock drops all', async () => {
    const t = new LockTable();
    await t.request('s', req({ owner: 'a', start: 0, len: 100 }));
    await t.request('s', req({ owner: 'a', type: 'unlock', start: 40, len: 20 }));
    await t.request('s', req({ owner: 'b', start: 45, len: 10 }));
    await expect(t.request('s', req({ owner: 'b', start: 30, len: 20 }))).rejects.toMatchObject({ code: 'EAGAIN' });
    expect(t.test('s', 7, 'c', 'read', 60, 0)).toMatchObject({ start: 60, len: 40 });
    await t.request('s', req({ owner: 'a', type: 'unlock' }));
    await t.request('s', req({ owner: 'b', type: 'unlock' }));
    await t.request('s', req({ owner: 'x', type: 'read' }));
    await t.request('s', req({ owner: 'y', type: 'read' }));
    expect(t.heldCount).toBe(2);
  });

  it('a waiter is granted when the holder lets go; a cycle of waiters gets EDEADLK', async () => {
    const t = new LockTable();
    await t.request('s', req({ owner: 'a', start: 0, len: 10 }));
    await t.request('s', req({ owner: 'b', start: 10, len: 10 }));
    const aWaits = t.request('s', req({ owner: 'a', start: 10, len: 10, wait: true }));
    expect(await settled(aWaits)).toBe('pending');
    await expect(t.request('s', req({ owner: 'b', start: 0, len: 10, wait: true }))).rejects.toMatchObject({ code: 'EDEADLK' });
    await t.request('s', req({ owner: 'b', type: 'unlock' }));
    expect(await settled(aWaits)).toBe('granted');
    expect(t.test('s', 7, 'z', 'read', 0, 0)).toMatchObject({ start: 0, len: 20 }); // a's two ranges merged
  });

  it('a cancelled wait fails with EINTR; a client that goes away loses its locks and waits', async () => {
    const t = new LockTable();
    await t.request('s1', req({ owner: 'a' }));
    const w1 = t.request('s2', req({ owner: 'b', wait: true, waitId: 1 }));
    const w2 = t.request('s3', req({ owner: 'c', wait: true, waitId: 1 }));
    t.cancel('s2', 1);
    expect(await settled(w1)).toBe('EINTR');
    expect(await settled(w2)).toBe('pending');
    t.dropSession('s1');
    expect(await settled(w2)).toBe('granted');
    t.dropSession('s3');
    expect(t.heldCount).toBe(0);
  });
});

describe('flock', () => {
  it('shared locks coexist, exclusive excludes, and a failed upgrade leaves no lock (as on Linux)', async () => {
    const t = new LockTable();
    const f = (o: Partial<LockRequest>) => req({ kind: 'flock', ...o });
    await t.request('s', f({ owner: 'a', type: 'read' }));
    await t.request('s', f({ owner: 'b', type: 'read' }));
    await expect(t.request('s', f({ owner: 'a', type: 'write' }))).rejects.toMatchObject({ code: 'EAGAIN' });
    await t.request('s', f({ owner: 'b', type: 'unlock' }));
    await t.request('s', f({ owner: 'c', type: 'write' })); // a's read lock went with its failed upgrade
    // flock and posix locks do not see each other.
    await t.request('s', req({ owner: 'd', type: 'write' }));
    expect(t.heldCount).toBe(2);
  });
});
