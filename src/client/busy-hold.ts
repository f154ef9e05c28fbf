// Background work a mount holds back while its callers keep it busy: the pushes of closed files'
// writes (write-behind.ts) and the batches of changes answered ahead (deferred-changes.ts). On a
// machine of few cores the mount, the master and the chunkservers share the CPUs with the
// program writing: a file pushed while the next ones are being made takes the CPU those makes
// need (the push costs the mount, the primary and two secondaries). Held until
// the callers pause, the same pushes come after them, as a local file system writes dirty pages
// back after the writer is done (Linux: dirty_expire_centisecs). Measured on the 2-vCPU dev machine
// (the bench's small-file phase, fresh clusters): 2000 new 4 KiB files in a loop 685/724 ->
// 1,178/1,239 files/s; `cp -r` of the bench tree 9.2 -> 18.7/19.3 MB/s.
//
// Held work goes when
// - no request came in one whole period of quietMs (writeBehindQuietMs, 20 by default), none
//   is being served, and none of the latest callers sleeps waiting for a request's answer (the
//   callers paused; one waiting for an answer is not paused, it is waiting for us). The last:
//   with both CPUs busy (V8's collector threads, pushes under way, the caller) the thread that
//   reads the next request from the kernel can wait 20 ms and more for a CPU, and what is held
//   went in that "pause", adding to the load (perf: cp's FUSE_WRITE unread for 16 ms while four
//   collector threads ran; /proc/PID/wchan of cp: request_wait_answer; in a `cp -r` of the bench
//   tree while the previous copy's pushes ran, 7 such releases, none since),
// - it has waited maxMs (a caller that never pauses still gets its data out),
// - release(key): someone needs that file's data now (a read, stat, fsync, recall of it), or
// - releaseAll(): everything (unmount, too much held, a write that goes out without waiting).

/** The latest callers (by pid) looked at before held work goes. */
const RECENT_CALLERS = 8;

interface Held<K> {
  readonly key: K;
  readonly at: number;
  readonly go: () => void;
  gone: boolean;
}

export class BusyHold<K> {
  private requests = 0;
  private requestsAtTick = 0;
  private serving = 0;
  private readonly byKey = new Map<K, Array<Held<K>>>();
  /** Oldest first; entries before `head` are gone. */
  private queue: Array<Held<K>> = [];
  private head = 0;
  /** The next look at the callers, while anything is held: a timer, then an immediate (tick()). */
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private tickDue = 0;
  /** The latest callers' pids, the latest last (a Map keeps the order of insertion). */
  private readonly callers = new Map<number, true>();

  constructor(
    private readonly quietMs: number,
    /** 0: nothing is held. */
    private readonly maxMs: number,
    /** Whether process pid sleeps waiting for a request's answer; undefined: not known. */
    private readonly waitsOnRequest?: (pid: number) => boolean,
  ) {}

  /** A caller's request came in (the mount is busy until its answer: done()); pid 0: the kernel's own. */
  begin(pid = 0): void {
    this.requests++;
    this.serving++;
    if (pid > 0 && this.waitsOnRequest) {
      this.callers.delete(pid);
      this.callers.set(pid, true);
      if (this.callers.size > RECENT_CALLERS) this.callers.delete(this.callers.keys().next().value!);
    }
  }

  /** A request begun was answered. */
  done(): void {
    this.serving--;
  }

  /** Resolves when the work keyed key may go (at once if nothing is held). */
  wait(key: K): Promise<void> {
    if (this.maxMs <= 0) return Promise.resolve();
    return new Promise<void>((go) => {
      const h: Held<K> = { key, at: Date.now(), go, gone: false };
      this.queue.push(h);
      const list = this.byKey.get(key);
      if (list) list.push(h);
      else this.byKey.set(key, [h]);
      if (!this.timer && !this.immediate) {
        this.requestsAtTick = this.requests;
        this.schedule();
      }
    });
  }

  /** Everything held under key goes now. */
  release(key: K): void {
    const list = this.byKey.get(key);
    if (!list) return;
    this.byKey.delete(key);
    for (const h of list) this.free(h);
  }

  releaseAll(): void {
    if (this.head === this.queue.length) return; // (the common case: called before every push that does not wait)
    const held = this.queue.slice(this.head);
    this.queue = [];
    this.head = 0;
    this.byKey.clear();
    this.stopTimer();
    for (const h of held) this.free(h);
  }

  private free(h: Held<K>): void {
    if (h.gone) return;
    h.gone = true;
    h.go();
  }

  private stopTimer(): void {
    clearTimeout(this.timer);
    clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
  }

  private schedule(): void {
    this.tickDue = Date.now() + this.quietMs;
    this.timer = setTimeout(() => this.tick(), this.quietMs);
  }

  private tick(): void {
    // Timers run before the requests that came meanwhile are handed to this thread (libuv's poll
    // phase): look once those are in.
    this.timer = undefined;
    this.immediate = setImmediate(() => this.look());
  }

  private aCallerWaits(): boolean {
    for (const pid of this.callers.keys()) if (this.waitsOnRequest?.(pid)) return true;
    return false;
  }

  private look(): void {
    this.immediate = undefined;
    const now = Date.now();
    // A look that comes late ran after a stall of this thread (a long GC, a long task): that is no
    // pause of the callers.
    const onTime = now - this.tickDue < this.quietMs / 2;
    if (onTime && this.serving === 0 && this.requests === this.requestsAtTick && !this.aCallerWaits()) return this.releaseAll();
    this.requestsAtTick = this.requests;
    while (this.head < this.queue.length) {
      const h = this.queue[this.head];
      if (!h.gone && now - h.at < this.maxMs) break;
      this.head++;
      if (h.gone) continue;
      const list = this.byKey.get(h.key);
      const rest = list?.filter((x) => x !== h) ?? [];
      if (rest.length > 0) this.byKey.set(h.key, rest);
      else this.byKey.delete(h.key);
      this.free(h);
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    if (this.head < this.queue.length) this.schedule();
    else {
      this.queue = [];
      this.head = 0;
    }
  }
}
