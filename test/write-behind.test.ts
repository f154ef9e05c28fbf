// The pieces of write-behind without processes: the append queue (records in order, merged while
// one append is on its way, never split, each told its own offset) and WriteBehind (order of
// writes at offsets, errors reported once, the limit, delegations given back when idle).

import { describe, expect, it } from 'vitest';
import { AppendQueue, type Appended } from '../src/client/append-queue.js';
import { WriteBehind } from '../src/client/write-behind.js';
import { BusyHold } from '../src/client/busy-hold.js';
import { GfsError } from '../src/protocol/errors.js';
import { logger } from '../src/log.js';

const tick = () => new Promise((r) => setTimeout(r, 0));

function fakeFile(maxBytes: number) {
  const sent: string[] = [];
  let size = 0;
  const gates: Array<() => void> = [];
  const q = new AppendQueue(
    async (_ino, data, touched) => {
      await new Promise<void>((r) => gates.push(r)); // released by the test
      sent.push(data.toString());
      touched.set(7, ['cs1']);
      const offset = size;
      size += data.length;
      return { offset };
    },
    () => maxBytes,
    () => {},
  );
  return { q, sent, open: () => gates.shift()?.() };
}

describe('append queue', () => {
  it('sends the first record alone and the ones that queue up meanwhile as one, in order, with their own offsets', async () => {
    const { q, sent, open } = fakeFile(1000);
    const touched = new Map();
    const got: Array<Promise<Appended>> = [q.append(1, Buffer.from('aa'), touched)];
    await tick();
    got.push(q.append(1, Buffer.from('bbb'), touched), q.append(1, Buffer.from('c'), touched));
    expect(q.pendingBytes(1)).toBe(6);
    open();
    await tick();
    open();
    const offsets = (await Promise.all(got)).map((r) => r.offset);
    expect(sent).toEqual(['aa', 'bbbc']);
    expect(offsets).toEqual([0, 2, 5]);
    expect(q.pendingBytes(1)).toBe(0);
    expect(touched.get(7)).toEqual(['cs1']);
  });

  it('never grows a batch past the largest record, and never splits one', async () => {
    const { q, sent, open } = fakeFile(4);
    const first = q.append(1, Buffer.from('x'), new Map());
    await tick();
    const rest = ['aa', 'bb', 'ccccc', 'd'].map((r) => q.append(1, Buffer.from(r), new Map()));
    for (let i = 0; i < 5; i++) {
      open();
      await tick();
    }
    await Promise.all([first, ...rest]);
    expect(sent).toEqual(['x', 'aabb', 'ccccc', 'd']);
  });

  it('lingers a moment for company when nobody waits, unless hurried', async () => {
    const { q, sent, open } = fakeFile(1000);
    const a = q.append(1, Buffer.from('a'), new Map(), true);
    const b = q.append(1, Buffer.from('b'), new Map(), true);
    q.hurry(1);
    await tick();
    open();
    await Promise.all([a, b]);
    expect(sent).toEqual(['ab']);
  });
});

describe('write-behind', () => {
  it('runs the closes of one file in order: appends after the writes at offsets before them, not after each other', async () => {
    const given: number[][] = [];
    const wb = new WriteBehind(8, async (inos) => given.push(inos), logger('test'));
    const order: string[] = [];
    const gate = () => {
      let open!: () => void;
      const shut = new Promise<void>((r) => (open = r));
      return { shut, open };
    };
    const [copy, append1] = [gate(), gate()];
    await wb.defer(1, async () => (await copy.shut, order.push('copy')), new Map(), true);
    await wb.defer(1, async () => (await append1.shut, order.push('append 1')), new Map(), false);
    await wb.defer(1, async () => void order.push('append 2'), new Map(), false);
    await wb.defer(1, async () => void order.push('rewrite'), new Map(), true);
    await tick();
    // `cp f g && echo >> g`: an append lands at the end as it is when it runs, so never before the copy.
    expect(order).toEqual([]);
    copy.open();
    await tick();
    await tick();
    expect(order).toEqual(['copy', 'append 2']); // appends do not wait for each other (the queue merges them)
    expect(wb.busy(1)).toBe(true);
    append1.open();
    await wb.settle(1);
    expect(order).toEqual(['copy', 'append 2', 'append 1', 'rewrite']); // a write at offsets waits for everything before it
    expect(wb.busy(1)).toBe(false);
  });

  it('reports the failure of a background flush once', async () => {
    const wb = new WriteBehind(8, async () => {}, logger('test'));
    await wb.defer(2, async () => Promise.reject(new GfsError('ENOSPC', 'full')), new Map([[9, ['cs']]]), true);
    await wb.settle(2);
    expect(wb.takeError(2)?.code).toBe('ENOSPC');
    expect(wb.takeError(2)).toBeUndefined();
  });

  it('waits while `limit` closes are on their way', async () => {
    const wb = new WriteBehind(2, async () => {}, logger('test'));
    const gates: Array<() => void> = [];
    const hold = () => new Promise<void>((r) => gates.push(r));
    await wb.defer(1, hold, new Map(), true);
    await wb.defer(2, hold, new Map(), true);
    let third = false;
    const t = wb.defer(3, async () => {}, new Map(), true).then(() => (third = true));
    await tick();
    expect(third).toBe(false);
    gates.shift()!();
    await t;
    expect(third).toBe(true);
    gates.shift()!();
    await wb.settleAll();
  });

  it('opens by a known name while held; forgets names that changed; gives back what sat idle with nothing open', async () => {
    const given: number[][] = [];
    const wb = new WriteBehind(8, async (inos) => given.push(inos), logger('test'));
    wb.took('/d/a', 5, 1);
    wb.took('/d/b', 6, 2);
    expect(wb.inoOf('/d/a')).toBe(5);
    wb.forgetTree('/d');
    expect(wb.inoOf('/d/a')).toBeUndefined();
    expect(wb.holds(5)).toBe(true); // the delegation stays; only the names are not trusted
    wb.tick(Date.now() + 60_000, (ino) => ino === 6);
    expect(given).toEqual([[5]]);
    expect(wb.holds(5)).toBe(false);
    expect(wb.holds(6)).toBe(true);
    wb.dropAll();
    expect(wb.holds(6)).toBe(false);
  });

  it('a recall handled before the reply that granted it (one read of the socket) leaves nothing held', async () => {
    const wb = new WriteBehind(8, async () => {}, logger('test'));
    await wb.recall(7, 3, async () => {});
    wb.took('/f', 7, 3); // the reply with grant 3, read after its recall
    expect(wb.holds(7)).toBe(false);
    expect(wb.inoOf('/f')).toBeUndefined();
    wb.took('/f', 7, 4); // a later grant counts
    expect(wb.holds(7)).toBe(true);
    await wb.recall(7, 4, async () => {});
    expect(wb.holds(7)).toBe(false);
    wb.took('/f', 7, 4); // a second open's reply repeating grant 4, read after its recall
    expect(wb.holds(7)).toBe(false);
  });

  it('holds writes at offsets while the callers are busy (not appends); a settle lets that file go; a pause, all', async () => {
    const hold = new BusyHold<number | 'changes'>(20, 60_000);
    const wb = new WriteBehind(8, async () => {}, logger('test'), hold, 1 << 20);
    const pushed: number[] = [];
    const push = (n: number) => async () => void pushed.push(n);
    hold.begin(); // a caller is being served
    await wb.defer(1, push(1), new Map(), true, 100);
    await wb.defer(2, push(2), new Map(), true, 100);
    await wb.defer(3, push(3), new Map(), false, 0); // an append
    await new Promise((r) => setTimeout(r, 50));
    expect(pushed).toEqual([3]);
    expect(wb.busy(1) && wb.busy(2)).toBe(true);
    await wb.settle(2); // (a read or stat of inode 2)
    expect(pushed).toEqual([3, 2]);
    hold.done();
    await new Promise((r) => setTimeout(r, 80));
    expect(pushed).toEqual([3, 2, 1]);
  });

  it('a close beyond the bytes allowed lets everything held go and waits for room', async () => {
    const hold = new BusyHold<number | 'changes'>(20, 60_000);
    const wb = new WriteBehind(8, async () => {}, logger('test'), hold, 250);
    const pushed: number[] = [];
    const push = (n: number) => async () => void pushed.push(n);
    hold.begin();
    await wb.defer(1, push(1), new Map(), true, 100);
    await wb.defer(2, push(2), new Map(), true, 100);
    expect(pushed).toEqual([]);
    await wb.defer(3, push(3), new Map(), true, 100); // 300 > 250
    await tick();
    expect(pushed).toEqual([1, 2]);
    expect(wb.busy(3)).toBe(true); // held in turn
    await wb.settleAll();
    expect(pushed).toEqual([1, 2, 3]);
  });

  it('hands push slots on in the order they were asked for: a record append that comes as a slot frees waits its turn', async () => {
    // (With a hold, closes need not wait for room; appends are never held.)
    const wb = new WriteBehind(1, async () => {}, logger('test'), new BusyHold(20, 60_000));
    const order: number[] = [];
    const gates: Array<() => void> = [];
    const push = (n: number) => () => new Promise<void>((r) => gates.push(r)).then(() => void order.push(n));
    await wb.defer(5, push(1), new Map(), false);
    await wb.defer(5, push(2), new Map(), false);
    await wb.defer(5, push(3), new Map(), false);
    await tick();
    expect(gates.length).toBe(1); // one slot: 2 and 3 wait for it
    gates.shift()!(); // 1 done: its slot passes to 2 ...
    const fourth = wb.defer(5, push(4), new Map(), false); // ... not to 4, which came just then
    await tick();
    gates.shift()!();
    await tick();
    gates.shift()!();
    await tick();
    gates.shift()!();
    await fourth;
    await wb.settleAll();
    expect(order).toEqual([1, 2, 3, 4]);
  });
});

