// The body of scripts/bench-meta (see there): the client library (GfsClient) against the master
// over the real RPC path, no FUSE and no chunkservers. Figures go to stdout as
// "meta <name> <value>", one per line; progress and notes go to stderr.
//
// Modes of this one file:
//   (default)        the benchmark; must run under `node --expose-gc` (re-executes itself if not)
//   --worker         a client process driven over the fork IPC channel (one GfsClient each)
//   --breakdown N    builds a Namespace of N files directly and reports what each part of it costs
//
// 1. Rates. The master is a child process (`gfs master`), as deployed. Each client is its own
//    process with its own connection, making sequential calls (one in flight) for --seconds after a
//    short warm-up: creates (O_EXCL; in a directory the client made, so it answers them ahead and
//    sends them in batches: the time counts until all are on the master's disk), lookups with fresh=true
//    (GfsClient.lookup(path, true): always a master round trip, never the 1 s attribute cache) of
//    files that client created, and getattrs by inode through GfsClient.call('getattr') (the
//    uncached call; GfsClient.getattr would answer from the attribute cache). With N clients the
//    figure is the sum of the per-client rates over the same window.
// 2. Memory. The master runs in this process (startMaster from dist/) so that gc() and
//    process.memoryUsage() see its heap. --bulk-workers client processes create --files files in
//    --dirs directories through GfsClient.create, --window calls in flight each. Bytes per file =
//    (memory after GC with the files - memory after GC of the empty master) / files, where memory
//    is the JS heap plus ArrayBuffer backing stores (the master's inode columns are typed arrays,
//    which live outside the heap: heapUsed alone would not count them).
// 3. Restart. The op log then holds every create (checkpointEvery is set out of reach for the
//    creation). Timed: startMaster in this process until a lookup over a new connection answers,
//    and `node dist/cli.js master --data DIR` until its gfs-ready line (and until a lookup answers).
//    Then one more mutation under checkpointEvery=1 forces a checkpoint of the whole namespace
//    (timed, with the longest event-loop stall it causes), and the same two restarts are timed
//    again from the checkpoint. Heap per file is read again after each kind of restart.
// Diagnostics, to explain the figures (they measure no code path of the master as it runs):
//    replay_s_oplog_N_if_rid_eviction_o1  OpLog.open of the same log with replies.ts's 100,000-entry
//                                         request-id cache swapped for one with O(1) eviction
//    heap_part_*                          a Namespace of the same files built directly in a fresh
//                                         process, and what its parts take (see breakdown())

import { fork, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, readdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = (p) => join(root, 'dist', p);
const cli = dist('cli.js');
const self = fileURLToPath(import.meta.url);

const args = process.argv.slice(2);
const flag = (name) => args.includes(`--${name}`);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const note = (msg) => process.stderr.write(`bench-meta: ${msg}\n`);
const figure = (name, value, digits = 1) => console.log(`meta ${name} ${typeof value === 'number' ? value.toFixed(digits) : value}`);
const quiet = { info() {}, warn: (m) => process.stderr.write(`client WARN ${m}\n`), debug() {} };
const pad = (i) => String(i).padStart(6, '0');
const fileName = (i) => `file${pad(i)}`; // 10 bytes, as short names go
const dirName = (d) => `d${String(d).padStart(2, '0')}`;

if (flag('worker')) await worker();
else if (flag('breakdown')) await breakdown(opt('breakdown', 1_000_000), opt('dirs', 20));
else if (typeof globalThis.gc !== 'function') {
  const r = spawnSync(process.execPath, ['--expose-gc', self, ...args], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
} else await main();

// ====================================================================== client worker process

async function worker() {
  const { GfsClient } = await import(dist('client/client.js'));
  const { configFrom } = await import(dist('config.js'));
  let client;
  let me = 0;
  /** Files this client created in the rate phases: lookups and getattrs cycle over them. */
  const mine = [];
  let tag = 0;

  async function timed(kind, warmMs, ms) {
    const dir = `/w${me}`;
    const prefix = `c${++tag}_`;
    let n = 0;
    let i = 0;
    const one = async () => {
      if (kind === 'create') {
        const path = `${dir}/${prefix}${n++}`;
        const attr = await client.create(path, 0o644, 0, 0, true);
        mine.push({ path, ino: attr.ino });
      } else if (kind === 'lookup') {
        await client.lookup(mine[i++ % mine.length].path, true);
      } else {
        await client.call('getattr', { ino: mine[i++ % mine.length].ino });
      }
    };
    const warmEnd = performance.now() + warmMs;
    while (performance.now() < warmEnd) await one();
    let count = 0;
    const t0 = performance.now();
    const end = t0 + ms;
    while (performance.now() < end) {
      await one();
      count++;
    }
    await client.settled(); // creates answered ahead count once the master has them
    return { count, seconds: (performance.now() - t0) / 1000 };
  }

  async function bulk({ dirs, perDir, window }) {
    for (const d of dirs) await client.mkdir(`/${d}`, 0o755, 0, 0);
    const total = dirs.length * perDir;
    let next = 0;
    let done = 0;
    const t0 = performance.now();
    const lane = async () => {
      for (;;) {
        const k = next++;
        if (k >= total) return;
        await client.create(`/${dirs[Math.floor(k / perDir)]}/${fileName(k % perDir)}`, 0o644, 0, 0, true);
        if (++done % 25_000 === 0) process.send({ progress: 25_000 });
      }
    };
    await Promise.all(Array.from({ length: window }, lane));
    await client.settled();
    return { created: total, seconds: (performance.now() - t0) / 1000 };
  }

  process.on('message', async (msg) => {
    try {
      let result = {};
      if (msg.op === 'connect') {
        me = msg.me;
        client = new GfsClient(msg.url, configFrom({}), quiet);
        await client.connect();
        if (msg.mkdir) await client.mkdir(`/w${me}`, 0o755, 0, 0);
      } else if (msg.op === 'run') {
        result = await timed(msg.kind, msg.warmMs, msg.ms);
      } else if (msg.op === 'bulk') {
        result = await bulk(msg);
      } else if (msg.op === 'exit') {
        await client?.settled(); // (close() drops what the master has not taken yet)
        client?.close();
        process.send({ id: msg.id, result }, () => process.exit(0));
        return;
      }
      process.send({ id: msg.id, result });
    } catch (e) {
      process.send({ id: msg.id, error: e?.stack ?? String(e) });
    }
  });
  process.send({ hello: true });
}

// ====================================================================== the benchmark

async function main() {
  const files = opt('files', 1_000_000);
  const dirs = opt('dirs', 20);
  const clients = opt('clients', 8);
  const seconds = opt('seconds', 5);
  const bulkWorkers = opt('bulk-workers', 4);
  const window = opt('window', 256);
  if (files % dirs !== 0) throw new Error('--files must be a multiple of --dirs');

  const { startMaster } = await import(dist('master/server.js'));
  const { configFrom } = await import(dist('config.js'));
  const { connect } = await import(dist('protocol/rpc.js'));

  const work = mkdtempSync('/var/tmp/gfs-bench-meta.');
  const children = new Set(); // every process this script started
  let inproc = null; // the master running in this process, if any

  // ---------------------------------------------------------------- helpers

  function startWorker() {
    const proc = fork(self, ['--worker'], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.add(proc);
    proc.once('exit', () => children.delete(proc));
    const waiting = new Map();
    let nextId = 1;
    let onProgress = () => {};
    const hello = new Promise((resolve) => proc.once('message', resolve));
    proc.on('message', (m) => {
      if (m.progress) return onProgress(m.progress);
      const w = waiting.get(m.id);
      if (!w) return;
      waiting.delete(m.id);
      if (m.error) w.reject(new Error(`worker ${proc.pid}: ${m.error}`));
      else w.resolve(m.result);
    });
    proc.once('exit', (code) => {
      for (const w of waiting.values()) w.reject(new Error(`worker ${proc.pid} exited (${code})`));
    });
    return {
      proc,
      ready: hello,
      progress: (f) => (onProgress = f),
      ask(msg) {
        const id = nextId++;
        return new Promise((resolve, reject) => {
          waiting.set(id, { resolve, reject });
          proc.send({ ...msg, id });
        });
      },
    };
  }

  async function stopWorkers(ws) {
    await Promise.all(ws.map((w) => w.ask({ op: 'exit' }).catch(() => {})));
    await Promise.all(ws.map((w) => (w.proc.exitCode === null && w.proc.signalCode === null ? new Promise((r) => w.proc.once('exit', r)) : null)));
  }

  /** `gfs master` as a child process; resolves with its URL at gfs-ready, and when it was. */
  function childMaster(dataDir, extra = []) {
    const t0 = performance.now();
    const proc = spawn(process.execPath, [cli, 'master', '--data', dataDir, '--listen', '127.0.0.1:0', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(proc);
    proc.once('exit', () => children.delete(proc));
    const log = [];
    let loaded = '';
    createInterface({ input: proc.stderr }).on('line', (l) => {
      log.push(l);
      if (/namespace loaded/.test(l)) loaded = l.replace(/^\S+ master /, '');
    });
    const ready = new Promise((resolve, reject) => {
      createInterface({ input: proc.stdout }).on('line', (l) => {
        const m = /^gfs-ready (.*)$/.exec(l);
        if (m) resolve({ url: m[1], ms: performance.now() - t0, loaded: () => loaded });
      });
      proc.once('exit', (code, sig) => reject(new Error(`master exited (${sig ?? code}):\n${log.slice(-20).join('\n')}`)));
    });
    return {
      proc,
      ready,
      async stop() {
        if (proc.exitCode !== null || proc.signalCode !== null) return;
        const gone = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await Promise.race([gone, sleep(20_000)]);
        if (proc.exitCode === null && proc.signalCode === null) {
          proc.kill('SIGKILL');
          await gone;
        }
      },
    };
  }

  const rpcOpts = { maxFrameBytes: 20 * 1024 * 1024, timeoutMs: 120_000, log: quiet };
  /** ms from t0 until a fresh connection to url gets an answer to lookup(path). */
  async function lookupAnswered(url, path, t0) {
    const peer = await connect(url, rpcOpts);
    try {
      const attr = await peer.call('lookup', { path });
      if (attr.type !== 'file') throw new Error(`lookup ${path}: not a file`);
      return performance.now() - t0;
    } finally {
      peer.close();
    }
  }

  async function cleanup() {
    if (inproc) await inproc.stop().catch(() => {});
    inproc = null;
    for (const c of [...children]) {
      if (c.exitCode === null && c.signalCode === null) {
        c.kill('SIGTERM');
        await Promise.race([new Promise((r) => c.once('exit', r)), sleep(10_000)]);
        if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      }
    }
    rmSync(work, { recursive: true, force: true });
  }
  process.on('SIGINT', () => cleanup().then(() => process.exit(130)));
  process.on('SIGTERM', () => cleanup().then(() => process.exit(143)));
  // A reader of our output that went away (`| head`): stop as if interrupted, not with the
  // children left running.
  process.stdout.on('error', () => cleanup().then(() => process.exit(141)));
  // However else this process ends (an uncaught error), no master is left behind: only
  // synchronous work is possible here.
  process.on('exit', () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  });

  try {
    // ============================================================ 1. rates
    if (!flag('skip-rates')) {
      note(`rates: master as a child process; ${seconds} s per figure after 1 s of warm-up; 1 client, then ${clients} client processes`);
      const m = childMaster(join(work, 'rates'));
      const { url } = await m.ready;
      const ws = Array.from({ length: clients }, startWorker);
      await Promise.all(ws.map((w) => w.ready));
      await Promise.all(ws.map((w, i) => w.ask({ op: 'connect', url, me: i, mkdir: true })));
      for (const n of [1, clients]) {
        for (const kind of ['create', 'lookup', 'getattr']) {
          const rs = await Promise.all(ws.slice(0, n).map((w) => w.ask({ op: 'run', kind, warmMs: 1000, ms: seconds * 1000 })));
          const rate = rs.reduce((s, r) => s + r.count / r.seconds, 0);
          const name = { create: 'creates', lookup: 'lookups', getattr: 'getattrs' }[kind];
          figure(`${name}_per_s_${n}client${n > 1 ? 's' : ''}`, rate);
        }
      }
      await stopWorkers(ws);
      await m.stop();
      rmSync(join(work, 'rates'), { recursive: true, force: true });
    }

    if (flag('skip-million')) return;

    // ============================================================ 2. memory per file
    const dataDir = join(work, 'master');
    const master = (checkpointEvery) => {
      let loaded = '';
      const log = { info: (m) => void (/namespace loaded/.test(m) && (loaded = m)), warn: (m) => process.stderr.write(`master WARN ${m}\n`), debug() {} };
      return { opts: { dataDir, host: '127.0.0.1', port: 0, cfg: configFrom({ checkpointEvery }), log }, loaded: () => loaded };
    };
    const NEVER = Number.MAX_SAFE_INTEGER;
    const heapBare = await heap();
    inproc = await startMaster(master(NEVER).opts);
    const heapEmpty = await heap();
    const url = `ws://${inproc.address}`;
    note(`memory: master in this process (heap ${(heapEmpty / 2 ** 20).toFixed(1)} MiB empty, ${((heapEmpty - heapBare) / 2 ** 20).toFixed(1)} MiB of it the master's), creating ${files} files in ${dirs} dirs from ${bulkWorkers} client processes, ${window} creates in flight each`);
    const ws = Array.from({ length: bulkWorkers }, startWorker);
    await Promise.all(ws.map((w) => w.ready));
    await Promise.all(ws.map((w, i) => w.ask({ op: 'connect', url, me: i, mkdir: false })));
    let created = 0;
    let lastNote = performance.now();
    const tb = performance.now();
    for (const w of ws) {
      w.progress((k) => {
        created += k;
        if (performance.now() - lastNote > 10_000) {
          lastNote = performance.now();
          note(`  ${created} files in ${((lastNote - tb) / 1000).toFixed(0)} s, heap ${(process.memoryUsage().heapUsed / 2 ** 20).toFixed(0)} MiB`);
        }
      });
    }
    const perDir = files / dirs;
    const names = Array.from({ length: dirs }, (_, d) => dirName(d));
    await Promise.all(ws.map((w, j) => w.ask({ op: 'bulk', dirs: names.filter((_, d) => d % bulkWorkers === j), perDir, window })));
    const bulkS = (performance.now() - tb) / 1000;
    await stopWorkers(ws);
    figure('bulk_creates_per_s_pipelined', files / bulkS);
    await sleep(500); // closed connections fully torn down
    const heapFull = await heap();
    figure(`master_heap_mib_${files}`, (heapFull - heapEmpty) / 2 ** 20);
    figure(`master_heap_bytes_per_file_${files}`, (heapFull - heapEmpty) / files);
    figure(`process_rss_mib_${files}`, process.memoryUsage().rss / 2 ** 20);
    const last = `/${dirName(dirs - 1)}/${fileName(perDir - 1)}`;
    await lookupAnswered(url, last, performance.now()); // every file is there

    // ============================================================ 3. restart: all in the op log
    await inproc.stop();
    inproc = null;
    // Each step below is its own async function: a suspended async function keeps its dead
    // temporaries (a RunningMaster, a whole Namespace) alive in its saved registers, which would
    // count in the next heap reading; a finished one keeps nothing.
    const sizes = () => readdirSync(dataDir).map((f) => `${f} ${(statSync(join(dataDir, f)).size / 2 ** 20).toFixed(1)} MiB`).join(', ');
    /** startMaster in this process until a lookup answers; heap per file while it runs, if asked. */
    const restartInProcess = async (what, heapFigure) => {
      const mm = master(NEVER);
      const t0 = performance.now();
      inproc = await startMaster(mm.opts);
      const ms = await lookupAnswered(`ws://${inproc.address}`, last, t0);
      figure(`restart_inprocess_s_${what}_${files}`, ms / 1000, 2);
      note(`  in process: ${mm.loaded()}`);
      if (heapFigure) figure(`${heapFigure}_${files}`, ((await heap()) - heapEmpty) / files);
      await inproc.stop();
      inproc = null;
    };
    /** `gfs master --data DIR` until gfs-ready (then until a first lookup answers). */
    const restartProcess = async (what) => {
      const c = childMaster(dataDir);
      const r = await c.ready;
      figure(`restart_process_ready_s_${what}_${files}`, r.ms / 1000, 2);
      const ms = await lookupAnswered(r.url, last, performance.now());
      note(`  process: ${r.loaded()}; first lookup ${ms.toFixed(0)} ms after gfs-ready`);
      await c.stop();
    };
    // Diagnostic, not the master as it is: the same replay (OpLog.open) with the request-id cache of
    // replies.ts replaced by one of the same size whose eviction is O(1) (a ring of the last ids).
    const replayWithRing = async () => {
      const { OpLog } = await import(dist('master/oplog.js'));
      const ring = ridRing(100_000);
      const t0 = performance.now();
      const opened = await OpLog.open(dataDir, configFrom({}).chunkSize, NEVER, (op) => ring.replayed(op));
      figure(`replay_s_oplog_${files}_if_rid_eviction_o1`, (performance.now() - t0) / 1000, 2);
      note(`  OpLog.open with an O(1)-eviction rid cache: ${opened.replayed} records`);
      await opened.log.close();
    };
    /** One mutation under checkpointEvery=1: its flush writes a checkpoint of everything. */
    const forceCheckpoint = async () => {
      inproc = await startMaster(master(1).opts);
      const peer = await connect(`ws://${inproc.address}`, rpcOpts);
      // The longest gap between ticks of a 5 ms timer: how long the event loop (every request) stood still.
      let tick = performance.now();
      let stall = 0;
      const probe = setInterval(() => {
        const now = performance.now();
        stall = Math.max(stall, now - tick);
        tick = now;
      }, 5);
      const t0 = performance.now();
      await peer.call('mkdir', { path: '/after-checkpoint', mode: 0o755, uid: 0, gid: 0 });
      const answered = performance.now() - t0;
      // Changes made while the checkpoint worker runs: each still waits for its own log write only.
      let slowest = 0;
      for (let i = 0; i < 500; i++) {
        const t = performance.now();
        await peer.call('mkdir', { path: `/during-checkpoint-${i}`, mode: 0o755, uid: 0, gid: 0 });
        slowest = Math.max(slowest, performance.now() - t);
      }
      peer.close();
      await inproc.stop(); // waits for the checkpoint under way
      inproc = null;
      clearInterval(probe);
      figure(`checkpoint_write_s_${files}`, (performance.now() - t0) / 1000, 2);
      // A worker thread builds and writes the checkpoint (oplog.ts): the event loop only switches logs.
      figure(`checkpoint_event_loop_stall_s_${files}`, stall / 1000, 2);
      figure(`checkpoint_slowest_of_500_mkdirs_ms_${files}`, slowest, 1);
      note(`  the mkdir that triggered the checkpoint was answered after ${answered.toFixed(0)} ms`);
    };

    note(`restart from the op log: ${sizes()}`);
    await restartInProcess('oplog', 'master_heap_bytes_per_file_after_replay');
    await restartInProcess('oplog');
    await restartProcess('oplog');
    await restartProcess('oplog');
    await replayWithRing();
    await forceCheckpoint();
    note(`restart from the checkpoint: ${sizes()}`);
    await restartInProcess('checkpoint', 'master_heap_bytes_per_file_after_checkpoint_load');
    await restartInProcess('checkpoint');
    await restartProcess('checkpoint');
    await restartProcess('checkpoint');
    rmSync(dataDir, { recursive: true, force: true });

    // ============================================================ where the bytes go
    if (!flag('skip-breakdown')) {
      note(`breakdown: a Namespace of ${files} files built directly in a fresh process`);
      const r = spawnSync(process.execPath, ['--expose-gc', self, '--breakdown', String(files), '--dirs', String(dirs)], { stdio: 'inherit' });
      if (r.status !== 0) note(`breakdown failed (${r.status ?? r.signal})`);
    }
  } finally {
    await cleanup();
  }
}

/** replies.ts's rid -> op cache (the last `max` ids), evicting the oldest in O(1). */
function ridRing(max) {
  const done = new Map();
  const ring = new Array(max);
  let at = 0;
  return {
    replayed(op) {
      const rid = op.rid;
      if (typeof rid !== 'string' || done.has(rid)) return;
      const oldest = ring[at];
      if (oldest !== undefined) done.delete(oldest);
      ring[at] = rid;
      at = (at + 1) % max;
      done.set(rid, op);
    },
  };
}

// ====================================================================== where the bytes go

/**
 * The JS heap plus ArrayBuffer backing stores (typed arrays live outside the heap), after GC. A
 * freed backing store is given back a little after the GC that found it dead: hence the pauses
 * (without them a figure taken after dropping a namespace came out 100-500 bytes per file off).
 */
async function heap() {
  for (let i = 0; i < 3; i++) {
    globalThis.gc();
    await new Promise((r) => setTimeout(r, 50));
  }
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/**
 * Builds the namespace the benchmark builds (dirs × files/dirs, 10-byte names, create ops as the
 * master's handler makes them) and reports what its parts take: the inode columns, the directory
 * entries (name strings and Map entries), the rest. Then the same with one chunk per file. Also
 * prices the request-id cache of replies.ts (100,000 entries by default).
 */
async function breakdown(files, dirs) {
  const { Namespace } = await import(dist('master/namespace.js'));
  const { nowTimespec } = await import(dist('master/ops.js'));
  const { Replies } = await import(dist('master/replies.js'));
  const { encode, decode } = await import(dist('protocol/rpc.js'));
  const per = (bytes) => bytes / files;
  const perDir = Math.floor(files / dirs);
  const part = (name, bytes) => figure(`heap_part_${name}_bytes_per_file`, per(bytes));

  // The request ids kept by replies.ts for retried requests: the last 100,000 namespace changes.
  let h = await heap();
  const replies = new Replies();
  const client = 'a1b2c3d4e5f60718';
  for (let i = 0; i < files; i++) {
    const req = decode(encode({ path: `/${dirName(i % dirs)}/${fileName(i)}`, mode: 0o644, uid: 0, gid: 0, exclusive: true, rid: `${client}-${i + 1}` }));
    replies.replayed({ t: 'create', path: req.path, mode: req.mode, uid: req.uid, gid: req.gid, ino: i + 2, time: nowTimespec(), rid: req.rid });
  }
  figure('heap_replies_rid_cache_mib', ((await heap()) - h) / 2 ** 20);

  // The ops as the server makes them: path from the decoded request, time from nowTimespec().
  const build = () => {
    const ns = new Namespace();
    for (let d = 0; d < dirs; d++) ns.apply({ t: 'mkdir', path: `/${dirName(d)}`, mode: 0o755, uid: 0, gid: 0, ino: ns.nextIno, time: nowTimespec() });
    for (let d = 0; d < dirs; d++) {
      for (let i = 0; i < perDir; i++) {
        const req = decode(encode({ path: `/${dirName(d)}/${fileName(i)}`, mode: 0o644, uid: 0, gid: 0, exclusive: true }));
        ns.apply({ t: 'create', path: req.path, mode: req.mode, uid: req.uid, gid: req.gid, ino: ns.nextIno, time: nowTimespec() });
      }
    }
    return ns;
  };

  h = await heap();
  let ns = build();
  const whole = (await heap()) - h;
  figure(`heap_namespace_bytes_per_file_${files}`, per(whole));
  part('inode_columns', ns.inodes.columnBytes);
  // A first chunk per file (addChunk + its version, as a first write makes them).
  h = await heap();
  for (let ino = dirs + 2; ino < dirs + 2 + files; ino++) {
    ns.apply({ t: 'addChunk', ino, index: 0, handle: ns.nextHandle });
    ns.apply({ t: 'version', handle: ns.nextHandle - 1, version: 1 });
  }
  part('one_chunk_each_if_written', (await heap()) - h);
  // Directory entries: what emptying the directories gives back.
  h = await heap();
  for (const n of ns.inodes.all()) n.children?.clear();
  const entries = h - (await heap());
  part('dir_entries_name_and_map', entries);
  part('other', whole - ns.inodes.columnBytes - entries);
  ns = null;

  return replies; // alive until now
}
