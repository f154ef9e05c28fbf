// Short-circuit reads: a client on a chunkserver's host reads the replica file itself and checks
// its checksums. Unit tests of the checks, then a real cluster: the bytes are right, a corrupt
// block is never served (the chunkserver finds and reports it), a server whose id file here holds
// another id counts as another host's.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { crc32 } from 'node:zlib';
import { GfsClient } from '../src/client/client.js';
import { LocalReads } from '../src/client/local-reads.js';
import { configFrom, defaults } from '../src/config.js';
import { alignedBuffer, alignedPoolCounts } from '../src/fuse/native/index.js';
import { logger } from '../src/log.js';
import { ok, withCluster } from './helpers/cluster.js';
import { chunkName, chunksOf, waitFor } from './helpers/faults.js';

const B = 4096;
const crcsOf = (data: Buffer): Buffer => {
  const out = Buffer.alloc(4 * Math.ceil(data.length / B));
  for (let i = 0; i * B < data.length; i++) out.writeUInt32LE(crc32(data.subarray(i * B, (i + 1) * B)) >>> 0, 4 * i);
  return out;
};

const MiB = 1 << 20;
type Where = Parameters<LocalReads['read']>[1];
/** What l reads of [at, at + n) of file (whose whole is described by whole), asking for the blocks of that range only, as readLocal answers. */
const piece = (l: LocalReads, whole: Where, file: Buffer, at: number, n: number) => {
  const end = Math.min(at + n, file.length);
  return l.read('s', { ...whole, from: at, length: end - at, crcs: crcsOf(file.subarray(at, end)) }, at, n);
};

describe('LocalReads', () => {
  let dir: string;
  const data = randomBytes(5 * B + 100);
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gfs-local-'));
    await writeFile(join(dir, 'id'), 'cs-a\n');
    await writeFile(join(dir, 'chunk'), data);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));
  const where = (over: Partial<Where> = {}) => ({
    path: join(dir, 'chunk'), from: B, length: data.length - B, blockSize: B, crcs: crcsOf(data.subarray(B)),
    chunkLength: data.length, id: 'cs-a', idPath: join(dir, 'id'), ...over,
  });

  it('returns the checked bytes asked for, cut at the replica end', async () => {
    const l = new LocalReads();
    expect((await l.read('s', where(), B + 10, 2 * B))?.equals(data.subarray(B + 10, 3 * B + 10))).toBe(true);
    expect((await l.read('s', where(), 5 * B, 10 * B))?.equals(data.subarray(5 * B))).toBe(true);
    expect(l.served).toBe(2);
    expect(l.maybeLocal('s')).toBe(true);
  });

  it('a block whose CRC does not match, a short file, a path outside the data directory: null', async () => {
    const l = new LocalReads();
    const bad = crcsOf(data.subarray(B));
    bad.writeUInt32LE((bad.readUInt32LE(8) + 1) >>> 0, 8);
    expect(await l.read('s', where({ crcs: bad }), B, 4 * B)).toBeNull();
    expect(await l.read('s', where({ length: data.length, crcs: crcsOf(Buffer.alloc(data.length)) }), B, B)).toBeNull(); // past the file's end
    expect(await l.read('s', where({ path: join(tmpdir(), 'elsewhere') }), B, B)).toBeNull();
    expect(await l.read('s', where({ crcs: Buffer.alloc(4) }), B, B)).toBeNull(); // CRCs that do not cover the range
    expect(l.served).toBe(0);
    expect(l.maybeLocal('s')).toBe(true); // none of these says the disk is another host's
  });

  it('large reads go O_DIRECT (into aligned buffers): the same checked bytes, side by side, at the end of the file', async () => {
    const big = randomBytes(44 * 1024 * 1024 + 100); // the last block is partial
    const path = join(dir, 'big');
    await writeFile(path, big);
    const l = new LocalReads(alignedBuffer);
    const whole = { ...where(), path, from: 0, length: big.length, crcs: crcsOf(big), chunkLength: big.length };
    const starts = Array.from({ length: 11 }, (_, i) => i * 4 * MiB);
    const got = await Promise.all(starts.map((at) => piece(l, whole, big, at, 4 * MiB)));
    got.forEach((b, i) => expect(b?.equals(big.subarray(starts[i], starts[i] + 4 * MiB)), `piece at ${starts[i]}`).toBe(true));
    expect((await piece(l, whole, big, 44 * MiB - 256 * 1024, 512 * 1024))?.equals(big.subarray(44 * MiB - 256 * 1024))).toBe(true); // the file's end
    expect(l.served).toBe(12);
    expect(l.directReads).toBe(12);
    // A small read, or one larger than any the client makes, goes through the page cache.
    expect((await piece(l, whole, big, 100 * 1024, 4000))?.equals(big.subarray(100 * 1024, 100 * 1024 + 4000))).toBe(true);
    expect((await l.read('s', whole, 100, big.length))?.equals(big.subarray(100))).toBe(true);
    expect(l.directReads).toBe(12);
    // A corrupt block read O_DIRECT is caught like any other.
    const bad = crcsOf(big.subarray(0, MiB));
    bad.writeUInt32LE((bad.readUInt32LE(40) + 1) >>> 0, 40);
    expect(await l.read('s', { ...whole, length: MiB, crcs: bad }, 0, MiB)).toBeNull();
    expect(l.served).toBe(14);
    expect(l.directReads).toBe(13);
    // Without aligned buffers, the same reads go through the page cache.
    const plain = new LocalReads();
    expect((await piece(plain, whole, big, 0, 4 * MiB))?.equals(big.subarray(0, 4 * MiB))).toBe(true);
    expect(plain.directReads).toBe(0);
  });

  it("an aligned buffer's memory is handed out again once the garbage collector dropped it, and never while it is held", async () => {
    // The kept reads are of one file, the later ones of another: a held buffer handed out again
    // would then hold the other file's bytes.
    const files = [randomBytes(8 * MiB), randomBytes(8 * MiB)];
    const wholes = await Promise.all(
      files.map(async (data, i) => {
        const path = join(dir, `reused${i}`);
        await writeFile(path, data);
        return { ...where(), path, from: 0, length: data.length, crcs: crcsOf(data), chunkLength: data.length };
      }),
    );
    const l = new LocalReads(alignedBuffer);
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const collect = async () => {
      // Finalizers run after the collection, from the event loop: twice over, so none is left.
      for (let i = 0; i < 2; i++) {
        gc();
        await new Promise((r) => setImmediate(r));
      }
    };
    const kept: Buffer[] = [];
    /** One read of file f, checked; keep: it stays referenced (its memory must not be handed out again). */
    const readOnce = async (f: number, keep: boolean) => {
      const got = await piece(l, wholes[f], files[f], 0, 8 * MiB);
      expect(got?.equals(files[f])).toBe(true);
      if (keep) kept.push(got!);
    };
    await collect();
    const before = alignedPoolCounts();
    for (let i = 0; i < 8; i++) {
      await readOnce(i < 2 ? 0 : 1, i < 2);
      await collect();
    }
    const after = alignedPoolCounts();
    expect(l.directReads).toBe(8);
    // Two kept, and the others mostly from memory handed back (a finalizer may come a read late).
    expect(after.made - before.made).toBeLessThanOrEqual(4);
    expect(after.reused - before.reused).toBeGreaterThanOrEqual(4);
    for (const b of kept) expect(b.equals(files[0])).toBe(true); // what was handed out again was not theirs
    expect(after.keptBytes).toBeLessThanOrEqual(96 * MiB);
  });

  it('an id file that holds another id (or none): another host, never read locally again', async () => {
    const l = new LocalReads();
    expect(await l.read('s', where({ id: 'cs-b' }), B, B)).toBeNull();
    expect(l.maybeLocal('s')).toBe(false);
    const l2 = new LocalReads();
    expect(await l2.read('t', where({ idPath: join(dir, 'no-such-id') }), B, B)).toBeNull();
    expect(l2.maybeLocal('t')).toBe(false);
  });
});

describe('short-circuit reads on a cluster', () => {
  const env = withCluster({}, 1);
  const clients: GfsClient[] = [];
  const newClient = async (localReadBytes: number) => {
    const cl = new GfsClient(env.c.url, configFrom({ localReadBytes }), logger('test'), alignedBuffer);
    await cl.connect();
    clients.push(cl);
    return cl;
  };
  afterAll(() => clients.forEach((cl) => cl.close()));
  /** The whole file, read with the client's chunk reads (1 MiB pieces, spread over the replicas). */
  const readAll = async (cl: GfsClient, path: string) => {
    const { ino, size } = await cl.lookup(path, true);
    return Buffer.concat(await cl.io.read(ino, 0, size));
  };

  it('reads replica files directly and returns the right bytes; with local reads off, none are', async () => {
    const { m1, scratch } = env;
    await ok(`head -c 6000000 /dev/urandom > ${scratch}/f && cp ${scratch}/f ${m1}/f`);
    const want = await readFile(join(scratch, 'f'));
    const local = await newClient(defaults.localReadBytes);
    expect((await readAll(local, '/f')).equals(want)).toBe(true);
    expect(local.io.localReads.served).toBe(6); // every 1 MiB piece
    // Once a replica is known to be on this host: pieces up to 8 MiB, one readLocal each, O_DIRECT.
    const direct = local.io.localReads.directReads;
    expect((await readAll(local, '/f')).equals(want)).toBe(true);
    const pieces = 2; // one a chunk (the test cluster's chunks are 4 MiB), not six
    expect(local.io.localReads.served).toBe(6 + pieces);
    expect(local.io.localReads.directReads).toBe(direct + pieces);
    const remote = await newClient(0);
    expect((await readAll(remote, '/f')).equals(want)).toBe(true);
    expect(remote.io.localReads.served).toBe(0);
  });

  it('a corrupt block in one replica file is never served: the read goes through its chunkserver, which reports it', async () => {
    const { c, m1, scratch } = env;
    await ok(`head -c 3000000 /dev/urandom > ${scratch}/g && cp ${scratch}/g ${m1}/g`);
    const want = await readFile(join(scratch, 'g'));
    const [chunk] = await chunksOf(c, '/g');
    const address = chunk.replicas[0];
    const holder = c.chunkservers.find((d) => d.address === `ws://${address}`)!;
    const fh = await open(join(holder.dataDir, 'chunks', chunkName(chunk.handle)), 'r+');
    await fh.write(randomBytes(B), 0, B, 100 * B); // inside the first 1 MiB piece
    await fh.close();
    const cl = await newClient(defaults.localReadBytes);
    const { ino } = await cl.lookup('/g', true);
    // Each read starts at the next replica: in three, the corrupt one is met.
    for (let i = 0; i < 3; i++) expect(Buffer.concat(await cl.io.read(ino, 0, 1 << 20)).equals(want.subarray(0, 1 << 20))).toBe(true);
    expect((await readAll(cl, '/g')).equals(want)).toBe(true);
    await waitFor('the corrupt replica reported', 10_000, async () => c.master.stderr.some((l) => l.includes(`corrupt replica of chunk ${chunk.handle} on ${address}`)));
  });

  it('large writes gather in the same pool of blocks (GfsClient.writeBuffer) and arrive whole; small ones do not take a block', async () => {
    const cl = await newClient(defaults.localReadBytes);
    const want = randomBytes(6 * MiB + 123);
    const before = alignedPoolCounts();
    const { ino } = await cl.create('/w', 0o644, 0, 0, true, true);
    const f = cl.openFile(ino, { append: false, writable: true });
    for (let at = 0; at < want.length; at += MiB) await f.write(at, want.subarray(at, at + MiB));
    await cl.closeFile(f);
    const taken = (c: ReturnType<typeof alignedPoolCounts>) => c.made + c.reused;
    expect(taken(alignedPoolCounts())).toBeGreaterThan(taken(before));
    const small = alignedPoolCounts();
    const g = cl.openFile((await cl.create('/small', 0o644, 0, 0, true, true)).ino, { append: false, writable: true });
    await g.write(0, Buffer.from('a few bytes'));
    await cl.closeFile(g);
    expect(taken(alignedPoolCounts())).toBe(taken(small));
    const reader = await newClient(0); // through the chunkservers, nothing of the writer's cached
    expect((await readAll(reader, '/w')).equals(want)).toBe(true);
    expect((await readAll(reader, '/small')).toString()).toBe('a few bytes');
  });

  it("a chunkserver whose id file here holds another id is another host's: read through it", async () => {
    const { c, m1, scratch } = env;
    await ok(`head -c 4000000 /dev/urandom > ${scratch}/h && cp ${scratch}/h ${m1}/h`);
    const want = await readFile(join(scratch, 'h'));
    const other = c.chunkservers[1];
    const idPath = join(other.dataDir, 'id');
    const id = await readFile(idPath, 'utf8');
    await writeFile(idPath, 'cs-on-some-other-host\n');
    try {
      const cl = await newClient(defaults.localReadBytes);
      expect((await readAll(cl, '/h')).equals(want)).toBe(true);
      const address = other.address.replace('ws://', '');
      expect(cl.io.localReads.maybeLocal(address)).toBe(false);
      for (const d of c.chunkservers.filter((x) => x !== other)) expect(cl.io.localReads.maybeLocal(d.address.replace('ws://', ''))).toBe(true);
      expect(cl.io.localReads.served).toBeGreaterThan(0);
      expect(cl.io.localReads.served).toBeLessThan(4); // the pieces met at the other server came through it
    } finally {
      await writeFile(idPath, id);
    }
  });
});
