// Rebalancing (the seeds' distribute_load): when nothing needs repair, replicas move from the
// servers with the most chunks to those with the fewest — a server that joins empty fills up, one
// that was down comes back level — until the counts are within a few percent of each other. A
// move is a copy to the emptier server; once it lands, repair deletes the replica left behind.
// Counts include copies on their way and replicas about to leave, so a plan never overshoots.

import type { ChunkHandle } from '../protocol/messages.js';
import type { Cluster, Chunkserver } from './cluster.js';

export interface Move {
  handle: ChunkHandle;
  from: Chunkserver;
  to: Chunkserver;
}

/** Spread tolerated between the fullest and the emptiest server, as a share of the mean count. */
const SLACK = 0.05;

/**
 * Up to budget moves. room(s): copies s may still receive now; movable(h, to): h may move to `to`
 * (no copy or lease running, no bad or distrusted replica there).
 */
export function planMoves(
  cluster: Cluster,
  goal: number,
  budget: number,
  room: (s: Chunkserver) => number,
  movable: (handle: ChunkHandle, to: Chunkserver) => boolean,
): Move[] {
  const moves: Move[] = [];
  const servers = cluster.eligible();
  if (budget <= 0 || servers.length < 2) return moves;
  const count = new Map(servers.map((s) => [s.id, cluster.expectedChunks(s)]));
  const left = new Map(servers.map((s) => [s.id, room(s)]));
  const mean = [...count.values()].reduce((a, b) => a + b, 0) / servers.length;
  const slack = Math.max(1, Math.floor(mean * SLACK));
  const planned = new Set<ChunkHandle>();
  const n = (s: Chunkserver) => count.get(s.id)!;

  while (moves.length < budget) {
    const byCount = [...servers].sort((a, b) => n(a) - n(b));
    const from = byCount[byCount.length - 1];
    const to = byCount.find((s) => left.get(s.id)! > 0);
    if (!to || n(from) - n(to) <= slack) break;
    let pick: ChunkHandle | undefined;
    for (const h of from.chunks) {
      if (to.chunks.has(h) || planned.has(h) || !movable(h, to)) continue;
      if (cluster.liveCounts(h).counted !== goal) continue; // short or surplus: repair's business
      pick = h;
      break;
    }
    if (pick === undefined) break;
    planned.add(pick);
    moves.push({ handle: pick, from, to });
    count.set(from.id, n(from) - 1);
    count.set(to.id, n(to) + 1);
    left.set(to.id, left.get(to.id)! - 1);
  }
  return moves;
}
