// End-to-end tests of our fuse-native fork (src/fuse/native): a tiny in-memory file system is
// mounted through FuseMount and driven with real shell tools. Every access to the mount goes
// through an asynchronous child process: this process serves the mount on its JS thread, so a
// synchronous fs call into the mount from here would deadlock.
import { execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "vitest";

import type { FuseOps, MountOptions, PosixLock, Stat, Timespec } from "../src/fuse/native/api.js";
import { currentCaller, FuseMount, KernelOp, waitsOnRequest } from "../src/fuse/native/index.js";

const E = os.constants.errno;
const O_APPEND = os.constants.O_APPEND ?? 0o2000;
const LOCK_SH = 1, LOCK_EX = 2, LOCK_UN = 8;
const F_GETLK = 5, F_SETLK = 6, F_SETLKW = 7, F_WRLCK = 1, F_UNLCK = 2;
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

type Call = { op: string; args: unknown[] };

function sh(script: string, timeoutMs = 20_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const env = { ...process.env, TZ: "UTC", LC_ALL: "C" };
    execFile("bash", ["-c", script], { timeout: timeoutMs, env }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

async function waitFor(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
}

interface TempMount {
  dir: string;
  M: string;
  fuse: FuseMount;
}

/** ops mounted at a new temporary directory. */
async function mountTemp(prefix: string, ops: FuseOps, opts: MountOptions): Promise<TempMount> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  const M = path.join(dir, "mnt");
  await mkdir(M);
  const fuse = new FuseMount(M, ops, opts);
  await fuse.mount();
  return { dir, M, fuse };
}

async function unmountTemp(t: TempMount | undefined): Promise<void> {
  if (!t) return;
  try {
    await t.fuse.unmount();
  } finally {
    // Do not rm while a FUSE mount could still be there (rm would recurse into it).
    const still = await sh(`grep -qs " ${t.M} " /proc/mounts && echo mounted || true`);
    if (!still.stdout.includes("mounted")) await rm(t.dir, { recursive: true, force: true });
  }
}

/** A minimal in-memory file system that records every call it gets. */
function memFs(calls: Call[]): FuseOps {
  interface Node { mode: number; data: Buffer; size: number; atime: Timespec; mtime: Timespec; ctime: Timespec }
  const now = (): Timespec => {
    const ms = Date.now();
    return [Math.floor(ms / 1000), (ms % 1000) * 1_000_000];
  };
  const node = (mode: number): Node => ({ mode, data: Buffer.alloc(0), size: 0, atime: now(), mtime: now(), ctime: now() });
  const files = new Map<string, Node>([["/", node(0o40755)]]);
  const open = new Map<number, Node>();
  let nextFd = 100;
  const rec = (op: string, ...args: unknown[]) => calls.push({ op, args });
  const stat = (n: Node): Stat => ({
    mode: n.mode, uid: 0, gid: 0, size: n.size, nlink: 1, atime: n.atime, mtime: n.mtime, ctime: n.ctime,
  });
  const resize = (n: Node, size: number) => {
    if (size > n.data.length) {
      const grown = Buffer.alloc(Math.max(size, n.data.length * 2));
      n.data.copy(grown, 0, 0, n.size);
      n.data = grown;
    } else if (size < n.size) {
      n.data.fill(0, size, n.size);
    }
    n.size = size;
  };

  return {
    getattr(p, cb) {
      rec("getattr", p);
      if (p === "/boom") throw new Error("deliberate failure inside getattr");
      const n = files.get(p);
      return n ? cb(0, stat(n)) : cb(-E.ENOENT);
    },
    fgetattr(p, fd, cb) {
      rec("fgetattr", p, fd);
      const n = open.get(fd);
      return n ? cb(0, stat(n)) : cb(-E.EBADF);
    },
    readdir(p, cb) {
      rec("readdir", p);
      const prefix = p === "/" ? "/" : `${p}/`;
      const names = [...files.keys()]
        .filter((k) => k !== p && k.startsWith(prefix) && !k.slice(prefix.length).includes("/"))
        .map((k) => k.slice(prefix.length));
      cb(0, [".", "..", ...names]);
    },
    open(p, flags, cb) {
      rec("open", p, flags);
      const n = files.get(p);
      if (!n) return cb(-E.ENOENT);
      open.set(nextFd, n);
      cb(0, nextFd++);
    },
    create(p, mode, flags, cb) {
      rec("create", p, mode, flags);
      const n = node(mode);
      files.set(p, n);
      open.set(nextFd, n);
      cb(0, nextFd++);
    },
    read(p, fd, buf, len, pos, cb) {
      rec("read", p, fd, len, pos);
      const n = open.get(fd);
      if (!n) return cb(-E.EBADF);
      cb(pos >= n.size ? 0 : n.data.copy(buf, 0, pos, Math.min(n.size, pos + len)));
    },
    write(p, fd, buf, len, pos, cb) {
      rec("write", p, fd, len, pos);
      const n = open.get(fd);
      if (!n) return cb(-E.EBADF);
      if (pos + len > n.size) resize(n, pos + len);
      buf.copy(n.data, pos, 0, len);
      n.mtime = n.ctime = now();
      cb(len);
    },
    flush(p, fd, cb) { rec("flush", p, fd); cb(0); },
    release(p, fd, cb) { rec("release", p, fd); open.delete(fd); cb(0); },
    truncate(p, size, cb) {
      rec("truncate", p, size);
      const n = files.get(p);
      if (!n) return cb(-E.ENOENT);
      resize(n, size);
      cb(0);
    },
    ftruncate(p, fd, size, cb) {
      rec("ftruncate", p, fd, size);
      const n = open.get(fd);
      if (!n) return cb(-E.EBADF);
      resize(n, size);
      cb(0);
    },
    utimens(p, atime, mtime, cb) {
      rec("utimens", p, atime, mtime);
      const n = files.get(p);
      if (!n) return cb(-E.ENOENT);
      if (atime) n.atime = atime;
      if (mtime) n.mtime = mtime;
      n.ctime = now();
      cb(0);
    },
    chmod(p, mode, cb) { rec("chmod", p, mode); cb(0); },
    chown(p, uid, gid, cb) { rec("chown", p, uid, gid); cb(0); },
    unlink(p, cb) { rec("unlink", p); cb(files.delete(p) ? 0 : -E.ENOENT); },
    rename(src, dest, cb) {
      rec("rename", src, dest);
      const n = files.get(src);
      if (!n) return cb(-E.ENOENT);
      files.delete(src);
      files.set(dest, n);
      cb(0);
    },
    link(src, dest, cb) {
      rec("link", src, dest);
      const n = files.get(src);
      if (!n) return cb(-E.ENOENT);
      files.set(dest, n);
      cb(0);
    },
    mkdir(p, mode, cb) { rec("mkdir", p, mode); files.set(p, node(0o40000 | mode)); cb(0); },
    rmdir(p, cb) { rec("rmdir", p); cb(files.delete(p) ? 0 : -E.ENOENT); },
    lock(p, fd, cmd, lock, owner, cb) {
      rec("lock", p, fd, cmd, lock, owner);
      if (cmd === F_GETLK) return cb(0, { ...lock, type: F_UNLCK } satisfies PosixLock);
      cb(0);
    },
    flock(p, fd, op, owner, cb, signal) {
      rec("flock", p, fd, op, owner);
      // "/held" is always locked by someone else: a blocking request waits until interrupted.
      if (p !== "/held" || op === LOCK_UN) return cb(0);
      if (op & 4 /* LOCK_NB */) return cb(-E.EWOULDBLOCK);
      signal?.addEventListener("abort", () => {
        rec("flock-aborted", p);
        cb(-E.EINTR);
      });
    },
  };
}

/** base, whose listings carry every entry's attributes, as gfs's adapter gives them. */
function withListedStats(base: FuseOps, calls: Call[]): FuseOps {
  return {
    ...base,
    readdir(p, cb) {
      base.readdir!(p, (res: number, names?: string[]) => {
        if (res !== 0 || !names) return cb(res);
        const recorded = calls.length;
        const stats = names.map((n) => {
          let st: Stat | undefined;
          base.getattr(n === "." || n === ".." ? p : path.posix.join(p, n), (_r: number, s?: Stat) => (st = s));
          return st!;
        });
        calls.splice(recorded); // those were ours, not the kernel's
        cb(0, names, stats);
      });
    },
  };
}

describe("fuse-native fork (libfuse 2.9)", () => {
  const calls: Call[] = [];
  let t: TempMount | undefined;
  let M = "";
  const of = (op: string) => calls.filter((c) => c.op === op);

  beforeAll(async () => {
    const build = await sh(`${ROOT}/scripts/build-native`, 300_000);
    if (build.code !== 0) throw new Error(`scripts/build-native failed:\n${build.stdout}${build.stderr}`);
    t = await mountTemp("gfs-native-", memFs(calls), { attrTimeout: 0, entryTimeout: 0, fsname: "gfs-test" });
    M = t.M;
  }, 320_000);

  afterAll(() => unmountTemp(t), 30_000);

  beforeEach(() => {
    calls.length = 0;
  });

  test("mounted with our options: fuse type, fsname, and the kernel sees it", async () => {
    const r = await sh(`grep " ${M} " /proc/mounts`);
    expect(r.stdout).toMatch(/^gfs-test \S+ fuse /);
  });

  test("dd bs=1M count=8 reaches write in 131072-byte pieces (big_writes + max_write)", async () => {
    const r = await sh(`dd if=/dev/zero of=${M}/f bs=1M count=8 2>&1`);
    expect(r.code).toBe(0);
    const writes = of("write");
    const sizes = writes.map((c) => c.args[2] as number);
    expect(Math.max(...sizes)).toBe(131072);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(8 * 1024 * 1024);
    expect(writes.length).toBeGreaterThanOrEqual(64);
    expect(writes.length).toBeLessThanOrEqual(72); // about 64, nowhere near 2048 (4 KiB each)
    const size = await sh(`stat -c %s ${M}/f`);
    expect(size.stdout.trim()).toBe(String(8 * 1024 * 1024));
  });

  test("echo x >> newfile reaches create with O_APPEND in the flags", async () => {
    const r = await sh(`echo x >> ${M}/newfile && cat ${M}/newfile`);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("x\n");
    const creates = of("create").filter((c) => c.args[0] === "/newfile");
    expect(creates).toHaveLength(1);
    expect((creates[0].args[2] as number) & O_APPEND).toBe(O_APPEND);
  });

  test("touch -d with nanoseconds: utimens gets them and stat shows them", async () => {
    await sh(`: > ${M}/t`);
    calls.length = 0;
    const r = await sh(`touch -d '2021-01-02 03:04:05.123456789' ${M}/t && stat -c '%x|%y' ${M}/t`);
    expect(r.code).toBe(0);
    const u = of("utimens");
    expect(u).toHaveLength(1);
    expect(u[0].args[1]).toEqual([1609556645, 123456789]);
    expect(u[0].args[2]).toEqual([1609556645, 123456789]);
    const [atime, mtime] = r.stdout.trim().split("|");
    expect(mtime).toContain(".123456789");
    expect(atime).toContain(".123456789");
  });

  test("touch -m leaves atime alone (utimens gets null), touch -a leaves mtime alone", async () => {
    await sh(`: > ${M}/tm && touch -d '2020-05-06 07:08:09.111111111' ${M}/tm`);
    calls.length = 0;
    let r = await sh(`touch -m -d '2022-01-01 00:00:00.5' ${M}/tm && stat -c '%x|%y' ${M}/tm`);
    expect(r.code).toBe(0);
    let u = of("utimens");
    expect(u).toHaveLength(1);
    expect(u[0].args[1]).toBeNull();
    expect(u[0].args[2]).toEqual([1640995200, 500000000]);
    expect(r.stdout.trim()).toBe("2020-05-06 07:08:09.111111111 +0000|2022-01-01 00:00:00.500000000 +0000");

    calls.length = 0;
    r = await sh(`touch -a -d '2023-03-03 03:03:03.000000333' ${M}/tm && stat -c '%x|%y' ${M}/tm`);
    u = of("utimens");
    expect(u).toHaveLength(1);
    expect(u[0].args[1]).toEqual([1677812583, 333]);
    expect(u[0].args[2]).toBeNull();
    expect(r.stdout.trim()).toBe("2023-03-03 03:03:03.000000333 +0000|2022-01-01 00:00:00.500000000 +0000");
  });

  test("fgetattr gets the fd of the open file (also once it is unlinked)", async () => {
    await sh(`printf 12345 > ${M}/g`);
    calls.length = 0;
    // fstat itself arrives as getattr(path) (the kernel sends no file handle with it); the kernel
    // does send the handle when it refreshes attributes for an open file: lseek(SEEK_END),
    // ftruncate, and right after create. With attrTimeout 0 each of these asks us.
    const py = [
      "import os",
      `fd = os.open('${M}/g', os.O_RDWR)`,
      "print(os.fstat(fd).st_size)",
      "print(os.lseek(fd, 0, os.SEEK_END))",
      `os.unlink('${M}/g')`,
      "os.ftruncate(fd, 2)",
      "print(os.lseek(fd, 0, os.SEEK_END))",
      "print(os.fstat(fd).st_size)",
      "os.close(fd)",
    ].join("\n");
    const r = await sh(`python3 -c "${py}"`);
    expect(r.stderr).toBe("");
    expect(r.stdout.trim().split("\n")).toEqual(["5", "5", "2", "2"]);
    expect(of("open").filter((c) => c.args[0] === "/g")).toHaveLength(1);
    const fg = of("fgetattr");
    expect(fg.length).toBeGreaterThanOrEqual(2);
    const fds = new Set(fg.map((c) => c.args[1]));
    expect(fds.size).toBe(1);
    expect([...fds][0]).toBeGreaterThanOrEqual(100); // one of the numbers our open() handed out
    // after the unlink libfuse renamed the open file to .fuse_hidden*, and fgetattr still has the fd
    expect(fg.some((c) => String(c.args[0]).startsWith("/.fuse_hidden"))).toBe(true);
    expect(of("ftruncate")[0]?.args.slice(1)).toEqual([[...fds][0], 2]);
  });

  test("flock(1) reaches the flock handler, and the last close unlocks it", async () => {
    await sh(`: > ${M}/lk`);
    calls.length = 0;
    const r = await sh(`flock ${M}/lk -c 'echo locked' && flock -s -n ${M}/lk true`);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("locked\n");
    await waitFor(() => of("flock").filter((c) => c.args[2] === LOCK_UN).length >= 2);
    const ops = of("flock").map((c) => c.args[2]);
    expect(ops).toContain(LOCK_EX);
    expect(ops).toContain(LOCK_SH | 4 /* LOCK_NB */);
    expect(ops.filter((o) => o === LOCK_UN)).toHaveLength(2); // from fi->flock_release on close
    for (const c of of("flock")) expect(typeof c.args[3]).toBe("bigint");
    const ex = of("flock").find((c) => c.args[2] === LOCK_EX)!;
    const unlock = of("flock").find((c) => c.args[2] === LOCK_UN)!;
    expect(unlock.args[3]).toBe(ex.args[3]); // same lock owner
  });

  test("a blocking flock gets an AbortSignal that fires when the waiting process is interrupted", async () => {
    await sh(`: > ${M}/held`);
    calls.length = 0;
    const r = await sh(`timeout -s INT 0.5 flock ${M}/held true`);
    expect(r.code).toBe(124); // killed by the signal while waiting, not stuck in the kernel
    await waitFor(() => of("flock-aborted").length === 1);
    expect(of("flock-aborted")).toHaveLength(1);
    expect((await sh(`flock -n ${M}/held true`)).code).toBe(1); // non-blocking: no signal, EWOULDBLOCK
  });

  test("rename over an open file: the hidden name is a link, so the target never goes missing", async () => {
    await sh(`echo old > ${M}/tgt && echo new > ${M}/src`);
    calls.length = 0;
    const r = await sh(`exec 3<${M}/tgt; mv ${M}/src ${M}/tgt && cat ${M}/tgt && cat <&3`);
    expect(r.stdout).toBe("new\nold\n");
    const hide = of("link").find((c) => c.args[0] === "/tgt" && String(c.args[1]).startsWith("/.fuse_hidden"));
    expect(hide).toBeDefined();
    expect(of("rename").map((c) => c.args)).toEqual([["/src", "/tgt"]]); // and no rename of /tgt away
    // Unlinking an open file still hides it by a real rename (the name must go).
    calls.length = 0;
    const u = await sh(`exec 3<${M}/tgt; rm ${M}/tgt && test ! -e ${M}/tgt && cat <&3`);
    expect(u.stdout).toBe("new\n");
    expect(of("rename").map((c) => c.args[0])).toEqual(["/tgt"]);
    expect(of("link")).toHaveLength(0);
    // A rename of the user's own to a name that merely looks hidden is a rename.
    calls.length = 0;
    const own = await sh(`echo z > ${M}/plain && mv ${M}/plain ${M}/.fuse_hiddenmine && test ! -e ${M}/plain && cat ${M}/.fuse_hiddenmine`);
    expect(own.stdout).toBe("z\n");
    expect(of("link")).toHaveLength(0);
  });

  test("python fcntl.lockf reaches the lock handler (F_SETLK/F_SETLKW/F_GETLK, range, owner)", async () => {
    await sh(`: > ${M}/pl`);
    calls.length = 0;
    const py = [
      "import fcntl, struct",
      `f = open('${M}/pl', 'r+')`,
      "fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 5)",
      "q = struct.pack('hhqqi4x', fcntl.F_WRLCK, 0, 3, 4, 0)",
      "print(struct.unpack('hhqqi4x', fcntl.fcntl(f, fcntl.F_GETLK, q))[0])",
      "fcntl.lockf(f, fcntl.LOCK_UN, 10, 5)",
      "fcntl.lockf(f, fcntl.LOCK_SH)",
      "f.close()",
    ].join("\n");
    const r = await sh(`python3 -c "${py}"`);
    expect(r.stderr).toBe("");
    expect(r.stdout.trim()).toBe(String(F_UNLCK));
    const locks = of("lock").map((c) => ({ cmd: c.args[2], lock: c.args[3] as PosixLock, owner: c.args[4] }));
    const set = locks.find((l) => l.cmd === F_SETLK && l.lock.type === F_WRLCK);
    expect(set?.lock).toMatchObject({ type: F_WRLCK, whence: 0, start: 5, len: 10 });
    expect(set!.lock.pid).toBeGreaterThan(0);
    expect(typeof set!.owner).toBe("bigint");
    expect(locks.some((l) => l.cmd === F_GETLK && l.lock.start === 3 && l.lock.len === 4)).toBe(true);
    expect(locks.some((l) => l.cmd === F_SETLKW && l.lock.type === 0 /* F_RDLCK */)).toBe(true);
    expect(locks.some((l) => l.lock.type === F_UNLCK && l.lock.start === 5 && l.lock.len === 10)).toBe(true);
    expect(new Set(locks.map((l) => l.owner)).size).toBe(1); // one process, one open file: one owner
  });

  test("a JS exception inside an op is answered with EIO instead of hanging", async () => {
    const r = await sh(`stat ${M}/boom`, 10_000);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Input\/output error/);
    // and the mount still works afterwards
    expect((await sh(`ls ${M}`)).code).toBe(0);
  });
});

describe("answered in C: getattr of listed names (names-cache.c), unlock at close", () => {
  const calls: Call[] = [];
  let t: TempMount | undefined;
  let M = "";
  /** getattr calls that reached JS for path. */
  const getattrs = (p: string) => calls.filter((c) => c.op === "getattr" && c.args[0] === p).length;

  beforeAll(async () => {
    const ops = withListedStats(memFs(calls), calls);
    // entry_timeout 0: every stat makes the kernel look the name up, so each one is seen here.
    t = await mountTemp("gfs-native-names-", ops, { attrTimeout: 1, entryTimeout: 0, fsname: "gfs-test-names" });
    M = t.M;
    expect((await sh(`mkdir ${M}/c && : > ${M}/c/a && : > ${M}/c/b`)).code).toBe(0);
  }, 30_000);

  afterAll(() => unmountTemp(t), 30_000);

  test("after a listing, stat of its names does not reach JS; after a change it does, and sees it", async () => {
    await new Promise((r) => setTimeout(r, 1100)); // what the creates left is stale by now
    calls.length = 0;
    let r = await sh(`ls -l ${M}/c >/dev/null && stat -c %s ${M}/c/a ${M}/c/b`);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("0\n0\n");
    expect(calls.filter((c) => c.op === "readdir")).toHaveLength(1);
    expect(getattrs("/c/a") + getattrs("/c/b")).toBe(0);

    // A write through the mount drops what the listing left of that name: the next stat asks JS
    // and sees it; its neighbour is still answered from the listing.
    r = await sh(`echo hello >> ${M}/c/a && stat -c %s ${M}/c/a ${M}/c/b`);
    expect(r.stdout).toBe("6\n0\n");
    expect(getattrs("/c/a")).toBeGreaterThan(0);
    expect(getattrs("/c/b")).toBe(0);
    // A rename drops both names (and the directory's own attributes).
    r = await sh(`mv ${M}/c/b ${M}/c/b2 && stat -c %s ${M}/c/b2 && mv ${M}/c/b2 ${M}/c/b`);
    expect(r.stdout).toBe("0\n");
    expect(getattrs("/c/b2")).toBeGreaterThan(0);

    // Listed again: kept for attr_timeout (1 s) only.
    expect((await sh(`ls -l ${M}/c >/dev/null`)).code).toBe(0);
    calls.length = 0;
    expect((await sh(`stat -c %s ${M}/c/b`)).stdout).toBe("0\n");
    expect(getattrs("/c/b")).toBe(0);
    await new Promise((r) => setTimeout(r, 1200));
    expect((await sh(`stat -c %s ${M}/c/b`)).stdout).toBe("0\n");
    expect(getattrs("/c/b")).toBe(1);
  });

  test("a new directory's attributes (the look-up after its mkdir) answer the walks into it while files are made there", async () => {
    calls.length = 0;
    // Each create drops the kernel's copy of the directory's attributes: every next walk asks again.
    let r = await sh(`mkdir ${M}/n && for i in 1 2 3 4 5; do : > ${M}/n/f$i; done && stat -c %F ${M}/n`);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("directory\n");
    expect(getattrs("/n")).toBe(2); // the look-up before the mkdir (not there yet), and the mkdir's own
    // Kept for attr_timeout (1 s), as a listing's attributes are.
    await new Promise((res) => setTimeout(res, 1200));
    r = await sh(`: > ${M}/n/g && : > ${M}/n/h`);
    expect(r.code).toBe(0);
    expect(getattrs("/n")).toBeGreaterThan(2);
  });

  test("close does not ask JS to unlock until a lock was ever asked for on the mount", async () => {
    calls.length = 0;
    expect((await sh(`echo x > ${M}/c/z && cat ${M}/c/z`)).stdout).toBe("x\n");
    expect(calls.filter((c) => c.op === "flush").length).toBeGreaterThanOrEqual(2);
    expect(calls.filter((c) => c.op === "lock")).toHaveLength(0);
    const py = `import fcntl, os; fd = os.open("${M}/c/z", os.O_RDWR); fcntl.lockf(fd, fcntl.LOCK_EX); os.close(fd)`;
    expect((await sh(`python3 -c '${py}'`)).code).toBe(0);
    calls.length = 0;
    expect((await sh(`cat ${M}/c/z`)).stdout).toBe("x\n");
    const unlocks = calls.filter((c) => c.op === "lock" && (c.args[3] as PosixLock).type === F_UNLCK);
    expect(unlocks).toHaveLength(1); // the close's, now that locks are in use here
  });
});

describe("answered from the JS thread: successful writes and closes (answer_early)", () => {
  const calls: Call[] = [];
  let t: TempMount | undefined;
  let M = "";

  beforeAll(async () => {
    const base = memFs(calls);
    // Answers come a little later at times (as gfs's do, after a promise or two), and some fail.
    const later = (f: () => void) => (Math.random() < 0.3 ? setTimeout(f, Math.random() * 2) : f());
    const ops: FuseOps = {
      ...base,
      write(p, fd, buf, len, pos, cb) {
        if (p.includes("full")) return later(() => cb(-E.ENOSPC));
        const copy = Buffer.from(buf.subarray(0, len)); // (the kernel's buffer is gone once answered)
        later(() => base.write!(p, fd, copy, len, pos, cb));
      },
      flush(p, fd, cb) {
        later(() => (p.includes("badclose") ? cb(-E.EIO) : base.flush!(p, fd, cb)));
      },
    };
    t = await mountTemp("gfs-native-early-", ops, { attrTimeout: 1, entryTimeout: 1, fsname: "gfs-test-early" });
    M = t.M;
  }, 30_000);

  afterAll(() => unmountTemp(t), 30_000);

  test("what is written arrives whole and in order: 4 processes of O_APPEND lines, and dd of 8 MiB", async () => {
    const lines = (w: number) => `for i in $(seq 1 300); do echo "w${w} line $i"; done`;
    // (Made first: this test file system's create replaces a file that is there, and the four
    // first opens with O_CREAT would race.)
    let r = await sh(`: > ${M}/log && ${[1, 2, 3, 4].map((w) => `(${lines(w)}) | while read -r l; do echo "$l" >> ${M}/log; done &`).join(" ")} wait`);
    expect(r.code).toBe(0);
    r = await sh(`cat ${M}/log`);
    const got = r.stdout.trim().split("\n");
    expect(got).toHaveLength(1200);
    for (const w of [1, 2, 3, 4]) {
      expect(got.filter((l) => l.startsWith(`w${w} `))).toEqual(Array.from({ length: 300 }, (_, i) => `w${w} line ${i + 1}`));
    }
    r = await sh(`head -c 8388608 /dev/urandom > ${t!.dir}/src && dd if=${t!.dir}/src of=${M}/big bs=1M status=none && cmp ${t!.dir}/src ${M}/big && echo same`);
    expect(r.stdout).toBe("same\n");
    // 1,200 line writes, 64 of 128 KiB and at least a close each: answered from the JS thread.
    expect(t!.fuse.answeredEarly).toBeGreaterThan(1200 + 64);
  });

  test("once a record lock was asked for on the mount, closes wait for the unlock again (writes still go early)", async () => {
    const py = `import fcntl, os; fd = os.open("${M}/locked", os.O_RDWR | os.O_CREAT); fcntl.lockf(fd, fcntl.LOCK_EX); os.close(fd)`;
    expect((await sh(`python3 -c '${py}'`)).code).toBe(0);
    const before = t!.fuse.answeredEarly;
    expect((await sh(`cat ${M}/log > /dev/null && echo x >> ${M}/locked`)).code).toBe(0);
    expect(t!.fuse.answeredEarly).toBe(before + 1); // echo's one write; no close
  });

  test("a write or a close that fails is answered with its error", async () => {
    let r = await sh(`echo x > ${M}/full`);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/No space left on device/);
    const py = `import os
fd = os.open("${M}/badclose", os.O_WRONLY | os.O_CREAT)
os.write(fd, b"x")
try:
    os.close(fd)
    print("closed")
except OSError as e:
    print(e.strerror)`;
    r = await sh(`python3 -c '${py}'`);
    expect(r.stdout).toBe("Input/output error\n");
  });
});

describe("callers: onRequest gets each caller's pid, waitsOnRequest tells one asleep on a request (proc-state.c)", () => {
  const calls: Call[] = [];
  const pids: number[] = [];
  let t: TempMount | undefined;
  let answerSlow: (() => void) | undefined;

  beforeAll(async () => {
    const base = memFs(calls);
    // A getattr of /slow is answered only when the test says so: its caller sleeps on it meanwhile.
    const ops: FuseOps = { ...base, getattr: (p, cb) => (p === "/slow" ? (answerSlow = () => base.getattr(p, cb)) : base.getattr(p, cb)) };
    t = await mountTemp("gfs-native-callers-", ops, { attrTimeout: 0, entryTimeout: 0, fsname: "gfs-test-callers", onRequest: (pid) => pids.push(pid) });
  }, 30_000);

  afterAll(() => {
    answerSlow?.();
    return unmountTemp(t);
  }, 30_000);

  test("a stat waiting for our answer: true until answered; a sleeping process, a gone one: false", async () => {
    const statter = spawn("stat", ["-c", "%s", `${t!.M}/slow`], { stdio: "ignore" });
    const sleeper = spawn("sleep", ["30"], { stdio: "ignore" });
    try {
      const statPid = statter.pid!;
      await waitFor(() => answerSlow !== undefined);
      expect(answerSlow).toBeDefined();
      expect(pids).toContain(statPid);
      expect(waitsOnRequest(statPid)).toBe(true);
      const state = (pid: number) => readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /s, "")[0];
      await waitFor(() => state(sleeper.pid!) === "S"); // asleep in its nanosleep
      expect(state(sleeper.pid!)).toBe("S");
      expect(waitsOnRequest(sleeper.pid!)).toBe(false);
      const exited = new Promise((r) => statter.once("exit", r));
      answerSlow!();
      await exited;
      expect(waitsOnRequest(statPid)).toBe(false);
    } finally {
      statter.kill("SIGKILL");
      sleeper.kill("SIGKILL");
    }
  });
});

describe("mount errors", () => {
  test("mount() rejects with a clear message for a missing or non-empty mountpoint", async () => {
    const d = await mkdtemp(path.join(os.tmpdir(), "gfs-native-err-"));
    try {
      await expect(new FuseMount(path.join(d, "nope"), memFs([]), {}).mount()).rejects.toThrow(/does not exist/);
      await writeFile(path.join(d, "x"), "x");
      await expect(new FuseMount(d, memFs([]), {}).mount()).rejects.toThrow(/not empty/);
      await expect(new FuseMount(d, memFs([]), { maxWrite: 1 << 20 }).mount()).rejects.toThrow(/maxWrite/);
    } finally {
      await rm(d, { recursive: true, force: true });
    }
  });
});

describe("clearsSetId: the kernel leaves clearing set-id bits to the file system (FUSE_HANDLE_KILLPRIV_V2)", () => {
  const calls: Call[] = [];
  const marks: boolean[] = [];
  let t: TempMount | undefined;
  let M = "";

  beforeAll(async () => {
    const base = memFs(calls);
    const ops: FuseOps = {
      ...base,
      write(p, fd, buf, len, pos, cb) {
        marks.push(currentCaller().killPrivs);
        base.write!(p, fd, buf, len, pos, cb);
      },
    };
    t = await mountTemp("gfs-native-setid-", ops, { attrTimeout: 0, entryTimeout: 0, fsname: "gfs-test-setid", clearsSetId: true, allowOther: true });
    M = t.M;
    await chmod(t.dir, 0o755); // mkdtemp's 0700 would keep nobody out
  }, 30_000);

  afterAll(() => unmountTemp(t), 30_000);

  test("a write by a caller without CAP_FSETID is marked for the file system; root's is not", async () => {
    // Marks come only if the flag was agreed at INIT: without it the kernel clears the bits itself.
    expect((await sh(`umask 0 && echo a >> ${M}/f`)).code).toBe(0);
    const r = await sh(`setpriv --reuid=65534 --regid=65534 --clear-groups -- sh -c 'echo b >> ${M}/f'`);
    expect(r.stderr).toBe("");
    expect(marks).toEqual([false, true]);
  });
});

describe("readdirPlus: listings carry each entry's node and attributes (readdir-plus.c)", () => {
  const calls: Call[] = [];
  let plus: TempMount | undefined;
  let plain: TempMount | undefined;
  /** LOOKUP and READDIRPLUS requests the kernel sends t while script runs. */
  async function requestsOf(t: TempMount, script: string): Promise<{ lookups: number; plus: number; stdout: string }> {
    const lookups = t.fuse.kernelRequests(KernelOp.LOOKUP), pluses = t.fuse.kernelRequests(KernelOp.READDIRPLUS);
    const r = await sh(script);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    return { lookups: t.fuse.kernelRequests(KernelOp.LOOKUP) - lookups, plus: t.fuse.kernelRequests(KernelOp.READDIRPLUS) - pluses, stdout: r.stdout };
  }
  /** n files in dir of M, file i holding i bytes, with names long enough that a listing takes several requests. */
  const makeFiles = (M: string, dir: string, n: number) =>
    sh(`mkdir ${M}/${dir} && cd ${M}/${dir} && for i in $(seq 1 ${n}); do head -c $i /dev/zero > f$i-${"x".repeat(100)}; done`);

  beforeAll(async () => {
    const ops = withListedStats(memFs(calls), calls);
    plus = await mountTemp("gfs-native-plus-", ops, { attrTimeout: 1, entryTimeout: 1, fsname: "gfs-test-plus", readdirPlus: true });
    plain = await mountTemp("gfs-native-plain-", withListedStats(memFs([]), []), { attrTimeout: 1, entryTimeout: 1, fsname: "gfs-test-plain" });
    expect((await makeFiles(plus.M, "d", 300)).code).toBe(0);
    expect((await makeFiles(plain.M, "d", 300)).code).toBe(0);
    await new Promise((r) => setTimeout(r, 1100)); // the creates' entries and attributes have run out
  }, 60_000);

  afterAll(async () => {
    await unmountTemp(plus);
    await unmountTemp(plain);
  }, 30_000);

  test("ls -l makes no look-up per entry and shows every size; without readdirPlus each entry is looked up", async () => {
    const expected = Array.from({ length: 300 }, (_, i) => `${i + 1} f${i + 1}-${"x".repeat(100)}`).sort().join("\n") + "\n";
    const listing = (M: string) => `ls -l ${M}/d | awk 'NR > 1 {print $5, $9}' | sort`;
    const withPlus = await requestsOf(plus!, listing(plus!.M));
    expect(withPlus.stdout).toBe(expected);
    expect(withPlus.plus).toBeGreaterThan(1); // 300 entries of ~280 bytes do not fit one request
    expect(withPlus.lookups).toBeLessThanOrEqual(1); // the directory itself, its entry having run out
    const without = await requestsOf(plain!, listing(plain!.M));
    expect(without.stdout).toBe(expected);
    expect(without.plus).toBe(0);
    expect(without.lookups).toBeGreaterThanOrEqual(300);
  });

  test("names changed after a listing are seen: rename, unlink, a write, a new file; the mount keeps answering", async () => {
    const M = plus!.M;
    await requestsOf(plus!, `ls -l ${M}/d > /dev/null`);
    const r = await requestsOf(
      plus!,
      `cd ${M}/d && mv f1-${"x".repeat(100)} renamed && rm f2-${"x".repeat(100)} && echo hello > f3-${"x".repeat(100)} && : > new &&
       ls -l | awk 'NR > 1 {print $5, $9}' | grep -v "^[0-9]* f[0-9]*-" ; stat -c "%s %n" f3-${"x".repeat(100)} ; ls | wc -l`,
    );
    expect(r.stdout).toBe(`0 new\n1 renamed\n6 f3-${"x".repeat(100)}\n300\n`); // one gone, one new
    // Listed again after everything changed (lookups counted twice would leave libfuse's nodes
    // astray; forgotten too often, libfuse aborts): the same names, and every entry removable.
    expect((await requestsOf(plus!, `ls -lR ${M} > /dev/null && rm -r ${M}/d && ls -A ${M}`)).stdout).toBe("");
    expect((await requestsOf(plus!, `mkdir ${M}/e && : > ${M}/e/a && ls -l ${M}/e | wc -l`)).stdout).toBe("2\n");
  });
});
