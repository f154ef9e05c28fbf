// Operator requests at the master: gfs status (the view an operator checks first) and gfs drain.

import { GfsError } from '../protocol/errors.js';
import type { MasterApi } from '../protocol/messages.js';
import type { Handlers } from '../protocol/rpc.js';
import type { Logger } from '../log.js';
import type { Cluster } from './cluster.js';
import type { Namespace } from './namespace.js';
import type { Repair } from './repair.js';

export function adminHandlers(ns: Namespace, cluster: Cluster, repair: Repair, replication: number, log: Logger): Pick<Handlers<MasterApi>, 'status' | 'drain'> {
  return {
    status: () => ({
      chunkservers: cluster.status(Date.now()),
      files: ns.fileCount,
      chunks: ns.versions.size,
      ...repair.counts(),
      corrupt: repair.corruptCount,
      replicationsInFlight: repair.inFlight,
      movesInFlight: repair.movesInFlight,
      trash: ns.trash.size,
    }),
    drain: ({ address, cancel }) => {
      if (typeof address !== 'string') throw new GfsError('EINVAL', 'drain: address must be host:port');
      const s = cluster.byAddress(address.replace(/^ws:\/\//, ''));
      if (!s) throw new GfsError('ENOENT', `no chunkserver at ${address}`);
      if (cancel) {
        if (cluster.draining.delete(s.id)) log.info(`chunkserver ${s.address} is no longer draining`);
      } else if (!cluster.draining.has(s.id)) {
        const left = cluster.eligible(new Set([s.id])).length;
        if (left < replication) throw new GfsError('EINVAL', `draining ${s.address} would leave ${left} chunkservers for ${replication} replicas of each chunk`);
        cluster.draining.add(s.id);
        log.info(`draining chunkserver ${s.address}: its ${s.chunks.size} replicas move elsewhere`);
      }
      return { chunks: s.chunks.size };
    },
  };
}
