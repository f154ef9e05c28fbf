// End to end through real FUSE mounts of a real cluster (one master, three chunkservers), driven
// by ordinary shell tools.

import { beforeAll, describe, expect, it } from 'vitest';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ok, sh, withCluster, type TestCluster } from './helpers/cluster.js';
import { python } from './helpers/programs.js';

const env = withCluster();
let c: TestCluster, m1: string, m2: string, scratch: string;
beforeAll(async () => {
  ({ c, m1, m2, scratch } = env);
});

/** Chunk files (named from their handle) in a chunkserver's data dir. */
async function replicaFiles(dataDir: string): Promise<string[]> {
  const names = await readdir(join(dataDir, 'chunks')).catch(() => [] as string[]);
  return names.filter((n) => /^[0-9a-f]{16}$/.test(n));
}

describe('data', () => {
  it('copies a 200 MB file in and out byte-identical, every chunk on three chunkservers', async () => {
    await ok(`head -c 200000000 /dev/urandom > ${scratch}/big && cp ${scratch}/big ${m1}/big && cp ${m1}/big ${scratch}/big.out`);
    await ok(`cmp ${scratch}/big ${scratch}/big.out && cmp ${scratch}/big ${m1}/big`);
    expect((await ok(`stat -c %s ${m1}/big`)).trim()).toBe('200000000');

    const peer = await c.masterPeer();
    try {
      const attr = await peer.call('lookup', { path: '/big' });
      const { chunks } = await peer.call('chunks', { ino: attr.ino, first: 0, count: 1000 });
      expect(chunks.length).toBe(Math.ceil(200000000 / (4 * 1024 * 1024)));
      for (const ch of chunks) {
        expect(ch.replicas.length).toBe(3);
        expect(new Set(ch.replicas).size).toBe(3);
      }
      // And on disk: each chunk's file is in three different chunkservers' directories.
      const onDisk = await Promise.all(c.chunkservers.map((d) => replicaFiles(d.dataDir)));
      for (const ch of chunks) {
        const name = ch.handle.toString(16).padStart(16, '0');
        expect(onDisk.filter((files) => files.includes(name)).length).toBe(3);
      }
      // Every chunkserver takes its turn as primary (the head of the data chain), not one for all.
      const primaries = new Map<string, number>();
      for (const ch of chunks) {
        const t = await peer.call('writeTarget', { ino: attr.ino, index: ch.index }); // the running lease
        primaries.set(t.primary, (primaries.get(t.primary) ?? 0) + 1);
      }
      expect(primaries.size).toBe(3);
      for (const n of primaries.values()) expect(n).toBeGreaterThanOrEqual(Math.floor(chunks.length / 6));
    } finally {
      peer.close();
    }
  });

  it('a new file written by the shell has its first chunk leased with its create; touch places none', async () => {
    const peer = await c.masterPeer();
    try {
      // The master's side: create with target answers with the first chunk's lease on three servers.
      const made = await peer.call('create', { path: '/leased', mode: 0o644, uid: 0, gid: 0, exclusive: true, target: true });
      expect(made.target?.index).toBe(0);
      expect(new Set([made.target!.primary, ...made.target!.secondaries]).size).toBe(3);
      const again = await peer.call('writeTarget', { ino: made.ino, index: 0 }); // the lease it runs
      expect([again.handle, again.version, again.primary]).toEqual([made.target!.handle, made.target!.version, made.target!.primary]);
      // An existing name comes back without one.
      expect((await peer.call('create', { path: '/leased', mode: 0o644, uid: 0, gid: 0, exclusive: false, target: true })).target).toBeUndefined();

      await ok(`printf 'first bytes' > ${m1}/shell-made && touch ${m1}/touched`);
      expect(await ok(`cat ${m2}/shell-made`)).toBe('first bytes');
      const chunksOf = async (path: string) => (await peer.call('chunks', { ino: (await peer.call('lookup', { path })).ino, first: 0, count: 10 })).chunks;
      const [written] = await chunksOf('/shell-made');
      expect(written.replicas.length).toBe(3);
      expect(await chunksOf('/touched')).toEqual([]);
    } finally {
      peer.close();
    }
  });

  it('keeps 1,000 `echo >>` lines, in order', async () => {
    await ok(`for i in $(seq 1 1000); do echo "line $i" >> ${m1}/log; done`);
    await ok(`seq 1 1000 | sed 's/^/line /' | cmp - ${m1}/log`);
  });

  it('two mounts, two appending loops each: exactly 2,000 whole lines, none torn or lost', async () => {
    await ok(`: > ${m1}/shared`);
    // 100-byte lines: "<writer> <seq>" padded with the writer's letter to 99 bytes, then \n.
    const loop = (mnt: string, w: string) =>
      `(for i in $(seq -w 1 500); do l="${w} $i "; printf '%s%s\\n' "$l" "$(printf '${w}%.0s' $(seq 1 $((99 - \${#l}))))" >> ${mnt}/shared; done) &`;
    await ok(`${loop(m1, 'a')} ${loop(m1, 'b')} ${loop(m2, 'c')} ${loop(m2, 'd')} wait`, { timeoutMs: 170_000 });
    const text = await ok(`cat ${m2}/shared`);
    const lines = text.split('\n');
    expect(lines.pop()).toBe('');
    expect(lines.length).toBe(2000);
    const seen: Record<string, number[]> = { a: [], b: [], c: [], d: [] };
    for (const line of lines) {
      const m = /^([a-d]) (\d{3}) ([a-d]+)$/.exec(line);
      expect(m, `torn line: ${JSON.stringify(line.slice(0, 120))}`).not.toBeNull();
      expect(line.length).toBe(99);
      expect(new Set(m![3]).size).toBe(1);
      expect(m![3][0]).toBe(m![1]);
      seen[m![1]].push(Number(m![2]));
    }
    for (const w of 'abcd') expect(seen[w]).toEqual(Array.from({ length: 500 }, (_, i) => i + 1));
  });

  it('an O_APPEND write the kernel sends in two pieces stays one record while readers make the mount flush', async () => {
    // The kernel sends a write() that crosses into a page it has not cached as two requests, split
    // at the page boundary. A reader of the file on the same mount makes the mount push what the
    // writer's open handle holds (so the read sees it): it must never push the first piece of a
    // write() alone, or another writer's record lands between the two halves of a line.
    const writer = await python(scratch, 'appender.py', `
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
for i in range(int(sys.argv[2])):
    os.write(fd, (f"{sys.argv[3]} {i:05d} ".ljust(99, sys.argv[3]) + "\\n").encode())
os.close(fd)
`);
    await ok(`: > ${m1}/pieces`);
    const run = await sh(
      `(while [ ! -e ${scratch}/pieces.done ]; do cat ${m1}/pieces > /dev/null; done) & r=$!; ` +
        `${writer} ${m1}/pieces 1500 a & a=$!; ${writer} ${m1}/pieces 1500 b & b=$!; ${writer} ${m2}/pieces 1500 c; ` +
        `wait $a $b; touch ${scratch}/pieces.done; wait $r`,
      { timeoutMs: 170_000 },
    );
    expect(run.code, run.stderr).toBe(0);
    const lines = (await ok(`cat ${m2}/pieces`)).split('\n');
    expect(lines.pop()).toBe('');
    const torn = lines.filter((l) => !/^([abc]) \d{5} \1+$/.test(l) || l.length !== 99);
    expect(torn.slice(0, 3)).toEqual([]);
    expect(lines.length).toBe(4500);
  });

  it('a file written and closed on one mount reads back identical on the other', async () => {
    await ok(`head -c 9000000 /dev/urandom > ${scratch}/x && cp ${scratch}/x ${m1}/x && cmp ${scratch}/x ${m2}/x`);
    // Rewritten in place on the second mount: the first sees the new bytes at its next open.
    await ok(`head -c 1000000 /dev/urandom > ${scratch}/y && dd if=${scratch}/y of=${m2}/x bs=64k seek=10 conv=notrunc status=none`);
    await ok(`dd if=${scratch}/y of=${scratch}/x bs=64k seek=10 conv=notrunc status=none && cmp ${scratch}/x ${m1}/x`);
    // The kernel caches attributes (attr_timeout): the size m1 has just seen must not cut a read
    // short after m2 grew the file — open drops the cached copy.
    await ok(`printf a > ${m1}/grow`);
    expect(await ok(`stat -c %s ${m2}/grow && printf bcdef >> ${m1}/grow && cat ${m2}/grow`)).toBe('1\nabcdef');
  });
});

/**
 * A random read fetches the 64 KiB block around it and the mount hands the rest of it to the
 * kernel's page cache. Shown by a write the kernel cannot know of (from the other mount): while the
 * file stays open, pages of that block come from the page cache as they were (the mount's own read
 * windows have moved on; without the store the read would reach the chunkservers and see the new
 * bytes). A new open sees the write (close-to-open); a write or a truncate through the same mount
 * is never undone by a store.
 */
const pageStoreScript = String.raw`
import os, sys
p1, p2, B = sys.argv[1], sys.argv[2], 65536
orig = open(sys.argv[3], 'rb').read()
fd = os.open(p1, os.O_RDONLY)
assert os.pread(fd, 4096, 20 * B + 4096) == orig[20 * B + 4096:20 * B + 8192]
w = os.open(p2, os.O_WRONLY)
os.pwrite(w, b'N' * B, 20 * B)
os.fsync(w)
os.close(w)
for k in range(8):  # more blocks than the mount keeps read windows
    assert os.pread(fd, 4096, (40 + 2 * k) * B) == orig[(40 + 2 * k) * B:(40 + 2 * k) * B + 4096]
print('kept' if os.pread(fd, 4096, 20 * B + 32768) == orig[20 * B + 32768:20 * B + 36864] else 'refetched')
os.close(fd)
fd = os.open(p1, os.O_RDONLY)
print('fresh' if os.pread(fd, 4096, 20 * B + 32768) == b'N' * 4096 else 'stale')
# a write through this mount while a reader has the block: the reader sees the write
assert os.pread(fd, 4096, 30 * B) == orig[30 * B:30 * B + 4096]
w = os.open(p1, os.O_WRONLY)
os.pwrite(w, b'W' * 4096, 30 * B + 16384)
os.close(w)
assert os.pread(fd, 4096, 30 * B + 16384) == b'W' * 4096
assert os.pread(fd, 4096, 30 * B + 20480) == orig[30 * B + 20480:30 * B + 24576]
# a truncate through this mount: nothing of the stored block past the new end comes back
assert os.pread(fd, 4096, 50 * B) == orig[50 * B:50 * B + 4096]
os.truncate(p1, 50 * B + 1000)
assert os.pread(fd, 8192, 50 * B) == orig[50 * B:50 * B + 1000]
assert os.fstat(fd).st_size == 50 * B + 1000
os.close(fd)
print('ok')
`;

describe('page cache', () => {
  it('a random read puts its whole block in the page cache; new opens, writes and truncates still win', async () => {
    await ok(`head -c 8000000 /dev/urandom > ${scratch}/pc && cp ${scratch}/pc ${m1}/pc`);
    const out = await ok(`python3 - ${m1}/pc ${m2}/pc ${scratch}/pc <<'EOF'\n${pageStoreScript}\nEOF`);
    expect(out.trim().split('\n')).toEqual(['kept', 'fresh', 'ok']);
    expect(await ok(`cat ${m2}/pc | wc -c`)).toBe(`${50 * 65536 + 1000}\n`); // an open sees it at once
  });
});

describe('namespace through shell tools', () => {
  it('mkdir -p, mv across directories, rm -r, ln -s', async () => {
    await ok(`mkdir -p ${m1}/a/b/c && echo hello > ${m1}/a/b/c/f && mkdir ${m1}/d`);
    await ok(`mv ${m1}/a/b/c/f ${m1}/d/g`);
    expect((await sh(`test -e ${m1}/a/b/c/f`)).code).not.toBe(0);
    expect(await ok(`cat ${m1}/d/g`)).toBe('hello\n');
    // mv over an existing file replaces it
    await ok(`echo other > ${m1}/d/h && mv ${m1}/d/h ${m1}/d/g`);
    expect(await ok(`cat ${m1}/d/g; ls ${m1}/d`)).toBe('other\ng\n');
    // a directory moves with everything beneath it
    await ok(`mv ${m1}/a/b ${m1}/d/b2`);
    expect((await ok(`find ${m1}/d/b2 | sed "s|${m1}||" | sort`)).trim().split('\n')).toEqual(['/d/b2', '/d/b2/c']);
    await ok(`ln -s ../d/g ${m1}/a/link`);
    expect((await ok(`readlink ${m1}/a/link`)).trim()).toBe('../d/g');
    expect(await ok(`cat ${m1}/a/link`)).toBe('other\n');
    await ok(`rm -r ${m1}/a ${m1}/d`);
    expect((await sh(`ls ${m1}/a`)).code).not.toBe(0);
  });

  it('chmod, touch -d, truncate, stat and df report what a local disk would', async () => {
    await ok(`echo 0123456789 > ${m1}/t`);
    await ok(`chmod 640 ${m1}/t`);
    expect((await ok(`stat -c '%a %F %s' ${m1}/t`)).trim()).toBe('640 regular file 11');
    await ok(`touch -d '2020-05-06 07:08:09' ${m1}/t`);
    expect((await ok(`TZ=UTC0 stat -c '%y' ${m1}/t`)).trim()).toMatch(/^2020-05-06 07:08:09/);
    await ok(`truncate -s 5 ${m1}/t`);
    expect(await ok(`cat ${m1}/t`)).toBe('01234');
    await ok(`truncate -s 10000000 ${m1}/t`); // grow past a 4 MiB chunk: the rest reads as zeros
    expect((await ok(`stat -c %s ${m1}/t`)).trim()).toBe('10000000');
    await ok(`(printf 01234; head -c 9999995 /dev/zero) | cmp - ${m1}/t`);
    await ok(`truncate -s 3 ${m1}/t && truncate -s 8 ${m1}/t`);
    await ok(`printf '012\\0\\0\\0\\0\\0' | cmp - ${m1}/t`);
    expect((await ok(`stat -c '%F' ${m1}`)).trim()).toBe('directory');
    // The root was made when the file system was, not at the epoch.
    expect(Math.abs(Number((await ok(`stat -c %Y ${m1}`)).trim()) - Date.now() / 1000)).toBeLessThan(3600);
    const df = await ok(`df -P ${m1} | tail -1`);
    const [, blocks] = df.trim().split(/\s+/);
    expect(Number(blocks)).toBeGreaterThan(0);
  });

  it('gives the usual error messages', async () => {
    await ok(`mkdir -p ${m1}/e/sub && echo x > ${m1}/e/file`);
    const cat = await sh(`LC_ALL=C cat ${m1}/e/missing`);
    expect(cat.code).not.toBe(0);
    expect(cat.stderr).toContain('No such file or directory');
    const rmdir = await sh(`LC_ALL=C rmdir ${m1}/e`);
    expect(rmdir.code).not.toBe(0);
    expect(rmdir.stderr).toContain('Directory not empty');
    const mkdir = await sh(`LC_ALL=C mkdir ${m1}/e/sub`);
    expect(mkdir.code).not.toBe(0);
    expect(mkdir.stderr).toContain('File exists');
    const ls = await sh(`LC_ALL=C ls ${m1}/e/file/`);
    expect(ls.code).not.toBe(0);
    expect(ls.stderr).toContain('Not a directory');
  });
});

describe('faults', () => {
  it('serves the right data when one replica is corrupt on disk', async () => {
    await ok(`head -c 3000000 /dev/urandom > ${scratch}/c && cp ${scratch}/c ${m1}/c`);
    const peer = await c.masterPeer();
    let handle: number;
    try {
      const attr = await peer.call('lookup', { path: '/c' });
      const { chunks } = await peer.call('chunks', { ino: attr.ino, first: 0, count: 1 });
      handle = chunks[0].handle;
    } finally {
      peer.close();
    }
    const name = handle.toString(16).padStart(16, '0');
    // Flip bytes in the same block on two of the three replicas: whichever the mount reads first,
    // at least one bad copy is met, and one good copy is left.
    let flipped = 0;
    for (const d of c.chunkservers) {
      if (flipped === 2 || !(await replicaFiles(d.dataDir)).includes(name)) continue;
      await ok(`printf 'CORRUPTCORRUPT' | dd of=${join(d.dataDir, 'chunks', name)} bs=1 seek=100000 conv=notrunc status=none`);
      flipped++;
    }
    expect(flipped).toBe(2);
    await ok(`cmp ${scratch}/c ${m2}/c`);
    await ok(`cmp ${scratch}/c ${m1}/c`);
    // Each read goes to the next replica in turn. A whole-file read takes a number of pieces that
    // may be a multiple of three (then every pass starts on the same replica); reading just the
    // bad block's neighbourhood takes one or two, so a few passes (past the page cache) are sure
    // to meet a bad copy, which the master must then hear about.
    for (let i = 0; i < 12 && !/corrupt replica of chunk/.test(c.master.stderr.join('\n')); i++) {
      await ok(`sync; echo 3 > /proc/sys/vm/drop_caches; cmp <(head -c 200000 ${scratch}/c) <(head -c 200000 ${m2}/c)`);
    }
    expect(c.master.stderr.join('\n')).toMatch(/corrupt replica of chunk/);
  });

  it('keeps every closed file identical across kill -9 and restart of the master', async () => {
    await ok(`mkdir -p ${m1}/keep/deep && head -c 5000000 /dev/urandom > ${scratch}/k && cp ${scratch}/k ${m1}/keep/deep/k && echo small > ${m1}/keep/s`);
    const before = await ok(`cd ${m1} && find keep -printf '%p %s %m\\n' | sort`);
    await c.kill(c.master, 'SIGKILL');
    await c.restartMaster();
    // The mount re-dials on its own; no remount.
    expect(await ok(`cd ${m1} && find keep -printf '%p %s %m\\n' | sort`)).toBe(before);
    await ok(`cmp ${scratch}/k ${m1}/keep/deep/k && cmp ${scratch}/k ${m2}/keep/deep/k`);
    expect(await ok(`cat ${m1}/keep/s`)).toBe('small\n');
    expect(await ok(`cmp ${scratch}/big ${m1}/big && echo same`)).toBe('same\n');
    // And it takes new writes again (leases resume once the old ones have surely expired).
    await ok(`echo after > ${m1}/keep/new && cat ${m2}/keep/new`);
  });
});
