// Chunks placed ahead of need (master/chunk-pool.ts), with real daemons: new files take them,
// the ones not taken are deleted once their lease is half over, a restarted master never hands
// their handles out again and deletes them, and a chunk whose server died is not handed out.

import { describe, expect, it } from 'vitest';
import { ok, withCluster, type TestCluster } from './helpers/cluster.js';
import { chunksOf, replicaFiles, replicationProblems, sleep, waitFor } from './helpers/faults.js';

describe('chunks placed ahead of need', () => {
  const env = withCluster({
    chunkservers: 4,
    args: ['--chunk-size', '4M', '--heartbeat-ms', '500', '--dead-after-ms', '4000', '--lease-ms', '4000', '--chunk-pool-size', '12'],
  }, 1);

  /** Handles of every replica file on the running chunkservers, and where each is. */
  async function onDisk(c: TestCluster): Promise<Map<number, string[]>> {
    const out = new Map<number, string[]>();
    for (const d of c.chunkservers) {
      if (d.proc.exitCode !== null || d.proc.signalCode !== null) continue;
      for (const name of await replicaFiles(d)) {
        const h = parseInt(name, 16);
        out.set(h, [...(out.get(h) ?? []), d.address.replace(/^ws:\/\//, '')]);
      }
    }
    return out;
  }

  /** Write n new files of different sizes under dir; returns their gfs paths (contents checked). */
  async function writeFiles(m: string, scratch: string, dir: string, n: number): Promise<string[]> {
    await ok(`mkdir -p ${m}/${dir} ${scratch}/${dir} && for i in $(seq 1 ${n}); do head -c $((i * 3000 + 1)) /dev/urandom > ${scratch}/${dir}/f$i; cp ${scratch}/${dir}/f$i ${m}/${dir}/f$i; done`);
    await ok(`for i in $(seq 1 ${n}); do cmp ${scratch}/${dir}/f$i ${m}/${dir}/f$i || exit 1; done`);
    return Array.from({ length: n }, (_, i) => `/${dir}/f${i + 1}`);
  }

  async function handlesOf(c: TestCluster, paths: string[]): Promise<Set<number>> {
    const out = new Set<number>();
    for (const p of paths) for (const ch of await chunksOf(c, p)) out.add(ch.handle);
    return out;
  }

  it('new files take placed chunks; the rest are deleted after half a lease; a restarted master neither reuses their handles nor keeps them', async () => {
    const { c, m1: m, scratch } = env;
    // One file on a fresh cluster: the pool sizes itself to demand, so a couple of chunks are made
    // for nothing, not a whole batch (--chunk-pool-size 12).
    const solo = await writeFiles(m, scratch, 'solo', 1);
    const soloHandles = await handlesOf(c, solo);
    await waitFor('the pool topped up', 5_000, async () => (await onDisk(c)).size > soloHandles.size);
    await sleep(500);
    expect([...(await onDisk(c)).keys()].filter((h) => !soloHandles.has(h)).length).toBeLessThanOrEqual(3);

    const first = await writeFiles(m, scratch, 'a', 8);
    const used = await handlesOf(c, [...solo, ...first]);
    expect(used.size).toBe(9);
    // Placed ahead and not taken yet: on three servers each, in no file.
    const spare = [...(await onDisk(c))].filter(([h]) => !used.has(h));
    expect(spare.length).toBeGreaterThan(0);
    for (const [, at] of spare) expect(at.length).toBe(3);
    await waitFor('the files written: 3 replicas each', 15_000, async () => (await replicationProblems(c, first, 3)) === '', () => replicationProblems(c, first, 3));

    // Not taken within half a lease (2 s): dropped, and deleted at the next heartbeats.
    await waitFor('unused placed chunks deleted', 15_000, async () => [...(await onDisk(c)).keys()].every((h) => used.has(h)), async () => JSON.stringify([...(await onDisk(c)).keys()]));

    // Now with placed chunks on the disks when the master dies.
    const second = await writeFiles(m, scratch, 'b', 4);
    const used2 = await handlesOf(c, second);
    const orphans = [...(await onDisk(c)).keys()].filter((h) => !used.has(h) && !used2.has(h));
    expect(orphans.length).toBeGreaterThan(0);
    await c.kill(c.master, 'SIGKILL');
    await c.restartMaster();
    const third = await writeFiles(m, scratch, 'c', 4);
    const used3 = await handlesOf(c, third);
    for (const h of used3) expect(orphans).not.toContain(h);
    await waitFor("the old master's placed chunks deleted", 20_000, async () => {
      const disk = await onDisk(c);
      return orphans.every((h) => !disk.has(h));
    });
    await ok(`for d in a b c; do for f in ${m}/$d/*; do cmp $f ${scratch}/$d/$(basename $f) || exit 1; done; done`);
    await waitFor('every file: 3 replicas', 30_000, async () => (await replicationProblems(c, [...first, ...second, ...third], 3)) === '', () => replicationProblems(c, [...first, ...second, ...third], 3));
  });

  it('a placed chunk with a replica on a server that died is not handed out', async () => {
    const { c, m1: m, scratch } = env;
    await writeFiles(m, scratch, 'd', 2);
    const all = (await ok(`cd ${m} && find . -type f`)).trim().split('\n').map((p) => p.slice(1));
    const used = await handlesOf(c, all);
    const spare = [...(await onDisk(c))].filter(([h]) => !used.has(h));
    expect(spare.length).toBeGreaterThan(0);
    const victimAddress = spare[0][1][0];
    const victim = c.chunkservers.find((d) => d.address.replace(/^ws:\/\//, '') === victimAddress)!;
    await c.kill(victim, 'SIGKILL');
    const next = await writeFiles(m, scratch, 'e', 6);
    for (const p of next) {
      const [ch] = await chunksOf(c, p);
      expect(ch.replicas, p).not.toContain(victimAddress);
      expect(ch.replicas.length, p).toBe(3);
    }
    await waitFor('every new file: 3 replicas on live servers', 30_000, async () => (await replicationProblems(c, next, 3)) === '', () => replicationProblems(c, next, 3));
  });
});
