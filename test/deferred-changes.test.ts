// Changes answered ahead of the master (src/client/deferred-changes.ts): batching, waiting, the
// order they go in, and what a refused one leaves behind.

import { describe, expect, it } from 'vitest';
import { DeferredChanges, type SendChanges } from '../src/client/deferred-changes.js';
import type { ErrorCode } from '../src/protocol/errors.js';
import type { ChangeResult, DeferredChange } from '../src/protocol/messages.js';
import { logger } from '../src/log.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const unlink = (path: string): DeferredChange => ({ op: 'unlink', path });
const create = (path: string, ino: number): DeferredChange => ({ op: 'create', path, mode: 0o644, uid: 0, gid: 0, ino, time: [1, 0] });
const names = (batch: DeferredChange[]) => batch.map((c) => `${c.op} ${c.path}`);

/** A master stand-in: records each batch; answer() settles the oldest one still open. */
function fakeMaster() {
  const batches: DeferredChange[][] = [];
  const open: Array<{ changes: DeferredChange[]; settle: (results: ChangeResult[]) => void; fail: (e: Error) => void }> = [];
  const send: SendChanges = (changes) =>
    new Promise((resolve, reject) => {
      batches.push(changes);
      open.push({ changes, settle: resolve, fail: reject });
    });
  /** Answer the oldest batch: refused paths fail with their code, creates get a grant. */
  const answer = (refused: Array<{ path: string; code: ErrorCode }> = []) => {
    const b = open.shift()!;
    b.settle(
      b.changes.map((c): ChangeResult => {
        const r = refused.find((x) => x.path === c.path);
        if (r) return { code: r.code, message: `${r.code} at the master` };
        return c.op === 'create' ? { delegated: 7 } : {};
      }),
    );
  };
  return { batches, open, send, answer };
}

const quiet = logger('test');

describe('deferred changes', () => {
  it('answer at once and reach the master together, in one batch, a few ms later', async () => {
    const m = fakeMaster();
    const u = new DeferredChanges(100, m.send, quiet);
    for (let i = 0; i < 5; i++) await u.add('/d', unlink(`/d/f${i}`), () => {});
    expect(m.batches).toEqual([]); // answered, not sent yet
    expect(u.size).toBe(5);
    await sleep(30);
    expect(m.batches.map(names)).toEqual([['unlink /d/f0', 'unlink /d/f1', 'unlink /d/f2', 'unlink /d/f3', 'unlink /d/f4']]);
    m.answer();
    await sleep(0);
    expect(u.size).toBe(0);
  });

  it('creates and unlinks go in the order they were made, and a create says what came with it', async () => {
    const m = fakeMaster();
    const u = new DeferredChanges(100, m.send, quiet);
    const got: ChangeResult[] = [];
    await u.add('/d', create('/d/a', 100), () => {}, (r) => got.push(r));
    await u.add('/d', unlink('/d/a'), () => {});
    await u.add('/d', create('/d/a', 101), () => {}, (r) => got.push(r));
    const s = u.settled();
    expect(m.batches.map(names)).toEqual([['create /d/a', 'unlink /d/a', 'create /d/a']]);
    m.answer();
    await s;
    expect(got).toEqual([{ delegated: 7 }, { delegated: 7 }]);
  });

  it('whenMade holds back what needs a created file at the master until its batch is answered', async () => {
    const m = fakeMaster();
    const u = new DeferredChanges(100, m.send, quiet);
    expect(u.whenMade(5)).toBeUndefined(); // nothing pending for it: no wait
    let target = '';
    await u.add('/d', create('/d/x', 5), () => {}, () => (target = 'first chunk'));
    let seen = '-';
    const push = u.whenMade(5)!.then(() => (seen = target));
    await sleep(20); // the batch went (its timer), unanswered
    expect(m.batches.length).toBe(1);
    expect(seen).toBe('-');
    m.answer();
    await push;
    expect(seen).toBe('first chunk'); // onDone ran before the waiters went on
    expect(u.whenMade(5)).toBeUndefined();
  });

  it('touches(): which listings must wait for the changes on their way, and which need not', async () => {
    const m = fakeMaster();
    const u = new DeferredChanges(100, m.send, quiet);
    await u.add('/d', unlink('/d/a'), () => {});
    await u.add('/e', { op: 'mkdir', path: '/e/sub', mode: 0o755, uid: 0, gid: 0, ino: 3, time: [1, 0] }, () => {});
    expect([u.touches('/d'), u.touches('/e'), u.touches('/e/sub'), u.touches('/e/sub/deeper')]).toEqual([true, true, true, true]);
    expect([u.touches('/'), u.touches('/f'), u.touches('/d/x')]).toEqual([false, false, false]);
    let answered = false;
    const waiting = u.answered().then(() => (answered = true));
    expect(m.batches).toEqual([]); // answered() does not hurry the batch
    await sleep(20);
    expect(m.batches.length).toBe(1);
    expect(answered).toBe(false);
    m.answer();
    await waiting;
    expect(u.touches('/e/sub')).toBe(false);
  });

  it('settled() sends what is queued now and resolves only when the master has answered', async () => {
    const m = fakeMaster();
    const u = new DeferredChanges(100, m.send, quiet);
    await u.add('/d', unlink('/d/a'), () => {});
    let done = false;
    const waiting = u.settled().then(() => (done = true));
    expect(m.batches.map(names)).toEqual([['unlink /d/a']]); // no batch delay for a waiter
    await sleep(10);
    expect(done).toBe(false);
    m.answer();
    await waiting;
    expect(done).toBe(true);
  });

  it('a refused change runs its undo and is reported once, by a sync of its own directory', async () => {
    const m = fakeMaster();
    const u = new DeferredChanges(100, m.send, quiet);
    const undone: string[] = [];
    await u.add('/d', unlink('/d/kept'), () => undone.push('/d/kept'));
    await u.add('/d', unlink('/d/gone'), () => undone.push('/d/gone'));
    await u.add('/e', unlink('/e/x'), () => undone.push('/e/x'));
    await u.add('/f', create('/f/new', 9), () => undone.push('/f/new'));
    const s = u.settled();
    m.answer([
      { path: '/d/kept', code: 'EISDIR' },
      { path: '/d/gone', code: 'ENOENT' },
      { path: '/f/new', code: 'ENOSPC' },
    ]);
    await s;
    expect(undone).toEqual(['/d/kept', '/f/new']); // ENOENT: someone else removed it first, the name is gone anyway
    await expect(u.sync('/e')).resolves.toBeUndefined();
    await expect(u.sync('/d')).rejects.toMatchObject({ code: 'EISDIR' });
    await expect(u.sync('/d')).resolves.toBeUndefined(); // reported once
    await expect(u.sync('/f')).rejects.toMatchObject({ code: 'ENOSPC' });
  });

  it('a batch the master never took (unreachable) undoes every change in it', async () => {
    const m = fakeMaster();
    const u = new DeferredChanges(100, m.send, quiet);
    const undone: string[] = [];
    for (const p of ['/d/a', '/d/b']) await u.add('/d', unlink(p), () => undone.push(p));
    const s = u.settled();
    m.open.shift()!.fail(Object.assign(new Error('gave up'), { code: 'EIO' }));
    await s;
    expect(undone).toEqual(['/d/a', '/d/b']);
    await expect(u.sync('/d')).rejects.toMatchObject({ code: 'EIO' });
  });

  it('holds the caller back once over `limit` changes are out, until the master answers some', async () => {
    const m = fakeMaster();
    const u = new DeferredChanges(3, m.send, quiet);
    for (let i = 0; i < 3; i++) await u.add('/d', unlink(`/d/${i}`), () => {});
    let fourth = false;
    const adding = u.add('/d', unlink('/d/3'), () => {}).then(() => (fourth = true));
    await sleep(10);
    expect(fourth).toBe(false);
    // Queued (a recall's settled() must find it) and sent at once to make room.
    expect(m.batches.map(names)).toEqual([['unlink /d/0', 'unlink /d/1', 'unlink /d/2', 'unlink /d/3']]);
    m.answer();
    await adding;
    expect(u.size).toBe(0);
  });

  it('with a hold, what is queued waits for it, then goes 256 changes a request, in order; a create a push needs goes at once', async () => {
    const m = fakeMaster();
    let letGo!: () => void;
    const u = new DeferredChanges(1000, m.send, quiet, () => new Promise<void>((r) => (letGo = r)));
    for (let i = 0; i < 300; i++) await u.add('/d', unlink(`/d/f${i}`), () => {});
    await sleep(30);
    expect(m.batches).toEqual([]); // (no timer sends them while the callers are busy)
    letGo();
    await sleep(0);
    expect(m.batches.map((b) => b.length)).toEqual([256, 44]);
    expect(m.batches.flat().map((c) => c.path)).toEqual(Array.from({ length: 300 }, (_, i) => `/d/f${i}`));
    const all = u.settled();
    m.answer();
    m.answer();
    await all;
    await u.add('/d', create('/d/new', 200), () => {});
    expect(m.batches.length).toBe(2);
    const made = u.whenMade(200); // a push of /d/new needs it at the master: it goes now
    expect(m.batches.length).toBe(3);
    m.answer();
    await made;
  });
});

