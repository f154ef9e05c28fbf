// Bad input to each daemon — garbage bytes, unknown messages, malformed and oversized frames,
// fields of the wrong type — gets an error or a closed connection, and the daemon keeps serving.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect as tcpConnect } from 'node:net';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { decode, encode } from '../src/protocol/rpc.js';
import { TestCluster } from './helpers/cluster.js';

let c: TestCluster;
beforeAll(async () => {
  c = await TestCluster.start({ chunkservers: 1, args: ['--chunk-size', '4M', '--replication', '1'] });
});
afterAll(async () => {
  await c?.stop();
});

/** Send raw bytes over TCP; resolves when the server closes the connection (or after 3 s). */
function rawTcp(url: string, bytes: Buffer): Promise<'closed' | 'open'> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const s = tcpConnect(Number(port), hostname, () => s.write(bytes));
    const t = setTimeout(() => {
      s.destroy();
      resolve('open');
    }, 3000);
    s.on('data', () => {});
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(t);
      resolve('closed');
    });
  });
}

/** Send one WebSocket frame and return the first frame that comes back (or 'closed'). */
function wsExchange(url: string, frame: Buffer | string): Promise<unknown> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.on('open', () => ws.send(frame));
    ws.on('message', (data) => {
      resolve(decode(data as Buffer));
      ws.close();
    });
    ws.on('error', () => {});
    ws.on('close', () => resolve('closed'));
  });
}

/** A raw WebSocket upgrade, then a frame header that claims an enormous payload. */
function hugeLengthFrame(url: string): Promise<'closed' | 'open'> {
  const { host } = new URL(url);
  const key = randomBytes(16).toString('base64');
  const upgrade = `GET / HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
  const header = Buffer.alloc(14);
  header[0] = 0x82; // FIN + binary
  header[1] = 0x80 | 127; // masked, 64-bit length follows
  header.writeBigUInt64BE(2n ** 40n, 2);
  return rawTcp(url, Buffer.concat([Buffer.from(upgrade), header, randomBytes(1000)]));
}

async function masterServes(): Promise<void> {
  const peer = await c.masterPeer();
  try {
    const s = await peer.call('statfs', {});
    expect(s.chunkSize).toBe(4 * 1024 * 1024);
  } finally {
    peer.close();
  }
}

describe.each(['master', 'chunkserver'])('%s', (which) => {
  const url = () => (which === 'master' ? c.url : c.chunkservers[0].address);
  const stillServes = async () => {
    await masterServes(); // the chunkserver's liveness shows in the master's view as well
    const r = await wsExchange(url(), encode([0, 7, which === 'master' ? 'statfs' : 'sync', which === 'master' ? {} : { handles: [] }]));
    expect(r).toEqual([1, 7, expect.anything()]);
  };

  it('survives garbage bytes on its port', async () => {
    expect(await rawTcp(url(), randomBytes(4096))).toBe('closed');
    await stillServes();
  });

  it('answers an unknown message and a malformed frame with EPROTO', async () => {
    expect(await wsExchange(url(), encode([0, 1, 'noSuchThing', {}]))).toEqual([2, 1, 'EPROTO', expect.stringContaining('unknown request type')]);
    const head = async (frame: Buffer | string) => ((await wsExchange(url(), frame)) as unknown[]).slice(0, 3);
    expect(await head(randomBytes(64))).toEqual([2, 0, 'EPROTO']);
    expect(await head('text, not msgpack')).toEqual([2, 0, 'EPROTO']);
    expect(await head(encode([0, 2, which === 'master' ? 'lookup' : 'read', 'not a map']))).toEqual([2, 2, 'EPROTO']);
    await stillServes();
  });

  it('rejects fields of the wrong type without crashing', async () => {
    const bad = which === 'master' ? encode([0, 3, 'lookup', { path: 42 }]) : encode([0, 3, 'read', { handle: 'x', version: -1, offset: 1e30, length: -5 }]);
    const r = (await wsExchange(url(), bad)) as unknown[];
    expect(r[0]).toBe(2);
    expect(r[1]).toBe(3);
    if (which === 'master') {
      // Sizes in one request: not a list is refused; each bad size fails alone, in its place.
      expect(((await wsExchange(url(), encode([0, 4, 'extendMany', { sizes: 'x' }]))) as unknown[]).slice(0, 3)).toEqual([2, 4, 'EINVAL']);
      const many = (await wsExchange(url(), encode([0, 5, 'extendMany', { sizes: [null, { ino: 999_999, size: 1 }, { ino: 1, size: 'big' }] }]))) as [number, number, { sized: Array<{ code?: string }> }];
      expect(many.slice(0, 2)).toEqual([1, 5]);
      expect(many[2].sized.map((o) => typeof o.code)).toEqual(['string', 'string', 'string']);
      expect(many[2].sized[1].code).toBe('ENOENT');
    }
    await stillServes();
  });

  it('closes the connection on a huge length or an oversized frame', async () => {
    expect(await hugeLengthFrame(url())).toBe('closed');
    expect(await wsExchange(url(), Buffer.alloc(25 * 1024 * 1024))).toBe('closed');
    await stillServes();
  });
});
