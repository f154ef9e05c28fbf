// Chunkservers whose disks fill up: the writer hears ENOSPC (not EIO), at fsync and close at the
// latest, and at once (not after minutes of retries); nothing already written is lost, every
// daemon keeps serving, small appends to existing chunks still work.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ok, sh, TestCluster } from './helpers/cluster.js';
import { until } from './helpers/programs.js';

/** A cluster whose three chunkservers each keep their data on a tmpfs of diskMiB of its own. */
async function onSmallDisks(diskMiB: number, args?: string[]): Promise<{ c: TestCluster; disks: string[] }> {
  const c = await TestCluster.start({ chunkservers: 0, args });
  const disks: string[] = [];
  try {
    for (let i = 1; i <= 3; i++) {
      const dir = join(c.dir, `cs${i}`); // the path addChunkserver uses
      await mkdir(dir, { recursive: true });
      await ok(`mount -t tmpfs -o size=${diskMiB}m tmpfs ${dir}`);
      disks.push(dir);
      await c.addChunkserver();
    }
  } catch (e) {
    await stopOnSmallDisks(c, disks);
    throw e;
  }
  return { c, disks };
}

async function stopOnSmallDisks(c: TestCluster | undefined, disks: string[]): Promise<void> {
  await c?.stop(); // stops every daemon; cannot remove the mounted data directories
  for (const d of disks) await sh(`umount ${d}`);
  if (c) await sh(`rm -rf ${c.dir}`);
}

describe('a new chunk on disks that filled up since the last heartbeat', () => {
  let c: TestCluster | undefined;
  let disks: string[] = [];
  beforeAll(async () => {
    // Heartbeats far apart: the master goes on believing the disks have room.
    ({ c, disks } = await onSmallDisks(8, ['--chunk-size', '4M', '--heartbeat-ms', '60000', '--dead-after-ms', '180000', '--lease-ms', '5000']));
  });
  afterAll(() => stopOnSmallDisks(c, disks));

  it('is refused with ENOSPC each time (not EUNAVAIL, then EIO for good), and made once there is room', async () => {
    for (const d of disks) await sh(`dd if=/dev/zero of=${d}/filler bs=64k`); // fails once full, as meant
    const peer = await c!.masterPeer();
    try {
      const ino = (await peer.call('create', { path: '/f', mode: 0o644, uid: 0, gid: 0, exclusive: true })).ino;
      // Every replica fails to make the chunk: ENOSPC at once (it was EUNAVAIL, which clients wait
      // out for minutes), and the chunk is forgotten (kept, it had a version and no replica: every
      // later write to it failed with EIO, a hang of the client's whole retry time first).
      await expect(peer.call('writeTarget', { ino, index: 0 })).rejects.toMatchObject({ code: 'ENOSPC' });
      expect((await peer.call('chunks', { ino, first: 0, count: 1 })).chunks).toEqual([]);
      await expect(peer.call('writeTarget', { ino, index: 0 })).rejects.toMatchObject({ code: 'ENOSPC' });
      for (const d of disks) await ok(`rm ${d}/filler`);
      const t = await peer.call('writeTarget', { ino, index: 0 });
      expect(t.version).toBe(1);
      expect(t.secondaries).toHaveLength(2);
    } finally {
      peer.close();
    }
  });
});

describe('full disks', () => {
  let c: TestCluster | undefined;
  let disks: string[] = [];
  let mnt: string;
  beforeAll(async () => {
    ({ c, disks } = await onSmallDisks(24));
    mnt = await c.mount();
  });
  afterAll(() => stopOnSmallDisks(c, disks));

  it('a write that does not fit fails with ENOSPC; what was written stays, and the daemons keep serving', async () => {
    await ok(`printf 'before\\n' > ${mnt}/small && head -c 3000000 /dev/urandom > ${c!.dir}/r3 && cp ${c!.dir}/r3 ${mnt}/fits`);
    // 40 MiB, a copy on each disk: more than any has.
    const big = await sh(`LC_ALL=C dd if=/dev/urandom of=${mnt}/big bs=1M count=40 conv=fsync`, { timeoutMs: 60_000 });
    expect(big.code).not.toBe(0);
    expect(big.stderr).toMatch(/No space left on device/);
    expect(big.stderr).not.toMatch(/Input\/output error/);
    // Once a disk is full, a write either fits (and reads back) or says ENOSPC; never EIO (a
    // secondary's ENOSPC once came back so).
    let full = 0;
    await ok(`head -c 2097152 /dev/urandom > ${c!.dir}/r2`);
    for (let i = 0; i < 6; i++) {
      const more = await sh(`LC_ALL=C dd if=${c!.dir}/r2 of=${mnt}/more${i} bs=1M conv=fsync`);
      expect(more.stderr).not.toMatch(/Input\/output error/);
      if (more.code === 0) {
        await ok(`cmp ${mnt}/more${i} ${c!.dir}/r2`);
      } else {
        expect(more.stderr).toMatch(/No space left on device/);
        full++;
      }
    }
    expect(full).toBeGreaterThan(0);
    // Once the master knows no disk has room for a chunk (heartbeats), a new chunk is refused at
    // once with ENOSPC. (It was EUNAVAIL, which a client waits out for --client-retry-ms, 90 s by
    // default, for every chunk, then EIO: a dd that seemed to hang for minutes.)
    const peer = await c!.masterPeer();
    try {
      await until(async () => (await peer.call('status', {})).chunkservers.every((s) => s.freeBytes <= 4 * 1024 * 1024), 'the master to see the disks full');
      const ino = (await peer.call('create', { path: '/late', mode: 0o644, uid: 0, gid: 0, exclusive: true })).ino;
      await expect(peer.call('writeTarget', { ino, index: 0 })).rejects.toMatchObject({ code: 'ENOSPC' });
    } finally {
      peer.close();
    }
    const late = await sh(`LC_ALL=C dd if=${c!.dir}/r2 of=${mnt}/late bs=1M conv=fsync`, { timeoutMs: 30_000 });
    expect(late.code).not.toBe(0);
    expect(late.stderr).toMatch(/No space left on device/);
    // Nothing written before is lost; a small append into an existing chunk still has room.
    await ok(`cmp ${mnt}/fits ${c!.dir}/r3`);
    await ok(`echo after >> ${mnt}/small`);
    expect(await ok(`cat ${mnt}/small`)).toBe('before\nafter\n');
    // Removing files makes room though the trash would keep them for days: while the chunkservers
    // are out of room, the oldest deleted files are purged early.
    await ok(`rm -f ${mnt}/big ${mnt}/late ${mnt}/more*`);
    await until(async () => (await sh(`dd if=${c!.dir}/r2 of=${mnt}/room bs=1M conv=fsync`)).code === 0, 'room for a new file after rm', 60_000);
    await ok(`cmp ${mnt}/room ${c!.dir}/r2 && cmp ${mnt}/fits ${c!.dir}/r3`);
    const after = await c!.masterPeer();
    try {
      expect((await after.call('trash', {})).entries.map((e) => e.path)).not.toContain('/big');
    } finally {
      after.close();
    }
    for (const d of c!.daemons) expect(d.proc.exitCode, d.name).toBeNull();
    expect(await ok(`ls ${mnt}`)).toMatch(/fits/);
  });
});
