// The master's op log on its own: what a crash in the middle of a write leaves behind.

import { describe, expect, it } from 'vitest';
import { mkdtemp, open, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OpLog, parseRecords } from '../src/master/oplog.js';
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

/** Run fn in a fresh temporary directory, removed afterwards whatever happens. */
async function inTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'gfs-oplog-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('op log', () => {
  it('drops a torn tail at start-up, so records logged after it are replayed next time', () =>
    inTempDir(async (dir) => {
      let { ns, log } = await openLog(dir);
      await addDir(ns, log, '/a');
      await log.close();
      const [logName] = (await readdir(dir)).filter((f) => f.startsWith('oplog.'));
      const path = join(dir, logName);
      const { end } = parseRecords(await readFile(path));
      expect(end).toBeGreaterThan(0);
      // Half a record right after the good ones: a length and a checksum, then fewer bytes
      // than the length says (the rest of the file is the zeros written ahead).
      const torn = Buffer.from([40, 0, 0, 0, 1, 2, 3, 4, 5, 6]);
      const fh = await open(path, 'r+');
      await fh.write(torn, 0, torn.length, end);
      await fh.close();

      ({ ns, log } = await openLog(dir));
      expect(ns.resolve('/a').type).toBe('dir');
      expect((await readFile(path)).subarray(end, end + torn.length)).toEqual(Buffer.alloc(torn.length)); // the torn bytes are gone
      // A record shorter than the torn one, then a restart: nothing of the torn bytes follows it.
      await addDir(ns, log, '/b');
      await log.close();

      const again = await openLog(dir);
      expect(again.replayed).toBe(2);
      expect(again.ns.resolve('/b').type).toBe('dir');
      await again.log.close();
    }));

  it('writes records into zeros written ahead: the file does not grow with each record', () =>
    inTempDir(async (dir) => {
      const { ns, log } = await openLog(dir);
      await addDir(ns, log, '/first');
      const [logName] = (await readdir(dir)).filter((f) => f.startsWith('oplog.'));
      const path = join(dir, logName);
      const size = (await stat(path)).size;
      expect(size).toBeGreaterThan(1 << 20);
      for (let i = 0; i < 200; i++) await addDir(ns, log, `/d${i}`);
      expect((await stat(path)).size).toBe(size);
      await log.close();
      const again = await openLog(dir);
      expect(again.replayed).toBe(201);
      expect(again.ns.resolve('/d199').type).toBe('dir');
      await again.log.close();
    }));
  it('writes over a batch whose fsync failed, leaving nothing of it to replay', () =>
    inTempDir(async (dir) => {
      let { ns, log } = await openLog(dir);
      // Same-sized records (fixed times), so a later record can line up with a failed one's.
      const op = (path: string) => ({ ...mkdirOp(ns, path), time: [1, 1] as [number, number] });
      const add = (path: string) => {
        const o = op(path);
        ns.apply(o);
        return log.append(o);
      };
      await add('/a');
      // The disk fails to flush one batch of two records (the log is O_DSYNC: the write that put
      // them in the page cache reports it): their callers are told they failed.
      type Write = (buf: Buffer, off: number, len: number, pos: number) => Promise<unknown>;
      const fh = (log as unknown as { fh: { write: Write } }).fh;
      const write = fh.write.bind(fh);
      fh.write = async (...args) => {
        await write(...args);
        throw new Error('EIO: simulated');
      };
      const failed = [add('/b'), add('/z')];
      for (const f of failed) await expect(f).rejects.toThrow('simulated');
      fh.write = write;
      // Written where '/b' was, exactly as long: '/z' would follow it if it were left there.
      await add('/c');
      await log.close();

      ({ ns, log } = await openLog(dir));
      expect(ns.resolve('/a').type).toBe('dir');
      expect(ns.resolve('/c').type).toBe('dir');
      expect(() => ns.resolve('/z')).toThrow();
      await log.close();
    }));
});
