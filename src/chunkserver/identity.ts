// A chunkserver is known to the master by a random id kept in <dataDir>/id, not by its address:
// ports are picked by the OS and may differ between runs, but the replicas on disk stay the same.

import { randomBytes } from 'node:crypto';
import { open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';

const ID_FORMAT = /^[A-Za-z0-9_-]{1,128}$/;

/** The file that holds a chunkserver's id (short-circuit readers read it too: client/local-reads.ts). */
export const idFile = (dataDir: string): string => join(dataDir, 'id');

/** The id stored in dataDir, created (durably: written, fsync'd, renamed) on first start. */
export async function loadOrCreateId(dataDir: string): Promise<string> {
  const path = idFile(dataDir);
  try {
    const id = (await readFile(path, 'utf8')).trim();
    if (!ID_FORMAT.test(id)) throw new Error(`${path} does not hold a chunkserver id`);
    return id;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const id = `cs-${randomBytes(8).toString('hex')}`;
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(`${id}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  const dir = await open(dataDir, 'r');
  await dir.sync().catch(() => {});
  await dir.close();
  return id;
}
