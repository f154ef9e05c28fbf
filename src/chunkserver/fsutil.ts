// Small promise-based file helpers shared by the store and incoming replicas. All asynchronous:
// nothing on the request path blocks the event loop on the disk.

import { open, unlink, type FileHandle } from 'node:fs/promises';

export async function writeAll(fh: FileHandle, data: Uint8Array, pos: number): Promise<void> {
  for (let at = 0; at < data.length; ) {
    const { bytesWritten } = await fh.write(data, at, data.length - at, pos + at);
    at += bytesWritten;
  }
}

/** Read into buf from pos until it is full or the file ends; the bytes read. */
export async function readAll(fh: FileHandle, buf: Buffer, pos: number): Promise<number> {
  let got = 0;
  while (got < buf.length) {
    const { bytesRead } = await fh.read(buf, got, buf.length - got, pos + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
}

export async function writeDurably(path: string, data: Uint8Array): Promise<void> {
  const fh = await open(path, 'w');
  try {
    await writeAll(fh, data, 0);
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
