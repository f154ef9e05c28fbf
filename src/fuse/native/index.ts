// Loader and TypeScript face of our fork of the fuse-native binding (fuse-native.c, built by
// scripts/build-native into src/fuse/native/build/Release/fuse.node). See native-notes/README.md.
//
// The process that serves a mount must never make a synchronous fs call into its own mount (the
// JS thread is the one that answers FUSE requests, so it would deadlock): nothing here does, and
// unmount() runs fusermount as an asynchronous child process.

import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { createRequire } from "node:module";
import { constants as osConstants } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import type {
  Caller,
  Done,
  FuseMountHandle,
  FuseOps,
  MountOptions,
  PageStore,
  PosixLock,
  Stat,
  StatFs,
  Timespec,
} from "./api.js";

export type * from "./api.js";

// ---------------------------------------------------------------------------------------------
// The addon

type Dispatch = (op: number, slot: number, seq: number, uid: number, gid: number, pid: number, killPrivs: boolean, ...args: unknown[]) => void;

let caller: Caller = { uid: 0, gid: 0, pid: 0, killPrivs: false };

/**
 * The process that made the FUSE call being dispatched right now. Only meaningful in the
 * synchronous part of an op handler (read it first thing, before any await).
 */
/** FUSE opcodes (<linux/fuse.h>) for FuseMount.kernelRequests. */
export const KernelOp = { LOOKUP: 1, READDIRPLUS: 44 } as const;

export function currentCaller(): Caller {
  return caller;
}

interface Binding {
  createMount(): object;
  mount(
    handle: object,
    mountpoint: string,
    args: string[],
    implemented: string[],
    dispatch: Dispatch,
    onExit: (loopResult: number) => void,
  ): void;
  reply(handle: object, slot: number, seq: number, result: number, extra1?: unknown, extra2?: unknown): boolean;
  answeredEarly(handle: object): number;
  kernelRequests(handle: object, opcode: number): number;
  alignedBuffer(bytes: number): Buffer | null;
  alignedPoolCounts(): [reused: number, made: number, keptBytes: number];
  waitsOnRequest(pid: number): boolean;
  opNames: string[];
  statLength: number;
  statfsLength: number;
  lockLength: number;
  /** dispatch(interruptOp, slot, seq, ...): the pending lock wait in that slot was interrupted. */
  interruptOp: number;
  F_GETLK: number;
  F_SETLK: number;
  F_SETLKW: number;
  fuseVersion: number;
}

/** Where fuse.node is: next to this file under src/, or <repo>/src/fuse/native/ when running from dist/. */
export function addonPath(): string {
  const candidates = [
    // src/fuse/native/index.ts (vitest, tsx)
    new URL("./build/Release/fuse.node", import.meta.url),
    // dist/fuse/native/index.js (after tsc): <repo>/dist/fuse/native -> <repo>/src/fuse/native
    new URL("../../../src/fuse/native/build/Release/fuse.node", import.meta.url),
  ].map((u) => fileURLToPath(u));
  return candidates.find((p) => existsSync(p)) ?? candidates[0];
}

let binding: Binding | undefined;

function loadBinding(): Binding {
  if (binding) return binding;
  const file = addonPath();
  if (!existsSync(file)) {
    throw new Error(`the FUSE addon ${file} is not built: run scripts/build-native`);
  }
  const require = createRequire(import.meta.url);
  binding = require(file) as Binding;
  return binding;
}

/**
 * A Buffer of bytes at a page-aligned address, for O_DIRECT reads (aligned-pool.h): its memory is
 * reused once the garbage collector drops it. Null when bytes is more than the pool's blocks hold.
 */
export function alignedBuffer(bytes: number): Buffer | null {
  return loadBinding().alignedBuffer(bytes);
}

/** Blocks the aligned pool handed out again, made new, and the bytes of free ones it keeps. */
export function alignedPoolCounts(): { reused: number; made: number; keptBytes: number } {
  const [reused, made, keptBytes] = loadBinding().alignedPoolCounts();
  return { reused, made, keptBytes };
}

/**
 * Process pid sleeps in the kernel waiting for a FUSE request's answer (/proc/PID/stat and wchan,
 * proc-state.h); false where that cannot be read.
 */
export function waitsOnRequest(pid: number): boolean {
  return loadBinding().waitsOnRequest(pid);
}

// ---------------------------------------------------------------------------------------------
// Conversions

const E = osConstants.errno;
const EIO = -E.EIO;
const ENODATA = -(E.ENODATA ?? 61);
const MAX_WRITE_LIMIT = 131072; // libfuse 2 cannot take requests bigger than 32 pages

function statArray(st: Stat): Float64Array {
  const a = new Float64Array(loadBinding().statLength);
  a[0] = st.mode;
  a[1] = st.uid;
  a[2] = st.gid;
  a[3] = st.size;
  a[4] = st.nlink;
  a[5] = st.ino ?? 0;
  a[6] = st.blksize ?? 0;
  a[7] = st.blocks ?? Math.ceil(st.size / 512);
  a[8] = st.atime[0];
  a[9] = st.atime[1];
  a[10] = st.mtime[0];
  a[11] = st.mtime[1];
  a[12] = st.ctime[0];
  a[13] = st.ctime[1];
  a[14] = 0; // rdev
  return a;
}

function statfsArray(s: StatFs): Float64Array {
  const a = new Float64Array(loadBinding().statfsLength);
  a[0] = s.bsize;
  a[1] = s.frsize;
  a[2] = s.blocks;
  a[3] = s.bfree;
  a[4] = s.bavail;
  a[5] = s.files;
  a[6] = s.ffree;
  a[7] = s.favail;
  a[8] = s.namemax;
  return a;
}

function lockArray(l: PosixLock): Float64Array {
  return Float64Array.of(l.type, l.whence, l.start, l.len, l.pid);
}

/** A result the kernel can take: an integer, and for failures a negative errno. */
function asResult(res: unknown): number {
  if (res === undefined || res === null) return 0;
  if (typeof res !== "number" || !Number.isInteger(res) || res > 0x7fffffff || res < -0x7fffffff) return EIO;
  return res;
}

/** For a callback that failed or gave no value: its negative errno, else EIO. */
function failure(res: number): number {
  return res < 0 ? res : EIO;
}

function escapeOpt(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/,/g, "\\,");
}

function checkSeconds(name: string, v: number | undefined): void {
  if (v !== undefined && !(typeof v === "number" && Number.isFinite(v) && v >= 0)) {
    throw new RangeError(`${name} must be a number of seconds >= 0, got ${String(v)}`);
  }
}

/** The libfuse command line (one -o list) for these options. Exported for tests and the notes. */
export function fuseArgs(opts: MountOptions): string[] {
  const maxWrite = opts.maxWrite ?? MAX_WRITE_LIMIT;
  if (!Number.isInteger(maxWrite) || maxWrite < 4096 || maxWrite > MAX_WRITE_LIMIT) {
    throw new RangeError(`maxWrite must be an integer from 4096 to ${MAX_WRITE_LIMIT} (libfuse 2's limit), got ${maxWrite}`);
  }
  const o = ["big_writes", `max_write=${maxWrite}`];
  if (opts.maxRead !== undefined) {
    if (!Number.isInteger(opts.maxRead) || opts.maxRead < 4096) throw new RangeError(`maxRead must be an integer >= 4096`);
    o.push(`max_read=${opts.maxRead}`);
  }
  if (opts.maxReadahead !== undefined) {
    if (!Number.isInteger(opts.maxReadahead) || opts.maxReadahead < 4096) throw new RangeError(`maxReadahead must be an integer >= 4096`);
    o.push(`max_readahead=${opts.maxReadahead}`);
  }
  checkSeconds("attrTimeout", opts.attrTimeout);
  checkSeconds("entryTimeout", opts.entryTimeout);
  checkSeconds("negativeTimeout", opts.negativeTimeout);
  // 0 is a real value here (no kernel caching), so test for undefined, not for truthiness.
  if (opts.attrTimeout !== undefined) o.push(`attr_timeout=${opts.attrTimeout}`);
  if (opts.entryTimeout !== undefined) o.push(`entry_timeout=${opts.entryTimeout}`);
  if (opts.negativeTimeout !== undefined) o.push(`negative_timeout=${opts.negativeTimeout}`);
  if (opts.fsname !== undefined) o.push(`fsname=${escapeOpt(opts.fsname)}`);
  if (opts.defaultPermissions) o.push("default_permissions");
  if (opts.allowOther) o.push("allow_other");
  if (opts.useIno) o.push("use_ino");
  if (opts.debug) o.push("debug");
  return ["-o", o.join(",")];
}

function run(cmd: string, args: string[]): Promise<{ ok: boolean; stderr: string; missing: boolean }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 30_000 }, (err, _stdout, stderr) => {
      const code = (err as NodeJS.ErrnoException | null)?.code;
      resolve({ ok: !err, stderr: String(stderr || (err ? err.message : "")).trim(), missing: code === "ENOENT" });
    });
  });
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

// ---------------------------------------------------------------------------------------------
// FuseMount

type State = "idle" | "mounting" | "mounted" | "unmounting" | "unmounted";

const INIT_TIMEOUT_MS = 15_000;

export class FuseMount implements FuseMountHandle {
  readonly mountpoint: string;
  private readonly ops: FuseOps;
  private readonly opts: MountOptions;
  private state: State = "idle";
  private handle: object | undefined;
  private exited = true;
  private exitWaiters: Array<() => void> = [];
  private initDone: (() => void) | undefined;
  private initFailed: ((err: Error) => void) | undefined;
  private unmounting: Promise<void> | undefined;
  /** Lock waits in progress, by slot: aborted when the kernel interrupts them. */
  private readonly waits = new Map<number, { seq: number; abort: AbortController }>();
  /** The request being dispatched (set right before its op handler runs). */
  private current = { slot: 0, seq: 0 };

  constructor(mountpoint: string, ops: FuseOps, opts: MountOptions = {}) {
    this.mountpoint = path.resolve(mountpoint);
    this.ops = ops;
    this.opts = opts;
  }

  /** True between a successful mount() and the end of the FUSE session. */
  get mounted(): boolean {
    return this.state === "mounted" || this.state === "unmounting";
  }

  /** Successful writes and flushes answered to the kernel from the JS thread (native-notes item 23). */
  get answeredEarly(): number {
    return this.handle ? loadBinding().answeredEarly(this.handle) : 0;
  }

  /** How many requests with this FUSE opcode (KernelOp) the kernel sent the mount so far (tests). */
  kernelRequests(opcode: number): number {
    return this.handle ? loadBinding().kernelRequests(this.handle, opcode) : 0;
  }

  /** Resolves when the FUSE session has ended (after unmount(), or after an outside fusermount -u). */
  closed(): Promise<void> {
    if (this.exited) return Promise.resolve();
    return new Promise((resolve) => this.exitWaiters.push(resolve));
  }

  async mount(): Promise<void> {
    if (this.state !== "idle" && this.state !== "unmounted") {
      throw new Error(`FUSE mount at ${this.mountpoint} is already ${this.state}`);
    }
    this.state = "mounting";
    try {
      await this.doMount();
      this.state = "mounted";
    } catch (err) {
      if (this.exited) this.state = "idle";
      throw err;
    }
  }

  private async doMount(): Promise<void> {
    const mnt = this.mountpoint;
    const args = fuseArgs(this.opts); // RangeError for bad options
    const b = loadBinding();
    if (typeof this.ops?.getattr !== "function") throw new Error("FuseOps.getattr is required");

    try {
      await stat("/dev/fuse");
    } catch {
      throw new Error(`cannot mount ${mnt}: /dev/fuse is missing (load the fuse module; in a container pass --device /dev/fuse)`);
    }
    let st;
    try {
      st = await stat(mnt);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOTCONN") {
        throw new Error(`cannot mount ${mnt}: a dead FUSE mount is still there (Transport endpoint is not connected); run: fusermount -uz ${mnt}`);
      }
      if (code === "ENOENT") throw new Error(`cannot mount ${mnt}: the mountpoint does not exist`);
      throw new Error(`cannot mount ${mnt}: ${(err as Error).message}`);
    }
    if (!st.isDirectory()) throw new Error(`cannot mount ${mnt}: the mountpoint is not a directory`);
    const parent = await stat(path.dirname(mnt)).catch(() => undefined);
    if (parent && parent.dev !== st.dev && mnt !== "/") {
      throw new Error(`cannot mount ${mnt}: something is already mounted there`);
    }
    if ((await readdir(mnt)).length > 0) throw new Error(`cannot mount ${mnt}: the mountpoint is not empty`);

    const implemented = b.opNames.filter((name) => typeof (this.ops as unknown as Record<string, unknown>)[name] === "function");
    if (this.opts.clearsSetId) implemented.push("clearsSetId"); // not an op: see fuse-native.c, answer_init
    if (this.opts.pinThreads) implemented.push("pinThreads"); // not an op either: thread placement
    if (this.opts.readdirPlus) implemented.push("readdirPlus"); // nor this: readdir-plus.h
    if (this.opts.busyPollUs) implemented.push(`busyPollUs=${Math.floor(this.opts.busyPollUs)}`); // busy-poll.h
    const handle = b.createMount();
    const initialized = new Promise<void>((resolve, reject) => {
      this.initDone = resolve;
      this.initFailed = reject;
    });
    this.handle = handle;
    this.exited = false;
    try {
      b.mount(handle, mnt, args, implemented, this.dispatch, this.onExit);
    } catch (err) {
      this.exited = true;
      this.handle = undefined;
      throw new Error(`cannot mount FUSE file system at ${mnt}: ${(err as Error).message}`);
    }

    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`FUSE mount at ${mnt}: the kernel did not send INIT within ${INIT_TIMEOUT_MS / 1000} s`)),
        INIT_TIMEOUT_MS,
      );
    });
    try {
      await Promise.race([initialized, timeout]);
    } catch (err) {
      this.initDone = this.initFailed = undefined;
      await this.forceUnmount().catch(() => undefined);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  async unmount(): Promise<void> {
    if (this.exited) {
      this.state = this.state === "idle" ? "idle" : "unmounted";
      return;
    }
    if (!this.unmounting) {
      this.state = "unmounting";
      this.unmounting = this.forceUnmount().finally(() => {
        this.unmounting = undefined;
      });
    }
    return this.unmounting;
  }

  /** fusermount -u; if busy, fusermount -uz (lazy); then wait for the FUSE thread to finish. */
  private async forceUnmount(): Promise<void> {
    const mnt = this.mountpoint;
    if (this.exited) return;
    let r = await run("fusermount", ["-u", mnt]);
    if (r.missing) r = await run("umount", [mnt]);
    if (!r.ok && !this.exited) {
      if (/busy/i.test(r.stderr)) {
        r = await run("fusermount", ["-uz", mnt]);
        if (r.missing) r = await run("umount", ["-l", mnt]);
      }
      if (!r.ok && !this.exited) {
        // Perhaps already unmounted from outside: the FUSE thread then ends by itself.
        await Promise.race([this.closed(), delay(5_000)]);
        if (!this.exited) throw new Error(`cannot unmount ${mnt}: ${r.stderr}`);
      }
    }
    await this.closed();
  }

  private onExit = (_loopResult: number): void => {
    this.exited = true;
    this.handle = undefined;
    this.state = "unmounted";
    if (this.initFailed) {
      const fail = this.initFailed;
      this.initDone = this.initFailed = undefined;
      fail(new Error(`FUSE session at ${this.mountpoint} ended before INIT completed`));
    }
    const waiters = this.exitWaiters;
    this.exitWaiters = [];
    for (const w of waiters) w();
  };

  private reportError(op: string, p: unknown, err: unknown): void {
    const where = typeof p === "string" ? `(${p})` : "";
    console.error(`gfs fuse: ${op}${where} threw, replying EIO:`, err);
  }

  /** Called by the addon on the JS thread for every FUSE request. */
  private dispatch: Dispatch = (op, slot, seq, uid, gid, pid, killPrivs, ...args) => {
    const b = loadBinding();
    if (op === b.interruptOp) {
      const w = this.waits.get(slot);
      if (w && w.seq === seq) w.abort.abort();
      return;
    }
    caller = { uid, gid, pid, killPrivs: killPrivs === true };
    this.opts.onRequest?.(pid);
    const handle = this.handle;
    const name = b.opNames[op] ?? `op${op}`;
    let replied = false;
    const reply = (res: number, extra1?: unknown, extra2?: unknown): void => {
      if (replied) return;
      replied = true;
      this.opts.onAnswered?.();
      if (handle === undefined) return;
      if (this.waits.get(slot)?.seq === seq) this.waits.delete(slot);
      b.reply(handle, slot, seq, res, extra1, extra2);
    };
    // Wraps a callback so that a bad value or a throw while converting it still answers the kernel.
    const guard = <A extends unknown[]>(fn: (...a: A) => void) => (...a: A): void => {
      try {
        fn(...a);
      } catch (err) {
        this.reportError(name, args[0], err);
        reply(EIO);
      }
    };
    const simple: Done = guard((res: number) => {
      const r = asResult(res);
      reply(r > 0 ? 0 : r);
    });

    this.current = { slot, seq };
    try {
      this.call(name, args, reply, guard, simple);
    } catch (err) {
      this.reportError(name, args[0], err);
      reply(EIO);
    }
  };

  /** An AbortSignal for the lock wait being dispatched: it fires if the kernel interrupts it. */
  private waitSignal(): AbortSignal {
    const abort = new AbortController();
    this.waits.set(this.current.slot, { seq: this.current.seq, abort });
    return abort.signal;
  }

  private call(
    name: string,
    a: unknown[],
    reply: (res: number, extra1?: unknown, extra2?: unknown) => void,
    guard: <A extends unknown[]>(fn: (...a: A) => void) => (...a: A) => void,
    simple: Done,
  ): void {
    const ops = this.ops;
    const s = (i: number) => a[i] as string;
    const n = (i: number) => a[i] as number;
    const statCb = guard((res: number, st?: Stat) => {
      const r = asResult(res);
      if (r === 0 && st) reply(0, statArray(st));
      else reply(failure(r));
    });

    switch (name) {
      case "init": {
        const finish = guard((res: number) => {
          reply(0);
          const done = this.initDone;
          this.initDone = this.initFailed = undefined;
          if (asResult(res) < 0) console.error(`gfs fuse: init returned ${res}`);
          done?.();
        });
        if (ops.init) ops.init(finish);
        else finish(0);
        return;
      }
      case "getattr":
        return ops.getattr(s(0), statCb);
      case "fgetattr":
        return ops.fgetattr!(s(0), n(1), statCb);
      case "access":
        return ops.access!(s(0), n(1), simple);
      case "statfs":
        return ops.statfs!(s(0), guard((res: number, sfs?: StatFs) => {
          const r = asResult(res);
          if (r === 0 && sfs) reply(0, statfsArray(sfs));
          else reply(failure(r));
        }));
      case "readdir":
        return ops.readdir!(s(0), guard((res: number, names?: string[], stats?: Stat[]) => {
          const r = asResult(res);
          if (r !== 0 || !names) return reply(failure(r));
          // A struct stat per name: the type for d_type, the inode number for d_ino (with use_ino),
          // and the rest for the binding's names cache (getattr of a listed name, see names-cache.h).
          let all: Float64Array | undefined;
          if (stats && stats.length === names.length) {
            const len = loadBinding().statLength;
            all = new Float64Array(len * stats.length);
            stats.forEach((st, i) => all!.set(statArray(st), i * len));
          }
          reply(0, names.map(String), all);
        }));
      case "open":
        return ops.open!(s(0), n(1), guard((res: number, fd?: number, attrsKept?: boolean) => {
          const r = asResult(res);
          reply(r > 0 ? 0 : r, fd ?? 0, attrsKept === true);
        }));
      case "create":
        return ops.create!(s(0), n(1), n(2), guard((res: number, fd?: number, st?: Stat) => {
          const r = asResult(res);
          reply(r > 0 ? 0 : r, fd ?? 0, r >= 0 && st ? statArray(st) : undefined);
        }));
      case "read":
        return ops.read!(s(0), n(1), a[2] as Buffer, n(3), n(4), guard((res: number, store?: PageStore) => {
          const r = asResult(res);
          if (r >= 0 && store) reply(r, store.pieces, store.pos);
          else reply(r);
        }));
      case "write":
        return ops.write!(s(0), n(1), a[2] as Buffer, n(3), n(4), guard((res: number) => reply(asResult(res))));
      case "flush":
        return ops.flush!(s(0), n(1), simple);
      case "fsync":
        return ops.fsync!(s(0), a[1] as boolean, n(2), simple);
      case "fsyncdir":
        return ops.fsyncdir!(s(0), a[1] as boolean, simple);
      case "release":
        return ops.release!(s(0), n(1), simple);
      case "truncate":
        return ops.truncate!(s(0), n(1), simple);
      case "ftruncate":
        return ops.ftruncate!(s(0), n(1), n(2), simple);
      case "utimens":
        return ops.utimens!(s(0), a[1] as Timespec | null, a[2] as Timespec | null, simple);
      case "chmod":
        return ops.chmod!(s(0), n(1), simple);
      case "chown":
        return ops.chown!(s(0), n(1), n(2), simple);
      case "unlink":
        return ops.unlink!(s(0), simple);
      case "rename":
        return ops.rename!(s(0), s(1), simple);
      case "link":
        return ops.link!(s(0), s(1), simple);
      case "symlink":
        return ops.symlink!(s(0), s(1), simple);
      case "readlink":
        return ops.readlink!(s(0), guard((res: number, target?: string) => {
          const r = asResult(res);
          if (r === 0 && typeof target === "string") reply(0, target);
          else reply(failure(r));
        }));
      case "mkdir":
        return ops.mkdir!(s(0), n(1), simple);
      case "rmdir":
        return ops.rmdir!(s(0), simple);
      case "setxattr":
        return ops.setxattr!(s(0), s(1), a[2] as Buffer, n(3), simple);
      case "getxattr":
        return ops.getxattr!(s(0), s(1), guard((res: number, value?: Buffer) => {
          const r = asResult(res);
          if (r < 0) return reply(r);
          if (!value) return reply(ENODATA);
          reply(0, Buffer.isBuffer(value) ? value : Buffer.from(value));
        }));
      case "listxattr":
        return ops.listxattr!(s(0), guard((res: number, names?: string[]) => {
          const r = asResult(res);
          if (r < 0) return reply(r);
          reply(0, Buffer.from((names ?? []).map((x) => `${x}\0`).join(""), "utf8"));
        }));
      case "removexattr":
        return ops.removexattr!(s(0), s(1), simple);
      case "lock":
        return ops.lock!(s(0), n(1), n(2), a[3] as PosixLock, a[4] as bigint, guard((res: number, lock?: PosixLock) => {
          const r = asResult(res);
          reply(r > 0 ? 0 : r, lock ? lockArray(lock) : undefined);
        }), n(2) === loadBinding().F_SETLKW ? this.waitSignal() : undefined);
      case "flock":
        return ops.flock!(s(0), n(1), n(2), a[3] as bigint, simple, (n(2) & (4 | 8)) === 0 ? this.waitSignal() : undefined);
      default:
        reply(-E.ENOSYS);
    }
  }
}
