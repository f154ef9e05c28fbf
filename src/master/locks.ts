// The master's lock table: POSIX record locks (fcntl) and BSD locks (flock) of every client, so
// that locks hold across processes and across mounts. Not persisted: a lock lives as long as the
// connection of the client that took it (a mount that dies or loses the master drops its locks,
// like NFS without lock reclaim), and a master restart starts with none.
//
// Semantics follow Linux:
// - posix: byte ranges per owner (a process); a new lock replaces the owner's own locks over its
//   range (splitting them), conflicts only with other owners' overlapping locks where one is a
//   write lock; a waiter that would close a cycle of owners waiting on each other gets EDEADLK.
// - flock: whole file per owner (an open file description); changing the type first drops the
//   owner's old lock, so a failed upgrade leaves none (as flock(2) on Linux).
// - whenever something is released, the waiters that fit now are granted, oldest first; a new
//   request that fits is granted at once even while others wait (Linux is not fair either).

import { GfsError } from '../protocol/errors.js';
import type { HeldLock, LockKind, LockRequest, MasterApi } from '../protocol/messages.js';
import type { Handlers, Peer } from '../protocol/rpc.js';

/** A lock's end, exclusive; a range to the end of the file ends at Infinity. */
interface Lock {
  kind: LockKind;
  /** session + '/' + client owner: owners are only unique within one client. */
  owner: string;
  session: string;
  write: boolean;
  start: number;
  end: number;
  pid: number;
}

interface Waiter {
  lock: Lock;
  waitId: number | undefined;
  resolve(): void;
  reject(e: GfsError): void;
}

interface FileLocks {
  held: Lock[];
  waiting: Waiter[];
}

const overlaps = (a: Lock, b: Lock) => a.start < b.end && b.start < a.end;
const conflicts = (a: Lock, b: Lock) => a.kind === b.kind && a.owner !== b.owner && (a.write || b.write) && overlaps(a, b);

function rangeOf(start: number, len: number): { start: number; end: number } {
  if (!Number.isSafeInteger(start) || start < 0 || !Number.isSafeInteger(len) || len < 0) {
    throw new GfsError('EINVAL', `bad lock range ${start}+${len}`);
  }
  return { start, end: len === 0 ? Infinity : start + len };
}

export class LockTable {
  private readonly files = new Map<number, FileLocks>();

  /** Resolves when granted (at once unless it waits); rejects with EAGAIN, EDEADLK or EINTR. */
  request(session: string, req: LockRequest): Promise<void> {
    const kind: LockKind = req.kind === 'flock' ? 'flock' : 'posix';
    const range = kind === 'flock' ? { start: 0, end: Infinity } : rangeOf(req.start, req.len);
    const lock: Lock = { kind, owner: `${session}/${String(req.owner)}`, session, write: req.type === 'write', ...range, pid: Number(req.pid) || 0 };
    const file = this.file(req.ino);
    if (req.type === 'unlock') {
      this.release(file, lock);
      this.wake(req.ino, file);
      return Promise.resolve();
    }
    if (kind === 'flock') {
      const own = file.held.find((l) => l.kind === 'flock' && l.owner === lock.owner);
      if (own && own.write === lock.write) return Promise.resolve();
      if (own) {
        this.release(file, lock);
        this.wake(req.ino, file, lock.owner);
      }
    }
    const blockers = file.held.filter((l) => conflicts(lock, l));
    if (blockers.length === 0) {
      this.grant(file, lock);
      return Promise.resolve();
    }
    if (!req.wait) return Promise.reject(new GfsError('EAGAIN', `inode ${req.ino} is locked by another owner`));
    if (kind === 'posix' && this.wouldDeadlock(lock.owner, blockers)) {
      return Promise.reject(new GfsError('EDEADLK', `waiting for inode ${req.ino} would deadlock`));
    }
    return new Promise<void>((resolve, reject) => {
      file.waiting.push({ lock, waitId: req.waitId, resolve, reject });
    });
  }

  /** F_GETLK: another owner's lock that conflicts with this one. */
  test(session: string, ino: number, owner: string, type: 'read' | 'write', start: number, len: number): HeldLock | null {
    const probe: Lock = { kind: 'posix', owner: `${session}/${String(owner)}`, session, write: type === 'write', ...rangeOf(start, len), pid: 0 };
    const found = this.files.get(ino)?.held.find((l) => conflicts(probe, l));
    if (!found) return null;
    return { type: found.write ? 'write' : 'read', start: found.start, len: found.end === Infinity ? 0 : found.end - found.start, pid: found.pid };
  }

  /** The wait named waitId of this session fails with EINTR. */
  cancel(session: string, waitId: number): void {
    for (const [ino, file] of this.files) {
      const i = file.waiting.findIndex((w) => w.lock.session === session && w.waitId === waitId);
      if (i < 0) continue;
      const [w] = file.waiting.splice(i, 1);
      w.reject(new GfsError('EINTR', 'lock wait interrupted'));
      this.wake(ino, file);
      return;
    }
  }

  /** A client went away: its locks go, its waits end. */
  dropSession(session: string): void {
    for (const [ino, file] of [...this.files]) {
      const gone = file.waiting.filter((w) => w.lock.session === session);
      file.waiting = file.waiting.filter((w) => w.lock.session !== session);
      for (const w of gone) w.reject(new GfsError('EUNAVAIL', 'client disconnected'));
      file.held = file.held.filter((l) => l.session !== session);
      this.wake(ino, file);
    }
  }

  /** How many locks are held (for status and tests). */
  get heldCount(): number {
    let n = 0;
    for (const f of this.files.values()) n += f.held.length;
    return n;
  }

  private file(ino: number): FileLocks {
    let f = this.files.get(ino);
    if (!f) this.files.set(ino, (f = { held: [], waiting: [] }));
    return f;
  }

  /** Take lock: the owner's own locks of that kind over the range give way to it. */
  private grant(file: FileLocks, lock: Lock): void {
    this.release(file, lock);
    file.held.push(lock);
    if (lock.kind === 'posix') this.coalesce(file, lock.owner, lock.write);
  }

  /** Drop the owner's locks of that kind over lock's range, keeping the parts outside it. */
  private release(file: FileLocks, lock: Lock): void {
    const kept: Lock[] = [];
    for (const l of file.held) {
      if (l.kind !== lock.kind || l.owner !== lock.owner || !overlaps(l, lock)) {
        kept.push(l);
        continue;
      }
      if (l.start < lock.start) kept.push({ ...l, end: lock.start });
      if (l.end > lock.end) kept.push({ ...l, start: lock.end });
    }
    file.held = kept;
  }

  /** Merge an owner's touching or overlapping locks of one type into one (as the kernel does). */
  private coalesce(file: FileLocks, owner: string, write: boolean): void {
    const mine = file.held.filter((l) => l.kind === 'posix' && l.owner === owner && l.write === write).sort((a, b) => a.start - b.start);
    if (mine.length < 2) return;
    const merged: Lock[] = [];
    for (const l of mine) {
      const last = merged[merged.length - 1];
      if (last && l.start <= last.end) last.end = Math.max(last.end, l.end);
      else merged.push({ ...l });
    }
    file.held = [...file.held.filter((l) => !mine.includes(l)), ...merged];
  }

  /** Grant every waiter that fits now, in arrival order (except the owner named by skip). */
  private wake(ino: number, file: FileLocks, skip?: string): void {
    let granted = true;
    while (granted) {
      granted = false;
      for (let i = 0; i < file.waiting.length; i++) {
        const w = file.waiting[i];
        if (w.lock.owner === skip) continue;
        if (file.held.some((l) => conflicts(w.lock, l))) continue;
        file.waiting.splice(i, 1);
        this.grant(file, w.lock);
        w.resolve();
        granted = true;
        break;
      }
    }
    if (file.held.length === 0 && file.waiting.length === 0) this.files.delete(ino);
  }

  /** Would owner, by waiting for blockers, close a cycle of posix owners waiting for each other? */
  private wouldDeadlock(owner: string, blockers: Lock[]): boolean {
    const seen = new Set<string>();
    const todo = blockers.map((b) => b.owner);
    while (todo.length > 0) {
      const o = todo.pop()!;
      if (o === owner) return true;
      if (seen.has(o)) continue;
      seen.add(o);
      for (const file of this.files.values()) {
        for (const w of file.waiting) {
          if (w.lock.owner !== o || w.lock.kind !== 'posix') continue;
          for (const h of file.held) if (conflicts(w.lock, h)) todo.push(h.owner);
        }
      }
    }
    return false;
  }
}

/** The master's lock requests; each connection is one client session, and its locks end with it. */
export function lockHandlers(table: LockTable, exists: (ino: number) => void): Pick<Handlers<MasterApi>, 'lock' | 'testLock' | 'cancelLock'> {
  const sessions = new WeakMap<object, string>();
  let next = 1;
  const sessionOf = (peer: Peer<any, any>): string => {
    let s = sessions.get(peer);
    if (!s) {
      const id = `s${next++}`;
      sessions.set(peer, id);
      peer.onClose(() => table.dropSession(id));
      s = id;
    }
    return s;
  };
  return {
    lock: async (req, peer) => {
      if (req.type !== 'unlock') exists(req.ino);
      await table.request(sessionOf(peer), req);
      return {};
    },
    testLock: ({ ino, owner, type, start, len }, peer) => ({ conflict: table.test(sessionOf(peer), ino, owner, type, start, len) }),
    cancelLock: ({ waitId }, peer) => {
      table.cancel(sessionOf(peer), waitId);
      return {};
    },
  };
}
