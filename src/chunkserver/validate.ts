// Field checks for requests. Anything on the wire may be missing, of the wrong type or out of
// range; a bad field is a typed error back to the sender (EPROTO for a wrong type, EINVAL for a
// value out of range), never an exception that escapes a handler or a NaN that reaches the disk.

import { GfsError } from '../protocol/errors.js';
import type { ChunkHandle, ChunkReport, Extent, Mutation, ServerAddress, Timespec } from '../protocol/messages.js';

/** Longest chain or secondaries list we accept (far above any replication goal). */
export const MAX_PEERS = 32;
const MAX_ID_CHARS = 256;
const MAX_ADDRESS_CHARS = 512;

const proto = (msg: string) => new GfsError('EPROTO', msg);

export function handleField(v: unknown, name = 'handle'): ChunkHandle {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw proto(`${name} must be a non-negative integer`);
  return v;
}

export function versionField(v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw proto('version must be a non-negative integer');
  return v;
}

/** An integer in [0, max]; EINVAL (not EPROTO) for a number out of range. */
export function rangeField(v: unknown, name: string, max: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw proto(`${name} must be a number`);
  if (!Number.isInteger(v) || v < 0 || v > max) throw new GfsError('EINVAL', `${name} ${v} out of range [0, ${max}]`);
  return v;
}

export function dataIdField(v: unknown): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_ID_CHARS) throw proto(`dataId must be a string of 1..${MAX_ID_CHARS} chars`);
  return v;
}

export function dataField(v: unknown, max: number): Buffer {
  if (!(v instanceof Uint8Array)) throw proto('data must be binary');
  if (v.length > max) throw new GfsError('EINVAL', `data of ${v.length} bytes exceeds ${max}`);
  return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

export function addressesField(v: unknown, name: string): ServerAddress[] {
  if (!Array.isArray(v) || v.length > MAX_PEERS) throw proto(`${name} must be a list of at most ${MAX_PEERS} addresses`);
  for (const a of v) {
    if (typeof a !== 'string' || a.length === 0 || a.length > MAX_ADDRESS_CHARS) throw proto(`${name} must hold host:port strings`);
  }
  return v as ServerAddress[];
}

export function handlesField(v: unknown, max: number): ChunkHandle[] {
  if (!Array.isArray(v) || v.length > max) throw proto(`handles must be a list of at most ${max} handles`);
  return v.map((h) => handleField(h));
}

export function optionalMsField(v: unknown, name: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw proto(`${name} must be a non-negative number`);
  return v;
}

export function boolField(v: unknown, name: string): boolean {
  if (typeof v !== 'boolean') throw proto(`${name} must be a boolean`);
  return v;
}

/** A mutation as forwarded by a primary; offsets are range-checked against the chunk size. */
export function mutationField(v: unknown, chunkSize: number): Mutation {
  if (typeof v !== 'object' || v === null) throw proto('mutation must be a map');
  const m = v as Record<string, unknown>;
  switch (m.op) {
    case 'write':
      return {
        op: 'write',
        offset: rangeField(m.offset, 'offset', chunkSize),
        dataId: dataIdField(m.dataId),
        ...(m.data !== undefined ? { data: dataField(m.data, chunkSize) } : {}),
        ...(m.extents !== undefined ? { extents: extentsField(m.extents, chunkSize) } : {}),
      };
    case 'pad':
      return { op: 'pad', length: rangeField(m.length, 'length', chunkSize) };
    case 'truncate':
      return { op: 'truncate', length: rangeField(m.length, 'length', chunkSize) };
    default:
      throw proto(`unknown mutation ${JSON.stringify(m.op)}`);
  }
}

/** Pieces of a vectored write: [offset, length] pairs, each inside the chunk. */
export function extentsField(v: unknown, chunkSize: number): Extent[] {
  if (!Array.isArray(v) || v.length === 0 || v.length > 1_000_000) throw proto('extents must be a non-empty list of [offset, length] pairs');
  return v.map((p): Extent => {
    if (!Array.isArray(p) || p.length !== 2) throw proto('extents must hold [offset, length] pairs');
    const offset = rangeField(p[0], 'offset', chunkSize);
    const length = rangeField(p[1], 'length', chunkSize - offset);
    return [offset, length];
  });
}

/** A list of [handle, version] pairs (e.g. a master's delete command). */
export function reportsField(v: unknown, max = 1_000_000): ChunkReport[] {
  if (!Array.isArray(v) || v.length > max) throw proto(`chunks must be a list of at most ${max} [handle, version] pairs`);
  return v.map((p): ChunkReport => {
    if (!Array.isArray(p) || p.length !== 2) throw proto('chunks must hold [handle, version] pairs');
    return [handleField(p[0]), versionField(p[1])];
  });
}

/**
 * An append's { ino, base, mtime? }: the file, the file offset its chunk starts at, and when the
 * client wrote the record (passed on to the master, which checks it).
 */
export function sizeField(v: unknown): { ino: number; base: number; mtime?: Timespec } {
  if (typeof v !== 'object' || v === null) throw proto('size must be { ino, base }');
  const { ino, base, mtime } = v as { ino?: unknown; base?: unknown; mtime?: unknown };
  const checked = { ino: rangeField(ino, 'size.ino', Number.MAX_SAFE_INTEGER), base: rangeField(base, 'size.base', Number.MAX_SAFE_INTEGER) };
  return Array.isArray(mtime) && mtime.length === 2 ? { ...checked, mtime: mtime as Timespec } : checked;
}
