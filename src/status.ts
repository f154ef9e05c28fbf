// gfs status: the view an operator checks first.

import { configFrom } from './config.js';
import { logger } from './log.js';
import type { MasterClientApi } from './protocol/messages.js';
import { connect } from './protocol/rpc.js';

const mb = (n: number) => `${(n / 1e6).toFixed(0)} MB`;

export async function printStatus(url: string, json: boolean): Promise<void> {
  const cfg = configFrom({});
  const peer = await connect<MasterClientApi>(url, { maxFrameBytes: cfg.maxFrameBytes, timeoutMs: 10_000, log: logger('status') });
  try {
    const s = await peer.call('status', {});
    if (json) {
      process.stdout.write(JSON.stringify(s, null, 2) + '\n');
      return;
    }
    const lines = [
      `files ${s.files}  chunks ${s.chunks}  under-replicated ${s.underReplicated}  lost ${s.lost}  corrupt ${s.corrupt}  in trash ${s.trash}`,
      `re-replications in flight ${s.replicationsInFlight}  moves (rebalance, drain) in flight ${s.movesInFlight}`,
      '',
      'chunkserver            alive     chunks        free        used   load  last heartbeat',
      ...s.chunkservers.map((c) =>
        `${c.address.padEnd(22)} ${(c.alive ? (c.draining ? 'drain' : 'yes') : 'NO').padEnd(8)} ${String(c.chunks).padStart(7)} ${mb(c.freeBytes).padStart(11)} ${mb(c.usedBytes).padStart(11)} ${String(c.load).padStart(6)}  ${(c.lastHeartbeatMsAgo / 1000).toFixed(1)} s ago`,
      ),
    ];
    process.stdout.write(lines.join('\n') + '\n');
  } finally {
    peer.close();
  }
}
