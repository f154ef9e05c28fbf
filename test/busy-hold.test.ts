// BusyHold without processes: held work goes when the callers pause (no request begun, none
// being served, none of the latest callers asleep on a request, for a whole period), when it has
// waited its longest, or when it is asked for.

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BusyHold } from '../src/client/busy-hold.js';

const QUIET = 20;
const MAX = 1000;

/** Lets the timer, then the immediate after it (BusyHold.tick), run; and the promise callbacks. */
async function pass(ms: number): Promise<void> {
  await vi.advanceTimersByTimeAsync(ms);
}

function tracked(hold: BusyHold<string>, key: string): { gone: () => boolean } {
  let gone = false;
  void hold.wait(key).then(() => (gone = true));
  return { gone: () => gone };
}

describe('busy hold', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('holds while requests keep coming, and lets everything go once they pause', async () => {
    const hold = new BusyHold<string>(QUIET, MAX);
    const a = tracked(hold, 'a');
    const b = tracked(hold, 'b');
    for (let i = 0; i < 10; i++) {
      hold.begin();
      hold.done();
      await pass(QUIET / 2);
    }
    expect(a.gone() || b.gone()).toBe(false);
    await pass(QUIET * 2 + 1);
    expect(a.gone() && b.gone()).toBe(true);
  });

  it('a request being served is no pause, however long it takes', async () => {
    const hold = new BusyHold<string>(QUIET, MAX);
    const a = tracked(hold, 'a');
    hold.begin(); // (a caller waiting for its answer)
    await pass(QUIET * 10);
    expect(a.gone()).toBe(false);
    hold.done();
    await pass(QUIET * 2 + 1);
    expect(a.gone()).toBe(true);
  });

  it('a latest caller asleep on a request not read yet is no pause; one asleep on anything else, or long past, is', async () => {
    const onRequest = new Set<number>([7]); // (what /proc would say: pid 7 sleeps waiting for an answer)
    const hold = new BusyHold<string>(QUIET, MAX, (pid) => onRequest.has(pid));
    for (const pid of [7, 8]) {
      hold.begin(pid);
      hold.done();
    }
    const a = tracked(hold, 'a');
    await pass(QUIET * 10);
    expect(a.gone()).toBe(false);
    onRequest.delete(7); // its request came in and was answered, or it went on to other things
    await pass(QUIET * 2 + 1);
    expect(a.gone()).toBe(true);
    // Eight callers later, pid 7 no longer counts (it may wait on another file system's request).
    onRequest.add(7);
    for (let pid = 100; pid < 108; pid++) {
      hold.begin(pid);
      hold.done();
    }
    const b = tracked(hold, 'b');
    await pass(QUIET * 2 + 1);
    expect(b.gone()).toBe(true);
    // The kernel's own requests (pid 0) are nobody's to wait for.
    const c = tracked(hold, 'c');
    hold.begin(0);
    hold.done();
    await pass(QUIET * 3 + 1);
    expect(c.gone()).toBe(true);
  });

  it('lets work go once it has waited its longest, oldest first, while the callers stay busy', async () => {
    const hold = new BusyHold<string>(QUIET, MAX);
    hold.begin(); // busy throughout
    const a = tracked(hold, 'a');
    await pass(MAX / 2);
    const b = tracked(hold, 'b');
    await pass(MAX / 2 + QUIET + 1);
    expect(a.gone()).toBe(true);
    expect(b.gone()).toBe(false);
    await pass(MAX / 2 + QUIET + 1);
    expect(b.gone()).toBe(true);
  });

  it('release(key) lets only that key go; releaseAll() the rest; a key held twice goes at once', async () => {
    const hold = new BusyHold<string>(QUIET, MAX);
    hold.begin();
    const a1 = tracked(hold, 'a');
    const b = tracked(hold, 'b');
    const a2 = tracked(hold, 'a');
    hold.release('a');
    await pass(0);
    expect([a1.gone(), a2.gone(), b.gone()]).toEqual([true, true, false]);
    hold.releaseAll();
    await pass(0);
    expect(b.gone()).toBe(true);
  });

  it('holds nothing when its longest wait is 0', async () => {
    const hold = new BusyHold<string>(QUIET, 0);
    hold.begin();
    const a = tracked(hold, 'a');
    await pass(0);
    expect(a.gone()).toBe(true);
  });
});
