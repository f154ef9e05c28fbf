// Rebalancing onto a new chunkserver, `gfs drain`, and the trash (grace period, purge, undelete),
// on a real cluster with small (1 MiB) chunks so that counts are large enough to compare.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { ok, root, sh, TestCluster } from './helpers/cluster.js';
import { chunkName, chunksOf, replicaFiles, replicationProblems, running, status, waitFor } from './helpers/faults.js';

const gfs = `node ${join(root, 'dist/cli.js')}`;
const MB = 1_000_000;

let c: TestCluster;
let m: string;
let scratch: string;
const files = Array.from({ length: 8 }, (_, i) => `/b${i}`);

beforeAll(async () => {
  c = await TestCluster.start({
    chunkservers: 4,
    args: ['--chunk-size', '1M', '--heartbeat-ms', '300', '--dead-after-ms', '4000', '--lease-ms', '2000', '--trash-grace-ms', '4000'],
  });
  m = await c.mount();
  scratch = join(c.dir, 'scratch');
  await ok(`mkdir -p ${scratch} && for i in $(seq 0 7); do head -c ${10 * MB} /dev/urandom > ${scratch}/b$i && cp ${scratch}/b$i ${m}/b$i || exit 1; done`);
  await waitFor('full replication', 60_000, async () => (await replicationProblems(c, files, 3)) === '');
});
afterAll(async () => {
  await c?.stop();
});

const counts = async () => (await status(c)).chunkservers.filter((s) => s.alive && !s.draining).map((s) => s.chunks);
const allIdentical = () => ok(`for i in $(seq 0 7); do cmp ${scratch}/b$i ${m}/b$i || exit 1; done`);

describe('rebalancing', () => {
  it('an empty fifth chunkserver receives chunks until the counts are within 10% of each other', async () => {
    const before = await counts();
    expect(before.length).toBe(4);
    const d = await c.addChunkserver();
    const address = d.address.replace('ws://', '');
    await waitFor('chunk counts within 10%', 90_000, async () => {
      const s = await status(c);
      const n = s.chunkservers.filter((x) => x.alive).map((x) => x.chunks);
      return n.length === 5 && s.movesInFlight === 0 && s.underReplicated === 0 && Math.max(...n) - Math.min(...n) <= 0.1 * Math.max(...n);
    }, async () => JSON.stringify(await counts()));
    const after = await counts();
    console.log(`chunk counts: before ${before.join(' ')}, after adding one ${after.join(' ')}`);
    expect((await status(c)).chunkservers.find((s) => s.address === address)!.chunks).toBeGreaterThan(0);
    await waitFor('3 identical replicas of every chunk', 30_000, async () => (await replicationProblems(c, files, 3)) === '', () => replicationProblems(c, files, 3));
    await allIdentical();
  });

  it('gfs drain moves everything off a chunkserver: it ends empty and every chunk keeps 3 replicas; bad blocks in what it held are found, not moved', async () => {
    const victim = running(c.chunkservers)[1];
    const address = victim.address.replace('ws://', '');
    // A bad block in three of its replicas: each move reads the replica it leaves behind first, so
    // each is found and reported (the copy then comes from a good replica), never deleted unread.
    const held = (await Promise.all(files.map((f) => chunksOf(c, f)))).flat().filter((ch) => ch.replicas.includes(address));
    const bad = held.slice(0, 3).map((ch) => ch.handle);
    expect(bad.length).toBe(3);
    for (const h of bad) {
      const fh = await open(join(victim.dataDir, 'chunks', chunkName(h)), 'r+');
      await fh.write(randomBytes(100), 0, 100, 5000);
      await fh.close();
    }
    const r = await sh(`${gfs} drain ${c.url} ${address} --wait`, { timeoutMs: 150_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/is empty/);
    const s = await status(c);
    const me = s.chunkservers.find((x) => x.address === address)!;
    expect(me.draining).toBe(true);
    expect(me.chunks).toBe(0);
    expect(await ok(`${gfs} status ${c.url}`)).toMatch(new RegExp(`${address.replace(/\./g, '\\.')}\\s+drain\\s+0 `));
    await waitFor('its replica files deleted from disk', 30_000, async () => (await replicaFiles(victim)).length === 0);
    await waitFor('3 replicas of every chunk elsewhere', 30_000, async () => (await replicationProblems(c, files, 3)) === '', () => replicationProblems(c, files, 3));
    for (const f of files) for (const ch of await chunksOf(c, f)) expect(ch.replicas).not.toContain(address);
    await allIdentical();
    for (const h of bad) expect(c.master.stderr.join('\n')).toContain(`corrupt replica of chunk ${h} on ${address}`);
    // New chunks do not go there either.
    await ok(`head -c ${5 * MB} /dev/urandom > ${scratch}/n && cp ${scratch}/n ${m}/n && cmp ${scratch}/n ${m}/n`);
    for (const ch of await chunksOf(c, '/n')) expect(ch.replicas).not.toContain(address);
  });
});

describe('trash and garbage collection', () => {
  it('deleted files: undelete within the grace period brings one back identical; after it the chunk files are gone from disk', async () => {
    await ok(`for f in g1 g2 g3; do head -c ${3 * MB} /dev/urandom > ${scratch}/$f && cp ${scratch}/$f ${m}/$f || exit 1; done`);
    const handles = async (f: string) => (await chunksOf(c, f)).map((ch) => chunkName(ch.handle));
    const [h1, h2] = [await handles('/g1'), await handles('/g2')];
    const onDisk = async (names: string[]) => {
      const all = new Set((await Promise.all(running(c.chunkservers).map(replicaFiles))).flat());
      return names.filter((n) => all.has(n)).length;
    };
    // rm, and `mv` over an existing file: both go to the trash.
    await ok(`rm ${m}/g1 ${m}/g2 && mv ${m}/g3 ${m}/b0`);
    expect((await sh(`ls ${m}/g1`)).code).not.toBe(0);
    const listed = await ok(`${gfs} trash ${c.url}`);
    for (const p of ['/g1', '/g2', '/b0']) expect(listed).toMatch(new RegExp(`\\s${p}\\n`));
    expect(await onDisk([...h1, ...h2])).toBe(h1.length + h2.length); // still there, as the trash

    await ok(`${gfs} undelete ${c.url} /g1`);
    await ok(`${gfs} undelete ${c.url} /b0 --to /b0.old`);
    await ok(`cmp ${scratch}/g1 ${m}/g1 && cmp ${scratch}/b0 ${m}/b0.old && cmp ${scratch}/g3 ${m}/b0`);

    await waitFor("g2's replicas deleted from every disk after the grace period", 60_000, async () => (await onDisk(h2)) === 0);
    expect(await onDisk(h1)).toBe(h1.length);
    const late = await sh(`${gfs} undelete ${c.url} /g2`);
    expect(late.code).not.toBe(0);
    expect(late.stderr).toMatch(/^gfs: nothing deleted at \/g2 is in the trash\n$/);
    expect((await status(c)).trash).toBe(0);
    await ok(`cmp ${scratch}/g1 ${m}/g1`);
  });

  it('replicas the master does not know are deleted on heartbeat', async () => {
    const d = running(c.chunkservers)[0];
    const name = '00000fffff000001'; // a handle the master never gave out
    await ok(`printf junk > ${join(d.dataDir, 'chunks', name)}`);
    // The server learns of it at its next start (it scans its directory then).
    const i = c.chunkservers.indexOf(d);
    await c.kill(d, 'SIGKILL');
    const back = await c.restartChunkserver(i);
    await waitFor('the unknown replica deleted', 30_000, async () => !(await replicaFiles(back)).includes(name));
  });
});

describe('operator commands', () => {
  it('bad arguments and an unreachable master give a one-line error and a non-zero exit', async () => {
    const cases = [
      `${gfs} drain ${c.url} 127.0.0.1:1`,
      `${gfs} drain ${c.url}`,
      `${gfs} undelete ws://127.0.0.1:1 /x`,
      `${gfs} trash not-a-url`,
      `${gfs} undelete ${c.url} /never-deleted`,
    ];
    for (const cmd of cases) {
      const r = await sh(cmd);
      expect(r.code, cmd).not.toBe(0);
      expect(r.stderr.split('\n')[0], cmd).toMatch(/^(gfs|error): \S/); // the reason first (commander adds usage after it)
    }
  });

  it('gfs drain refuses to leave fewer servers than replicas, and --cancel takes a server back', async () => {
    const s = await status(c);
    const inService = s.chunkservers.filter((x) => x.alive && !x.draining).map((x) => x.address);
    expect(inService.length).toBe(4);
    await ok(`${gfs} drain ${c.url} ${inService[0]}`);
    const r = await sh(`${gfs} drain ${c.url} ${inService[1]}`);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/^gfs: draining .* would leave 2 chunkservers for 3 replicas/);
    expect(await ok(`${gfs} drain ${c.url} ${inService[0]} --cancel`)).toMatch(/back in service/);
    expect((await status(c)).chunkservers.filter((x) => x.alive && !x.draining).length).toBe(4);
  });
});
