// Small file helpers shared by the store and incoming replicas, on descriptors.
//
// Reads and writes up to SYNC_IO_MAX bytes are made synchronously: they copy into or out of the
// page cache in microseconds, while a thread-pool round trip costs tens to hundreds of them once
// a few processes share the cores (the latency of every small write, append and random read).
// Larger transfers, fsync and truncate go through the thread pool so the event loop keeps
// serving meanwhile.

import { fdatasync, fsync, ftruncate, read, readSync, write, writeSync } from 'node:fs';
import { open, unlink } from 'node:fs/promises';
import { promisify } from 'node:util';

const SYNC_IO_MAX = 256 * 1024;
const writeAsync = promisify(write);
const readAsync = promisify(read);
export const syncFd = promisify(fsync);
export const datasyncFd = promisify(fdatasync);
export const truncateFd = promisify(ftruncate);

export async function writeAll(fd: number, data: Uint8Array, pos: number): Promise<void> {
  const small = data.length <= SYNC_IO_MAX;
  for (let at = 0; at < data.length; ) {
    at += small ? writeSync(fd, data, at, data.length - at, pos + at) : (await writeAsync(fd, data, at, data.length - at, pos + at)).bytesWritten;
  }
}

/** Read into buf from pos until it is full or the file ends; the bytes read. */
export async function readAll(fd: number, buf: Buffer, pos: number): Promise<number> {
  const small = buf.length <= SYNC_IO_MAX;
  let got = 0;
  while (got < buf.length) {
    const n = small ? readSync(fd, buf, got, buf.length - got, pos + got) : (await readAsync(fd, buf, got, buf.length - got, pos + got)).bytesRead;
    if (n === 0) break;
    got += n;
  }
  return got;
}

export async function writeDurably(path: string, data: Uint8Array): Promise<void> {
  const fh = await open(path, 'w');
  try {
    await writeAll(fh.fd, data, 0);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export async function unlinkQuietly(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch {
    // Already gone.
  }
}
