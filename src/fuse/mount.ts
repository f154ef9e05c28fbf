// gfs mount: a GfsClient served at a mount point through our fuse-native fork.
// The process serving a mount never touches the mount itself (that would deadlock the kernel).

import { readFile, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { GfsConfig } from '../config.js';
import { GfsClient } from '../client/client.js';
import { logger, type Logger } from '../log.js';
import { alignedBuffer, alignedPoolCounts, currentCaller, FuseMount, waitsOnRequest } from './native/index.js';
import { fuseOps } from './ops.js';
import { IO_BLOCK } from './stat.js';

/**
 * The kernel reads ahead 128 KiB on a FUSE mount (and takes no more from the max_readahead mount
 * option): one or two 128 KiB requests in flight. 1 MiB keeps eight going, which measured best
 * here (4 MiB scattered the requests). Only root may set it; others keep the default.
 */
const READAHEAD_KB = 1024;

async function raiseReadahead(mountpoint: string, kb: number, log: Logger): Promise<void> {
  try {
    // The device number from mountinfo, not from a stat of the mount point: this process must
    // never call into its own mount.
    const target = resolve(mountpoint);
    const line = (await readFile('/proc/self/mountinfo', 'utf8'))
      .split('\n')
      .map((l) => l.split(' '))
      .filter((f) => f[4] === target.replace(/ /g, '\\040'))
      .pop();
    if (line) await writeFile(`/sys/class/bdi/${line[2]}/read_ahead_kb`, String(kb));
  } catch (e) {
    log.debug(`read-ahead left at the kernel's default: ${(e as Error).message}`);
  }
}

export interface MountOptions {
  masterUrl: string;
  mountpoint: string;
  cfg: GfsConfig;
  log?: Logger;
}

export interface RunningMount {
  unmount(): Promise<void>;
}

export async function mountGfs(opts: MountOptions): Promise<RunningMount> {
  const log = opts.log ?? logger('mount');
  const client = new GfsClient(opts.masterUrl, opts.cfg, log, alignedBuffer, waitsOnRequest);
  await client.connect(); // an unreachable master is a start-up error, not a hung mount
  const isRoot = process.getuid?.() === 0;
  const ops = fuseOps(client, currentCaller);
  const fuse = new FuseMount(opts.mountpoint, ops, {
    fsname: `gfs#${opts.masterUrl.replace(/^ws:\/\//, '')}`,
    maxWrite: IO_BLOCK,
    maxRead: IO_BLOCK,
    // The kernel keeps names and attributes as long as the client's AttrCache does (a stat may be
    // that stale, as on NFS). Without it every path walk asks for each directory's attributes
    // (default_permissions checks them): measured 11 round trips into JS per entry of `ls -lR`.
    // Close-to-open still holds: open asks the master afresh and drops the kernel's copy (the
    // binding's fn_open), so a read past the size it knew asks again.
    attrTimeout: opts.cfg.attrCacheMs / 1000,
    entryTimeout: 1,
    negativeTimeout: 0,
    allowOther: isRoot,
    defaultPermissions: true,
    useIno: true, // st_ino is the master's inode number: hard links share it (git clone --local checks)
    clearsSetId: true, // ops.ts (writes, truncates) and the master (chown)
    pinThreads: opts.cfg.pinFuseThreads > 0,
    readdirPlus: opts.cfg.readdirPlus > 0,
    busyPollUs: opts.cfg.busyPollUs,
    onRequest: (pid) => client.requestBegun(pid),
    onAnswered: () => client.requestAnswered(),
  });
  try {
    await fuse.mount();
  } catch (e) {
    client.close();
    throw e;
  }
  await raiseReadahead(opts.mountpoint, READAHEAD_KB, log);
  log.info(`mounted ${opts.masterUrl} at ${opts.mountpoint}`);
  return {
    async unmount() {
      await fuse.unmount();
      await client.settled(); // unlinks answered ahead of the master reach it before we go
      client.close();
      const pool = alignedPoolCounts();
      log.debug(`aligned read buffers: ${pool.reused} reused, ${pool.made} made`);
      log.info(`unmounted ${opts.mountpoint}`);
    },
  };
}
