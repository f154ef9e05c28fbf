// Small file helpers shared by the store and incoming replicas, on descriptors.
//
// Writes up to SYNC_IO_MAX bytes are made synchronously: they copy into the page cache in
// microseconds, while a thread-pool round trip costs tens to hundreds of them once a few
// processes share the cores (the latency of every small write and append). Reads, larger writes,
// fsync and truncate go through the thread pool so the event loop keeps serving meanwhile.

import { fdatasync, fsync, ftruncate, read, readSync, write, writeSync } from 'node:fs';
import { open, unlink } from 'node:fs/promises';
import { promisify } from 'node:util';

const SYNC_IO_MAX = 256 * 1024;
/** Reads up to this size (a few checksum blocks: a random read) are made synchronously. */
const SYNC_READ_MAX = 16 * 1024;
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

/**
 * Read into buf from pos until it is full or the file ends; the bytes read. Through the thread
 * pool unless it is at most SYNC_READ_MAX: a read may have to wait for the disk, and a long
 * synchronous one holds up every other request (measured: sequential reads after a cache drop
 * 545 -> 400 MB/s when reads up to 256 KiB were synchronous), but a random 4 KiB read waits
 * ~55 µs for the disk here, less than the thread pool's round trip.
 */
export async function readAll(fd: number, buf: Buffer, pos: number): Promise<number> {
  const small = buf.length <= SYNC_READ_MAX;
  let got = 0;
  while (got < buf.length) {
    const bytesRead = small ? readSync(fd, buf, got, buf.length - got, pos + got) : (await readAsync(fd, buf, got, buf.length - got, pos + got)).bytesRead;
    if (bytesRead === 0) break;
    got += bytesRead;
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
