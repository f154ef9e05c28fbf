// A chunkserver: stores replicas (store.ts), serves the data API to clients and peers
// (datapath.ts), obeys the master (control.ts, masterlink.ts, replicator.ts). This file only
// wires the parts together and owns start-up and shut-down order.

import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { hostname } from 'node:os';
import { framePayloadBytes, type GfsConfig } from '../config.js';
import { GfsError, asGfsError } from '../protocol/errors.js';
import type { ChunkserverDataApi, MasterCommand } from '../protocol/messages.js';
import { PeerPool } from '../protocol/pool.js';
import { RpcServer } from '../protocol/rpc.js';
import { logger, type Logger } from '../log.js';
import { controlHandlers } from './control.js';
import { DataPath } from './datapath.js';
import { idFile, loadOrCreateId } from './identity.js';
import { Leases } from './leases.js';
import { MasterLink } from './masterlink.js';
import { PushBuffer } from './pushbuffer.js';
import { Replicator } from './replicator.js';
import { Scrubber } from './scrubber.js';
import { ChunkStore } from './store.js';
import { addressesField, handleField, reportsField, versionField } from './validate.js';

export interface ChunkserverOptions {
  dataDir: string;
  /** The master as "host:port" or "ws://host:port". */
  masterUrl: string;
  /** Interface to listen on; also the host part of the address clients dial (a wildcard becomes the hostname). */
  host: string;
  /** 0: the OS picks one. */
  port: number;
  cfg: GfsConfig;
  log?: Logger;
}

export interface Chunkserver {
  /** "host:port" as clients dial it. */
  address: string;
  /** Persistent id (kept in <dataDir>/id). */
  id: string;
  stop(): Promise<void>;
}

/** Pushed data kept in memory at most (bytes) and for how long. */
const PUSH_BUFFER_BYTES = 512 * 1024 * 1024;
const PUSH_TTL_MS = 60_000;
/** Replication reads this much per request (clipped to what fits in a frame). */
const REPLICATION_PIECE = 4 * 1024 * 1024;

export async function startChunkserver(opts: ChunkserverOptions): Promise<Chunkserver> {
  const { cfg } = opts;
  const log = opts.log ?? logger('chunkserver');
  let id: string;
  let store: ChunkStore;
  try {
    await mkdir(opts.dataDir, { recursive: true });
    id = await loadOrCreateId(opts.dataDir);
    store = await ChunkStore.open({ dataDir: opts.dataDir, blockSize: cfg.checksumBlock, log });
  } catch (e) {
    const err = asGfsError(e);
    throw new GfsError(err.code, `chunkserver data directory ${opts.dataDir}: ${err.message}`);
  }

  let chunkSize = cfg.chunkSize; // until the master tells us
  let address = '';
  const maxReadBytes = Math.max(cfg.checksumBlock, framePayloadBytes(cfg));
  const leases = new Leases();
  const pushes = new PushBuffer({ maxBytes: PUSH_BUFFER_BYTES, ttlMs: PUSH_TTL_MS });
  const sweeper = setInterval(() => pushes.sweep(), 10_000);
  sweeper.unref();
  const pool = new PeerPool({ maxFrameBytes: cfg.maxFrameBytes, timeoutMs: cfg.rpcTimeoutMs, log });
  let link: MasterLink | null = null;
  const data = new DataPath({
    store, leases, pushes, pool, log, chunkSize: () => chunkSize, self: () => address, maxReadBytes,
    identity: { id, idPath: resolve(idFile(opts.dataDir)) },
    extendFile: (ino, size, mtime) => link?.extend(ino, size, mtime) ?? Promise.reject(new GfsError('EUNAVAIL', 'not connected to the master')),
  });

  const release = async () => {
    clearInterval(sweeper);
    pool.closeAll();
    pushes.clear();
    await store.close();
  };

  let server: RpcServer<ChunkserverDataApi>;
  try {
    server = await RpcServer.listen<ChunkserverDataApi>(
      { host: opts.host, port: opts.port, maxFrameBytes: cfg.maxFrameBytes, timeoutMs: cfg.rpcTimeoutMs, log },
      data.handlers(),
    );
  } catch (e) {
    await release();
    throw new GfsError('EUNAVAIL', `chunkserver cannot listen on ${opts.host}:${opts.port}: ${(e as Error).message}`);
  }
  address = dialAddress(opts.host, server.address);

  const replicator = new Replicator({
    store,
    pool,
    log,
    chunkSize: () => chunkSize,
    self: () => address,
    pieceBytes: Math.min(REPLICATION_PIECE, maxReadBytes),
    maxConcurrent: Math.max(1, cfg.copiesPerServer),
    onInstalled: () => void link?.heartbeatNow(),
  });

  const onCommand = (cmd: MasterCommand): void => {
    if (cmd?.op === 'delete') {
      for (const [h, v] of reportsField(cmd.chunks)) {
        // Only replicas at or below the named version: a newer one was re-leased meanwhile.
        store.remove(h, v).then(
          (removed) => removed && leases.drop(h),
          (e) => log.warn(`delete chunk ${h}: ${asGfsError(e).message}`),
        );
      }
    } else if (cmd?.op === 'replicate') {
      replicator.enqueue({
        handle: handleField(cmd.handle),
        version: versionField(cmd.version),
        from: addressesField(cmd.from, 'from'),
      });
    } else {
      log.warn(`unknown master command ${JSON.stringify((cmd as { op?: unknown })?.op)}`);
    }
  };

  link = new MasterLink({
    url: opts.masterUrl,
    id,
    address,
    cfg,
    log,
    store,
    leases,
    control: controlHandlers(store, leases),
    takeLoad: () => data.takeLoad(),
    replicating: () => replicator.handles(),
    onRegistered: (reply) => {
      if (reply.chunkSize % cfg.checksumBlock !== 0) {
        log.warn(`master chunk size ${reply.chunkSize} is not a multiple of the ${cfg.checksumBlock}-byte checksum block`);
      }
      chunkSize = reply.chunkSize;
    },
    onCommand,
  });
  store.onCorrupt = (h) => link?.reportBad(h);
  const scrubber = new Scrubber(store, cfg.scrubIntervalMs, cfg.scrubIdleMs, log);

  try {
    await link.start();
  } catch (e) {
    link.stop();
    await server.close();
    await release();
    throw new GfsError('EUNAVAIL', `chunkserver ${address} cannot register with the master at ${opts.masterUrl}: ${asGfsError(e).message}`);
  }
  log.info(`chunkserver ${id} serving ${address} (${store.count} replicas in ${opts.dataDir})`);
  scrubber.start();

  let stopping: Promise<void> | null = null;
  return {
    address,
    id,
    stop: () =>
      (stopping ??= (async () => {
        link.stop();
        await server.close();
        pool.closeAll(); // in-flight replication reads fail now instead of timing out
        await replicator.stop();
        await scrubber.stop();
        await release();
      })()),
  };
}

/** The address clients dial: the listen host (a wildcard means "this machine") and the real port. */
function dialAddress(host: string, bound: string): string {
  const port = bound.slice(bound.lastIndexOf(':') + 1);
  let h = host === '' || host === '0.0.0.0' || host === '::' ? hostname() : host;
  if (h.includes(':') && !h.startsWith('[')) h = `[${h}]`;
  return `${h}:${port}`;
}
