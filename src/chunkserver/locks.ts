// Small async locks. A chunk has two: a Mutex that puts its mutations in one order (held by the
// primary across its local apply and the forwarding to secondaries), and an RwLock that keeps
// disk I/O of the replica consistent (reads share it; a mutation holds it only while it touches
// the files). Without the RwLock a read could see new bytes under an old checksum and wrongly
// flag a good replica as corrupt.

/** FIFO mutual exclusion: run(fn) starts fn only after every earlier run has settled. */
export class Mutex {
  private tail: Promise<void> = Promise.resolve();
  private waiting = 0;

  run<T>(fn: () => Promise<T>): Promise<T> {
    this.waiting++;
    const result = this.tail.then(fn);
    // The next waiter starts after this one, whether it succeeded or failed.
    this.tail = result.then(
      () => {
        this.waiting--;
      },
      () => {
        this.waiting--;
      },
    );
    return result;
  }

  /** True while nothing runs or waits (lets owners drop idle locks). */
  get idle(): boolean {
    return this.waiting === 0;
  }
}

/** Many readers or one writer; writers queue in order and block readers that come after them. */
export class RwLock {
  private readers = 0;
  private writer = false;
  private readonly queue: Array<{ write: boolean; go: () => void }> = [];

  async read<T>(fn: () => Promise<T>): Promise<T> {
    if (this.writer || this.queue.length > 0) await new Promise<void>((go) => this.queue.push({ write: false, go }));
    else this.readers++;
    try {
      return await fn();
    } finally {
      this.readers--;
      this.wake();
    }
  }

  async write<T>(fn: () => Promise<T>): Promise<T> {
    if (this.writer || this.readers > 0 || this.queue.length > 0) {
      await new Promise<void>((go) => this.queue.push({ write: true, go }));
    } else this.writer = true;
    try {
      return await fn();
    } finally {
      this.writer = false;
      this.wake();
    }
  }

  /** Hand the lock to the next writer, or to every reader at the head of the queue. */
  private wake(): void {
    if (this.writer || this.readers > 0) return;
    const next = this.queue[0];
    if (!next) return;
    if (next.write) {
      this.queue.shift();
      this.writer = true;
      next.go();
      return;
    }
    while (this.queue.length > 0 && !this.queue[0].write) {
      this.readers++;
      this.queue.shift()!.go();
    }
  }
}

/** One Mutex per key, dropped when nobody holds or waits for it (so idle chunks cost nothing). */
export class KeyedMutex<K> {
  private readonly locks = new Map<K, { mutex: Mutex; users: number }>();

  /** Queues fn synchronously, so calls made in some order run in that order. */
  run<T>(key: K, fn: () => Promise<T>): Promise<T> {
    let e = this.locks.get(key);
    if (!e) {
      e = { mutex: new Mutex(), users: 0 };
      this.locks.set(key, e);
    }
    const entry = e;
    entry.users++;
    const done = () => {
      if (--entry.users === 0 && this.locks.get(key) === entry) this.locks.delete(key);
    };
    return entry.mutex.run(fn).finally(done);
  }

  get size(): number {
    return this.locks.size;
  }
}
