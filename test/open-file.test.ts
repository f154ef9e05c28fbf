// Unit tests of OpenFile's read-ahead, against a fake client whose "file" is computed bytes.
// What matters: every read returns the right bytes, and the file is fetched about once even when
// the kernel's read-ahead requests arrive out of order (as they do: several are in flight at once).

import { describe, expect, it } from 'vitest';
import type { GfsClient } from '../src/client/client.js';
import { OpenFile } from '../src/client/open-file.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Byte i of the fake file. */
const byteAt = (i: number) => (i * 7 + (i >> 12)) & 0xff;

function fakeClient(size: number) {
  const fetched = { bytes: 0, calls: 0, ranges: [] as Array<[number, number]> };
  const writers = { open: false };
  const client = {
    cfg: { readAheadBytes: 8 * MiB, readAroundBytes: 64 * KiB, writeBufferBytes: 8 * MiB },
    flushInode: async () => {},
    hasBufferedWrites: () => false,
    hasWriters: () => writers.open,
    invalidateReads: () => {},
    io: {
      read: async (_ino: number, offset: number, length: number) => {
        const end = Math.min(size, offset + length);
        fetched.bytes += Math.max(0, end - offset);
        fetched.calls++;
        fetched.ranges.push([offset, end]);
        await new Promise((r) => setTimeout(r, 1)); // replies come later, as over the network
        // In pieces of at most 96 KiB, as ChunkIo returns them (smaller than a request, so that
        // requests are also served across pieces).
        const pieces: Buffer[] = [];
        for (let at = offset; at < end; at += 96 * KiB) {
          const piece = Buffer.alloc(Math.min(96 * KiB, end - at));
          for (let i = 0; i < piece.length; i++) piece[i] = byteAt(at + i);
          pieces.push(piece);
        }
        return pieces;
      },
    },
  };
  return { client: client as unknown as GfsClient, fetched, writers };
}

function expectBytes(data: Buffer, pos: number, len: number) {
  expect(data.length).toBe(len);
  for (let i = 0; i < len; i += 997) expect(data[i]).toBe(byteAt(pos + i));
  expect(data[len - 1]).toBe(byteAt(pos + len - 1));
}

describe('OpenFile read-ahead', () => {
  it('fetches the file about once when sequential requests arrive out of order', async () => {
    const size = 48 * MiB;
    const piece = 128 * KiB;
    const { client, fetched } = fakeClient(size);
    const f = new OpenFile(client, 7, false, false);
    // The kernel's pattern on a cold read of 1 MiB blocks (traced on this machine): the first
    // request late (r128K r256K r512K r384K r640K r768K r0 r896K ...), then runs of eight with
    // neighbours swapped.
    const n = size / piece;
    const order = [1, 2, 4, 3, 5, 6, 0, 7];
    for (let g = 8; g < n; g += 8) {
      const group = Array.from({ length: Math.min(8, n - g) }, (_, i) => g + i);
      for (let i = 0; i + 1 < group.length; i += 3) [group[i], group[i + 1]] = [group[i + 1], group[i]];
      order.push(...group);
    }
    for (const k of order) expectBytes(await f.read(k * piece, piece), k * piece, piece);
    // Read-ahead may run two windows past what was read; no more.
    expect(fetched.bytes).toBeLessThanOrEqual(size + 16 * MiB);
  });

  it('serves a request that spans two windows from both', async () => {
    const { client, fetched } = fakeClient(4 * MiB);
    const f = new OpenFile(client, 7, false, false);
    expectBytes(await f.read(0, 128 * KiB), 0, 128 * KiB);
    expectBytes(await f.read(128 * KiB, 128 * KiB), 128 * KiB, 128 * KiB); // opens [128K, 384K) and reads ahead from 384K
    await new Promise((r) => setTimeout(r, 20));
    const before = fetched.calls;
    expectBytes(await f.read(320 * KiB, 128 * KiB), 320 * KiB, 128 * KiB); // [320K, 448K): across two windows
    expect(fetched.calls - before).toBeLessThanOrEqual(1); // at most the next read-ahead, no re-fetch
  });

  it('returns a short read at the end of the file, also across windows', async () => {
    const size = 300 * KiB + 5;
    const { client } = fakeClient(size);
    const f = new OpenFile(client, 7, false, false);
    expectBytes(await f.read(0, 128 * KiB), 0, 128 * KiB);
    expectBytes(await f.read(128 * KiB, 128 * KiB), 128 * KiB, 128 * KiB);
    expectBytes(await f.read(256 * KiB, 128 * KiB), 256 * KiB, size - 256 * KiB);
    expect((await f.read(size, 4096)).length).toBe(0);
  });

  it('a random read fetches the aligned block around it, offered once to the page cache', async () => {
    const { client, fetched, writers } = fakeClient(4 * MiB);
    const f = new OpenFile(client, 7, false, false);
    expectBytes(await f.read(1 * MiB + 8 * KiB, 4 * KiB), 1 * MiB + 8 * KiB, 4 * KiB);
    expect(fetched.ranges).toEqual([[1 * MiB, 1 * MiB + 64 * KiB]]);
    const store = f.pagesToStore(1 * MiB + 8 * KiB, 4 * KiB);
    expect(store?.pos).toBe(1 * MiB);
    expect(Buffer.concat(store!.pieces).length).toBe(64 * KiB);
    expectBytes(Buffer.concat(store!.pieces), 1 * MiB, 64 * KiB);
    expect(f.pagesToStore(1 * MiB + 8 * KiB, 4 * KiB)).toBeUndefined(); // once
    // A later read in the block fetches none of it again (near enough to count as sequential,
    // it may start read-ahead after the block).
    expectBytes(await f.read(1 * MiB + 40 * KiB, 4 * KiB), 1 * MiB + 40 * KiB, 4 * KiB);
    expect(fetched.ranges.filter(([from, to]) => from < 1 * MiB + 64 * KiB && to > 1 * MiB)).toHaveLength(1);
    // While some handle may write the file, nothing goes to the page cache.
    writers.open = true;
    expectBytes(await f.read(3 * MiB + 4 * KiB, 4 * KiB), 3 * MiB + 4 * KiB, 4 * KiB);
    expect(f.pagesToStore(3 * MiB + 4 * KiB, 4 * KiB)).toBeUndefined();
    writers.open = false;
    // Nor a window fetched before a write through this client.
    expectBytes(await f.read(2 * MiB, 4 * KiB), 2 * MiB, 4 * KiB);
    f.dropWindows();
    expect(f.pagesToStore(2 * MiB, 4 * KiB)).toBeUndefined();
  });
});
