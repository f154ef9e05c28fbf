// Write delegations and write-behind (master/delegations.ts, client/write-behind.ts): a mount that
// holds a file's delegation answers close before its writes are on the chunkservers, yet another
// mount that opens, stats or lists the file right after sees every byte closed before (the master
// recalls the delegation first). A holder killed with its writes unpushed never hangs the others.

import { describe, expect, it } from 'vitest';
import { ok, sh, withCluster } from './helpers/cluster.js';
import { background, python, until } from './helpers/programs.js';
import { sleep } from './helpers/faults.js';

const env = withCluster();

const lines = (from: number, to: number, who: string) => Array.from({ length: to - from + 1 }, (_, i) => `${who} ${from + i}\n`).join('');

describe('write delegations', () => {
  it('shell appends in one mount are all in what the other mount reads right after, in order', async () => {
    const { m1, m2 } = env;
    let want = '';
    await ok(`: > ${m1}/log`);
    for (let round = 0; round < 4; round++) {
      const from = round * 100 + 1;
      await ok(`for i in $(seq ${from} ${from + 99}); do echo "a $i" >> ${m1}/log; done`);
      want += lines(from, from + 99, 'a');
      // At once: no sleep, no sync. The other mount's open recalls the delegation first.
      expect(await ok(`cat ${m2}/log`)).toBe(want);
      await ok(`echo "b ${round}" >> ${m2}/log`);
      want += `b ${round}\n`;
    }
    expect(await ok(`cat ${m1}/log`)).toBe(want);
    expect((await ok(`stat -c %s ${m2}/log`)).trim()).toBe(String(want.length));
  });

  it('an append lands after the bytes written before it: through a handle still open, or by a copy still being pushed', async () => {
    const { m1, m2, scratch } = env;
    await ok(`head -c 3000000 /dev/urandom > ${scratch}/copied && (cat ${scratch}/copied; echo tail) > ${scratch}/want`);
    // Written through a handle still open when the append comes (as a local disk has it: both lines).
    const both = await python(scratch, 'open-writer.py', `
import os, sys
w = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
os.write(w, b"first\\n")
a = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
os.write(a, b"second\\n")
os.close(a)
os.close(w)
`);
    expect(await ok(`${both} ${m1}/open-writer && cat ${m2}/open-writer`)).toBe('first\nsecond\n');
    for (let i = 0; i < 3; i++) {
      await ok(`cp ${scratch}/copied ${m1}/appended${i} && echo tail >> ${m1}/appended${i}`);
      // At once, in the writer's mount (its size counts what is still on its way) and in the other.
      expect((await ok(`stat -c %s ${m1}/appended${i}`)).trim()).toBe('3000005');
      await ok(`cmp ${scratch}/want ${m2}/appended${i} && cmp ${scratch}/want ${m1}/appended${i}`);
    }
  });

  it("an open under a delegation keeps the kernel's attributes; once another mount wrote, an open drops them", async () => {
    const { m1, m2 } = env;
    // m1 holds the delegation: its opens answer from it, and the kernel keeps the size it caches.
    await ok(`printf a > ${m1}/grown && printf b >> ${m1}/grown && printf c >> ${m1}/grown`);
    expect(await ok(`stat -c %s ${m1}/grown && cat ${m1}/grown`)).toBe('3\nabc');
    // Another mount grows it (the master recalls m1's delegation): m1's kernel still holds size 3
    // (attr_timeout), and an open that kept it would cut the read short.
    await ok(`printf defg >> ${m2}/grown`);
    expect(await ok(`cat ${m1}/grown`)).toBe('abcdefg');
    await ok(`printf h >> ${m1}/grown && printf i >> ${m1}/grown`);
    expect(await ok(`cat ${m1}/grown && cat ${m2}/grown`)).toBe('abcdefghiabcdefghi');
  });

  it('files written and closed in one mount have their size and bytes in the other at once (stat, ls -l, cat)', async () => {
    const { m1, m2, scratch } = env;
    await ok(`mkdir ${m1}/tree && head -c 4000000 /dev/urandom > ${scratch}/blob`);
    const make = await python(scratch, 'make.py', `
import sys
d, blob = sys.argv[1], open(sys.argv[2], 'rb').read()
for i in range(40):
    with open('%s/tree/f%02d' % (d, i), 'wb') as f:
        f.write(blob[: 100000 * (i + 1)])  # 4 MB in all: their pushes are still on their way
`);
    await ok(`${make} ${m1} ${scratch}/blob`);
    const sizes = (await ok(`ls -l ${m2}/tree | awk 'NR > 1 {print $5}'`)).trim().split('\n').map(Number);
    expect(sizes).toEqual(Array.from({ length: 40 }, (_, i) => 100000 * (i + 1)));
    expect((await ok(`stat -c %s ${m2}/tree/f39`)).trim()).toBe('4000000');
    await ok(`cmp ${scratch}/blob ${m2}/tree/f39`);
    // And a rewrite of the same file by the other mount is seen by the first (the delegation moves).
    await ok(`printf 'short' > ${m2}/tree/f39`);
    expect(await ok(`cat ${m1}/tree/f39`)).toBe('short');
  });

  it("the writer's own stat right after a close shows the new size, and a time later than the files made before", async () => {
    const { m1 } = env;
    for (let i = 0; i < 5; i++) {
      // The close of the append answers before the master has it (make compares these at once).
      const out = await ok(`cd ${m1} && echo a > t1 && echo b > t2 && echo more >> t1 && stat -c '%s %.9Y' t1 t2`);
      const [[size1, time1], [, time2]] = out.trim().split('\n').map((l) => l.split(' '));
      expect(size1).toBe('7');
      expect(Number(time1)).toBeGreaterThan(Number(time2));
    }
  });

  it('fsync of a file reports that its earlier closes pushed everything, and the data reads back after a remount', async () => {
    const { c, m1 } = env;
    await ok(`for i in $(seq 1 50); do echo "x $i" >> ${m1}/synced; done`);
    await ok(`python3 -c 'import os; fd = os.open("${m1}/synced", os.O_RDONLY); os.fsync(fd); os.close(fd)'`);
    const m3 = await c.mount();
    expect(await ok(`cat ${m3}/synced`)).toBe(lines(1, 50, 'x'));
  });

  it('while its programs keep a mount busy, closed files stay with it; another mount reads one at once; a pause sends the rest', async () => {
    const { c, m2 } = env;
    // Its callers count as paused after 250 ms without a request, not 20: on a machine loaded by
    // other work the spinner's own gaps can pass 20 ms (then what was held goes, rightly).
    const m1 = await c.mount(['--write-behind-quiet-ms', '250']);
    await ok(`mkdir -p ${m1}/busy/spin`);
    // A program that never pauses: each listing reaches the mount (the kernel keeps no listings).
    const spin = background(`exec python3 -c 'import os\nos.listdir("${m1}/busy/spin"); print("spinning", flush=True)\nwhile True: os.listdir("${m1}/busy/spin")'`);
    const marker = `held-${process.pid}-${Date.now()}`;
    const replicasWith = async (text: string) => Number((await ok(`grep -rl ${text} ${c.dir}/cs1 ${c.dir}/cs2 ${c.dir}/cs3 | wc -l`)).trim());
    try {
      await spin.waitFor(/spinning/);
      await ok(`echo ${marker}-f > ${m1}/busy/f && echo ${marker}-g > ${m1}/busy/g`);
      await sleep(300);
      expect(await replicasWith(marker)).toBe(0); // both still held at the mount
      expect(await ok(`cat ${m2}/busy/f`)).toBe(`${marker}-f\n`); // the recall sends f first
      expect(await replicasWith(`${marker}-f`)).toBe(3);
      expect(await replicasWith(`${marker}-g`)).toBe(0);
    } finally {
      await spin.stop();
    }
    // Well before the longest hold (5 s) runs out.
    await until(async () => (await replicasWith(`${marker}-g`)) === 3, 'the held file pushed once the programs paused', 3000);
  });

  it('a holder killed with writes not yet pushed: the other mount is answered, with a prefix of what was closed', async () => {
    const { c, m2 } = env;
    const m4 = await c.mount();
    const holder = c.mounts[c.mounts.length - 1];
    // A pause after the first 100 (the mount's programs pause: what it held goes), then 200 more.
    await ok(`: > ${m4}/dying && for i in $(seq 1 100); do echo "d $i" >> ${m4}/dying; done`);
    await sleep(500);
    await ok(`for i in $(seq 101 300); do echo "d $i" >> ${m4}/dying; done`);
    await c.kill(holder); // kill -9: the writes still lingering or held in it are lost, as a crashed host's
    await sh(`fusermount -uz ${m4}`);
    const read = await sh(`cat ${m2}/dying`, { timeoutMs: 30_000 });
    expect(read.code, read.stderr).toBe(0);
    const got = read.stdout;
    expect(lines(1, 300, 'd').startsWith(got)).toBe(true);
    expect(got.length).toBeGreaterThanOrEqual(lines(1, 100, 'd').length);
  });
});
