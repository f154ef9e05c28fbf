// Chunkserver failures through a real mount: kill -9 during a copy, two of four at once, and a
// server that comes back after missing writes. Small chunks (4 MiB), a fast heartbeat and short
// leases keep each scenario to seconds; every wait polls with a deadline.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ok, sh, TestCluster, type Daemon, withCluster } from './helpers/cluster.js';
import {
  chunkName, chunksOf, replicaFiles, replicationProblems, running, sidecarVersion, sizeOnMount, sleep, status, waitFor,
} from './helpers/faults.js';

const ARGS = ['--chunk-size', '4M', '--heartbeat-ms', '500', '--dead-after-ms', '4000', '--lease-ms', '3000', '--rpc-timeout-ms', '5000'];
const MB = 1_000_000;

/** The chunkserver daemon serving address (as the master names it). */
const daemonAt = (c: TestCluster, address: string): Daemon => c.chunkservers.find((d) => d.address === `ws://${address}`)!;

describe('chunkservers dying under a running workload', () => {
  const env = withCluster({ chunkservers: 4, args: ARGS }, 1);
  let c: TestCluster, m: string, scratch: string;
  beforeAll(() => void ({ c, m1: m, scratch } = env));

  it('kill -9 of one of four during a 300 MB cp: the cp succeeds, identical, and every chunk gets back to 3 live replicas', async () => {
    await ok(`head -c ${300 * MB} /dev/urandom > ${scratch}/big`);
    // (The fsync reports a failure of writes the mount pushes after cp's close: write-behind.)
    const cp = sh(`cp ${scratch}/big ${m}/big && dd if=/dev/null of=${m}/big conv=notrunc,fsync status=none`);
    let copied = false;
    void cp.then(() => (copied = true));
    // Kill a server holding the chunk being written while the copy is well under way.
    await waitFor('the cp to be under way', 60_000, async () => (await sizeOnMount(`${m}/big`)) >= 60 * MB);
    const written = (await chunksOf(c, '/big')).filter((ch) => ch.replicas.length > 0);
    const victim = daemonAt(c, written[written.length - 1].replicas[0]);
    await c.kill(victim, 'SIGKILL');
    expect(copied, 'the kill came too late to hit the copy').toBe(false);
    const r = await cp;
    expect(r.code, `${r.stderr}\n${c.mounts[0].stderr.slice(-30).join('\n')}\n${c.master.stderr.slice(-30).join('\n')}`).toBe(0);
    await ok(`cmp ${scratch}/big ${m}/big`);

    const t0 = Date.now();
    await waitFor('3 live, identical replicas of every chunk', 120_000, async () => (await status(c)).underReplicated === 0 && (await replicationProblems(c, ['/big'], 3)) === '', () =>
      replicationProblems(c, ['/big'], 3),
    );
    const dead = victim.address.replace('ws://', '');
    for (const ch of await chunksOf(c, '/big')) expect(ch.replicas).not.toContain(dead);
    console.log(`re-replicated within ${Date.now() - t0} ms of the cp's end`);
    await ok(`cmp ${scratch}/big ${m}/big`);
  });

  it('kill -9 of two of four at once: every file still reads back identical', async () => {
    await c.addChunkserver(); // four running again
    await ok(`mkdir -p ${m}/many && for i in $(seq 1 12); do head -c $((i * 700000)) /dev/urandom > ${scratch}/f$i; cp ${scratch}/f$i ${m}/many/f$i; done`);
    const paths = ['/big', ...Array.from({ length: 12 }, (_, i) => `/many/f${i + 1}`)];
    await waitFor('full replication before the kills', 120_000, async () => (await status(c)).underReplicated === 0 && (await replicationProblems(c, paths, 3)) === '', () =>
      replicationProblems(c, paths, 3),
    );
    const [a, b] = running(c.chunkservers);
    await Promise.all([c.kill(a, 'SIGKILL'), c.kill(b, 'SIGKILL')]);
    // Straight away, before any repair: every chunk still has a replica on one of the other two.
    await ok(`cmp ${scratch}/big ${m}/big && for i in $(seq 1 12); do cmp ${scratch}/f$i ${m}/many/f$i || exit 1; done`);
    const m2 = await c.mount(); // and through a mount that never saw the old locations
    await ok(`cmp ${scratch}/big ${m2}/big && for i in $(seq 1 12); do cmp ${scratch}/f$i ${m2}/many/f$i || exit 1; done`);
    // Those left hold every chunk as often as they can once repair is done.
    const want = Math.min(3, running(c.chunkservers).length);
    await waitFor(`${want} replicas of every chunk on the servers left`, 120_000, async () => (await replicationProblems(c, paths, want)) === '', () => replicationProblems(c, paths, want));
  });
});

describe('a chunkserver that missed writes', () => {
  const env = withCluster({ chunkservers: 4, args: ARGS }, 1);
  let c: TestCluster, m: string, scratch: string;
  beforeAll(() => void ({ c, m1: m, scratch } = env));

  it('comes back with stale replicas: they are deleted, never read', async () => {
    await ok(`head -c ${48 * MB} /dev/urandom > ${scratch}/old && head -c ${48 * MB} /dev/urandom > ${scratch}/new && cp ${scratch}/old ${m}/f`);
    await waitFor('full replication', 60_000, async () => (await replicationProblems(c, ['/f'], 3)) === '');
    // Overwrite the file in place, a chunk per dd, and kill a server holding later chunks once the
    // first one is done: it misses the rest.
    const victimIndex = c.chunkservers.indexOf(daemonAt(c, (await chunksOf(c, '/f'))[6].replicas[0]));
    const victim = c.chunkservers[victimIndex];
    const overwrite = sh(
      `for i in $(seq 0 11); do dd if=${scratch}/new of=${m}/f bs=4M skip=$i seek=$i count=1 conv=notrunc,fsync status=none || exit 1; touch ${scratch}/done$i; done`,
    );
    await waitFor('the first chunk overwritten', 60_000, async () => (await sh(`test -e ${scratch}/done0`)).code === 0);
    await c.kill(victim, 'SIGKILL');
    expect((await sh(`test -e ${scratch}/done11`)).code, 'the kill came too late').not.toBe(0);
    const r = await overwrite;
    expect(r.code, `${r.stderr}\n${c.mounts[0].stderr.slice(-30).join('\n')}\n${c.master.stderr.slice(-30).join('\n')}`).toBe(0);
    await ok(`cmp ${scratch}/new ${m}/f`);

    // On its disk: replicas at versions older than the master's (the test is void without them).
    const current = new Map((await chunksOf(c, '/f')).map((ch) => [chunkName(ch.handle), ch.version]));
    const staleNames: string[] = [];
    for (const name of await replicaFiles(victim)) {
      const v = await sidecarVersion(victim, name);
      if (current.has(name) && v !== undefined && v < current.get(name)!) staleNames.push(name);
    }
    expect(staleNames.length).toBeGreaterThan(0);

    const back = await c.restartChunkserver(victimIndex);
    const address = back.address.replace('ws://', '');
    // Read it again and again while the master takes the server back: never the old bytes.
    for (let i = 0; i < 3; i++) {
      await ok(`cmp ${scratch}/new ${m}/f`);
      for (const ch of await chunksOf(c, '/f')) {
        if (ch.replicas.includes(address)) expect(await sidecarVersion(back, chunkName(ch.handle))).toBe(ch.version);
      }
    }
    await waitFor('the stale replicas deleted from its disk', 30_000, async () => {
      for (const name of staleNames) {
        const v = await sidecarVersion(back, name);
        if (v !== undefined && v < current.get(name)!) return false;
      }
      return true;
    });
    expect(c.master.stderr.join('\n')).toMatch(/stale replica/);
    await waitFor('3 identical replicas of every chunk', 60_000, async () => (await replicationProblems(c, ['/f'], 3)) === '', () => replicationProblems(c, ['/f'], 3));
    await ok(`cmp ${scratch}/new ${m}/f`);
  });

  it('fsync after the server of a replica died: the live replicas are synced, and it succeeds', async () => {
    await ok(`head -c ${10 * MB} /dev/urandom > ${scratch}/g`);
    const data = await readFile(`${scratch}/g`);
    const fh = await open(`${m}/g`, 'w');
    try {
      await fh.write(data, 0, data.length, 0); // more than a chunk: the first one is on its replicas now
      // Once the first chunk is whole on all three replicas (its write acknowledged), one of them dies.
      const [first] = await waitFor('the first chunk written', 20_000, async () => {
        const chunks = await chunksOf(c, '/g').catch(() => []);
        if (chunks.length === 0 || chunks[0].replicas.length !== 3) return false;
        for (const a of chunks[0].replicas) {
          if ((await stat(join(daemonAt(c, a).dataDir, 'chunks', chunkName(chunks[0].handle))).catch(() => null))?.size !== 4 * 1024 * 1024) return false;
        }
        return chunks;
      });
      await sleep(300);
      await c.kill(daemonAt(c, first.replicas[1]), 'SIGKILL');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await ok(`cmp ${scratch}/g ${m}/g`);
  });
});
