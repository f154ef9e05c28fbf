// The chunkserver's small parts on their own: pushed-data buffer, leases, locks, file-handle LRU.

import { describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { fstatSync, readSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { PushBuffer } from '../src/chunkserver/pushbuffer.js';
import { Leases } from '../src/chunkserver/leases.js';
import { KeyedMutex, RwLock } from '../src/chunkserver/locks.js';
import { FileCache } from '../src/chunkserver/files.js';
import { BlockCrcBuilder, blockCrcs } from '../src/chunkserver/checksum.js';
import { decodeSidecar, encodeCrcs, encodeHeader } from '../src/chunkserver/sidecar.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('push buffer', () => {
  it('drops an entry once used, evicts the oldest when over its byte cap, and expires entries', () => {
    let now = 0;
    const b = new PushBuffer({ maxBytes: 100, ttlMs: 1000, now: () => now });
    b.put('a', Buffer.alloc(40));
    b.put('b', Buffer.alloc(40));
    b.used('b'); // applied: nothing needs it again
    expect(b.get('b')).toBeUndefined();
    expect(b.size).toBe(40);
    b.put('c', Buffer.alloc(40));
    b.put('d', Buffer.alloc(40)); // 120 > 100: the oldest (a) goes, never the one just put
    expect(b.get('a')).toBeUndefined();
    expect(b.get('c')?.length).toBe(40);
    expect(b.get('d')?.length).toBe(40);
    expect(b.size).toBe(80);
    b.put('e', Buffer.alloc(120)); // alone over the cap: everything else goes, it stays
    expect(b.get('c')).toBeUndefined();
    expect(b.get('e')?.length).toBe(120);
    now = 999;
    expect(b.get('e')).toBeDefined();
    now = 1000;
    expect(b.get('e')).toBeUndefined();
    b.put('f', Buffer.alloc(10));
    now = 2000;
    b.sweep();
    expect(b.count).toBe(0);
    expect(b.size).toBe(0);
  });
});

describe('leases', () => {
  it('grants, expires, and extends from the heartbeat send time only for mutated chunks', () => {
    let now = 1000;
    const l = new Leases(() => now);
    l.grant(1, 100);
    l.grant(2, 100);
    expect(l.isPrimary(1)).toBe(true);
    l.noteMutation(1);
    const sentAt = now + 50;
    now = sentAt;
    expect(l.takeExtendRequests()).toEqual([1]);
    expect(l.takeExtendRequests()).toEqual([]); // flag cleared
    now = sentAt + 40; // the reply arrives later; the extension still counts from sentAt
    l.extend([1, 2], sentAt, 100);
    now = sentAt + 99;
    expect(l.isPrimary(1)).toBe(true);
    expect(l.isPrimary(2)).toBe(true); // granted at 1000 for 100 ms... and extended, it was still held
    now = sentAt + 100;
    expect(l.isPrimary(1)).toBe(false);
    l.drop(2);
    expect(l.isPrimary(2)).toBe(false);
    l.extend([2], now, 100); // not held: an extension does not create a lease
    expect(l.isPrimary(2)).toBe(false);
  });
});

describe('locks', () => {
  it('KeyedMutex runs one key in call order and frees idle keys', async () => {
    const m = new KeyedMutex<number>();
    const seen: string[] = [];
    const a = m.run(1, async () => {
      await sleep(20);
      seen.push('a');
    });
    const b = m.run(1, async () => {
      seen.push('b');
      throw new Error('b fails');
    });
    const c = m.run(1, async () => void seen.push('c'));
    const other = m.run(2, async () => void seen.push('other'));
    await Promise.allSettled([a, b, c, other]);
    expect(seen).toEqual(['other', 'a', 'b', 'c']);
    expect(m.size).toBe(0);
  });

  it('RwLock lets readers share and keeps writers alone', async () => {
    const l = new RwLock();
    let readers = 0;
    let maxReaders = 0;
    let writerWithOthers = false;
    let writing = false;
    const read = () =>
      l.read(async () => {
        if (writing) writerWithOthers = true;
        readers++;
        maxReaders = Math.max(maxReaders, readers);
        await sleep(5);
        readers--;
      });
    const write = () =>
      l.write(async () => {
        if (readers > 0 || writing) writerWithOthers = true;
        writing = true;
        await sleep(5);
        writing = false;
      });
    await Promise.all([read(), read(), write(), read(), write(), read(), read()]);
    expect(maxReaders).toBeGreaterThan(1);
    expect(writerWithOthers).toBe(false);
  });
});

describe('file cache', () => {
  it('keeps at most its cap open and never closes a handle in use', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gfs-fc-'));
    try {
      const paths = [0, 1, 2, 3].map((i) => join(dir, `f${i}`));
      for (const p of paths) await writeFile(p, 'hello');
      const cache = new FileCache(2);
      const busy = cache.use(paths[0], async (fd) => {
        await sleep(30);
        const b = Buffer.alloc(5);
        readSync(fd, b, 0, 5, 0);
        return b.toString();
      });
      for (const p of paths.slice(1)) await cache.use(p, (fd) => fstatSync(fd).size);
      expect(cache.size).toBeLessThanOrEqual(3); // the busy one may exceed the cap briefly
      expect(await busy).toBe('hello');
      await cache.use(paths[3], async () => undefined);
      expect(cache.size).toBeLessThanOrEqual(2);
      await cache.closeAll();
      await expect(cache.use(paths[0], async () => 1)).rejects.toThrow();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('checksums and sidecar', () => {
  it('builds the same block CRCs from pieces of any size', () => {
    const data = Buffer.from(Array.from({ length: 10_000 }, (_, i) => (i * 7) % 251));
    const want = blockCrcs(data, 1024);
    expect(want.length).toBe(10);
    expect(want[9]).toBe(crc32(data.subarray(9216)));
    const b = new BlockCrcBuilder(1024);
    for (let at = 0; at < data.length; at += 333) b.add(data.subarray(at, at + 333));
    expect(b.finish()).toEqual(want);
    expect(b.length).toBe(data.length);
  });

  it('round-trips a sidecar and rejects a damaged header', () => {
    const side = Buffer.concat([encodeHeader(65536, 2 ** 40), encodeCrcs([1, 2, 0xffffffff])]);
    expect(decodeSidecar(side)).toEqual({ blockSize: 65536, version: 2 ** 40, crcs: new Uint32Array([1, 2, 0xffffffff]) });
    const bad = Buffer.from(side);
    bad[9] ^= 1;
    expect(decodeSidecar(bad)).toBeNull();
    expect(decodeSidecar(side.subarray(0, side.length - 1))).toBeNull();
  });
});
