// When libfuse's ".fuse_hidden" names may really go (src/fuse/hidden-names.ts).

import { describe, expect, it } from 'vitest';
import { HiddenNames, isHiddenName } from '../src/fuse/hidden-names.js';

const tick = () => new Promise((r) => setImmediate(r));

function setup(removal: () => Promise<void> = async () => undefined) {
  const heldInos = new Set<number>();
  const removed: string[] = [];
  const names = new HiddenNames(
    (ino) => heldInos.has(ino),
    async (path) => {
      removed.push(path);
      await removal();
    },
  );
  /** A handle was released: what has been removed once that has settled. */
  const release = async () => {
    names.released();
    await tick();
    return [...removed];
  };
  return { heldInos, removed, names, release };
}

const H = '/d/.fuse_hidden0000000a00000001';

describe('hidden names', () => {
  it('knows a hidden name by its last component', () => {
    expect(isHiddenName(H)).toBe(true);
    expect(isHiddenName('/.fuse_hidden1')).toBe(true);
    expect(isHiddenName('/.fuse_hidden/x')).toBe(false);
    expect(isHiddenName('/d/target')).toBe(false);
  });

  it('goes at once when nothing holds the file or opens the name', async () => {
    const { removed, names } = setup();
    await names.unlink(H, 7);
    expect(removed).toEqual([H]);
  });

  it('waits while a handle of the mount holds the file, and goes at the release after the last', async () => {
    const { heldInos, removed, names, release } = setup();
    heldInos.add(7);
    await names.unlink(H, 7);
    expect(removed).toEqual([]);
    expect(await release()).toEqual([]); // another handle went, this one still holds it
    heldInos.delete(7);
    expect(await release()).toEqual([H]);
    expect(await release()).toEqual([H]); // only once
  });

  it('waits for an open of the name under way, whether it succeeds (then for its handle) or fails', async () => {
    const { heldInos, removed, names, release } = setup();
    let open!: (fd: number) => void;
    const opening = names.opened(H, () => new Promise<number>((r) => (open = r)));
    await names.unlink(H, 7);
    expect(removed).toEqual([]);
    heldInos.add(7); // the open got its handle
    open(3);
    expect(await opening).toBe(3);
    await tick();
    expect(removed).toEqual([]);
    heldInos.delete(7);
    expect(await release()).toEqual([H]);

    let fail!: (e: Error) => void;
    const failing = names.opened(`${H}b`, () => new Promise<number>((_r, j) => (fail = j)));
    await names.unlink(`${H}b`, 8);
    fail(new Error('ENOENT'));
    await expect(failing).rejects.toThrow('ENOENT');
    await tick();
    expect(removed).toEqual([H, `${H}b`]);
  });

  it('does not count opens of ordinary names', async () => {
    const { removed, names } = setup();
    void names.opened('/d/target', () => new Promise(() => undefined)); // never settles
    await names.unlink('/d/.fuse_hiddenX', 9);
    expect(removed).toEqual(['/d/.fuse_hiddenX']);
  });

  it('an open of a hidden name whose removal has begun fails with ENOENT and never starts', async () => {
    let finish!: () => void;
    const { removed, names } = setup(() => new Promise<void>((r) => (finish = r)));
    const removing = names.unlink(H, 7);
    expect(removed).toEqual([H]);
    let started = false;
    await expect(names.opened(H, async () => (started = true))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(started).toBe(false);
    finish();
    await removing;
    // Another hidden name is not affected.
    await expect(names.opened(`${H}c`, async () => 5)).resolves.toBe(5);
  });
});
