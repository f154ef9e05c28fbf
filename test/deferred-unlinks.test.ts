// Unlinks answered ahead of the master (src/client/deferred-unlinks.ts): batching, waiting,
// and what a refused one leaves behind.

import { describe, expect, it } from 'vitest';
import { DeferredUnlinks, type SendUnlinks } from '../src/client/deferred-unlinks.js';
import type { ErrorCode } from '../src/protocol/errors.js';
import { logger } from '../src/log.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A master stand-in: records each batch; answer() settles the oldest one still open. */
function fakeMaster() {
  const batches: string[][] = [];
  const open: Array<{ paths: string[]; settle: (refused: Array<{ path: string; code: ErrorCode; message: string }>) => void; fail: (e: Error) => void }> = [];
  const send: SendUnlinks = (paths) =>
    new Promise((resolve, reject) => {
      batches.push(paths);
      open.push({ paths, settle: resolve, fail: reject });
    });
  const answer = (refused: Array<{ path: string; code: ErrorCode }> = []) =>
    open.shift()!.settle(refused.map((r) => ({ ...r, message: `${r.code} at the master` })));
  return { batches, open, send, answer };
}

const quiet = logger('test');

describe('deferred unlinks', () => {
  it('answer at once and reach the master together, in one batch, a few ms later', async () => {
    const m = fakeMaster();
    const u = new DeferredUnlinks(100, m.send, quiet);
    for (let i = 0; i < 5; i++) await u.add('/d', `/d/f${i}`, () => {});
    expect(m.batches).toEqual([]); // answered, not sent yet
    expect(u.size).toBe(5);
    await sleep(30);
    expect(m.batches).toEqual([['/d/f0', '/d/f1', '/d/f2', '/d/f3', '/d/f4']]);
    m.answer();
    await sleep(0);
    expect(u.size).toBe(0);
  });

  it('settled() sends what is queued now and resolves only when the master has answered', async () => {
    const m = fakeMaster();
    const u = new DeferredUnlinks(100, m.send, quiet);
    await u.add('/d', '/d/a', () => {});
    let done = false;
    const waiting = u.settled().then(() => (done = true));
    expect(m.batches).toEqual([['/d/a']]); // no batch delay for a waiter
    await sleep(10);
    expect(done).toBe(false);
    m.answer();
    await waiting;
    expect(done).toBe(true);
  });

  it('a refused unlink runs its undo and is reported once, by a sync of its own directory', async () => {
    const m = fakeMaster();
    const u = new DeferredUnlinks(100, m.send, quiet);
    const undone: string[] = [];
    await u.add('/d', '/d/kept', () => undone.push('/d/kept'));
    await u.add('/d', '/d/gone', () => undone.push('/d/gone'));
    await u.add('/e', '/e/x', () => undone.push('/e/x'));
    const s = u.settled();
    m.answer([{ path: '/d/kept', code: 'EISDIR' }, { path: '/d/gone', code: 'ENOENT' }]);
    await s;
    expect(undone).toEqual(['/d/kept']); // ENOENT: someone else removed it first, the name is gone anyway
    await expect(u.sync('/e')).resolves.toBeUndefined();
    await expect(u.sync('/d')).rejects.toMatchObject({ code: 'EISDIR' });
    await expect(u.sync('/d')).resolves.toBeUndefined(); // reported once
  });

  it('a batch the master never took (unreachable) undoes every unlink in it', async () => {
    const m = fakeMaster();
    const u = new DeferredUnlinks(100, m.send, quiet);
    const undone: string[] = [];
    for (const p of ['/d/a', '/d/b']) await u.add('/d', p, () => undone.push(p));
    const s = u.settled();
    m.open.shift()!.fail(Object.assign(new Error('gave up'), { code: 'EIO' }));
    await s;
    expect(undone).toEqual(['/d/a', '/d/b']);
    await expect(u.sync('/d')).rejects.toMatchObject({ code: 'EIO' });
  });

  it('holds the caller back once `limit` unlinks are out, until the master answers some', async () => {
    const m = fakeMaster();
    const u = new DeferredUnlinks(3, m.send, quiet);
    for (let i = 0; i < 3; i++) await u.add('/d', `/d/${i}`, () => {});
    let fourth = false;
    const adding = u.add('/d', '/d/3', () => {}).then(() => (fourth = true));
    await sleep(10);
    expect(fourth).toBe(false);
    expect(m.batches).toEqual([['/d/0', '/d/1', '/d/2']]); // sent at once to make room
    m.answer();
    await adding;
    expect(u.size).toBe(1);
  });
});
