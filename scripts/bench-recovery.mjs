// The body of scripts/bench-recovery (see there). Talks to the daemons only through the gfs CLI
// and the master's status request, as an operator would.

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync, statfsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = join(root, 'dist/cli.js');
const { connect } = await import(join(root, 'dist/protocol/rpc.js'));
const { logger } = await import(join(root, 'dist/log.js'));

const opt = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
let gb = Number(opt('gb', '4'));
const servers = Number(opt('chunkservers', '5'));
const copies = opt('copies-per-server', '2');
const chunkSize = opt('chunk-size', '64M');
const LEASE_MS = 5000;
const tunables = ['--chunk-size', chunkSize, '--lease-ms', String(LEASE_MS), '--copies-per-server', copies, '--heartbeat-ms', '1000', '--dead-after-ms', '10000'];

const base = '/var/tmp';
const free = statfsSync(base).bavail * statfsSync(base).bsize;
// Three replicas, plus the copies made during recovery, plus room to spare.
const fit = Math.floor(free / 1e9 / 4.5);
if (fit < gb) {
  console.log(`bench-recovery: only ${(free / 1e9).toFixed(0)} GB free under ${base}: writing ${fit} GB instead of ${gb}`);
  gb = fit;
}
if (gb < 1) throw new Error('not enough disk space for the benchmark');

const work = mkdtempSync(join(base, 'gfs-bench-recovery.'));
const mnt = join(work, 'mnt');
mkdirSync(mnt);
const procs = [];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function start(name, args) {
  const proc = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const log = [];
  createInterface({ input: proc.stderr }).on('line', (l) => log.push(l));
  const ready = new Promise((resolve, reject) => {
    createInterface({ input: proc.stdout }).on('line', (l) => {
      const m = /^gfs-ready (.*)$/.exec(l);
      if (m) resolve(m[1]);
    });
    proc.once('exit', (code, sig) => reject(new Error(`${name} exited (${sig ?? code}):\n${log.slice(-20).join('\n')}`)));
  });
  const d = { name, proc, ready, log };
  procs.push(d);
  return d;
}

async function cleanup() {
  for (const d of [...procs].reverse()) {
    if (d.proc.exitCode === null && d.proc.signalCode === null) {
      d.proc.kill('SIGTERM');
      await Promise.race([new Promise((r) => d.proc.once('exit', r)), sleep(15_000)]);
      if (d.proc.exitCode === null && d.proc.signalCode === null) d.proc.kill('SIGKILL');
    }
  }
  try {
    execFileSync('fusermount', ['-u', mnt], { stdio: 'ignore' });
  } catch {}
  rmSync(work, { recursive: true, force: true });
}
process.on('SIGINT', () => cleanup().then(() => process.exit(130)));

try {
  const master = start('master', ['master', '--data', join(work, 'master'), '--listen', '127.0.0.1:0', ...tunables]);
  const url = await master.ready;
  const cs = [];
  for (let i = 0; i < servers; i++) cs.push(start(`cs${i + 1}`, ['chunkserver', '--data', join(work, `cs${i + 1}`), '--master', url, '--listen', '127.0.0.1:0', ...tunables]));
  const addresses = await Promise.all(cs.map((d) => d.ready));
  await start('mount', ['mount', url, mnt, ...tunables]).ready;
  const peer = await connect(url, { maxFrameBytes: 20 * 1024 * 1024, timeoutMs: 30_000, log: logger('bench') });
  const status = () => peer.call('status', {});

  const files = gb * 4; // 256 MB each
  console.log(`bench-recovery: ${servers} chunkservers, ${chunkSize} chunks, replication 3, ${copies} copies per server at a time; writing ${gb} GB`);
  const w0 = Date.now();
  execFileSync('bash', ['-c', `for i in $(seq 1 ${files}); do dd if=/dev/urandom of=${mnt}/f$i bs=4M count=64 status=none || exit 1; done`], { stdio: 'inherit' });
  console.log(`  written in ${((Date.now() - w0) / 1000).toFixed(1)} s`);
  // Every chunk at 3 replicas, and no lease left that would hold a copy back.
  for (;;) {
    const s = await status();
    if (s.underReplicated === 0 && s.replicationsInFlight === 0 && s.movesInFlight === 0) break;
    await sleep(500);
  }
  await sleep(LEASE_MS + 1000);

  const before = await status();
  const victim = [...before.chunkservers].sort((a, b) => b.chunks - a.chunks)[0];
  const d = cs[addresses.indexOf(`ws://${victim.address}`)];
  console.log(`  killing ${victim.address} (kill -9): ${victim.chunks} replicas, ${(victim.usedBytes / 1e6).toFixed(0)} MB`);
  const t0 = Date.now();
  d.proc.kill('SIGKILL');
  let noticed = 0;
  let s;
  for (;;) {
    s = await status();
    const dead = s.chunkservers.find((c) => c.address === victim.address);
    if (!noticed && dead && !dead.alive) noticed = Date.now() - t0;
    if (noticed && s.underReplicated === 0 && s.lost === 0) break;
    await sleep(100);
  }
  const ms = Date.now() - t0;
  const mb = victim.usedBytes / 1e6;
  console.log(`  master noticed the death after ${noticed} ms`);
  console.log(`  time to full replication: ${(ms / 1000).toFixed(1)} s for ${victim.chunks} chunks (${mb.toFixed(0)} MB)`);
  console.log(`  recovery rate: ${(mb / (ms / 1000)).toFixed(0)} MB/s`);
  peer.close();
} finally {
  await cleanup();
}
