// Real gfs daemons for tests: each is a child process of the test (node dist/cli.js ...), on
// 127.0.0.1 with OS-picked ports, data in a temporary directory. Everything started is stopped by
// pid, and every mount unmounted, in stop() — call it from afterAll/afterEach even on failure.

import { afterAll, beforeAll } from 'vitest';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { configFrom } from '../../src/config.js';
import { logger } from '../../src/log.js';
import type { MasterClientApi } from '../../src/protocol/messages.js';
import { connect, type Peer } from '../../src/protocol/rpc.js';

export const root = fileURLToPath(new URL('../..', import.meta.url));
const cli = join(root, 'dist/cli.js');

export interface Daemon {
  name: string;
  proc: ChildProcess;
  /** What its ready line said: a ws:// URL, or the mount point. */
  address: string;
  dataDir: string;
  stderr: string[];
}

export interface Sh {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a shell command (never from the mount-serving process: the mount is a child process). */
export function sh(cmd: string, opts: { cwd?: string; timeoutMs?: number } = {}): Promise<Sh> {
  return new Promise((resolve) => {
    execFile('bash', ['-c', cmd], { cwd: opts.cwd, timeout: opts.timeoutMs ?? 170_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Like sh, but a non-zero exit fails the test with the command's output. */
export async function ok(cmd: string, opts: { cwd?: string; timeoutMs?: number } = {}): Promise<string> {
  const r = await sh(cmd, opts);
  if (r.code !== 0) throw new Error(`command failed (${r.code}): ${cmd}\n${r.stderr}${r.stdout.slice(0, 2000)}`);
  return r.stdout;
}

export interface ClusterOptions {
  chunkservers?: number;
  /** Extra tunables for every daemon, e.g. ['--chunk-size', '4M']. */
  args?: string[];
}

export class TestCluster {
  readonly daemons: Daemon[] = [];
  master!: Daemon;
  chunkservers: Daemon[] = [];
  mounts: Daemon[] = [];
  private constructor(
    readonly dir: string,
    readonly args: string[],
  ) {}

  static async start(opts: ClusterOptions = {}): Promise<TestCluster> {
    const dir = await mkdtemp(join(tmpdir(), 'gfs-test-'));
    const c = new TestCluster(dir, opts.args ?? ['--chunk-size', '4M', '--heartbeat-ms', '500', '--dead-after-ms', '4000', '--lease-ms', '5000']);
    try {
      await c.startMaster();
      for (let i = 0; i < (opts.chunkservers ?? 3); i++) await c.addChunkserver();
    } catch (e) {
      await c.stop();
      throw e;
    }
    return c;
  }

  get url(): string {
    return this.master.address;
  }

  async startMaster(): Promise<Daemon> {
    this.master = await this.spawn('master', ['master', '--data', join(this.dir, 'master'), '--listen', '127.0.0.1:0', ...this.args], join(this.dir, 'master'));
    return this.master;
  }

  async addChunkserver(): Promise<Daemon> {
    const n = this.chunkservers.length + 1;
    const data = join(this.dir, `cs${n}`);
    const d = await this.spawn(`cs${n}`, ['chunkserver', '--data', data, '--master', this.url, '--listen', '127.0.0.1:0', ...this.args], data);
    this.chunkservers.push(d);
    return d;
  }

  /** Start chunkserver i again on its old data dir (after a kill). */
  async restartChunkserver(i: number): Promise<Daemon> {
    const old = this.chunkservers[i];
    const d = await this.spawn(old.name, ['chunkserver', '--data', old.dataDir, '--master', this.url, '--listen', '127.0.0.1:0', ...this.args], old.dataDir);
    this.chunkservers[i] = d;
    return d;
  }

  /** Start the master again on its data dir, on the same port (chunkservers and mounts re-dial it). */
  async restartMaster(): Promise<Daemon> {
    const port = new URL(this.url).port;
    const data = this.master.dataDir;
    this.master = await this.spawn('master', ['master', '--data', data, '--listen', `127.0.0.1:${port}`, ...this.args], data);
    return this.master;
  }

  /** A new mount of the cluster; extraArgs are tunables for this mount only (later ones win). */
  async mount(extraArgs: string[] = []): Promise<string> {
    const mnt = join(this.dir, `mnt${this.mounts.length + 1}`);
    await mkdir(mnt, { recursive: true });
    const d = await this.spawn(`mount${this.mounts.length + 1}`, ['mount', this.url, mnt, ...this.args, ...extraArgs], mnt);
    this.mounts.push(d);
    return mnt;
  }

  /** A direct RPC connection to the master, as a client. */
  async masterPeer(): Promise<Peer<MasterClientApi>> {
    const cfg = configFrom({});
    return connect<MasterClientApi>(this.url, { maxFrameBytes: cfg.maxFrameBytes, timeoutMs: 10_000, log: logger('test') });
  }

  kill(d: Daemon, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    return new Promise((resolve) => {
      if (d.proc.exitCode !== null || d.proc.signalCode !== null) return resolve();
      d.proc.once('exit', () => resolve());
      d.proc.kill(signal);
    });
  }

  /** Unmount every mount and stop every daemon this cluster started, then remove its files. */
  async stop(): Promise<void> {
    for (const m of this.mounts) {
      await Promise.race([this.kill(m, 'SIGTERM'), new Promise((r) => setTimeout(r, 10_000))]);
      await sh(`fusermount -u ${JSON.stringify(m.address)} 2>/dev/null || fusermount -uz ${JSON.stringify(m.address)} 2>/dev/null; true`);
    }
    for (const d of this.daemons) await this.kill(d, 'SIGKILL');
    await rm(this.dir, { recursive: true, force: true }).catch(() => {});
  }

  private spawn(name: string, args: string[], dataDir: string): Promise<Daemon> {
    const proc = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const d: Daemon = { name, proc, address: '', dataDir, stderr: [] };
    this.daemons.push(d);
    createInterface({ input: proc.stderr! }).on('line', (l) => {
      d.stderr.push(l);
      if (d.stderr.length > 500) d.stderr.shift();
      if (process.env.GFS_TEST_LOG) process.stderr.write(`[${name}] ${l}\n`);
    });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} not ready in 30 s:\n${d.stderr.join('\n')}`)), 30_000);
      createInterface({ input: proc.stdout! }).on('line', (line) => {
        const m = /^gfs-ready (.*)$/.exec(line);
        if (m) {
          clearTimeout(timer);
          d.address = m[1];
          resolve(d);
        }
      });
      proc.once('exit', (code, sig) => {
        clearTimeout(timer);
        reject(new Error(`${name} exited (${sig ?? code}) before ready:\n${d.stderr.join('\n')}`));
      });
    });
  }
}

export interface ClusterEnv {
  c: TestCluster;
  /** The mount points, in the order they were mounted. */
  mounts: string[];
  m1: string;
  m2: string;
  /** A directory outside the mounts, for sources and expected copies. */
  scratch: string;
}

/**
 * A cluster with `mounts` mounts for a test file or describe block: started in beforeAll, stopped
 * (unmounted, every process killed) in afterAll. The fields are filled once beforeAll has run.
 */
export function withCluster(opts: ClusterOptions = {}, mounts = 2): ClusterEnv {
  const env = {} as ClusterEnv;
  beforeAll(async () => {
    env.c = await TestCluster.start(opts);
    env.mounts = [];
    for (let i = 0; i < mounts; i++) env.mounts.push(await env.c.mount());
    [env.m1, env.m2] = env.mounts;
    env.scratch = join(env.c.dir, 'scratch');
    await mkdir(env.scratch, { recursive: true });
  });
  afterAll(async () => {
    await env.c?.stop();
  });
  return env;
}
