// Placement decisions on their own (no processes): nearness, target choice, rebalancing moves,
// and what repair sends chunkservers.

import { describe, expect, it } from 'vitest';
import { Cluster, type Chunkserver } from '../src/master/cluster.js';
import { hostOf, nearestFirst, nearness } from '../src/master/nearness.js';
import { planMoves } from '../src/master/rebalance.js';
import { Repair, type LeaseView } from '../src/master/repair.js';
import type { Namespace } from '../src/master/namespace.js';
import type { MasterCommand } from '../src/protocol/messages.js';

function server(cluster: Cluster, id: string, address: string, chunks: number[], usedBytes = 0): Chunkserver {
  const s: Chunkserver = {
    id, address, peer: undefined as never, alive: true, epoch: 0, lastHeartbeat: Date.now(),
    freeBytes: 100e9, usedBytes, load: 0, chunks: new Set(),
  };
  cluster.servers.set(id, s);
  for (const h of chunks) cluster.addReplica(h, s);
  return s;
}

describe('nearness', () => {
  it('parses hosts out of addresses, URLs and socket labels', () => {
    expect(hostOf('10.1.2.3:7000')).toBe('10.1.2.3');
    expect(hostOf('ws://10.1.2.3:7000')).toBe('10.1.2.3');
    expect(hostOf('::ffff:10.1.2.3:51234')).toBe('10.1.2.3');
    expect(hostOf('[fe80::1]:7000')).toBe('fe80::1');
  });

  it('ranks the same host, then longer shared IPv4 prefixes, nearest', () => {
    expect(nearness('10.1.2.3:1', '10.1.2.3:2')).toBe(0);
    expect(nearness('10.1.2.3:1', '10.1.2.9:2')).toBe(1);
    expect(nearness('10.1.2.3:1', '10.1.7.9:2')).toBe(2);
    expect(nearness('10.1.2.3:1', '192.168.0.1:2')).toBe(4);
    expect(nearestFirst(['192.168.0.1:1', '10.1.7.9:1', '10.1.2.9:1'], (a) => a, '10.1.2.3:5')).toEqual(['10.1.2.9:1', '10.1.7.9:1', '192.168.0.1:1']);
  });
});

describe('placement', () => {
  it('puts a new replica on the server with the fewest chunks, never on a draining one, nearest among equals', () => {
    const c = new Cluster(10_000);
    server(c, 'a', '10.0.0.1:1', [1, 2, 3]);
    server(c, 'b', '10.0.1.1:1', [1]);
    server(c, 'c', '10.0.0.2:1', [2]);
    server(c, 'd', '10.0.0.3:1', []);
    c.draining.add('d');
    expect(c.pickTargets(3).map((s) => s.id)).toEqual(['b', 'c', 'a']);
    expect(c.pickTargets(1, new Set(), '10.0.0.9:1').map((s) => s.id)).toEqual(['c']);
    expect(c.countedReplicasOf(1).map((s) => s.id).sort()).toEqual(['a', 'b']);
  });

  it('plans moves from the fullest to the emptiest until within a few percent, each chunk once', () => {
    const c = new Cluster(10_000);
    const chunks = Array.from({ length: 60 }, (_, i) => i + 1);
    // 60 chunks, 3 replicas each, on three servers; a fourth joins empty.
    for (const id of ['a', 'b', 'c']) server(c, id, `10.0.0.${id.charCodeAt(0)}:1`, chunks);
    server(c, 'd', '10.0.0.100:1', []);
    const moves = planMoves(c, 3, 1000, () => 1000, () => true);
    expect(new Set(moves.map((m) => m.handle)).size).toBe(moves.length);
    for (const m of moves) {
      expect(m.to.id).toBe('d');
      expect(m.to.chunks.has(m.handle)).toBe(false);
    }
    // 180 replicas over four servers: 45 each, so about 45 moves to d.
    expect(moves.length).toBeGreaterThanOrEqual(43);
    expect(moves.length).toBeLessThanOrEqual(45);
    // Nothing to do when balanced, or when a target has no room for another copy.
    expect(planMoves(c, 3, 1000, () => 0, () => true)).toEqual([]);
  });
});

describe('repair', () => {
  const noLeases: LeaseView = { active: () => false, missedGrant: () => false, forgetMissed: () => {}, distrustedOn: () => [], distrustedFor: () => [] };
  const quiet = { info: () => {}, warn: () => {}, debug: () => {} };
  /** A Repair over chunk handles 1..n at version 1 (it reads only the versions of the namespace). */
  const repairOf = (c: Cluster, n: number) =>
    new Repair({ versions: new Map(Array.from({ length: n }, (_, i) => [i + 1, 1])) } as unknown as Namespace, c, noLeases, { replication: 3, rpcTimeoutMs: 1000, copiesPerServer: 2 }, quiet);
  const deletes = (cmds: MasterCommand[]) => cmds.flatMap((m) => (m.op === 'delete' ? m.chunks.map(([h]) => h) : []));

  it('a replica it sent a delete for is not counted while heartbeats still list it: no second good replica is deleted', () => {
    const c = new Cluster(10_000);
    const [a, b, cc, d] = ['a', 'b', 'c', 'd'].map((id, i) => server(c, id, `10.0.0.${i + 1}:1`, [1]));
    const r = repairOf(c, 1);
    r.tick(Date.now()); // 4 replicas, goal 3: one goes
    expect(deletes(r.take('a'))).toEqual([1]);
    expect(c.replicasOf(1).map((s) => s.id)).toEqual(['b', 'c', 'd']);
    // a's next heartbeats still list it (its delete waits there behind a read, say).
    for (let i = 0; i < 3; i++) {
      r.report(a, [[1, 1]], [], []);
      expect(c.replicasOf(1).map((s) => s.id)).toEqual(['b', 'c', 'd']);
      expect(deletes(r.take('a'))).toEqual([1]); // sent again
      r.tick(Date.now());
      for (const s of [b, cc, d]) expect(r.take(s.id)).toEqual([]);
    }
    // Once gone from a's list, a replica a lists again (a copy made later) counts.
    r.report(a, [], [], []);
    r.report(a, [[1, 1]], [], []);
    expect(c.replicasOf(1).map((s) => s.id)).toContain('a');
  });

  it('a move reads the replica it leaves behind first (so a bad block there is found, not deleted unread)', () => {
    const c = new Cluster(10_000);
    // The drained server is the farthest from the target: nearest-first alone would read it last.
    server(c, 'a', '10.9.0.1:1', [1]);
    server(c, 'b', '10.0.0.1:1', [1]);
    server(c, 'c', '10.0.0.2:1', [1]);
    server(c, 'd', '10.0.0.3:1', []);
    c.draining.add('a');
    const r = repairOf(c, 1);
    r.tick(Date.now());
    const [copy] = r.take('d');
    expect(copy).toMatchObject({ op: 'replicate', handle: 1, from: ['10.9.0.1:1', '10.0.0.1:1', '10.0.0.2:1'] });
  });
});
