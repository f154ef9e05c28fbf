// Corrupted replica files and a primary that stops answering (SIGSTOP), on a real cluster through
// a real mount.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { configFrom, defaults } from '../src/config.js';
import { logger } from '../src/log.js';
import { GfsError } from '../src/protocol/errors.js';
import type { ChunkserverDataApi } from '../src/protocol/messages.js';
import { connect } from '../src/protocol/rpc.js';
import { ok, sh, TestCluster, withCluster } from './helpers/cluster.js';
import { chunkName, chunksOf, md5, replicationProblems, sleep, status, waitFor } from './helpers/faults.js';

const MB = 1_000_000;
/** One checksum block: corrupting one is what a bad sector does to a replica. */
const BLOCK = defaults.checksumBlock;
/** The size of one slot rewritten in the lease test. */
const SLOT = 64 * 1024;

describe('corrupt blocks on disk', () => {
  const env = withCluster({
      chunkservers: 4,
      // A fast background scan, so replicas no client reads are checked within seconds.
      args: ['--chunk-size', '4M', '--heartbeat-ms', '500', '--dead-after-ms', '4000', '--lease-ms', '2000', '--scrub-interval-ms', '50', '--scrub-idle-ms', '1000'],
    }, 1);
  let c: TestCluster, m: string, scratch: string;
  beforeAll(() => void ({ c, m1: m, scratch } = env));

  it('20 random checksum blocks corrupted across replica files: reads are right, all 20 are found and repaired, none is served', async () => {
    const files = Array.from({ length: 8 }, (_, i) => `/d${i}`);
    await ok(`for i in $(seq 0 7); do head -c ${12 * MB} /dev/urandom > ${scratch}/d$i && cp ${scratch}/d$i ${m}/d$i || exit 1; done`);
    await waitFor('full replication', 60_000, async () => (await replicationProblems(c, files, 3)) === '');
    await sleep(2500); // the writers' leases run out (and the scan may start: it finds nothing yet)
    // No rebalancing move under way, twice a second apart: a move whose copy had already read a
    // replica corrupted here would delete it unread (a move planned later reads it first: found).
    const settled = async () => (await status(c)).movesInFlight === 0 && (await replicationProblems(c, files, 3)) === '';
    await waitFor('rebalancing to settle', 60_000, async () => {
      if (!(await settled())) return false;
      await sleep(1000);
      return settled();
    });

    // 20 distinct chunks, one replica each, one random block in it overwritten with random bytes.
    const all = (await Promise.all(files.map((f) => chunksOf(c, f)))).flat();
    const picked = all.sort(() => Math.random() - 0.5).slice(0, 20);
    expect(picked.length).toBe(20);
    const bad: Array<{ handle: number; address: string; path: string }> = [];
    for (const ch of picked) {
      const address = ch.replicas[Math.floor(Math.random() * ch.replicas.length)];
      const d = c.chunkservers.find((x) => x.address === `ws://${address}`)!;
      const path = join(d.dataDir, 'chunks', chunkName(ch.handle));
      const fh = await open(path, 'r+');
      try {
        const blocks = Math.ceil((await fh.stat()).size / BLOCK);
        await fh.write(randomBytes(BLOCK), 0, BLOCK, Math.floor(Math.random() * blocks) * BLOCK);
      } finally {
        await fh.close();
      }
      bad.push({ handle: ch.handle, address, path });
    }

    // Every read returns the right bytes, whichever replica it meets.
    const m2 = await c.mount();
    for (const mnt of [m, m2]) await ok(`for i in $(seq 0 7); do cmp ${scratch}/d$i ${mnt}/d$i || exit 1; done`);

    // All 20 found (by those reads or by the background scan), replaced from a good copy, deleted.
    const found = () => bad.filter((b) => c.master.stderr.some((l) => l.includes(`corrupt replica of chunk ${b.handle} on ${b.address}`)));
    await waitFor('all 20 corrupt replicas reported', 60_000, async () => found().length === 20, async () => `${found().length} of 20 found`);
    await waitFor('every chunk back to 3 good, identical replicas', 60_000, async () => {
      const s = await status(c);
      return s.corrupt === 0 && s.underReplicated === 0 && (await replicationProblems(c, files, 3)) === '';
    }, async () => `${JSON.stringify(await status(c))} ${await replicationProblems(c, files, 3)}`);
    // Each bad file is gone (deleted once replaced), or was replaced in place by a good copy.
    const current = new Map((await Promise.all(files.map((f) => chunksOf(c, f)))).flat().map((ch) => [ch.handle, ch]));
    const stillBad = async () => {
      const left: string[] = [];
      for (const b of bad) {
        const ch = current.get(b.handle)!;
        const goodAt = c.chunkservers.find((x) => x.address === `ws://${ch.replicas.find((a) => a !== b.address)}`)!;
        const now = await md5(b.path);
        if (now !== undefined && now !== (await md5(join(goodAt.dataDir, 'chunks', chunkName(b.handle))))) left.push(`chunk ${b.handle} on ${b.address}`);
      }
      return left;
    };
    await waitFor('every corrupt replica file deleted or replaced', 30_000, async () => (await stillBad()).length === 0, async () => (await stillBad()).join(', '));
    for (const mnt of [m, m2]) await ok(`for i in $(seq 0 7); do cmp ${scratch}/d$i ${mnt}/d$i || exit 1; done`);
  });
});

describe('the background scan', () => {
  const env = withCluster({
      chunkservers: 3,
      args: ['--chunk-size', '4M', '--heartbeat-ms', '500', '--lease-ms', '2000', '--scrub-interval-ms', '100', '--scrub-idle-ms', '1000'],
    }, 1);
  let c: TestCluster, m: string, scratch: string;
  beforeAll(() => void ({ c, m1: m, scratch } = env));

  it('finds a bad block in a replica no one reads, and it is replaced in place from a good one', async () => {
    await ok(`head -c ${6 * MB} /dev/urandom > ${scratch}/x && cp ${scratch}/x ${m}/x`);
    await waitFor('full replication', 30_000, async () => (await replicationProblems(c, ['/x'], 3)) === '');
    const [ch] = await chunksOf(c, '/x');
    const d = c.chunkservers.find((x) => x.address === `ws://${ch.replicas[2]}`)!;
    const path = join(d.dataDir, 'chunks', chunkName(ch.handle));
    const fh = await open(path, 'r+');
    await fh.write(randomBytes(100), 0, 100, 3 * BLOCK + 7);
    await fh.close();
    // No read: only the scan can find it. With three servers the only place for the good copy is
    // the server that held the bad one.
    await waitFor('the scan to report it', 30_000, async () => c.master.stderr.some((l) => l.includes(`corrupt replica of chunk ${ch.handle} on ${ch.replicas[2]}`)));
    expect(d.stderr.join('\n')).toMatch(/checksum mismatch in block 3/);
    await waitFor('a good copy in its place', 30_000, async () => (await status(c)).corrupt === 0 && (await replicationProblems(c, ['/x'], 3)) === '');
    await ok(`cmp ${scratch}/x ${m}/x`);
  });
});

describe('a primary that stops answering (SIGSTOP)', () => {
  let c: TestCluster;
  let m: string;
  let scratch: string;
  const LEASE_MS = 3000;

  beforeAll(async () => {
    c = await TestCluster.start({
      chunkservers: 4,
      args: ['--chunk-size', '4M', '--heartbeat-ms', '500', '--dead-after-ms', '2500', '--lease-ms', String(LEASE_MS), '--rpc-timeout-ms', '2000'],
    });
    m = await c.mount();
    scratch = join(c.dir, 'scratch');
    await ok(`mkdir -p ${scratch}`);
  });
  afterAll(async () => {
    for (const d of c?.chunkservers ?? []) d.proc.kill('SIGCONT');
    await c?.stop();
  });

  it('keeps its lease until it expires: one primary at a time, no write lost or applied twice', async () => {
    const N = 160;
    const SLOTS = 32;
    // Writes of 64 KiB pieces, each closed (so acknowledged) before the next, cycling over 32 slots
    // of one chunk: a lost write, or an old one applied late, leaves a slot with the wrong piece.
    await ok(`cd ${scratch} && for i in $(seq 0 ${N - 1}); do head -c ${SLOT} /dev/urandom > p$i; done && head -c ${SLOTS * SLOT} /dev/zero > expected && cp expected ${m}/s`);
    await ok(`cd ${scratch} && for i in $(seq 0 ${N - 1}); do dd if=p$i of=expected bs=${SLOT} seek=$((i % ${SLOTS})) count=1 conv=notrunc status=none; done`);
    const peer = await c.masterPeer();
    try {
      const ino = (await peer.call('lookup', { path: '/s' })).ino;
      const first = await peer.call('writeTarget', { ino, index: 0 });

      // Watch the master's answers: who is primary, and until when (measured from before the ask).
      const seen: Array<{ got: number; primary: string; until: number; version: number }> = [];
      let watching = true;
      const watcher = (async () => {
        while (watching) {
          const sent = Date.now();
          try {
            const t = await peer.call('writeTarget', { ino, index: 0 });
            seen.push({ got: Date.now(), primary: t.primary, until: sent + t.leaseMs, version: t.version });
          } catch (e) {
            if (!(e instanceof GfsError && e.code === 'ESTALE')) throw e;
          }
          await sleep(100);
        }
      })();

      const writer = sh(`cd ${scratch} && for i in $(seq 0 ${N - 1}); do dd if=p$i of=${m}/s bs=${SLOT} seek=$((i % ${SLOTS})) count=1 conv=notrunc status=none || exit 1; echo $i > progress; done`);
      const progress = async () => Number((await sh(`cat ${scratch}/progress`)).stdout.trim() || -1);
      await waitFor('the writer under way', 30_000, async () => (await progress()) >= 30);

      // The primary now (the lease may have moved since the first answer if the writer paused).
      const current = seen[seen.length - 1];
      const p = c.chunkservers.find((d) => d.address === `ws://${current.primary}`)!;
      p.proc.kill('SIGSTOP');
      const stopTime = Date.now();
      const stoppedAt = await progress();
      const next = await waitFor('a new primary', 60_000, async () => seen.find((s) => s.got > stopTime && s.primary !== current.primary));
      await waitFor('writes going on with it', 60_000, async () => (await progress()) >= stoppedAt + 10);
      p.proc.kill('SIGCONT');

      // Back, the old primary accepts no mutation: its lease ran out and its version is old.
      const cfg = configFrom({});
      const old = await connect<ChunkserverDataApi>(current.primary, { maxFrameBytes: cfg.maxFrameBytes, timeoutMs: 10_000, log: logger('test') });
      try {
        await old.call('push', { dataId: 'probe', data: randomBytes(10), chain: [] });
        for (const version of [current.version, next.version]) {
          const r = await old.call('write', { handle: first.handle, version, offset: 0, dataId: 'probe', secondaries: [] }).then(() => 'ok', (e: GfsError) => e.code);
          expect(r).toBe('ESTALE');
        }
      } finally {
        old.close();
      }

      const w = await writer;
      expect(w.code, w.stderr).toBe(0);
      watching = false;
      await watcher;
      await ok(`cmp ${scratch}/expected ${m}/s`);
      const m2 = await c.mount();
      await ok(`cmp ${scratch}/expected ${m2}/s`);

      // Never two primaries: a new one was named only after every lease the master had announced
      // for another had run out (until: from before the ask; got: after the answer).
      expect(new Set(seen.map((s) => s.primary)).size).toBeGreaterThan(1);
      for (let i = 0; i < seen.length; i++) {
        for (let j = i + 1; j < seen.length; j++) {
          if (seen[j].primary !== seen[i].primary) expect(seen[j].got, `${seen[j].primary} named primary while ${seen[i].primary}'s lease ran`).toBeGreaterThanOrEqual(seen[i].until);
        }
      }
    } finally {
      peer.close();
    }
  });
});
