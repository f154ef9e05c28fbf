// The control API the master calls over the connection this chunkserver opened to it: setVersion,
// which the master sends to every replica before it grants a lease (paper §4.5: the version bump
// is what lets a replica that missed mutations be recognised as stale later).

import { GfsError } from '../protocol/errors.js';
import type { ChunkserverControlApi } from '../protocol/messages.js';
import type { Handlers } from '../protocol/rpc.js';
import type { Leases } from './leases.js';
import type { ChunkStore } from './store.js';
import { boolField, handleField, optionalMsField, versionField } from './validate.js';

export function controlHandlers(store: ChunkStore, leases: Leases, now: () => number = () => performance.now()): Handlers<ChunkserverControlApi> {
  return {
    async setVersion(req) {
      // The lease clock starts when the request arrives, before the fsync, so it ends no later
      // than it would have if measured after.
      const t0 = now();
      const handle = handleField(req.handle);
      const version = versionField(req.version);
      const create = req.create === undefined ? false : boolField(req.create, 'create');
      const leaseMs = optionalMsField(req.leaseMs, 'leaseMs');
      const info = store.info(handle);
      if (!info) {
        if (!create) throw new GfsError('ENOENT', `no replica of chunk ${handle}`);
        await store.create(handle, version);
      } else if (info.corrupt) {
        throw new GfsError('EIO', `replica of chunk ${handle} is corrupt`);
      }
      // Also after create: a concurrent create of the same handle may have won with another version.
      await store.setVersion(handle, version);
      if (leaseMs !== undefined) leases.grant(handle, leaseMs, t0);
      else leases.drop(handle);
      return {};
    },
  };
}
