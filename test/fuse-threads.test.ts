// Thread placement in the mount (src/fuse/native/thread-placement.h): while requests are small the
// FUSE workers and the JS thread share one CPU; bulk reads set them free again; with
// --pin-fuse-threads 0 the scheduler alone places them. Seen from outside, in the CPUs the kernel
// allows the mount's main (JS) thread.

import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import { ok, withCluster } from './helpers/cluster.js';

const env = withCluster({}, 1);

const allowedCpus = async (pid: number | 'self'): Promise<string> =>
  /Cpus_allowed_list:\s*(\S+)/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))![1];

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
});
