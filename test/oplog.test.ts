// The master's op log on its own: what a crash in the middle of a write leaves behind.

import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { constants } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readCheckpoint, writeCheckpoint } from '../src/master/checkpoint.js';
import { OpLog, parseRecords } from '../src/master/oplog.js';
import { Namespace } from '../src/master/namespace.js';
import { nowTimespec } from '../src/master/ops.js';

const CHUNK = 1 << 20;
const openLog = (dir: string, checkpointEvery = 1_000_000, warn?: (m: string) => void) => OpLog.open(dir, CHUNK, checkpointEvery, undefined, warn);
const logsIn = async (dir: string) => (await readdir(dir)).filter((f) => f.startsWith('oplog.')).sort();
const checkpointGen = async (dir: string) => (await readCheckpoint(join(dir, 'checkpoint')))!.gen;
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

  it('goes on logging while a checkpoint is made; until it is on disk, a restart replays the last one and every log since', () =>
    inTempDir(async (dir) => {
      const warnings: string[] = [];
      let warned = () => {};
      const oneWarning = new Promise<void>((resolve) => (warned = resolve));
      let { ns, log } = await openLog(dir, 5, (m) => {
        warnings.push(m);
        warned();
      });
      // The worker's temporary checkpoint file is a FIFO: opening it for writing blocks until a
      // reader comes, so the checkpoint stays under way for as long as the test wants.
      const tmp = join(dir, 'checkpoint.tmp');
      execFileSync('mkfifo', [tmp]);
      for (let i = 0; i < 5; i++) await addDir(ns, log, `/a${i}`); // the fifth's flush switches logs
      for (let i = 0; i < 3; i++) await addDir(ns, log, `/b${i}`); // answered with the checkpoint stuck
      expect(await logsIn(dir)).toEqual(['oplog.0', 'oplog.1']);
      expect(await checkpointGen(dir)).toBe(0);
      // A reader lets the open through; a positional write to a FIFO then fails (ESPIPE).
      const reader = await open(tmp, constants.O_RDONLY | constants.O_NONBLOCK);
      await oneWarning;
      await reader.close();
      expect(warnings.join('\n')).toMatch(/checkpoint 1 failed/);
      await log.close();

      // What a crash during the checkpoint leaves: the last checkpoint and both logs, replayed in order.
      await rm(tmp);
      ({ ns, log } = await openLog(dir, 1));
      const names = [...Array.from({ length: 5 }, (_, i) => `/a${i}`), ...Array.from({ length: 3 }, (_, i) => `/b${i}`)];
      for (const p of names) expect(ns.resolve(p).type).toBe('dir');
      await addDir(ns, log, '/c'); // 9 records since checkpoint 0: a new one (2) is made, and the logs before it go
      await log.close(); // waits for the checkpoint under way
      expect(await logsIn(dir)).toEqual(['oplog.2']);
      expect(await checkpointGen(dir)).toBe(2);
      const again = await openLog(dir);
      expect(again.replayed).toBe(0); // all of it is in the checkpoint
      for (const p of [...names, '/c']) expect(again.ns.resolve(p).type).toBe('dir');
      await again.log.close();
      expect(warnings).toHaveLength(1);
    }));

  it('writes a checkpoint of many slices that reads back as the same namespace', () =>
    inTempDir(async (dir) => {
      const ns = new Namespace([1, 0]);
      const op = (o: Parameters<Namespace['apply']>[0]) => ns.apply(o);
      op({ t: 'mkdir', path: '/d', mode: 0o700, uid: 3, gid: 4, ino: ns.nextIno, time: [2, 7] });
      for (let i = 0; i < 20_000; i++) {
        const ino = ns.nextIno;
        op({ t: 'create', path: `/d/f${i}`, mode: 0o644, uid: i, gid: 1, ino, time: [3, i] });
        if (i % 3 === 0) op({ t: 'addChunk', ino, index: i % 5, handle: ns.nextHandle });
        if (i % 7 === 0) op({ t: 'setxattr', ino, name: 'user.n', value: Buffer.from(String(i)), time: [4, 0] });
      }
      op({ t: 'symlink', path: '/s', target: 'd/f1', uid: 0, gid: 0, ino: ns.nextIno, time: [5, 0] });
      op({ t: 'unlink', path: '/d/f2', time: [6, 0] }); // into the trash
      for (let h = 1; h < ns.nextHandle; h += 2) op({ t: 'version', handle: h, version: h + 1 });
      const path = join(dir, 'checkpoint');
      await writeCheckpoint(path, 42, CHUNK, ns);
      const back = await readCheckpoint(path);
      expect(back!.gen).toBe(42);
      expect(back!.chunkSize).toBe(CHUNK);
      expect(back!.image).toEqual(ns.image());
      expect(Namespace.fromImage(back!.image).image()).toEqual(ns.image());
      expect(back!.image.inodes.length).toBe(20_003);
      expect(back!.image.trash!.length).toBe(1);
      expect(await readdir(dir)).toEqual(['checkpoint']); // the temporary file was renamed
    }));

  it('a checkpoint that cannot start is tried again after as many records more, not at every write', () =>
    inTempDir(async (dir) => {
      const warnings: string[] = [];
      let { ns, log } = await openLog(dir, 3, (m) => warnings.push(m));
      await mkdir(join(dir, 'oplog.1')); // the next log cannot be made (EISDIR)
      for (let i = 0; i < 30; i++) await addDir(ns, log, `/d${i}`); // a write each
      await log.close();
      // Tried about every third record (at every write after the third, it would be ~28 times).
      expect(warnings.length).toBeGreaterThanOrEqual(2);
      expect(warnings.length).toBeLessThanOrEqual(11);
      for (const w of warnings) expect(w).toMatch(/checkpoint not started .*EISDIR/);
      await rm(join(dir, 'oplog.1'), { recursive: true });
      const tried = warnings.length;
      ({ ns, log } = await openLog(dir, 3, (m) => warnings.push(m)));
      await addDir(ns, log, '/last'); // 31 records since checkpoint 0: this one starts checkpoint 1
      await log.close();
      expect(warnings).toHaveLength(tried);
      expect(await checkpointGen(dir)).toBe(1);
      const again = await openLog(dir);
      for (let i = 0; i < 30; i++) expect(again.ns.resolve(`/d${i}`).type).toBe('dir');
      expect(again.ns.resolve('/last').type).toBe('dir');
      await again.log.close();
    }));
});
