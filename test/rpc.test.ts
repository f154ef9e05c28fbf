// The RPC layer on its own: requests and replies both ways, bulk data as a raw tail, typed errors,
// time-outs, and frames that do not decode.

import { afterEach, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { GfsError } from '../src/protocol/errors.js';
import { connect, decode, encode, encodeLarge, RpcServer, type Peer } from '../src/protocol/rpc.js';
import { logger } from '../src/log.js';

type EchoApi = {
  echo: [{ data?: Buffer; n: number }, { data?: Buffer; n: number }];
  fail: [Record<string, never>, Record<string, never>];
  slow: [Record<string, never>, Record<string, never>];
};

const log = logger('test');
let server: RpcServer<EchoApi> | undefined;
let peer: Peer<EchoApi> | undefined;
afterEach(async () => {
  peer?.close();
  await server?.close();
});

async function start(): Promise<Peer<EchoApi>> {
  server = await RpcServer.listen<EchoApi>(
    { host: '127.0.0.1', port: 0, maxFrameBytes: 4 * 1024 * 1024, timeoutMs: 5000, log },
    {
      echo: (req) => ({ data: req.data, n: req.n + 1 }),
      fail: () => {
        throw new GfsError('ENOSPC', 'disk full');
      },
      slow: () => new Promise(() => {}),
    },
  );
  peer = await connect<EchoApi>(server.address, { maxFrameBytes: 4 * 1024 * 1024, timeoutMs: 300, log });
  return peer;
}

describe('rpc', () => {
  it('carries small and large binary data both ways, byte for byte', async () => {
    const p = await start();
    for (const size of [0, 10, 64 * 1024 - 1, 64 * 1024, 3 * 1024 * 1024]) {
      const data = randomBytes(size);
      const r = await p.call('echo', { data, n: size });
      expect(r.n).toBe(size + 1);
      expect(Buffer.compare(r.data, data)).toBe(0);
    }
  });

  it('keeps many calls in flight and matches each reply to its request', async () => {
    const p = await start();
    const sizes = Array.from({ length: 50 }, (_, i) => (i % 3) * 100_000 + i);
    const results = await Promise.all(sizes.map((n) => p.call('echo', { data: Buffer.alloc(n, n % 256), n })));
    results.forEach((r, i) => {
      expect(r.n).toBe(sizes[i] + 1);
      expect(r.data.length).toBe(sizes[i]);
    });
  });

  it('passes typed errors through and times out a call that gets no answer', async () => {
    const p = await start();
    await expect(p.call('fail', {})).rejects.toMatchObject({ code: 'ENOSPC', message: 'disk full' });
    await expect(p.call('slow', {})).rejects.toMatchObject({ code: 'ETIMEDOUT' });
  });

  it('answers a malformed tail frame with EPROTO and keeps serving', async () => {
    const p = await start();
    const raw = new WebSocket(`ws://${server!.address}`);
    await new Promise((r) => raw.on('open', r));
    const replies: unknown[] = [];
    raw.on('message', (m) => {
      const frame = decode(m as Buffer) as unknown[];
      if (frame[0] === 3) replies.push(...(frame[2] as unknown[])); // coalesced: both in one message
      else replies.push(frame);
    });
    raw.send(Buffer.from([0xc1, 0xff, 0xff, 0xff, 0xff, 1, 2, 3])); // header longer than the frame
    raw.send(Buffer.from([0xc1, 0, 0, 0, 1, 0x05, 9, 9])); // header is not a frame
    await expect.poll(() => replies.length).toBe(2);
    for (const r of replies) expect((r as unknown[]).slice(0, 3)).toEqual([2, 0, 'EPROTO']);
    raw.close();
    expect((await p.call('echo', { data: Buffer.from('ok'), n: 1 })).n).toBe(2);
  });
});

describe('coalescing', () => {
  it('requests made in one turn of the event loop after its first go as one message, and so do their replies', async () => {
    const p = await start();
    const raw = new WebSocket(`ws://${server!.address}`);
    await new Promise((r) => raw.on('open', r));
    const messages: unknown[][] = [];
    raw.on('message', (m) => messages.push(decode(m as Buffer) as unknown[]));
    // Three requests in one message, as a peer coalesces them: the first reply goes at once (it
    // waits for nothing), the other two together.
    raw.send(encode([3, 0, [1, 2, 3].map((n) => [0, n, 'echo', { n }])]));
    await expect.poll(() => messages.length).toBe(2);
    const n = (f: unknown[]) => [f[0], f[1], (f[2] as { n: number }).n];
    expect(n(messages[0])).toEqual([1, 1, 2]);
    expect(messages[1][0]).toBe(3);
    expect((messages[1][2] as unknown[][]).map(n)).toEqual([[1, 2, 3], [1, 3, 4]]);
    raw.close();
    // A peer's calls in one turn, small and with a large data tail, all answered in order.
    const big = Buffer.alloc(200_000, 7);
    const got = await Promise.all([p.call('echo', { n: 1 }), p.call('echo', { n: 2, data: big }), p.call('echo', { n: 3 })]);
    expect(got.map((r) => r.n)).toEqual([2, 3, 4]);
    expect(Buffer.compare(got[1].data!, big)).toBe(0);
  });
});

describe('encoding a checkpoint', () => {
  it('leaves the shared encoder with a small buffer again (a plain encode keeps one as large)', () => {
    const big = { image: Array.from({ length: 200_000 }, (_, i) => ({ name: `f${i}`, ino: i })) };
    const out = encodeLarge(big);
    expect(decode(out)).toEqual(big);
    // What an encode returns is a view of the encoder's buffer: its size shows.
    expect(encode({ small: 1 }).buffer.byteLength).toBeLessThan(1 << 20);
    expect(decode(out)).toEqual(big); // still intact after later encodes
    encode(big);
    expect(encode({ small: 1 }).buffer.byteLength).toBeGreaterThan(2 << 20); // why encodeLarge exists
    encodeLarge({}); // and back to small for the other tests
  });
});
