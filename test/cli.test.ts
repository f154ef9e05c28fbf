// The gfs command as a user meets it: --help, one-line errors and non-zero exits on bad
// arguments or an unreachable master, and `gfs up` stopping cleanly and finding its files again.

import { afterEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ok, root, sh } from './helpers/cluster.js';
import { connect } from '../src/protocol/rpc.js';
import type { MasterApi } from '../src/protocol/messages.js';

const gfs = `node ${join(root, 'dist/cli.js')}`;
const dirs: string[] = [];
const tmp = async () => {
  const d = await mkdtemp(join(tmpdir(), 'gfs-cli-'));
  dirs.push(d);
  return d;
};
afterEach(async () => {
  for (const d of dirs.splice(0)) {
    await sh(`fusermount -uz ${d}/mnt 2>/dev/null; true`);
    await rm(d, { recursive: true, force: true });
  }
});

describe('gfs command line', () => {
  it('has --help for every command', async () => {
    for (const cmd of ['', 'master', 'chunkserver', 'mount', 'up', 'status']) {
      const out = await ok(`${gfs} ${cmd} --help`);
      expect(out).toMatch(/Usage: gfs/);
    }
  });

  it('a daemon whose log reader went away keeps serving silently and stops cleanly on SIGTERM', async () => {
    const d = await tmp();
    const proc = spawn(process.execPath, [join(root, 'dist/cli.js'), 'master', '--data', join(d, 'm'), '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        createInterface({ input: proc.stdout! }).on('line', (l) => l.startsWith('gfs-ready ') && resolve(l.slice(10)));
        proc.once('exit', () => reject(new Error('master exited')));
      });
      proc.stderr!.destroy(); // as `gfs master 2>&1 | head -1` does once head has its line
      // Something to log into the closed pipe (a chunkserver coming and going), then still an answer.
      const peer = await connect<MasterApi>(url, { maxFrameBytes: 1 << 20, timeoutMs: 5000, log: { info() {}, warn() {}, debug() {} } });
      await peer.call('register', { id: 'cs-test', address: '127.0.0.1:9', chunks: [], freeBytes: 0, usedBytes: 0 });
      peer.close();
      expect((await sh(`${gfs} status ${url}`)).code).toBe(0);
      const cpuBefore = await sh(`awk '{print $14 + $15}' /proc/${proc.pid}/stat`);
      await new Promise((r) => setTimeout(r, 1000));
      const cpuAfter = await sh(`awk '{print $14 + $15}' /proc/${proc.pid}/stat`);
      // Idle, not spinning on the write errors (it burnt a whole CPU: 100 ticks a second).
      expect(Number(cpuAfter.stdout) - Number(cpuBefore.stdout)).toBeLessThan(50);
      const exited = new Promise<[number | null, string | null]>((r) => proc.once('exit', (code, sig) => r([code, sig])));
      proc.kill('SIGTERM');
      // Exit 0 is a clean stop; the 15 s emergency exit says 1.
      expect(await exited).toEqual([0, null]);
    } finally {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    }
  });

  it('exits non-zero with a one-line reason on bad arguments', async () => {
    for (const args of ['master', 'master --data /tmp/x --listen nonsense', 'chunkserver --data /tmp/x --master nothing-like-a-url', 'mount', 'frobnicate', 'master --data /tmp/x --chunk-size 1000']) {
      const r = await sh(`${gfs} ${args}`);
      expect(r.code, args).not.toBe(0);
      expect(r.stderr.trim().length, args).toBeGreaterThan(0);
    }
  });

  it('exits non-zero with one line when the master cannot be reached', async () => {
    const d = await tmp();
    const cs = await sh(`${gfs} chunkserver --data ${d}/cs --master ws://127.0.0.1:1 --listen 127.0.0.1:0`);
    expect(cs.code).not.toBe(0);
    expect(cs.stderr.trim().split('\n')).toHaveLength(1);
    expect(cs.stderr).toMatch(/master/);
    await ok(`mkdir -p ${d}/mnt`);
    const m = await sh(`${gfs} mount ws://127.0.0.1:1 ${d}/mnt`);
    expect(m.code).not.toBe(0);
    expect(m.stderr.trim().split('\n')).toHaveLength(1);
    const st = await sh(`${gfs} status ws://127.0.0.1:1`);
    expect(st.code).not.toBe(0);
  });

  it('gfs up: SIGTERM unmounts and stops everything; the next run finds the same files', async () => {
    const d = await tmp();
    const mnt = join(d, 'mnt');
    const run = async () => {
      const proc = spawn(process.execPath, [join(root, 'dist/cli.js'), 'up', mnt, '--data', join(d, 'data'), '--chunk-size', '4M'], { stdio: ['ignore', 'pipe', 'pipe'] });
      proc.stderr!.resume();
      const ready = await new Promise<string>((resolve, reject) => {
        createInterface({ input: proc.stdout! }).on('line', (l) => l.startsWith('gfs-ready') && resolve(l));
        proc.once('exit', (code) => reject(new Error(`gfs up exited ${code}`)));
        setTimeout(() => reject(new Error('gfs up not ready in 60 s')), 60_000);
      });
      const url = ready.split(' ')[2];
      const children = (await ok(`ps -o pid= --ppid ${proc.pid}`)).trim().split(/\s+/).map(Number);
      return { proc, url, children };
    };
    const first = await run();
    try {
      expect(first.children.length).toBe(5); // master, 3 chunkservers, mount
      await ok(`echo kept > ${mnt}/f && mkdir ${mnt}/dir`);
      const st = await ok(`${gfs} status ${first.url}`);
      expect(st.match(/127\.0\.0\.1:\d+\s+yes/g)?.length).toBe(3);
    } finally {
      const exited = new Promise<number | null>((r) => first.proc.once('exit', (code) => r(code)));
      first.proc.kill('SIGTERM');
      expect(await exited).toBe(0);
    }
    expect(await readFile('/proc/mounts', 'utf8')).not.toContain(mnt);
    for (const pid of first.children) expect((await sh(`kill -0 ${pid}`)).code).not.toBe(0);

    const second = await run();
    try {
      expect(await ok(`cat ${mnt}/f`)).toBe('kept\n');
      expect((await ok(`stat -c %F ${mnt}/dir`)).trim()).toBe('directory');
    } finally {
      const exited = new Promise((r) => second.proc.once('exit', r));
      second.proc.kill('SIGTERM');
      await exited;
    }
    expect(await readFile('/proc/mounts', 'utf8')).not.toContain(mnt);
  });
});
