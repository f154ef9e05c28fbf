// This client's side of locking: requests go to the master's lock table (so locks hold across
// mounts), with the cache rules NFS uses around locks: taking a lock drops what this client has
// cached of the file (another client may have written it under that lock), and releasing one first
// pushes this client's buffered writes (the next holder, anywhere, must see them).
//
// The kernel asks to drop a process's POSIX locks at every close() of every file (libfuse's flush):
// owners that never took a lock here are answered without asking the master.

import { GfsError } from '../protocol/errors.js';
import type { HeldLock, LockKind } from '../protocol/messages.js';
import type { GfsClient } from './client.js';

export interface LockAsk {
  type: 'read' | 'write' | 'unlock';
  /** posix only: len 0 = to the end of the file. */
  start: number;
  len: number;
  pid: number;
  /** Wait until granted; signal aborts the wait (EINTR). */
  wait: boolean;
  signal?: AbortSignal;
}

export class ClientLocks {
  /** kind → ino → owners that may hold a lock of that kind here. */
  private readonly holders: Record<LockKind, Map<number, Set<string>>> = { posix: new Map(), flock: new Map() };
  private nextWait = 1;

  constructor(private readonly client: GfsClient) {}

  async set(kind: LockKind, ino: number, owner: string, ask: LockAsk): Promise<void> {
    const owners = this.holders[kind].get(ino);
    if (ask.type === 'unlock') {
      if (!owners?.has(owner)) return;
      await this.client.flushInode(ino, false);
      await this.client.call('lock', { ino, kind, owner, type: 'unlock', start: ask.start, len: ask.len, pid: ask.pid, wait: false });
      // A partial unlock may leave other ranges held: the owner stays known until a whole-file one.
      if (kind === 'flock' || (ask.start === 0 && ask.len === 0)) {
        owners.delete(owner);
        if (owners.size === 0) this.holders[kind].delete(ino);
      }
      return;
    }
    if (ask.signal?.aborted) throw new GfsError('EINTR', 'interrupted');
    const waitId = ask.wait ? this.nextWait++ : undefined;
    const req = { ino, kind, owner, type: ask.type, start: ask.start, len: ask.len, pid: ask.pid, wait: ask.wait, ...(waitId ? { waitId } : {}) };
    // Note the owner before asking: if the reply is lost, a later unlock still goes out.
    this.note(kind, ino, owner);
    const onAbort = () => void this.client.call('cancelLock', { waitId: waitId! }).catch(() => {});
    if (waitId) ask.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await this.client.call('lock', req, ask.wait ? Infinity : undefined);
    } finally {
      ask.signal?.removeEventListener('abort', onAbort);
    }
    this.client.revalidate(ino);
  }

  /** F_GETLK: another owner's lock in the way of this one, or null. */
  async test(ino: number, owner: string, type: 'read' | 'write', start: number, len: number): Promise<HeldLock | null> {
    return (await this.client.call('testLock', { ino, owner, type, start, len })).conflict;
  }

  private note(kind: LockKind, ino: number, owner: string): void {
    let owners = this.holders[kind].get(ino);
    if (!owners) this.holders[kind].set(ino, (owners = new Set()));
    owners.add(owner);
  }
}
