// The master killed (-9) and restarted under a running workload: it replays its op log, relearns
// replica locations from the chunkservers, and the mount carries on without a remount. While it is
// away, mount operations wait up to --client-retry-ms, then fail with EIO.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { readCheckpoint } from '../src/master/checkpoint.js';
import { ok, root, sh, TestCluster, withCluster } from './helpers/cluster.js';
import { replicationProblems, sleep, status, waitFor } from './helpers/faults.js';

const gfs = `node ${join(root, 'dist/cli.js')}`;

describe('master restart', () => {
  const env = withCluster({
      chunkservers: 3,
      // A checkpoint every 40 op-log records: kills land before, during and after them.
      args: ['--chunk-size', '4M', '--heartbeat-ms', '500', '--dead-after-ms', '4000', '--lease-ms', '3000', '--trash-grace-ms', '600000', '--checkpoint-every', '40'],
    }, 1);
  let c: TestCluster, m: string, scratch: string;
  beforeAll(() => void ({ c, m1: m, scratch } = env));

  it('kill -9 of the master during a write workload: namespace intact, every closed or fsynced file identical, the mount carries on', async () => {
    await ok(`mkdir -p ${m}/tree/a/b && for i in $(seq 1 6); do head -c $((i * 300000)) /dev/urandom > ${scratch}/t$i; cp ${scratch}/t$i ${m}/tree/a/t$i; done && ln -s a/t1 ${m}/tree/link && chmod 600 ${m}/tree/a/t2`);
    const listing = () => ok(`cd ${m} && find tree -printf '%p %y %s %m\\n' | sort`);
    const before = await listing();

    // Files written and closed one after another (every third fsync'd as well), and appended lines;
    // each is recorded as acknowledged only once its command returned.
    await ok(`cd ${scratch} && for i in $(seq 1 40); do head -c $((50000 + i * 40000)) /dev/urandom > w$i; done`);
    const workload = sh(
      `mkdir -p ${m}/w && cd ${scratch} && for i in $(seq 1 40); do ` +
        `if [ $((i % 3)) = 0 ]; then dd if=w$i of=${m}/w/w$i bs=64K conv=fsync status=none || exit 1; else cp w$i ${m}/w/w$i || exit 1; fi; ` +
        `echo "line $i" >> ${m}/w/log || exit 2; echo $i >> acked; done`,
    );
    const acked = async () => (await sh(`wc -l < ${scratch}/acked`)).stdout.trim();
    await waitFor('the workload under way', 60_000, async () => Number(await acked()) >= 8);
    await c.kill(c.master, 'SIGKILL');
    const ackedAtKill = Number(await acked());
    await sleep(1000);
    await c.restartMaster();
    const r = await workload;
    expect(r.code, `${r.stderr}\n${c.mounts[0].stderr.slice(-20).join('\n')}`).toBe(0);
    expect(ackedAtKill).toBeLessThan(40); // the kill did land in the middle of it

    expect(await listing()).toBe(before);
    await ok(`for i in $(seq 1 6); do cmp ${scratch}/t$i ${m}/tree/a/t$i || exit 1; done && for i in $(seq 1 40); do cmp ${scratch}/w$i ${m}/w/w$i || exit 1; done`);
    expect((await ok(`cat ${m}/w/log`)).trim().split('\n')).toEqual(Array.from({ length: 40 }, (_, i) => `line ${i + 1}`));
    const m2 = await c.mount(); // a fresh mount sees the same
    await ok(`for i in $(seq 1 40); do cmp ${scratch}/w$i ${m2}/w/w$i || exit 1; done`);
    const paths = [...Array.from({ length: 6 }, (_, i) => `/tree/a/t${i + 1}`), ...Array.from({ length: 40 }, (_, i) => `/w/w${i + 1}`)];
    await waitFor('locations relearned: 3 replicas of every chunk', 30_000, async () => (await replicationProblems(c, paths, 3)) === '', () => replicationProblems(c, paths, 3));
  });

  it('makes checkpoints in the background while it serves; a kill -9 under a stream of creates loses none of them', async () => {
    const data = c.master.dataDir;
    const checkpointGen = async () => (await readCheckpoint(join(data, 'checkpoint')))!.gen;
    const logs = async () => (await readdir(data)).filter((f) => f.startsWith('oplog.'));
    const genBefore = await checkpointGen();
    const FILES = 1500;
    // Made by another mount: this one then sends each create to the master before answering it.
    const m2 = await c.mount();
    await ok(`mkdir ${m2}/ck`);
    const workload = sh(`n=${FILES}; for i in $(seq 1 $n); do echo "file $i" > ${m}/ck/f$i || exit 1; echo $i >> ${scratch}/ck-acked; done`);
    const acked = async () => Number((await sh(`cat ${scratch}/ck-acked 2>/dev/null | wc -l`)).stdout.trim());
    await waitFor('a checkpoint made under the workload', 60_000, async () => (await checkpointGen()) > genBefore);
    await waitFor('more files', 60_000, async () => (await acked()) >= 200);
    await c.kill(c.master, 'SIGKILL');
    const ackedAtKill = await acked();
    await c.restartMaster();
    const r = await workload;
    expect(r.code, r.stderr).toBe(0);
    expect(ackedAtKill).toBeLessThan(FILES);
    const want = Array.from({ length: FILES }, (_, i) => `file ${i + 1}`).join('\n');
    expect((await ok(`cd ${m}/ck && cat $(seq -f f%g 1 ${FILES})`)).trim()).toBe(want);
    // Checkpoints go on after the restart, and the logs they replace are removed.
    const genAfterRestart = await checkpointGen();
    await ok(`for i in $(seq 1 100); do touch ${m}/ck/g$i; done`);
    await waitFor('a checkpoint after the restart', 30_000, async () => (await checkpointGen()) > genAfterRestart);
    await waitFor('old logs removed', 30_000, async () => (await logs()).length <= 2, async () => (await logs()).join(' '));
    // What another mount sees comes from the master's state.
    expect((await ok(`cd ${m2}/ck && cat $(seq -f f%g 1 ${FILES})`)).trim()).toBe(want);
    expect((await ok(`ls ${m2}/ck | wc -l`)).trim()).toBe(String(FILES + 100));
  });

  it('a namespace change retried after a lost reply is applied once, also across a master restart', async () => {
    const create = { path: '/excl', mode: 0o644, uid: 0, gid: 0, exclusive: true, rid: 'test-client-1' };
    let peer = await c.masterPeer();
    const first = await peer.call('create', create);
    expect(await peer.call('create', create)).toEqual(first); // same id: the same answer, no EEXIST
    await expect(peer.call('create', { ...create, rid: 'test-client-2' })).rejects.toMatchObject({ code: 'EEXIST' });
    // A batch of changes a mount answered ahead: each item once per id, failures listed in order.
    // A create takes an inode number reserved for the client, and only such a number.
    for (const path of ['/b1', '/b2']) await peer.call('create', { path, mode: 0o644, uid: 0, gid: 0, exclusive: true });
    const { first: ino, end } = await peer.call('reserveInos', { count: 2 });
    expect(end).toBe(ino + 2);
    const made = { op: 'create' as const, path: '/b3', mode: 0o640, uid: 0, gid: 0, ino, time: [1_700_000_000, 5] as [number, number], rid: 'test-client-8' };
    const batch = {
      items: [
        { op: 'unlink' as const, path: '/b1', rid: 'test-client-5' },
        { op: 'unlink' as const, path: '/nope', rid: 'test-client-6' },
        { op: 'unlink' as const, path: '/b2', rid: 'test-client-7' },
        made,
        { ...made, path: '/b4', ino: end + 5, rid: 'test-client-9' }, // not reserved
      ],
    };
    const refused = (r: { results: Array<{ code?: string }> }) => r.results.flatMap((x, i) => (x.code ? [`${batch.items[i].path} ${x.code}`] : []));
    expect(refused(await peer.call('changes', batch))).toEqual(['/nope ENOENT', '/b4 EINVAL']);
    expect(refused(await peer.call('changes', batch))).toEqual(['/nope ENOENT', '/b4 EINVAL']); // b1, b2, b3: answered from their ids
    const b3 = await peer.call('lookup', { path: '/b3' });
    expect([b3.ino, b3.mode & 0o777, b3.mtime]).toEqual([ino, 0o640, [1_700_000_000, 5]]); // the client's number and time
    peer.close();
    await c.kill(c.master, 'SIGKILL');
    await c.restartMaster();
    peer = await c.masterPeer();
    try {
      expect((await peer.call('create', create)).ino).toBe(first.ino); // the id came back from the op log
      const unlink = { path: '/excl', rid: 'test-client-3' };
      await peer.call('unlink', unlink);
      await peer.call('unlink', unlink);
      await expect(peer.call('unlink', { path: '/excl', rid: 'test-client-4' })).rejects.toMatchObject({ code: 'ENOENT' });
      expect(refused(await peer.call('changes', batch))).toEqual(['/nope ENOENT', '/b4 EINVAL']);
      expect((await peer.call('readdir', { path: '/' })).entries.map((e) => e.name).filter((n) => n.startsWith('b'))).toEqual(['b3']);
      // The reserved numbers stay reserved across the restart: a new file gets a number past them.
      expect((await peer.call('create', { path: '/after', mode: 0o644, uid: 0, gid: 0, exclusive: true })).ino).toBeGreaterThanOrEqual(end);
    } finally {
      peer.close();
    }
  });

  it('sizes a create carries are applied with it, one outcome each, and kept across a restart; a retried create leaves them to the client', async () => {
    let peer = await c.masterPeer();
    const mk = (path: string, rid?: string) => ({ path, mode: 0o644, uid: 0, gid: 0, exclusive: true, ...(rid ? { rid } : {}) });
    const a = await peer.call('create', mk('/sized-a'));
    const next = mk('/sized-b', 'test-client-sized');
    const sizes = [{ ino: a.ino, size: 12345 }, { ino: 987654321, size: 1 }];
    const b = await peer.call('create', { ...next, sizes });
    expect(b.sized?.map((r) => ('ino' in r ? `${r.ino} ${r.size}` : r.code))).toEqual([`${a.ino} 12345`, 'ENOENT']);
    expect((await peer.call('getattr', { ino: a.ino })).size).toBe(12345);
    // The same request again (its reply lost): the create's outcome, and no word on the sizes.
    const again = await peer.call('create', { ...next, sizes: [{ ino: a.ino, size: 99999 }] });
    expect(again.ino).toBe(b.ino);
    expect(again.sized).toBeUndefined();
    expect((await peer.call('getattr', { ino: a.ino })).size).toBe(12345);
    peer.close();
    await c.kill(c.master, 'SIGKILL');
    await c.restartMaster();
    peer = await c.masterPeer();
    try {
      expect((await peer.call('lookup', { path: '/sized-a' })).size).toBe(12345);
      expect((await peer.call('create', next)).ino).toBe(b.ino); // the id is the create's, not an extend's
    } finally {
      peer.close();
    }
  });

  it('a deleted file stays in the trash across a master restart, and `gfs undelete` brings it back identical', async () => {
    await ok(`head -c 9000000 /dev/urandom > ${scratch}/u && cp ${scratch}/u ${m}/u && rm ${m}/u`);
    expect((await sh(`ls ${m}/u`)).code).not.toBe(0);
    await c.kill(c.master, 'SIGKILL');
    await c.restartMaster();
    expect(await ok(`${gfs} trash ${c.url}`)).toMatch(/\s\/u\n/);
    expect(await ok(`${gfs} undelete ${c.url} /u`)).toMatch(/restored \/u/);
    await ok(`cmp ${scratch}/u ${m}/u`);
    const again = await sh(`${gfs} undelete ${c.url} /u`);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/^gfs: .*nothing deleted at \/u/);
  });

  it('while the master is away, an operation waits up to --client-retry-ms, then fails with EIO; then works again', async () => {
    const m3 = await c.mount(['--client-retry-ms', '3000']);
    await ok(`ls ${m3}/tree`);
    await c.kill(c.master, 'SIGKILL');
    const t0 = Date.now();
    const r = await sh(`LC_ALL=C stat ${m3}/never-looked-up-before`, { timeoutMs: 60_000 });
    const waited = Date.now() - t0;
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('Input/output error');
    expect(waited).toBeGreaterThanOrEqual(2000); // not at once (it gives up when the next pause, up to 1 s, would pass the time-out)...
    expect(waited).toBeLessThan(30_000); // ...and not forever
    await c.restartMaster();
    await waitFor('the mount back without a remount', 30_000, async () => (await sh(`ls ${m3}/tree/a`)).code === 0);
    expect((await ok(`ls ${m3}/tree/a`)).split('\n')).toContain('t1');
    await waitFor('the chunkservers registered again', 30_000, async () => (await status(c)).chunkservers.filter((s) => s.alive).length === 3);
  });
});
