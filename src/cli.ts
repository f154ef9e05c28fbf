#!/usr/bin/env node
// gfs: one command per role. Daemons run in the foreground, log to stderr, print a readiness line
// on stdout, and stop cleanly on SIGTERM.

import './v8-flags.js'; // first: before any other module's code runs
import { Command, InvalidArgumentError, Option } from 'commander';
import { configFrom, defaults, MiB, type GfsConfig } from './config.js';
import { announceReady, fail, runUntilSignal } from './daemon.js';
import { logger } from './log.js';

function parseSize(v: string): number {
  const m = /^(\d+)\s*(k|kib|m|mib|g|gib)?$/i.exec(v.trim());
  if (!m) throw new InvalidArgumentError(`not a size: ${v} (e.g. 65536, 64M, 4MiB)`);
  const unit = (m[2] ?? '').toLowerCase()[0];
  return Number(m[1]) * (unit === 'k' ? 1024 : unit === 'm' ? MiB : unit === 'g' ? 1024 * MiB : 1);
}

function parseCount(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(`not a whole number: ${v}`);
  return n;
}

function parseListen(v: string): { host: string; port: number } {
  const m = /^(.+):(\d+)$/.exec(v);
  if (!m || Number(m[2]) > 65535) throw new InvalidArgumentError(`expected HOST:PORT, got ${v}`);
  return { host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

function parseUrl(v: string): string {
  const url = v.startsWith('ws://') ? v : `ws://${v}`;
  if (!/^ws:\/\/[^/:]+:\d+\/?$/.test(url)) throw new InvalidArgumentError(`expected ws://HOST:PORT, got ${v}`);
  return url.replace(/\/$/, '');
}

/** Options every role shares: the cluster's tunables (see src/config.ts for what each means). */
const tunables: Array<[flag: string, key: keyof GfsConfig, help: string, parse: (v: string) => number]> = [
  ['--chunk-size <size>', 'chunkSize', 'bytes per chunk (master)', parseSize],
  ['--replication <n>', 'replication', 'replicas per chunk (master)', parseCount],
  ['--lease-ms <ms>', 'leaseMs', 'primary lease length', parseCount],
  ['--chunk-pool-size <n>', 'chunkPoolSize', 'new chunks placed ahead of need, 0 = none (master)', parseCount],
  ['--heartbeat-ms <ms>', 'heartbeatMs', 'chunkserver heartbeat interval (master)', parseCount],
  ['--dead-after-ms <ms>', 'deadAfterMs', 'silence after which a chunkserver is dead (master)', parseCount],
  ['--rpc-timeout-ms <ms>', 'rpcTimeoutMs', 'time-out of one request', parseCount],
  ['--client-retry-ms <ms>', 'clientRetryMs', 'how long a mount retries before EIO', parseCount],
  ['--checkpoint-every <n>', 'checkpointEvery', 'op-log records after which the master starts a new log and writes a checkpoint in the background (master)', parseCount],
  ['--trash-grace-ms <ms>', 'trashGraceMs', 'how long deleted files stay restorable in the trash (master)', parseCount],
  ['--copies-per-server <n>', 'copiesPerServer', 'chunk copies one chunkserver receives at a time', parseCount],
  ['--scrub-interval-ms <ms>', 'scrubIntervalMs', 'background checksum scan: one idle replica per interval, 0 = off (chunkserver)', parseCount],
  ['--local-read-bytes <size>', 'localReadBytes', 'reads of at least this size from a chunkserver on this host read its replica files directly, 0 = never (mount)', parseSize],
  ['--attr-cache-ms <ms>', 'attrCacheMs', 'how long a mount trusts attributes and listings it has seen (mount)', parseCount],
  ['--write-behind-files <n>', 'writeBehindFiles', 'closed files whose writes a mount pushes in the background (under a write delegation), at most this many at once; 0 = every close waits (mount)', parseCount],
  ['--write-behind-hold-ms <ms>', 'writeBehindHoldMs', "how long closed files' writes may wait while the mount's callers keep it busy, 0 = they go at once (mount)", parseCount],
  ['--write-behind-quiet-ms <ms>', 'writeBehindQuietMs', "callers that sent a mount nothing this long have paused: what it held back goes (mount)", parseCount],
  ['--write-behind-hold-bytes <size>', 'writeBehindHoldBytes', 'most bytes of closed files held back that way (mount)', parseSize],
  ['--pin-fuse-threads <0|1>', 'pinFuseThreads', "1 = while requests are small, a mount's FUSE threads and JS thread share one CPU (fewer cross-CPU wake-ups), 0 = never (mount)", parseCount],
  ['--readdir-plus <0|1>', 'readdirPlus', "1 = listings carry every entry's attributes to the kernel (READDIRPLUS), so ls -l needs no lookup per entry, 0 = plain listings (mount)", parseCount],
  ['--busy-poll-us <us>', 'busyPollUs', "after each request, a mount's idle CPUs poll this long instead of halting (lowest-priority threads), so the next request's wake-ups are quick, 0 = never (mount)", parseCount],
  ['--deferred-changes <n>', 'deferredChanges', 'unlinks, and creates in directories it made, that a mount answers ahead of the master, at most this many at once; 0 = every unlink and create waits for the master (mount)', parseCount],
  ['--scrub-idle-ms <ms>', 'scrubIdleMs', 'a replica unused this long is idle, due for the scan (chunkserver)', parseCount],
];

/** Old names of tunables, still taken (start scripts use them): old flag's option name → key. */
const renamed: Array<[flag: string, option: string, key: keyof GfsConfig]> = [['--deferred-unlinks <n>', 'deferredUnlinks', 'deferredChanges']];

function withTunables(cmd: Command): Command {
  for (const [flag, key, help, parse] of tunables) {
    cmd.addOption(new Option(flag, `${help} [default ${defaults[key]}]`).argParser(parse));
  }
  for (const [flag, , key] of renamed) cmd.addOption(new Option(flag, `old name of the option for ${key}`).argParser(parseCount).hideHelp());
  return cmd;
}

/** A tunable given by its old name counts as given by its new one. */
function takeRenamed(opts: Record<string, unknown>): void {
  for (const [, option, key] of renamed) if (typeof opts[option] === 'number' && opts[key] === undefined) opts[key] = opts[option];
}

function configOf(opts: Record<string, unknown>): GfsConfig {
  takeRenamed(opts);
  const partial: Partial<GfsConfig> = {};
  for (const [, key] of tunables) if (typeof opts[key] === 'number') (partial as Record<string, number>)[key] = opts[key] as number;
  try {
    return configFrom(partial);
  } catch (e) {
    return fail((e as Error).message);
  }
}

/** The tunables given on this command line, to hand on to child daemons. */
function tunableArgs(opts: Record<string, unknown>): string[] {
  takeRenamed(opts);
  const out: string[] = [];
  for (const [flag, key] of tunables) if (typeof opts[key] === 'number') out.push(flag.split(' ')[0], String(opts[key]));
  return out;
}

const program = new Command('gfs').description('A distributed file system in the design of the Google File System').showHelpAfterError();

withTunables(program.command('master'))
  .description('run the master: namespace, chunk map, leases')
  .requiredOption('--data <dir>', 'where the op log and checkpoints live')
  .option('--listen <host:port>', 'address to serve on', parseListen, { host: '127.0.0.1', port: 0 })
  .action(async (opts) => {
    const { startMaster } = await import('./master/server.js');
    const log = logger('master');
    const m = await startMaster({ dataDir: opts.data, ...opts.listen, cfg: configOf(opts), log }).catch((e) => fail(`master: ${(e as Error).message}`));
    runUntilSignal(log, () => m.stop());
    announceReady(`ws://${m.address}`);
  });

withTunables(program.command('chunkserver'))
  .description('run a chunkserver: stores chunk replicas')
  .requiredOption('--data <dir>', 'where the chunk files live')
  .requiredOption('--master <url>', 'the master, ws://HOST:PORT', parseUrl)
  .option('--listen <host:port>', 'address to serve on', parseListen, { host: '127.0.0.1', port: 0 })
  .action(async (opts) => {
    const { startChunkserver } = await import('./chunkserver/index.js');
    const log = logger('chunkserver');
    const cs = await startChunkserver({ dataDir: opts.data, masterUrl: opts.master, ...opts.listen, cfg: configOf(opts), log }).catch((e) =>
      fail(`chunkserver: ${(e as Error).message}`),
    );
    runUntilSignal(log, () => cs.stop());
    announceReady(`ws://${cs.address}`);
  });

withTunables(program.command('mount'))
  .description('mount the file system at MOUNTPOINT')
  .argument('<master>', 'the master, ws://HOST:PORT', parseUrl)
  .argument('<mountpoint>', 'an existing empty directory')
  .action(async (master: string, mountpoint: string, opts) => {
    const { mountGfs } = await import('./fuse/mount.js');
    const log = logger('mount');
    const m = await mountGfs({ masterUrl: master, mountpoint, cfg: configOf(opts), log }).catch((e) => fail(`mount: ${(e as Error).message}`));
    runUntilSignal(log, () => m.unmount());
    announceReady(mountpoint);
  });

withTunables(program.command('up'))
  .description('run a local cluster (master, chunkservers, mount) in the foreground')
  .argument('<mountpoint>', 'where to mount it (created if missing)')
  .option('--chunkservers <n>', 'how many chunkservers', parseCount, 3)
  .option('--data <dir>', 'where all data lives', './.gfs')
  .action(async (mountpoint: string, opts) => {
    const { up } = await import('./up.js');
    await up(mountpoint, { data: opts.data, chunkservers: opts.chunkservers, configArgs: tunableArgs(opts) });
  });

program
  .command('status')
  .description("print the cluster's health: chunkservers, under-replicated and corrupt chunks")
  .argument('<master>', 'the master, ws://HOST:PORT', parseUrl)
  .option('--json', 'print JSON')
  .action(async (master: string, opts) => {
    const { printStatus } = await import('./status.js');
    await printStatus(master, !!opts.json).catch((e) => fail((e as Error).message));
    process.exit(0);
  });

program
  .command('trash')
  .description('list deleted files that `gfs undelete` can still bring back')
  .argument('<master>', 'the master, ws://HOST:PORT', parseUrl)
  .option('--json', 'print JSON')
  .action(async (master: string, opts) => {
    const { printTrash } = await import('./admin-cli.js');
    await printTrash(master, !!opts.json).catch((e) => fail((e as Error).message));
    process.exit(0);
  });

program
  .command('undelete')
  .description('bring back the file most recently deleted at PATH, while it is in the trash')
  .argument('<master>', 'the master, ws://HOST:PORT', parseUrl)
  .argument('<path>', 'the path it had, absolute within gfs (e.g. /dir/file)')
  .option('--to <path>', 'restore it under another name')
  .action(async (master: string, path: string, opts) => {
    const { undelete } = await import('./admin-cli.js');
    await undelete(master, path, opts.to).catch((e) => fail((e as Error).message));
    process.exit(0);
  });

program
  .command('drain')
  .description('move every replica off a chunkserver before it is retired (it takes no new ones)')
  .argument('<master>', 'the master, ws://HOST:PORT', parseUrl)
  .argument('<address>', 'the chunkserver, HOST:PORT as `gfs status` shows it')
  .option('--wait', 'return only once it holds no replica and no chunk is under-replicated')
  .option('--cancel', 'take it back into service instead')
  .action(async (master: string, address: string, opts) => {
    const { drain } = await import('./admin-cli.js');
    await drain(master, address.replace(/^ws:\/\//, ''), { wait: !!opts.wait, cancel: !!opts.cancel }).catch((e) => fail((e as Error).message));
    process.exit(0);
  });

program.parseAsync().catch((e) => fail((e as Error).message));
