// gfs up: a whole local cluster in the foreground — one master, N chunkservers, one mount — each a
// child process of this one. Ctrl-C or SIGTERM unmounts and stops them all; the data stays under
// --data, so the next run finds the same files.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { announceReady, READY } from './daemon.js';
import { logger } from './log.js';

const log = logger('up');
const cli = fileURLToPath(new URL('./cli.js', import.meta.url));

interface Child {
  name: string;
  proc: ChildProcess;
  ready: Promise<string>;
}

function start(name: string, args: string[]): Child {
  const proc = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const ready = new Promise<string>((resolveReady, reject) => {
    const lines = createInterface({ input: proc.stdout! });
    lines.on('line', (line) => {
      if (line.startsWith(READY + ' ')) resolveReady(line.slice(READY.length + 1));
    });
    proc.once('exit', (code, sig) => reject(new Error(`${name} exited (${sig ?? code}) before it was ready`)));
  });
  proc.once('exit', (code, sig) => log.info(`${name} (pid ${proc.pid}) exited: ${sig ?? code}`));
  return { name, proc, ready };
}

function stopChild(c: Child): Promise<void> {
  return new Promise((done) => {
    if (c.proc.exitCode !== null || c.proc.signalCode !== null) return done();
    c.proc.once('exit', () => done());
    c.proc.kill('SIGTERM');
    setTimeout(() => c.proc.kill('SIGKILL'), 20_000).unref();
  });
}

export async function up(mountpoint: string, opts: { data: string; chunkservers: number; configArgs: string[] }): Promise<void> {
  const data = resolve(opts.data);
  const mnt = resolve(mountpoint);
  await mkdir(mnt, { recursive: true });
  const children: Child[] = [];
  let stopping = false;
  const stopAll = async () => {
    if (stopping) return;
    stopping = true;
    // The mount first (it unmounts), then the chunkservers, then the master.
    for (const c of [...children].reverse()) await stopChild(c);
    process.exit(0);
  };
  process.on('SIGINT', () => void stopAll());
  process.on('SIGTERM', () => void stopAll());
  try {
    const master = start('master', ['master', '--data', join(data, 'master'), '--listen', '127.0.0.1:0', ...opts.configArgs]);
    children.push(master);
    const url = await master.ready;
    const servers = Array.from({ length: opts.chunkservers }, (_, i) =>
      start(`chunkserver ${i + 1}`, ['chunkserver', '--data', join(data, `chunkserver${i + 1}`), '--master', url, '--listen', '127.0.0.1:0', ...opts.configArgs]),
    );
    children.push(...servers);
    await Promise.all(servers.map((s) => s.ready));
    const mount = start('mount', ['mount', url, mnt, ...opts.configArgs]);
    children.push(mount);
    await mount.ready;
    log.info(`gfs is up: master ${url}, ${opts.chunkservers} chunkservers, data under ${data}, mounted at ${mnt} (Ctrl-C stops it)`);
    announceReady(`${mnt} ${url}`);
  } catch (e) {
    log.warn((e as Error).message);
    await stopAll();
  }
}
