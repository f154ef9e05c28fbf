// What the fault tests look at: the master's view (status, chunk locations) and the chunk files on
// the chunkservers' disks, and a way to wait for a condition with a deadline instead of sleeping.

import { readdir, readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { ChunkLocation, ClusterStatus } from '../../src/protocol/messages.js';
import { sh, type Daemon, type TestCluster } from './cluster.js';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Poll check() until it returns a truthy value; fail after timeoutMs with what describe() says. */
export async function waitFor<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined | null | false>, describe?: () => Promise<string>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check().catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${describe ? `: ${await describe().catch((e) => String(e))}` : ''}`);
    await sleep(250);
  }
}

export async function status(c: TestCluster): Promise<ClusterStatus> {
  const peer = await c.masterPeer();
  try {
    return await peer.call('status', {});
  } finally {
    peer.close();
  }
}

/** The master's chunk locations of a file (path inside gfs). */
export async function chunksOf(c: TestCluster, path: string): Promise<ChunkLocation[]> {
  const peer = await c.masterPeer();
  try {
    const attr = await peer.call('lookup', { path });
    return (await peer.call('chunks', { ino: attr.ino, first: 0, count: 4096 })).chunks;
  } finally {
    peer.close();
  }
}

export const chunkName = (handle: number) => handle.toString(16).padStart(16, '0');

/** Replica data files (named from their handle) in a chunkserver's data dir. */
export async function replicaFiles(d: Daemon): Promise<string[]> {
  const names = await readdir(join(d.dataDir, 'chunks')).catch(() => [] as string[]);
  return names.filter((n) => /^[0-9a-f]{16}$/.test(n));
}

/** The version in a replica's sidecar (bytes 8..15 of "<handle>.meta"), or undefined if unreadable. */
export async function sidecarVersion(d: Daemon, name: string): Promise<number | undefined> {
  const b = await readFile(join(d.dataDir, 'chunks', `${name}.meta`)).catch(() => null);
  return b && b.length >= 16 ? Number(b.readBigUInt64LE(8)) : undefined;
}

export async function md5(path: string): Promise<string | undefined> {
  const b = await readFile(path).catch(() => null);
  return b ? createHash('md5').update(b).digest('hex') : undefined;
}

/** The running daemons among these. */
export const running = (ds: Daemon[]) => ds.filter((d) => d.proc.exitCode === null && d.proc.signalCode === null);

/**
 * Every chunk of every file under these gfs paths: exactly `want` live replicas in the master's view,
 * on running chunkservers, and the replica files on those servers' disks byte-identical. Returns a
 * description of what is wrong, or '' when all is well.
 */
export async function replicationProblems(c: TestCluster, paths: string[], want: number): Promise<string> {
  const byAddress = new Map(running(c.chunkservers).map((d) => [d.address.replace(/^ws:\/\//, ''), d]));
  const problems: string[] = [];
  for (const p of paths) {
    for (const ch of await chunksOf(c, p)) {
      if (ch.replicas.length !== want) problems.push(`${p}#${ch.index} has ${ch.replicas.length} replicas`);
      const sums = new Set<string | undefined>();
      for (const a of ch.replicas) {
        const d = byAddress.get(a);
        if (!d) {
          problems.push(`${p}#${ch.index} listed on ${a}, not a running chunkserver`);
          continue;
        }
        sums.add(await md5(join(d.dataDir, 'chunks', chunkName(ch.handle))));
      }
      if (sums.size > 1) problems.push(`${p}#${ch.index} (chunk ${ch.handle}) replicas differ on disk`);
    }
  }
  return problems.slice(0, 10).join('; ');
}

/** Size of a file as the mount sees it (its own pending writes included), or -1. */
export async function sizeOnMount(path: string): Promise<number> {
  const r = await sh(`stat -c %s ${JSON.stringify(path)}`);
  return r.code === 0 ? Number(r.stdout.trim()) : -1;
}
