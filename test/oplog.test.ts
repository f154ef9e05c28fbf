// The master's op log on its own: what a crash in the middle of a write leaves behind.

import { describe, expect, it } from 'vitest';
import { appendFile, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OpLog } from '../src/master/oplog.js';
import type { Namespace } from '../src/master/namespace.js';
import { nowTimespec } from '../src/master/ops.js';

const CHUNK = 1 << 20;
const openLog = (dir: string) => OpLog.open(dir, CHUNK, 1_000_000, (n: Namespace) => () => n.image());
const mkdirOp = (ns: Namespace, path: string) => ({ t: 'mkdir' as const, path, mode: 0o755, uid: 0, gid: 0, ino: ns.nextIno, time: nowTimespec() });

async function addDir(ns: Namespace, log: OpLog, path: string): Promise<void> {
  const op = mkdirOp(ns, path);
  ns.apply(op);
  await log.append(op);
}

describe('op log', () => {
  it('drops a torn tail at start-up, so records logged after it are replayed next time', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gfs-oplog-'));
    try {
      let { ns, log } = await openLog(dir);
      await addDir(ns, log, '/a');
      await log.close();
      const [logName] = (await readdir(dir)).filter((f) => f.startsWith('oplog.'));
      const good = (await stat(join(dir, logName))).size;
      // Half a record: a length and a checksum, then fewer bytes than the length says.
      await appendFile(join(dir, logName), Buffer.from([40, 0, 0, 0, 1, 2, 3, 4, 5, 6]));

      ({ ns, log } = await openLog(dir));
      expect(ns.resolve('/a').type).toBe('dir');
      expect((await stat(join(dir, logName))).size).toBe(good); // the torn bytes are gone
      await addDir(ns, log, '/b');
      await log.close();

      const again = await openLog(dir);
      expect(again.replayed).toBe(2);
      expect(again.ns.resolve('/b').type).toBe('dir');
      await again.log.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
