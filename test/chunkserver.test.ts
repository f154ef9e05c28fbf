// Chunkserver: the replica store on its own, then three real chunkservers in this process behind a
// tiny fake master, driven as a client would drive them.

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, open, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { constants } from 'node:fs';
import { createServer } from 'node:net';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { configFrom, type GfsConfig } from '../src/config.js';
import { GfsError } from '../src/protocol/errors.js';
import type { ChunkHandle, ChunkserverControlApi, MasterChunkserverApi, MasterCommand } from '../src/protocol/messages.js';
import { PeerPool } from '../src/protocol/pool.js';
import { RpcServer, connect, type Peer } from '../src/protocol/rpc.js';
import type { Logger } from '../src/log.js';
import { ChunkStore, handleName } from '../src/chunkserver/store.js';
import { DirectWriter } from '../src/chunkserver/direct-io.js';
import { decodeSidecar, encodeHeader } from '../src/chunkserver/sidecar.js';
import { startChunkserver } from '../src/chunkserver/index.js';

const quiet: Logger = { info() {}, warn() {}, debug() {} };
const KiB = 1024;
const MiB = 1024 * 1024;

const tempDirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'gfs-cs-'));
  tempDirs.push(d);
  return d;
}
afterAll(async () => {
  await Promise.all(tempDirs.map((d) => rm(d, { recursive: true, force: true })));
});

/** The GfsError code a promise rejects with (fails the test if it resolves). */
async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(GfsError);
    return (e as GfsError).code;
  }
  throw new Error('expected a rejection');
}

async function waitFor(cond: () => boolean | Promise<boolean>, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function flipByte(path: string, pos: number): Promise<void> {
  const fh = await open(path, 'r+');
  const b = Buffer.alloc(1);
  await fh.read(b, 0, 1, pos);
  b[0] ^= 0xff;
  await fh.write(b, 0, 1, pos);
  await fh.close();
}

/** The sidecar's checksums must be exactly those of the data file's blocks. */
async function expectSidecarMatchesFile(dir: string, handle: ChunkHandle, block: number): Promise<void> {
  const data = await readFile(join(dir, 'chunks', handleName(handle)));
  const meta = decodeSidecar(await readFile(join(dir, 'chunks', `${handleName(handle)}.meta`)));
  expect(meta).not.toBeNull();
  const want: number[] = [];
  for (let at = 0; at < data.length; at += block) want.push(crc32(data.subarray(at, Math.min(at + block, data.length))));
  expect(Array.from(meta!.crcs)).toEqual(want);
}

// ------------------------------------------------------------------------------------------------

describe('chunk store', () => {
  const B = 1024;
  let dir: string;
  let store: ChunkStore;
  let corrupted: ChunkHandle[];

  beforeEach(async () => {
    dir = await tempDir();
    store = await ChunkStore.open({ dataDir: dir, blockSize: B, log: quiet });
    corrupted = [];
    store.onCorrupt = (h) => corrupted.push(h);
  });
  afterEach(async () => {
    await store.close();
  });

  it('makes a new replica from spare files made ahead of time, and left-over spares go at start-up', async () => {
    const spares = () => readdir(join(dir, 'spare'));
    for (let i = 0; i < 200 && (await spares()).length < 64; i++) await new Promise((r) => setTimeout(r, 10));
    expect((await spares()).length).toBe(64); // 32 pairs ready
    await store.create(0x5a, 1);
    expect((await spares()).length).toBe(62); // one pair renamed into place
    expect((await stat(join(dir, 'chunks', handleName(0x5a)))).size).toBe(0);
    expect(decodeSidecar(await readFile(join(dir, 'chunks', `${handleName(0x5a)}.meta`)))?.version).toBe(1);
    await store.close();
    store = await ChunkStore.open({ dataDir: dir, blockSize: B, log: quiet });
    expect(store.info(0x5a)?.version).toBe(1);
    expect((await spares()).length).toBeLessThan(62); // the old ones were removed, new ones are being made
  });

  it('names replica files from the handle and keeps one checksum per block', async () => {
    const h = 0xabc;
    await store.create(h, 3);
    const data = randomBytes(3 * B + 100);
    await store.write(h, 0, data);
    expect(await readdir(join(dir, 'chunks'))).toEqual(expect.arrayContaining(['0000000000000abc', '0000000000000abc.meta']));
    const { data: back, chunkLength } = await store.read(h, 0, 10 * B);
    expect(chunkLength).toBe(data.length);
    expect(back.equals(data)).toBe(true);
    const meta = decodeSidecar(await readFile(join(dir, 'chunks', '0000000000000abc.meta')));
    expect(meta?.version).toBe(3);
    expect(meta?.crcs.length).toBe(4); // the last, partial block covers only its 100 bytes
    expect(meta?.crcs[3]).toBe(crc32(data.subarray(3 * B)));
    expect(store.reports()).toEqual([[h, 3]]);
    expect(store.usedBytes()).toBe(data.length);
  });

  it('writes the aligned middle of large writes O_DIRECT, mixed with page-cache writes of the same file', async () => {
    const MiB = 1024 * 1024;
    for (const directWrites of [true, false]) {
      await store.close();
      store = await ChunkStore.open({ dataDir: dir, blockSize: B, log: quiet, directWrites });
      store.onCorrupt = (x) => corrupted.push(x);
      const h = directWrites ? 0xd1 : 0xd2;
      await store.create(h, 1);
      const model = Buffer.alloc(4 * MiB);
      let length = 0;
      const writes: Array<[number, number]> = [[1000, 2 * MiB + 77], [300_000, 5000], [MiB + 100, 3 * MiB / 2], [2 * MiB + 77 + 1000 - 10, 20], [3 * MiB, MiB - 3]];
      for (const [offset, n] of writes) {
        const data = randomBytes(n);
        await store.write(h, offset, data);
        data.copy(model, offset);
        length = Math.max(length, offset + n);
        expect((await store.read(h, 0, 4 * MiB)).data.equals(model.subarray(0, length))).toBe(true);
      }
      expect(store.directBytes > 2 * MiB).toBe(directWrites);
      expect(await store.verifyAll(h)).toBe(length);
      // The checksums on disk agree with the bytes on disk.
      await store.close();
      store = await ChunkStore.open({ dataDir: dir, blockSize: B, log: quiet });
      store.onCorrupt = (x) => corrupted.push(x);
      expect((await store.read(h, 0, 4 * MiB)).data.equals(model.subarray(0, length))).toBe(true);
      expect(await store.verifyAll(h)).toBe(length);
      expect(corrupted).toEqual([]);
    }
  });

  it('a direct write that cannot get a staging buffer writes nothing and says so (the store then writes through the page cache)', async () => {
    const probeDir = await tempDir();
    const w = DirectWriter.forDir(probeDir)!;
    expect(w).not.toBeNull();
    await rm(probeDir, { recursive: true, force: true }); // a second buffer's probe write now fails
    const fh = await open(join(dir, 'direct-target'), 'w');
    const a = randomBytes(1 << 20);
    const b = randomBytes(1 << 20);
    const dh = await open(join(dir, 'direct-target'), constants.O_WRONLY | constants.O_DIRECT);
    try {
      expect(await Promise.all([w.write(dh.fd, a, 0), w.write(dh.fd, b, 1 << 20)])).toEqual([true, false]);
    } finally {
      await dh.close();
      await fh.close();
    }
    expect((await readFile(join(dir, 'direct-target'))).equals(a)).toBe(true);
    expect(w.written).toBe(a.length);
  });

  it('rewrites part of a block and keeps the rest of it', async () => {
    const h = 1;
    await store.create(h, 1);
    const base = randomBytes(3 * B);
    await store.write(h, 0, base);
    const patch = randomBytes(300);
    await store.write(h, B + 500, patch); // inside block 1 only
    const spanning = randomBytes(B);
    await store.write(h, 2 * B - 10, spanning); // end of block 1 into block 2
    const want = Buffer.from(base);
    patch.copy(want, B + 500);
    spanning.copy(want, 2 * B - 10);
    expect((await store.read(h, 0, 4 * B)).data.equals(want)).toBe(true);
    expect((await store.read(h, B + 400, 200)).data.equals(want.subarray(B + 400, B + 600))).toBe(true);
    await expectSidecarMatchesFile(dir, h, B);
  });

  it('zero-fills a gap left by a write past the end, and checksums it', async () => {
    const h = 2;
    await store.create(h, 1);
    await store.write(h, 0, Buffer.from('head'));
    const tail = randomBytes(100);
    await store.write(h, 5 * B + 7, tail);
    const { data, chunkLength } = await store.read(h, 0, 8 * B);
    expect(chunkLength).toBe(5 * B + 107);
    expect(data.subarray(0, 4).toString()).toBe('head');
    expect(data.subarray(4, 5 * B + 7).equals(Buffer.alloc(5 * B + 3))).toBe(true);
    expect(data.subarray(5 * B + 7).equals(tail)).toBe(true);
    await expectSidecarMatchesFile(dir, h, B);
    // Reads past the end come back short, with the real length.
    const past = await store.read(h, 6 * B, 100);
    expect(past.data.length).toBe(0);
    expect(past.chunkLength).toBe(5 * B + 107);
  });

  it('truncates inside a block, then grows again with zeros', async () => {
    const h = 3;
    await store.create(h, 1);
    const data = randomBytes(4 * B);
    await store.write(h, 0, data);
    await store.truncate(h, B + 10);
    expect((await stat(join(dir, 'chunks', handleName(h)))).size).toBe(B + 10);
    await expectSidecarMatchesFile(dir, h, B);
    expect((await store.read(h, 0, 4 * B)).data.equals(data.subarray(0, B + 10))).toBe(true);
    await store.truncate(h, 3 * B);
    const back = (await store.read(h, 0, 4 * B)).data;
    expect(back.subarray(0, B + 10).equals(data.subarray(0, B + 10))).toBe(true);
    expect(back.subarray(B + 10).equals(Buffer.alloc(2 * B - 10))).toBe(true);
    await expectSidecarMatchesFile(dir, h, B);
    await store.pad(h, 2 * B); // never shrinks
    expect(store.info(h)?.length).toBe(3 * B);
    await store.pad(h, 5 * B);
    expect(store.info(h)?.length).toBe(5 * B);
    await expectSidecarMatchesFile(dir, h, B);
  });

  it('detects a flipped byte on disk: EIO, quarantined, reported, kept until removed', async () => {
    const h = 4;
    await store.create(h, 7);
    const data = randomBytes(4 * B);
    await store.write(h, 0, data);
    await flipByte(join(dir, 'chunks', handleName(h)), 10); // block 0
    // A read that does not touch block 0 does not see it...
    expect((await store.read(h, 2 * B, B)).data.equals(data.subarray(2 * B, 3 * B))).toBe(true);
    expect(corrupted).toEqual([]);
    // ...one that does fails, and from then on the replica is never served.
    expect(await codeOf(store.read(h, 0, 100))).toBe('EIO');
    expect(corrupted).toEqual([h]);
    expect(await codeOf(store.read(h, 2 * B, B))).toBe('EIO');
    expect(await codeOf(store.write(h, 0, Buffer.from('x')))).toBe('EIO');
    expect(store.reports()).toEqual([]);
    expect(store.corruptHandles()).toEqual([h]);
    expect(store.info(h)?.corrupt).toBe(true);
    // Still on disk, and still corrupt after a restart.
    await store.close();
    store = await ChunkStore.open({ dataDir: dir, blockSize: B, log: quiet });
    expect(store.corruptHandles()).toEqual([h]);
    expect(await store.remove(h)).toBe(true);
    expect(await readdir(join(dir, 'chunks'))).toEqual([]);
  });

  it('verifies the old part of a block before a partial write folds it into a new checksum', async () => {
    const h = 5;
    await store.create(h, 1);
    await store.write(h, 0, randomBytes(2 * B));
    await flipByte(join(dir, 'chunks', handleName(h)), B + 900);
    // Overwrites [B, B+100) of block 1 and would keep the flipped byte at B+900.
    expect(await codeOf(store.write(h, B, randomBytes(100)))).toBe('EIO');
    expect(corrupted).toEqual([h]);
  });

  it('a whole-block overwrite needs no old bytes, so it does not trip on them', async () => {
    const h = 6;
    await store.create(h, 1);
    await store.write(h, 0, randomBytes(2 * B));
    await flipByte(join(dir, 'chunks', handleName(h)), B + 5);
    const fresh = randomBytes(B);
    await store.write(h, B, fresh);
    expect((await store.read(h, B, B)).data.equals(fresh)).toBe(true);
    expect(corrupted).toEqual([]);
  });

  it('reads racing writes on the same blocks never see a half-done mutation as corruption', async () => {
    const h = 7;
    await store.create(h, 1);
    await store.write(h, 0, randomBytes(4 * B));
    for (let round = 0; round < 20; round++) {
      const ops: Promise<unknown>[] = [];
      for (let k = 0; k < 40; k++) {
        ops.push(k % 4 === 0 ? store.write(h, (k * 37) % (3 * B), randomBytes(B + (k % 5))) : store.read(h, (k % 3) * B, B));
      }
      await Promise.allSettled(ops);
    }
    expect(corrupted).toEqual([]);
    await expectSidecarMatchesFile(dir, h, B);
  });

  it('persists versions, lengths and checksums across a restart', async () => {
    await store.create(10, 1);
    await store.create(11, 1);
    const data = randomBytes(2 * B + 3);
    await store.write(10, 0, data);
    await store.setVersion(10, 9);
    await store.close();
    store = await ChunkStore.open({ dataDir: dir, blockSize: B, log: quiet });
    expect(store.reports().sort((a, b) => a[0] - b[0])).toEqual([
      [10, 9],
      [11, 1],
    ]);
    expect((await store.read(10, 0, 3 * B)).data.equals(data)).toBe(true);
  });

  it('remove with a version bound keeps a newer replica', async () => {
    await store.create(20, 5);
    expect(await store.remove(20, 4)).toBe(false);
    expect(store.info(20)?.version).toBe(5);
    expect(await store.remove(20, 5)).toBe(true);
    expect(store.info(20)).toBeUndefined();
    expect(await store.remove(20)).toBe(false); // idempotent
  });

  it('keeps replicas made with another block size: reads, writes and checks them with their own blocks', async () => {
    const data = randomBytes(3 * B + 100);
    await store.create(30, 2);
    await store.write(30, 0, data);
    await store.close();
    store = await ChunkStore.open({ dataDir: dir, blockSize: 2 * B, log: quiet });
    expect(store.corruptHandles()).toEqual([]);
    expect((await store.read(30, 0, 4 * B)).data.equals(data)).toBe(true);
    // A write inside block 1 (of B bytes) re-checksums that block alone, as B-byte blocks.
    await store.write(30, B + 10, Buffer.from('xyz'));
    Buffer.from('xyz').copy(data, B + 10);
    await expectSidecarMatchesFile(dir, 30, B);
    // A new replica gets the configured block size.
    await store.create(31, 1);
    await store.write(31, 0, data);
    await expectSidecarMatchesFile(dir, 31, 2 * B);
    // Damage in block 2 is caught by block 2's checksum, at B bytes.
    const fh = await open(join(dir, 'chunks', handleName(30)), 'r+');
    await fh.write(Buffer.from([data[2 * B + 1] ^ 0xff]), 0, 1, 2 * B + 1); // a changed byte, always (a fixed '!' was already there 1 time in 256)
    await fh.close();
    await expect(store.read(30, 2 * B, 10)).rejects.toMatchObject({ code: 'EIO' });
  });

  it('reports a replica whose sidecar has a nonsense block size as corrupt', async () => {
    await store.create(32, 2);
    await store.write(32, 0, randomBytes(100));
    await store.close();
    const meta = join(dir, 'chunks', `${handleName(32)}.meta`);
    const side = await readFile(meta);
    side.set(encodeHeader(3, 2), 0);
    await writeFile(meta, side);
    store = await ChunkStore.open({ dataDir: dir, blockSize: B, log: quiet });
    expect(store.corruptHandles()).toEqual([32]);
  });

  it('installs a replica received in pieces, replacing a stale one', async () => {
    await store.create(40, 1);
    await store.write(40, 0, Buffer.from('old'));
    const data = randomBytes(5 * B + 17);
    const inc = await store.incoming(40, 64 * B);
    await inc.append(data.subarray(0, 1500));
    await inc.append(data.subarray(1500));
    await inc.commit(4);
    expect(store.info(40)).toMatchObject({ version: 4, length: data.length, corrupt: false });
    expect((await store.read(40, 0, 8 * B)).data.equals(data)).toBe(true);
    await expectSidecarMatchesFile(dir, 40, B);
    expect((await readdir(join(dir, 'chunks'))).sort()).toEqual([handleName(40), `${handleName(40)}.meta`]);
  });
});

// ------------------------------------------------------------------------------------------------

const CHUNK = 1 * MiB;

interface FakeMaster {
  server: RpcServer<MasterChunkserverApi, ChunkserverControlApi>;
  port: number;
  /** Chunkserver address → its connection (for setVersion). */
  peers: Map<string, Peer<ChunkserverControlApi, MasterChunkserverApi>>;
  registrations: Array<MasterChunkserverApi['register'][0]>;
  heartbeats: Array<MasterChunkserverApi['heartbeat'][0]>;
  bad: Array<{ handle: ChunkHandle; server: string }>;
  /** Commands to hand out in the next heartbeat reply, by chunkserver id. */
  commands: Map<string, MasterCommand[]>;
  /** Whether heartbeat replies grant the extensions asked for. */
  extend: boolean;
  /** File sizes set by primaries for record appends (ino -> size); refused while extendFails. */
  sizes: Map<number, number>;
  extendFails: boolean;
}

async function startFakeMaster(port = 0): Promise<FakeMaster> {
  const m = {
    peers: new Map(),
    registrations: [],
    heartbeats: [],
    bad: [],
    commands: new Map(),
    extend: true,
    sizes: new Map(),
    extendFails: false,
  } as unknown as FakeMaster;
  m.server = await RpcServer.listen<MasterChunkserverApi, ChunkserverControlApi>(
    { host: '127.0.0.1', port, maxFrameBytes: 20 * MiB, timeoutMs: 5000, log: quiet },
    {
      register(req, peer) {
        m.registrations.push(req);
        m.peers.set(req.address, peer as Peer<ChunkserverControlApi, MasterChunkserverApi>);
        return { chunkSize: CHUNK, heartbeatMs: 100 };
      },
      heartbeat(req) {
        m.heartbeats.push(req);
        const commands = m.commands.get(req.id) ?? [];
        m.commands.delete(req.id);
        return { commands, extended: m.extend ? req.extend : [] };
      },
      reportBad(req) {
        m.bad.push(req);
        return {};
      },
      extend({ ino, size }) {
        if (m.extendFails) throw new GfsError('EIO', 'the op log failed');
        m.sizes.set(ino, Math.max(m.sizes.get(ino) ?? 0, size));
        const t: [number, number] = [1, 0];
        return { ino, type: 'file', mode: 0o100644, uid: 0, gid: 0, size: m.sizes.get(ino)!, nlink: 1, atime: t, mtime: t, ctime: t };
      },
    },
  );
  m.port = Number(m.server.address.split(':').pop());
  return m;
}

function clusterConfig(): GfsConfig {
  return configFrom({ chunkSize: 64 * MiB, checksumBlock: 64 * KiB, heartbeatMs: 100, rpcTimeoutMs: 5000, leaseMs: 500 });
}

type Server = Awaited<ReturnType<typeof startChunkserver>>;

describe('chunkservers behind a fake master', () => {
  let master: FakeMaster;
  let servers: Server[];
  let dirs: string[];
  let pool: PeerPool;
  let addr: string[];
  let nextHandle = 100;
  let cfg: GfsConfig;

  beforeEach(async () => {
    cfg = clusterConfig();
    master = await startFakeMaster();
    dirs = [await tempDir(), await tempDir(), await tempDir()];
    servers = await Promise.all(
      dirs.map((dataDir) => startChunkserver({ dataDir, masterUrl: `127.0.0.1:${master.port}`, host: '127.0.0.1', port: 0, cfg, log: quiet })),
    );
    addr = servers.map((s) => s.address);
    pool = new PeerPool({ maxFrameBytes: 20 * MiB, timeoutMs: 5000, log: quiet });
  });

  afterEach(async () => {
    pool.closeAll();
    await Promise.all(servers.map((s) => s.stop()));
    await master.server.close();
  });

  /** What a master does before a lease: new version on every replica, the lease on one. */
  async function newChunk(primary = 0, version = 1, leaseMs = 60_000): Promise<ChunkHandle> {
    const handle = nextHandle++;
    await setVersion(handle, version, primary, leaseMs, true);
    return handle;
  }

  async function setVersion(handle: ChunkHandle, version: number, primary: number, leaseMs: number, create = false): Promise<void> {
    await Promise.all(
      addr.map((a, i) =>
        master.peers.get(a)!.call('setVersion', { handle, version, create, ...(i === primary ? { leaseMs } : {}) }),
      ),
    );
  }

  async function pushAll(data: Buffer, first = 0): Promise<string> {
    const dataId = randomBytes(8).toString('hex');
    const chain = [...addr.slice(first), ...addr.slice(0, first)];
    await pool.call(chain[0], 'push', { dataId, data, chain: chain.slice(1) });
    return dataId;
  }

  const others = (i: number) => addr.filter((_, j) => j !== i);

  it('registers each server with a persistent id and its address', async () => {
    expect(master.registrations.map((r) => r.address).sort()).toEqual([...addr].sort());
    for (const [i, s] of servers.entries()) {
      expect(s.address).toMatch(/^127\.0\.0\.1:\d+$/);
      expect((await readFile(join(dirs[i], 'id'), 'utf8')).trim()).toBe(s.id);
    }
    expect(new Set(servers.map((s) => s.id)).size).toBe(3);
  });

  it('pushes along a chain, writes through the primary, and every replica reads the same', async () => {
    const h = await newChunk(0);
    const data = randomBytes(300 * KiB + 5);
    const dataId = await pushAll(data, 1); // chain starts at a secondary, as the nearest replica might
    await pool.call(addr[0], 'write', { handle: h, version: 1, offset: 4096, dataId, secondaries: others(0) });
    const want = Buffer.concat([Buffer.alloc(4096), data]);
    for (const a of addr) {
      const r = await pool.call(a, 'read', { handle: h, version: 1, offset: 0, length: CHUNK });
      expect(r.chunkLength).toBe(want.length);
      expect(Buffer.from(r.data).equals(want)).toBe(true);
    }
    // An overwrite in the middle. Its data leaves every server's push buffer once applied: the
    // same dataId again is refused and changes nothing (a client retrying a write pushes anew).
    const patch = randomBytes(1000);
    const pid = await pushAll(patch);
    await pool.call(addr[0], 'write', { handle: h, version: 1, offset: 70_000, dataId: pid, secondaries: others(0) });
    expect(await codeOf(pool.call(addr[0], 'write', { handle: h, version: 1, offset: 66_000, dataId: pid, secondaries: others(0) }))).toBe('EIO');
    patch.copy(want, 70_000);
    for (const a of addr) {
      const r = await pool.call(a, 'read', { handle: h, version: 1, offset: 65_000, length: 10_000 });
      expect(Buffer.from(r.data).equals(want.subarray(65_000, 75_000))).toBe(true);
    }
    await pool.call(addr[1], 'sync', { handles: [h] });
  });

  it('a write whose secondary has no room fails with ENOSPC (not EIO, which clients retry)', async () => {
    const full = await tempDir();
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', full]);
    try {
      const small = await startChunkserver({ dataDir: full, masterUrl: `127.0.0.1:${master.port}`, host: '127.0.0.1', port: 0, cfg, log: quiet });
      try {
        for (let i = 0; i < 100 && !master.peers.has(small.address); i++) await new Promise((r) => setTimeout(r, 20));
        const h = nextHandle++;
        const replicas = [addr[0], addr[1], small.address];
        await Promise.all(
          replicas.map((a, i) => master.peers.get(a)!.call('setVersion', { handle: h, version: 1, create: true, ...(i === 0 ? { leaseMs: 60_000 } : {}) })),
        );
        const dataId = randomBytes(8).toString('hex');
        await pool.call(addr[0], 'push', { dataId, data: randomBytes(MiB), chain: replicas.slice(1) });
        const write = pool.call(addr[0], 'write', { handle: h, version: 1, offset: 0, dataId, secondaries: replicas.slice(1) });
        await expect(write).rejects.toMatchObject({ code: 'ENOSPC' });
      } finally {
        await small.stop();
      }
    } finally {
      execFileSync('umount', [full]);
    }
  });

  it('takes small writes inline and vectored writes as one mutation, on every replica', async () => {
    const h = await newChunk(0);
    const want = Buffer.alloc(200 * KiB);
    const small = randomBytes(3000);
    await pool.call(addr[0], 'write', { handle: h, version: 1, offset: 10, dataId: 'never-pushed', data: small, secondaries: others(0) });
    small.copy(want, 10);
    // Three pieces at their own offsets, one of them inside a block another already changed.
    const pieces: Array<[number, Buffer]> = [[150 * KiB, randomBytes(4096)], [20, randomBytes(100)], [70 * KiB + 3, randomBytes(9000)]];
    const data = Buffer.concat(pieces.map((p) => p[1]));
    await pool.call(addr[0], 'write', {
      handle: h, version: 1, offset: 0, dataId: 'vec', data, extents: pieces.map(([o, b]) => [o, b.length]), secondaries: others(0),
    });
    for (const [o, b] of pieces) b.copy(want, o);
    const end = 150 * KiB + 4096;
    for (const a of addr) {
      const r = await pool.call(a, 'read', { handle: h, version: 1, offset: 0, length: CHUNK });
      expect(r.chunkLength).toBe(end);
      expect(Buffer.from(r.data).equals(want.subarray(0, end))).toBe(true);
    }
    // Extents that do not add up to the data, or pass the chunk's end, are refused.
    expect(await codeOf(pool.call(addr[0], 'write', { handle: h, version: 1, offset: 0, dataId: 'x', data: randomBytes(10), extents: [[0, 5]], secondaries: others(0) }))).toBe('EINVAL');
    expect(await codeOf(pool.call(addr[0], 'write', { handle: h, version: 1, offset: 0, dataId: 'x', data: randomBytes(10), extents: [[CHUNK - 5, 10]], secondaries: others(0) }))).toBe('EINVAL');
  });

  it('appends at offsets the primary picks until ECHUNKFULL, and pads every replica alike', async () => {
    const h = await newChunk(1);
    const record = randomBytes(200 * KiB + 1); // ≤ chunk/4
    const offsets: number[] = [];
    let full = false;
    for (let k = 0; k < 10 && !full; k++) {
      const dataId = await pushAll(record);
      try {
        const { offset } = await pool.call(addr[1], 'append', { handle: h, version: 1, dataId, secondaries: others(1) });
        offsets.push(offset);
      } catch (e) {
        expect((e as GfsError).code).toBe('ECHUNKFULL');
        full = true;
      }
    }
    expect(full).toBe(true);
    expect(offsets).toEqual([0, 1, 2, 3, 4].map((k) => k * record.length)); // 5 fit in 1 MiB, the 6th does not
    const copies = await Promise.all(addr.map((a) => pool.call(a, 'read', { handle: h, version: 1, offset: 0, length: CHUNK })));
    for (const c of copies) {
      expect(c.chunkLength).toBe(CHUNK);
      expect(Buffer.from(c.data).equals(Buffer.from(copies[0].data))).toBe(true);
    }
    const d = Buffer.from(copies[0].data);
    expect(d.subarray(4 * record.length, 5 * record.length).equals(record)).toBe(true);
    expect(d.subarray(5 * record.length).equals(Buffer.alloc(CHUNK - 5 * record.length))).toBe(true);
    // A full chunk stays full.
    const dataId = await pushAll(Buffer.from('x'));
    expect(await codeOf(pool.call(addr[1], 'append', { handle: h, version: 1, dataId, secondaries: others(1) }))).toBe('ECHUNKFULL');
    // A record over a quarter chunk is refused outright.
    const big = await pushAll(randomBytes(CHUNK / 4 + 1));
    expect(await codeOf(pool.call(addr[1], 'append', { handle: h, version: 1, dataId: big, secondaries: others(1) }))).toBe('EFBIG');
  });

  it("has the master take the file's new size with an append, or leaves it to the client", async () => {
    const h = await newChunk(2);
    const base = 5 * CHUNK; // the chunk is the file's sixth
    const one = await pool.call(addr[2], 'append', { handle: h, version: 1, dataId: 'a1', data: Buffer.from('first\n'), secondaries: others(2), size: { ino: 42, base } });
    expect(one.offset).toBe(0);
    expect(one.attr?.size).toBe(base + 6);
    expect(master.sizes.get(42)).toBe(base + 6);
    // The master cannot take it: the record is in place all the same, and the reply says nothing
    // of a size (the client then tells the master itself).
    master.extendFails = true;
    try {
      const two = await pool.call(addr[2], 'append', { handle: h, version: 1, dataId: 'a2', data: Buffer.from('second\n'), secondaries: others(2), size: { ino: 42, base } });
      expect(two.offset).toBe(6);
      expect(two.attr).toBeUndefined();
      expect(master.sizes.get(42)).toBe(base + 6);
    } finally {
      master.extendFails = false;
    }
    for (const a of addr) {
      const r = await pool.call(a, 'read', { handle: h, version: 1, offset: 0, length: 100 });
      expect(Buffer.from(r.data).toString()).toBe('first\nsecond\n');
    }
    expect(await codeOf(pool.call(addr[2], 'append', { handle: h, version: 1, dataId: 'a3', data: Buffer.from('x'), secondaries: others(2), size: { ino: -1, base } }))).toBe('EINVAL');
  });

  it('refuses mutations anywhere but at a primary holding a lease at the right version', async () => {
    const h = await newChunk(0);
    const dataId = await pushAll(Buffer.from('hello'));
    // Not the primary.
    expect(await codeOf(pool.call(addr[1], 'write', { handle: h, version: 1, offset: 0, dataId, secondaries: others(1) }))).toBe('ESTALE');
    // The primary, but an old version.
    expect(await codeOf(pool.call(addr[0], 'write', { handle: h, version: 0, offset: 0, dataId, secondaries: others(0) }))).toBe('ESTALE');
    // Data never pushed.
    expect(await codeOf(pool.call(addr[0], 'write', { handle: h, version: 1, offset: 0, dataId: 'nope', secondaries: others(0) }))).toBe('EIO');
    // Past the end of the chunk.
    expect(await codeOf(pool.call(addr[0], 'write', { handle: h, version: 1, offset: CHUNK - 2, dataId, secondaries: others(0) }))).toBe('EINVAL');
    // Nothing was applied anywhere.
    for (const a of addr) expect((await pool.call(a, 'read', { handle: h, version: 1, offset: 0, length: 10 })).chunkLength).toBe(0);
    // A new version without a lease for server 0 takes its lease away.
    await setVersion(h, 2, 1, 60_000);
    expect(await codeOf(pool.call(addr[0], 'write', { handle: h, version: 2, offset: 0, dataId, secondaries: others(0) }))).toBe('ESTALE');
    await pool.call(addr[1], 'write', { handle: h, version: 2, offset: 0, dataId, secondaries: others(1) });
  });

  it('makes chunks in a batch (placed ahead of need): leased where asked, and never touches a replica that exists', async () => {
    const kept = await newChunk(0);
    await pool.call(addr[0], 'write', { handle: kept, version: 1, offset: 0, dataId: 'k', data: Buffer.from('keep me'), secondaries: others(0) });
    const handles = [nextHandle++, nextHandle++, nextHandle++];
    // Server i leads handles[i]; the batch also names `kept`, which must stay as it is.
    const made = await Promise.all(
      addr.map((a, i) => master.peers.get(a)!.call('makeChunks', { handles: [...handles, kept], lead: [handles[i]], version: 1, leaseMs: 60_000 })),
    );
    for (const m of made) expect([...m.made].sort()).toEqual([...handles].sort());
    for (const [i, h] of handles.entries()) {
      for (const a of addr) expect((await pool.call(a, 'read', { handle: h, version: 1, offset: 0, length: 10 })).chunkLength).toBe(0);
      const j = (i + 1) % addr.length; // not the leader: refused
      expect(await codeOf(pool.call(addr[j], 'write', { handle: h, version: 1, offset: 0, dataId: 'x', data: Buffer.from('no'), secondaries: others(j) }))).toBe('ESTALE');
      await pool.call(addr[i], 'write', { handle: h, version: 1, offset: 0, dataId: `w${i}`, data: Buffer.from(`chunk ${i}`), secondaries: others(i) });
      for (const a of addr) expect(Buffer.from((await pool.call(a, 'read', { handle: h, version: 1, offset: 0, length: 10 })).data).toString()).toBe(`chunk ${i}`);
    }
    for (const a of addr) expect(Buffer.from((await pool.call(a, 'read', { handle: kept, version: 1, offset: 0, length: 10 })).data).toString()).toBe('keep me');
    // Bad fields: a typed error, nothing made.
    expect(await codeOf(master.peers.get(addr[0])!.call('makeChunks', { handles: [-1], lead: [], version: 1, leaseMs: 1000 }))).toBe('EPROTO');
  });

  it('never serves a read at another version', async () => {
    const h = await newChunk(0, 5);
    const dataId = await pushAll(Buffer.from('versioned'));
    await pool.call(addr[0], 'write', { handle: h, version: 5, offset: 0, dataId, secondaries: others(0) });
    expect(await codeOf(pool.call(addr[2], 'read', { handle: h, version: 4, offset: 0, length: 9 }))).toBe('ESTALE');
    expect(await codeOf(pool.call(addr[2], 'read', { handle: h, version: 6, offset: 0, length: 9 }))).toBe('ESTALE');
    expect(await codeOf(pool.call(addr[2], 'read', { handle: 999_999, version: 5, offset: 0, length: 9 }))).toBe('ESTALE');
    expect(Buffer.from((await pool.call(addr[2], 'read', { handle: h, version: 5, offset: 0, length: 9 })).data).toString()).toBe('versioned');
  });

  it('a secondary that misses a mutation makes the write fail with EIO', async () => {
    const h = await newChunk(0);
    const data = Buffer.from('only some');
    const dataId = randomBytes(8).toString('hex');
    await pool.call(addr[0], 'push', { dataId, data, chain: [addr[1]] }); // server 2 never gets it
    expect(await codeOf(pool.call(addr[0], 'write', { handle: h, version: 1, offset: 0, dataId, secondaries: others(0) }))).toBe('EIO');
    // A secondary that is not there at all.
    const id2 = await pushAll(data);
    expect(await codeOf(pool.call(addr[0], 'write', { handle: h, version: 1, offset: 0, dataId: id2, secondaries: [...others(0), '127.0.0.1:1'] }))).toBe('EIO');
    // With every secondary up the retry (its data pushed again, as a client does) succeeds.
    const id3 = await pushAll(data);
    await pool.call(addr[0], 'write', { handle: h, version: 1, offset: 0, dataId: id3, secondaries: others(0) });
    for (const a of addr) expect(Buffer.from((await pool.call(a, 'read', { handle: h, version: 1, offset: 0, length: 100 })).data).toString()).toBe('only some');
  });

  it('truncates every replica through the primary', async () => {
    const h = await newChunk(2);
    const dataId = await pushAll(randomBytes(200 * KiB));
    await pool.call(addr[2], 'write', { handle: h, version: 1, offset: 0, dataId, secondaries: others(2) });
    await pool.call(addr[2], 'truncate', { handle: h, version: 1, length: 70_000, secondaries: others(2) });
    const copies = await Promise.all(addr.map((a) => pool.call(a, 'read', { handle: h, version: 1, offset: 0, length: CHUNK })));
    for (const c of copies) {
      expect(c.chunkLength).toBe(70_000);
      expect(Buffer.from(c.data).equals(Buffer.from(copies[0].data))).toBe(true);
    }
  });

  it('a corrupt replica gives EIO, the others still serve, and the master hears about it', async () => {
    const h = await newChunk(0);
    const data = randomBytes(200 * KiB);
    const dataId = await pushAll(data);
    await pool.call(addr[0], 'write', { handle: h, version: 1, offset: 0, dataId, secondaries: others(0) });
    await flipByte(join(dirs[2], 'chunks', handleName(h)), 100_000);
    expect(await codeOf(pool.call(addr[2], 'read', { handle: h, version: 1, offset: 90_000, length: 20_000 }))).toBe('EIO');
    for (const a of addr.slice(0, 2)) {
      expect(Buffer.from((await pool.call(a, 'read', { handle: h, version: 1, offset: 0, length: CHUNK })).data).equals(data)).toBe(true);
    }
    await waitFor(() => master.bad.some((b) => b.handle === h && b.server === addr[2]), 5000, 'reportBad');
    // Heartbeats list it as corrupt, not as a chunk, until the master deletes it.
    const id2 = servers[2].id;
    const n = master.heartbeats.length;
    await waitFor(() => master.heartbeats.slice(n).some((hb) => hb.id === id2), 5000, 'heartbeat');
    const hb = master.heartbeats.slice(n).find((x) => x.id === id2)!;
    expect(hb.corrupt).toContain(h);
    expect(hb.chunks.map(([c]) => c)).not.toContain(h);
    // The primary's mutations now fail at that secondary.
    const id3 = await pushAll(Buffer.from('more'));
    expect(await codeOf(pool.call(addr[0], 'write', { handle: h, version: 1, offset: 0, dataId: id3, secondaries: others(0) }))).toBe('EIO');
    master.commands.set(id2, [{ op: 'delete', chunks: [[h, 1]] }]);
    await waitFor(async () => !(await readdir(join(dirs[2], 'chunks'))).includes(handleName(h)), 5000, 'delete');
    await waitFor(() => master.heartbeats.slice(-6).some((x) => x.id === id2 && !x.corrupt.includes(h)), 5000, 'clean heartbeat');
  });

  it('replicates a chunk on command from a good replica, then reports it', async () => {
    const h = await newChunk(0, 3);
    const data = randomBytes(5 * 64 * KiB + 123);
    const dataId = await pushAll(data);
    await pool.call(addr[0], 'write', { handle: h, version: 3, offset: 0, dataId, secondaries: others(0) });
    // Server 2 loses its replica; it is told to copy it back, first from a dead address.
    master.commands.set(servers[2].id, [{ op: 'delete', chunks: [[h, 3]] }]);
    await waitFor(async () => !(await readdir(join(dirs[2], 'chunks'))).includes(handleName(h)), 5000, 'delete');
    expect(await codeOf(pool.call(addr[2], 'read', { handle: h, version: 3, offset: 0, length: 1 }))).toBe('ESTALE');
    const n = master.heartbeats.length;
    master.commands.set(servers[2].id, [{ op: 'replicate', handle: h, version: 3, from: ['127.0.0.1:1', addr[1]] }]);
    await waitFor(() => master.heartbeats.slice(n).some((x) => x.id === servers[2].id && x.chunks.some(([c, v]) => c === h && v === 3)), 5000, 'report');
    const r = await pool.call(addr[2], 'read', { handle: h, version: 3, offset: 0, length: CHUNK });
    expect(Buffer.from(r.data).equals(data)).toBe(true);
    expect((await readdir(join(dirs[2], 'chunks'))).filter((n) => n.includes('repl'))).toEqual([]);
  });

  it('a delete bounded by version keeps a replica that is newer', async () => {
    const h = await newChunk(0, 4);
    master.commands.set(servers[1].id, [{ op: 'delete', chunks: [[h, 3]] }]);
    const n = master.heartbeats.length;
    await waitFor(() => master.heartbeats.slice(n).filter((x) => x.id === servers[1].id).length >= 2, 5000, 'heartbeats');
    expect((await pool.call(addr[1], 'read', { handle: h, version: 4, offset: 0, length: 1 })).chunkLength).toBe(0);
  });

  it('asks for lease extensions for mutated chunks and counts them from the heartbeat send', async () => {
    const h = await newChunk(0, 1, 500);
    const idle = await newChunk(0, 1, 500);
    const n = master.heartbeats.length;
    for (let k = 0; k < 8; k++) {
      const dataId = await pushAll(Buffer.from(`w${k}`));
      await pool.call(addr[0], 'write', { handle: h, version: 1, offset: k * 2, dataId, secondaries: others(0) });
      await new Promise((r) => setTimeout(r, 100));
    }
    // 800+ ms on, the mutated chunk's lease was extended, the idle one's ran out.
    const dataId = await pushAll(Buffer.from('late'));
    await pool.call(addr[0], 'write', { handle: h, version: 1, offset: 0, dataId, secondaries: others(0) });
    expect(await codeOf(pool.call(addr[0], 'write', { handle: idle, version: 1, offset: 0, dataId, secondaries: others(0) }))).toBe('ESTALE');
    const asked = master.heartbeats.slice(n).filter((x) => x.id === servers[0].id);
    expect(asked.some((x) => x.extend.includes(h))).toBe(true);
    expect(asked.every((x) => !x.extend.includes(idle))).toBe(true);
    expect(asked.some((x) => x.load > 0)).toBe(true);
    // Without extensions granted, the lease ends.
    master.extend = false;
    await new Promise((r) => setTimeout(r, 700));
    expect(await codeOf(pool.call(addr[0], 'write', { handle: h, version: 1, offset: 0, dataId, secondaries: others(0) }))).toBe('ESTALE');
  });

  it('re-registers with a master that restarted', async () => {
    const h = await newChunk(0, 2);
    const port = master.port;
    await master.server.close();
    await new Promise((r) => setTimeout(r, 300));
    master = await startFakeMaster(port);
    await waitFor(() => master.registrations.length === 3, 8000, 're-registration');
    for (const r of master.registrations) expect(r.chunks).toContainEqual([h, 2]);
    expect(master.registrations.map((r) => r.id).sort()).toEqual(servers.map((s) => s.id).sort());
    // The new master's connections carry setVersion again.
    await setVersion(h, 3, 1, 60_000);
    expect((await pool.call(addr[0], 'read', { handle: h, version: 3, offset: 0, length: 1 })).chunkLength).toBe(0);
  });

  it('keeps its id and replicas across a restart on a new port', async () => {
    const h = await newChunk(0, 6);
    const dataId = await pushAll(Buffer.from('durable'));
    await pool.call(addr[0], 'write', { handle: h, version: 6, offset: 0, dataId, secondaries: others(0) });
    const { id } = servers[2];
    await servers[2].stop();
    servers[2] = await startChunkserver({ dataDir: dirs[2], masterUrl: `127.0.0.1:${master.port}`, host: '127.0.0.1', port: 0, cfg, log: quiet });
    expect(servers[2].id).toBe(id);
    const reg = master.registrations.at(-1)!;
    expect(reg.id).toBe(id);
    expect(reg.chunks).toContainEqual([h, 6]);
    expect(reg.usedBytes).toBe(7);
    expect(Buffer.from((await pool.call(servers[2].address, 'read', { handle: h, version: 6, offset: 0, length: 7 })).data).toString()).toBe('durable');
  });

  it('setVersion: ENOENT without create, persisted versions, EIO on a corrupt replica; replication skips a corrupt source', async () => {
    const peer = master.peers.get(addr[0])!;
    expect(await codeOf(peer.call('setVersion', { handle: 424242, version: 1, create: false }))).toBe('ENOENT');
    expect(await codeOf(peer.call('setVersion', { handle: -1, version: 1, create: true }))).toBe('EPROTO');
    const h = await newChunk(0, 1);
    const dataId = await pushAll(randomBytes(1000));
    await pool.call(addr[0], 'write', { handle: h, version: 1, offset: 0, dataId, secondaries: others(0) });
    await setVersion(h, 8, 0, 60_000);
    const meta = decodeSidecar(await readFile(join(dirs[1], 'chunks', `${handleName(h)}.meta`)));
    expect(meta?.version).toBe(8);
    await flipByte(join(dirs[0], 'chunks', handleName(h)), 3);
    expect(await codeOf(pool.call(addr[0], 'read', { handle: h, version: 8, offset: 0, length: 10 }))).toBe('EIO');
    expect(await codeOf(peer.call('setVersion', { handle: h, version: 9, create: false, leaseMs: 60_000 }))).toBe('EIO');
    // A corrupt source is skipped: replication goes on to the next one.
    const n = master.heartbeats.length;
    master.commands.set(servers[2].id, [{ op: 'delete', chunks: [[h, 8]] }]);
    await waitFor(() => master.heartbeats.slice(n).some((x) => x.id === servers[2].id && !x.chunks.some(([c]) => c === h)), 5000, 'delete');
    const m = master.heartbeats.length;
    master.commands.set(servers[2].id, [{ op: 'replicate', handle: h, version: 8, from: [addr[0], addr[1]] }]);
    await waitFor(() => master.heartbeats.slice(m).some((x) => x.id === servers[2].id && x.chunks.some(([c, v]) => c === h && v === 8)), 5000, 'replica');
    const good = await pool.call(addr[1], 'read', { handle: h, version: 8, offset: 0, length: 1000 });
    const copy = await pool.call(addr[2], 'read', { handle: h, version: 8, offset: 0, length: 1000 });
    expect(Buffer.from(copy.data).equals(Buffer.from(good.data))).toBe(true);
  });

  it('answers bad input with errors and stays up', async () => {
    const h = await newChunk(0);
    const raw = await connect<Record<string, [unknown, unknown]>>(addr[0], { maxFrameBytes: 20 * MiB, timeoutMs: 5000, log: quiet });
    try {
      const cases: Array<[string, unknown, string]> = [
        ['read', { handle: h, version: 1, offset: -1, length: 10 }, 'EINVAL'],
        ['read', { handle: h, version: 1, offset: 0, length: CHUNK + 1 }, 'EINVAL'],
        ['read', { handle: h, version: 1, offset: 2 ** 60, length: 1 }, 'EINVAL'],
        ['read', { handle: h, version: 1, offset: 0.5, length: 1 }, 'EINVAL'],
        ['read', { handle: 'x', version: 1, offset: 0, length: 1 }, 'EPROTO'],
        ['read', { handle: h, version: 1, offset: '0', length: 1 }, 'EPROTO'],
        ['read', {}, 'EPROTO'],
        ['write', { handle: h, version: 1, offset: CHUNK + 1, dataId: 'a', secondaries: [] }, 'EINVAL'],
        ['write', { handle: h, version: 1, offset: 0, dataId: 'a', secondaries: 'x' }, 'EPROTO'],
        ['push', { dataId: 'a', data: 'not binary', chain: [] }, 'EPROTO'],
        ['push', { dataId: 'a', data: Buffer.alloc(1), chain: [1, 2] }, 'EPROTO'],
        ['apply', { handle: h, version: 1, serial: 1, mutation: { op: 'explode' } }, 'EPROTO'],
        ['apply', { handle: h, version: 1, serial: 1, mutation: { op: 'pad', length: -5 } }, 'EINVAL'],
        ['sync', { handles: 'all' }, 'EPROTO'],
        ['setVersion', { handle: h, version: 9, create: true }, 'EPROTO'], // not served to clients
      ];
      for (const [type, body, code] of cases) {
        expect(await codeOf(raw.call(type, body)), `${type} ${JSON.stringify(body)}`).toBe(code);
      }
    } finally {
      raw.close();
    }
    expect((await pool.call(addr[0], 'read', { handle: h, version: 1, offset: 0, length: 1 })).chunkLength).toBe(0);
  });
});

describe('chunkserver start-up', () => {
  it('rejects with EUNAVAIL and frees its port when the master cannot be reached', async () => {
    const port = await freePort();
    const deadMaster = await freePort();
    const dataDir = await tempDir();
    const err = await startChunkserver({
      dataDir,
      masterUrl: `127.0.0.1:${deadMaster}`,
      host: '127.0.0.1',
      port,
      cfg: clusterConfig(),
      log: quiet,
    }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(GfsError);
    expect((err as GfsError).code).toBe('EUNAVAIL');
    expect((err as GfsError).message).toContain(`127.0.0.1:${deadMaster}`);
    // The listener is closed: the port can be bound again.
    expect(await freePort(port)).toBe(port);
  });
});

function freePort(port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}
