// gfs trash, gfs undelete, gfs drain: operator commands that talk to the master once and exit.

import { configFrom } from './config.js';
import { logger } from './log.js';
import type { MasterClientApi } from './protocol/messages.js';
import { connect, type Peer } from './protocol/rpc.js';

async function withMaster<T>(url: string, fn: (peer: Peer<MasterClientApi>) => Promise<T>): Promise<T> {
  const cfg = configFrom({});
  const peer = await connect<MasterClientApi>(url, { maxFrameBytes: cfg.maxFrameBytes, timeoutMs: 10_000, log: logger('gfs') });
  try {
    return await fn(peer);
  } finally {
    peer.close();
  }
}

const when = (ms: number) => new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');

export async function printTrash(url: string, json: boolean): Promise<void> {
  const { entries } = await withMaster(url, (m) => m.call('trash', {}));
  if (json) {
    process.stdout.write(JSON.stringify(entries, null, 2) + '\n');
    return;
  }
  const lines = ['deleted at            purged after          size          path'];
  for (const e of entries) lines.push(`${when(e.deletedAt)}  ${when(e.purgeAt)}  ${String(e.size).padStart(12)}  ${e.path}`);
  process.stdout.write(lines.join('\n') + '\n');
}

export async function undelete(url: string, path: string, to?: string): Promise<void> {
  const attr = await withMaster(url, (m) => m.call('undelete', { path, ...(to !== undefined ? { to } : {}) }));
  process.stdout.write(`restored ${to ?? path} (${attr.size} bytes)\n`);
}

export async function drain(url: string, address: string, opts: { wait: boolean; cancel: boolean }): Promise<void> {
  await withMaster(url, async (m) => {
    const { chunks } = await m.call('drain', { address, ...(opts.cancel ? { cancel: true } : {}) });
    if (opts.cancel) {
      process.stdout.write(`${address} is back in service (${chunks} replicas)\n`);
      return;
    }
    process.stdout.write(`draining ${address}: ${chunks} replicas to move\n`);
    if (!opts.wait) return;
    for (let last = -1; ; ) {
      const s = await m.call('status', {});
      const left = s.chunkservers.find((c) => c.address === address)?.chunks ?? 0;
      if (left === 0 && s.underReplicated === 0 && s.movesInFlight === 0) break;
      if (left !== last) process.stdout.write(`${address}: ${left} replicas left, ${s.underReplicated} chunks under-replicated\n`);
      last = left;
      await new Promise((r) => setTimeout(r, 1000));
    }
    process.stdout.write(`${address} is empty: it can be stopped\n`);
  });
}
