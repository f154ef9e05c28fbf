// A worker thread of the master (oplog.ts starts it): writes checkpoint `gen` from the last
// checkpoint and the op logs before `gen`, as a restart would load them, then removes those logs.
// It shares nothing with the master's live state; a failure only leaves the older files in place.

import { join } from 'node:path';
import { workerData } from 'node:worker_threads';
import { writeCheckpoint } from './checkpoint.js';
import { removeLogsBefore, stateBefore } from './oplog.js';

const { dir, gen, chunkSize } = workerData as { dir: string; gen: number; chunkSize: number };
const ns = await stateBefore(dir, chunkSize, gen);
await writeCheckpoint(join(dir, 'checkpoint'), gen, chunkSize, ns);
await removeLogsBefore(dir, gen);
