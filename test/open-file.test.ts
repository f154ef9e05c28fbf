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

describe('OpenFile record appends', () => {
  /** An O_APPEND handle whose record appends are kept, in order. */
  function appendHandle() {
    const records: string[] = [];
    const client = {
      maxRecordBytes: 1024 * KiB,
      invalidateReads: () => {},
      noteChange: () => {},
      noteAttr: () => {},
      pushWritesAtOffsets: async () => {},
      beforePush: async () => {},
      appends: {
        append: async (_ino: number, record: Buffer) => {
          records.push(record.toString());
          return { offset: 0, attr: { ino: 7 } };
        },
      },
    };
    return { f: new OpenFile(client as unknown as GfsClient, 7, true, true), records };
  }
  const line = (c: string) => `${c} `.padEnd(99, c) + '\n';
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it('a flush for a reader never sends the first piece of a write() without its rest', async () => {
    const { f, records } = appendHandle();
    const a = line('a');
    // The kernel sends the write() in two pieces, cut at the page boundary it crosses.
    await f.write(4096 - 8, Buffer.from(a.slice(0, 8)));
    const flushing = f.flushFinished(); // a reader on the same mount
    await sleep(1);
    await f.write(4096, Buffer.from(a.slice(8)));
    await flushing;
    expect(records).toEqual([a]);
  });

  it('a piece whose rest comes late stays for the next write or flush of its handle', async () => {
    const { f, records } = appendHandle();
    const [a, b] = [line('a'), line('b')];
    await f.write(100, Buffer.from(b)); // a whole write(): it ends inside a page
    await f.write(2 * 4096 - 20, Buffer.from(a.slice(0, 20)));
    await f.flushFinished(); // gives up waiting for the rest: only b goes
    expect(records).toEqual([b]);
    await f.write(2 * 4096, Buffer.from(a.slice(20)));
    await f.flush(); // the handle's own flush (close) sends everything
    expect(records).toEqual([b, a]);
  });

  it('a write() of several pages in pieces of max_write stays whole too', async () => {
    const { f, records } = appendHandle();
    const big = Buffer.alloc(3 * 128 * KiB + 50, 'x');
    await f.write(0, big.subarray(0, 128 * KiB));
    const flushing = f.flushFinished();
    await f.write(128 * KiB, big.subarray(128 * KiB, 256 * KiB));
    await f.write(256 * KiB, big.subarray(256 * KiB));
    await flushing;
    expect(records.map((r) => r.length)).toEqual([big.length]);
  });
});
