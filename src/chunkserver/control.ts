// The control API the master calls over the connection this chunkserver opened to it: setVersion,
// which the master sends to every replica before it grants a lease (paper §4.5: the version bump
// is what lets a replica that missed mutations be recognised as stale later), and makeChunks, the
// same for a batch of new chunks the master places ahead of need (master/chunk-pool.ts).

import { GfsError, asGfsError } from '../protocol/errors.js';
import type { ChunkHandle, ChunkserverControlApi } from '../protocol/messages.js';
import type { Handlers } from '../protocol/rpc.js';
import type { Leases } from './leases.js';
import type { ChunkStore } from './store.js';
import { boolField, handleField, handlesField, optionalMsField, versionField } from './validate.js';

/** Most chunks one makeChunks may ask for (the master asks for far fewer). */
const MAX_MADE_AT_ONCE = 1024;

export function controlHandlers(store: ChunkStore, leases: Leases, now: () => number = () => performance.now()): Handlers<ChunkserverControlApi> {
  /** t0: when the request arrived; the lease clock starts then, before the fsync, so it ends no later than it would have if measured after. */
  async function setVersion(handle: ChunkHandle, version: number, create: boolean, leaseMs: number | undefined, t0: number): Promise<void> {
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
  }

  return {
    async setVersion(req) {
      const t0 = now();
      const create = req.create === undefined ? false : boolField(req.create, 'create');
      await setVersion(handleField(req.handle), versionField(req.version), create, optionalMsField(req.leaseMs, 'leaseMs'), t0);
      return {};
    },
    async makeChunks(req) {
      const t0 = now();
      const handles = handlesField(req.handles, MAX_MADE_AT_ONCE);
      const lead = new Set(handlesField(req.lead, MAX_MADE_AT_ONCE));
      const version = versionField(req.version);
      const leaseMs = optionalMsField(req.leaseMs, 'leaseMs') ?? 0;
      // Only new handles: this must never touch a replica that holds data.
      const fresh = handles.filter((h) => !store.info(h));
      const made: ChunkHandle[] = [];
      let failure: GfsError | undefined;
      // One after another (the files are made synchronously: measured cheaper than through the
      // thread pool, where creates in one directory from several threads spin on its lock).
      for (const h of fresh) {
        try {
          await store.create(h, version, false);
          await setVersion(h, version, false, lead.has(h) ? leaseMs : undefined, t0);
          made.push(h);
        } catch (e) {
          failure ??= asGfsError(e);
        }
      }
      // None made (a full disk): the master is told why; some made: it uses those.
      if (made.length === 0 && failure) throw failure;
      return { made };
    },
  };
}
