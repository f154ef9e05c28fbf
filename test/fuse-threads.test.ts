// Thread placement in the mount (src/fuse/native/thread-placement.h): while requests are small the
// FUSE workers and the JS thread share one CPU; bulk reads set them free again; with
// --pin-fuse-threads 0 the scheduler alone places them. Seen from outside, in the CPUs the kernel
// allows the mount's main (JS) thread. And its busy-polling threads (busy-poll.h), seen in /proc.

import { readdir, readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import { ok, withCluster } from './helpers/cluster.js';

const env = withCluster({}, 1);

const allowedCpus = async (pid: number | 'self'): Promise<string> =>
  /Cpus_allowed_list:\s*(\S+)/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))![1];

/** "0-2,5" -> ["0", "1", "2", "5"] */
const cpuList = (list: string): string[] =>
  list.split(',').flatMap((part) => {
    const [a, b] = part.split('-').map(Number);
    return Array.from({ length: (b ?? a) - a + 1 }, (_, i) => String(a + i));
  });

interface Poller { state: string; ticks: number; policy: number; cpus: string; switches: number }

/** The mount's busy-polling threads (named gfs-busy-poll), from /proc. */
async function pollers(pid: number): Promise<Poller[]> {
  const found: Poller[] = [];
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    const dir = `/proc/${pid}/task/${tid}`;
    if ((await readFile(`${dir}/comm`, 'utf8').catch(() => '')).trim() !== 'gfs-busy-poll') continue;
    const stat = await readFile(`${dir}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 of proc(5)
    const status = await readFile(`${dir}/status`, 'utf8');
    found.push({
      state: f[0],
      ticks: Number(f[11]) + Number(f[12]), // utime + stime
      policy: Number(f[38]),
      cpus: /Cpus_allowed_list:\s*(\S+)/.exec(status)![1],
      switches: Number(/\nvoluntary_ctxt_switches:\s*(\d+)/.exec(status)![1]),
    });
  }
  return found;
}

async function until(what: string, cond: () => Promise<boolean>, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.skipIf(availableParallelism() < 2)('mount thread placement', () => {
  it('small requests keep the JS thread on one CPU, bulk reads free it, and --pin-fuse-threads 0 never pins', async () => {
    const { c, m1 } = env;
    const pinned = c.mounts[0].proc.pid!;
    const all = await allowedCpus('self');
    expect(all).toMatch(/[-,]/); // more than one CPU to choose from

    await ok(`for i in $(seq 1 200); do echo "line $i" >> ${m1}/small; done`);
    expect(await allowedCpus(pinned)).toMatch(/^\d+$/);

    // Written through another mount, so that m1 reads it from the chunkservers (128 KiB requests).
    const m2 = await c.mount(['--pin-fuse-threads', '0']);
    const free = c.mounts[1].proc.pid!;
    await ok(`head -c 16000000 /dev/urandom > ${m2}/big`);
    await ok(`dd if=${m1}/big of=/dev/null bs=1M status=none`);
    expect(await allowedCpus(pinned)).toBe(all);

    await ok(`for i in $(seq 1 200); do echo "line $i" >> ${m2}/small2; done`);
    expect(await allowedCpus(free)).toBe(all);
    // And the pinned mount pins again once the bulk reads are over.
    await new Promise((r) => setTimeout(r, 300));
    await ok(`for i in $(seq 1 200); do echo "line $i" >> ${m1}/small; done`);
    expect(await allowedCpus(pinned)).toMatch(/^\d+$/);
    expect((await ok(`wc -l < ${m1}/small`)).trim()).toBe('400');
  });

  it('busy polling: a lowest-priority thread on each CPU, asleep while the mount is idle, woken by its requests; none with --busy-poll-us 0', async () => {
    const { c, m1 } = env;
    const pid = c.mounts[0].proc.pid!;
    await ok(`for i in $(seq 1 50); do echo x >> ${m1}/poll; done`);
    const SCHED_IDLE = 5;
    const cpus = cpuList(await allowedCpus('self')).slice(0, 8); // BUSY_POLL_MAX_CPUS
    let found = await pollers(pid);
    expect(found.map((p) => p.cpus).sort()).toEqual(cpus.sort());
    expect(found.every((p) => p.policy === SCHED_IDLE)).toBe(true);

    // Idle: they sleep, and use no CPU.
    await until('the pollers sleep', async () => (await pollers(pid)).every((p) => p.state === 'S'));
    const before = await pollers(pid);
    await new Promise((r) => setTimeout(r, 500));
    found = await pollers(pid);
    expect(found.map((p) => p.state)).toEqual(before.map(() => 'S'));
    expect(found.map((p) => p.ticks)).toEqual(before.map((p) => p.ticks));

    // A request wakes each of them (and they sleep again after the window).
    expect((await ok(`cat ${m1}/poll | wc -l`)).trim()).toBe('50');
    await until('every poller was woken', async () => (await pollers(pid)).every((p, i) => p.switches > before[i].switches));

    const m2 = await c.mount(['--busy-poll-us', '0']);
    await ok(`echo y >> ${m2}/poll`);
    expect(await pollers(c.mounts[c.mounts.length - 1].proc.pid!)).toEqual([]);
  });
});
