// POSIX behaviour of the mount that real programs rely on, checked with ordinary tools against a
// real cluster and two real mounts: times (one-sided, nanoseconds, set on open files), hard links,
// open-then-unlinked files, atomic rename, files over 4 GiB, permissions as an unprivileged user,
// extended attributes, and fcntl/flock locks across processes and mounts.

import { beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { ok, sh, withCluster, type TestCluster } from './helpers/cluster.js';
import { asNobody, background, python, q, until } from './helpers/programs.js';

const env = withCluster();
let c: TestCluster, m1: string, m2: string, scratch: string;
beforeAll(async () => {
  ({ c, m1, m2, scratch } = env);
  // mkdtemp made the cluster's directory 0700: let the unprivileged user reach the mounts in it.
  await ok(`chmod 711 ${c.dir}`);
});

/** The names in dir as the master has them. */
async function namesAtMaster(dir: string): Promise<string[]> {
  const peer = await c.masterPeer();
  try {
    return (await peer.call('readdir', { path: dir })).entries.map((e) => e.name);
  } finally {
    peer.close();
  }
}

/**
 * On m1, a Python `setup` (d is m1/dir), then `child` (Python, d in sys.argv[1]) in a process of
 * its own while the master is stopped, for up to 2 s. "True" or "False" (did it finish) and the
 * words it printed.
 */
async function withMasterStopped(name: string, dir: string, setup: string, child: string): Promise<string> {
  const run = await python(scratch, name, `
import os, signal, subprocess, sys, time
d, pid = sys.argv[1] + '/${dir}', int(sys.argv[2])
${setup}
os.kill(pid, signal.SIGSTOP)
try:
    p = subprocess.Popen([sys.executable, '-c', ${JSON.stringify(child)}, d], stdout=subprocess.PIPE)
    for _ in range(100):
        if p.poll() is not None:
            break
        time.sleep(0.02)
    finished = p.poll() is not None
finally:
    os.kill(pid, signal.SIGCONT)
print(finished, p.communicate()[0].decode().split())
`);
  return (await ok(`${run} ${m1} ${c.master.proc.pid}`)).trim();
}

const stat = async (fmt: string, path: string) => (await ok(`TZ=UTC0 stat -c ${q(fmt)} ${q(path)}`)).trim();

describe('times', () => {
  it('touch -a, touch -m (UTIME_OMIT) change one time only, and nanoseconds read back the same', async () => {
    const f = `${m1}/times`;
    await ok(`echo x > ${f} && touch -d '2021-01-02 03:04:05.123456789' ${f}`);
    expect(await stat('%x|%y', f)).toBe('2021-01-02 03:04:05.123456789 +0000|2021-01-02 03:04:05.123456789 +0000');
    await ok(`touch -m -d '2022-02-03 04:05:06.987654321' ${f}`);
    expect(await stat('%x|%y', f)).toBe('2021-01-02 03:04:05.123456789 +0000|2022-02-03 04:05:06.987654321 +0000');
    await ok(`touch -a -d '2023-03-04 05:06:07.000000001' ${f}`);
    expect(await stat('%x|%y', f)).toBe('2023-03-04 05:06:07.000000001 +0000|2022-02-03 04:05:06.987654321 +0000');
    // The other mount sees the same times.
    expect(await stat('%x|%y', `${m2}/times`)).toBe('2023-03-04 05:06:07.000000001 +0000|2022-02-03 04:05:06.987654321 +0000');
  });

  it('a time set on an open file (futimens) is kept when its buffered writes reach the master at close', async () => {
    const run = await python(scratch, 'futimens.py', `
import os, sys
d = sys.argv[1]
# written, then the times set on the open file, then closed: the times stay
with open(d + '/kept', 'wb') as f:
    f.write(os.urandom(3_000_000))
    f.flush()
    os.utime(f.fileno(), ns=(1_000_000_000_123_456_789, 1_100_000_000_987_654_321))
st = os.stat(d + '/kept')
print(st.st_atime_ns, st.st_mtime_ns, st.st_size)
# times set, then written again: the write makes mtime "now", as on a local disk
with open(d + '/rewritten', 'wb') as f:
    f.write(b'a' * 100)
    f.flush()
    os.utime(f.fileno(), ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    f.write(b'b' * 100)
print(os.stat(d + '/rewritten').st_mtime_ns > 1_500_000_000_000_000_000)
`);
    expect((await ok(`${run} ${m1}`)).trim().split('\n')).toEqual(['1000000000123456789 1100000000987654321 3000000', 'True']);
    expect(await stat('%.9Y %s', `${m2}/kept`)).toBe('1100000000.987654321 3000000');
  });
});

describe('unlinks answered ahead of the master', () => {
  it('rm -rf removes a tree everywhere before it returns, and a name removed and made again at once holds the new file', async () => {
    await ok(`mkdir -p ${m1}/tree/a ${m1}/tree/b && for i in $(seq 1 150); do echo $i > ${m1}/tree/a/f$i; echo $i > ${m1}/tree/b/f$i; done`);
    // rmdir waits for the unlinks before it: without that the master would find a/ not empty.
    await ok(`ls -lR ${m1}/tree > /dev/null && rm -rf ${m1}/tree`);
    expect((await sh(`ls ${m2}/tree`)).code).not.toBe(0);
    expect(await namesAtMaster('/')).not.toContain('tree');
    // Each create waits for the unlink of its name ahead of it (else the create would find the old
    // file, which the late unlink would then remove, new bytes and all).
    await ok(`mkdir ${m1}/again && for i in $(seq 1 50); do echo old > ${m1}/again/f$i; done && ls -l ${m1}/again > /dev/null`);
    await ok(`for i in $(seq 1 50); do rm ${m1}/again/f$i; echo new$i > ${m1}/again/f$i; done`);
    expect((await ok(`cat ${m2}/again/f1 ${m2}/again/f25 ${m2}/again/f50`)).split('\n')).toEqual(['new1', 'new25', 'new50', '']);
  });

  it('rm -rf of a directory whose file another mount is still writing: the rmdir right behind the unlinks waits for them', async () => {
    await ok(`mkdir ${m1}/busy && echo x > ${m1}/busy/old`);
    // m1 lists it (so its unlinks go ahead of the master); then m2 rewrites its file there and keeps
    // the write delegation: m1's unlink of it waits for the recall, which waits for m2 to push its
    // 16 MB, and the rmdir right behind it finds the directory not empty yet.
    await ok(`echo x > ${m2}/busy/f && ls -l ${m1}/busy > /dev/null`);
    await ok(`head -c 16000000 /dev/zero > ${m2}/busy/f && rm -rf ${m1}/busy`);
    expect((await sh(`ls ${m1}/busy`)).code).not.toBe(0);
    expect(await namesAtMaster('/')).not.toContain('busy');
  });

  it('an unlink the master refuses leaves the name in place, and fsync of its directory reports it once', async () => {
    const m3 = await c.mount(['--attr-cache-ms', '60000']); // the file's attributes stay trusted here
    // Made through another mount: m3 learns the file from its listing and holds nothing of it, so
    // nothing is recalled from m3 when the file is replaced (a recall of its write delegation would
    // drop what m3 knows, and the rm below then sees the directory).
    await ok(`mkdir ${m2}/refused && echo x > ${m2}/refused/f && ls -l ${m3}/refused > /dev/null`);
    const peer = await c.masterPeer();
    try {
      // Another client replaces the file with a directory, unseen by m3.
      await peer.call('unlink', { path: '/refused/f' });
      await peer.call('mkdir', { path: '/refused/f', mode: 0o755, uid: 0, gid: 0 });
    } finally {
      peer.close();
    }
    await ok(`rm ${m3}/refused/f`); // answered ahead: m3 knew a file there
    const fsyncDir = `python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)' ${m3}/refused`;
    expect((await sh(fsyncDir)).stderr).toMatch(/IsADirectoryError/);
    await ok(fsyncDir); // reported once
    expect(await stat('%F', `${m3}/refused/f`)).toBe('directory');
    expect(await stat('%F', `${m1}/refused/f`)).toBe('directory'); // a mount that never saw the file
  });
});

describe('hard links', () => {
  it('ln makes a second name of one inode: stat shows the link count, unlinking one name keeps the other', async () => {
    await ok(`echo one > ${m1}/ha && ln ${m1}/ha ${m1}/hb`);
    const [a, b] = [await stat('%h %i', `${m1}/ha`), await stat('%h %i', `${m1}/hb`)];
    expect(a).toBe(b);
    expect(a.split(' ')[0]).toBe('2');
    // readdir's d_ino is the same number (python's scandir reads it without a stat).
    const dIno = await ok(`python3 -c "import os; print(sorted(e.inode() for e in os.scandir('${m1}') if e.name in ('ha', 'hb')))"`);
    expect(dIno.trim()).toBe(`[${a.split(' ')[1]}, ${a.split(' ')[1]}]`);
    await ok(`echo two >> ${m1}/hb`);
    expect(await ok(`cat ${m1}/ha`)).toBe('one\ntwo\n');
    expect(await stat('%h', `${m2}/ha`)).toBe('2');
    await ok(`rm ${m1}/ha`);
    expect(await stat('%h', `${m1}/hb`)).toBe('1');
    expect(await ok(`cat ${m2}/hb`)).toBe('one\ntwo\n');
  });
});

describe('open files and renames', () => {
  it('a file opened and then unlinked stays readable and writable until closed', async () => {
    const run = await python(scratch, 'unlinked.py', `
import os, sys
p = sys.argv[1] + '/doomed'
with open(p, 'wb') as f: f.write(b'hello ' * 1000)
fd = os.open(p, os.O_RDWR)
os.unlink(p)
print(os.path.exists(p), os.fstat(fd).st_nlink)
os.pwrite(fd, b'WORLD', 6)
big = os.urandom(2_000_000)
os.pwrite(fd, big, 6000)
print(os.pread(fd, 11, 0), os.fstat(fd).st_size, os.pread(fd, 2_000_000, 6000) == big)
os.close(fd)
`);
    expect((await ok(`${run} ${m1}`)).trim().split('\n')).toEqual(['False 0', "b'hello WORLD' 2006000 True"]);
    // The kernel releases the file shortly after close; then no trace of it is left.
    await until(async () => (await ok(`ls -a ${m1}`)).split('\n').every((n) => !n.startsWith('.fuse_hidden') && n !== 'doomed'), 'the unlinked file to go');
  });

  it('rename over an existing file replaces it atomically: readers never find it missing', async () => {
    await ok(`mkdir ${m1}/at && echo v0 > ${m1}/at/target`);
    // One reader keeps the target open the whole time (that is the case libfuse handles specially).
    const holder = background(`exec 3<${m1}/at/target; echo holding; sleep 600`);
    try {
      await holder.waitFor(/holding/);
      const writer = `for i in $(seq 1 60); do echo v$i > ${m1}/at/new.$i; mv ${m1}/at/new.$i ${m1}/at/target; done`;
      const errors = `${scratch}/rename-reader-errors`;
      const reader = (m: string) => `fails=0; for i in $(seq 1 150); do cat ${m}/at/target >/dev/null 2>>${errors} || fails=$((fails+1)); stat ${m}/at/target >/dev/null 2>>${errors} || fails=$((fails+1)); done; echo $fails`;
      // Three readers: one's look-up refreshes the name another is retrying by (retry-gate.h).
      const out = await ok(`: > ${errors}; (${writer}) & for r in 1 2 3; do ( ${reader(m1)} ) & done; wait`);
      expect(out.trim().split('\n'), await ok(`cat ${errors}`)).toEqual(['0', '0', '0']);
      expect(await ok(`cat ${m1}/at/target ${m2}/at/target`)).toBe('v60\nv60\n');
    } finally {
      await holder.stop();
    }
    await until(async () => (await ok(`ls -A ${m1}/at`)).trim() === 'target', 'only the target to be left');
  });

  it('readers of a file renamed over again and again never hang the mount, never fail, and read whole versions', async () => {
    // Once hung for good: a read's bytes stored into the page cache waited for a page another
    // reader had locked, whose read libfuse queued behind the rename, which waited for an open,
    // which waited for that store (page-store.h). And cat failed now and then with ESTALE: one
    // reader's close removed the hidden name of the old version while another opened it
    // (hidden-names.ts).
    const lines = 2;
    const writer = await python(scratch, 'renamer.py', `
import os, sys
d = sys.argv[1]
for i in range(1, 601):
    with open(f"{d}/new.{i}", "w") as f:
        f.write(f"v{i}\\n" * ${lines})
    os.rename(f"{d}/new.{i}", f"{d}/target")
`);
    const dir = `${m1}/spin`;
    const out = `${scratch}/spin`;
    await ok(`mkdir -p ${dir} ${out} && printf 'v0\\n%.0s' $(seq ${lines}) > ${dir}/target`);
    // Three readers until the writer is done, each keeping the line counts of what it read; the
    // shell holds the first version open (the renames then hide it, see above).
    // (Bounded in time too: readers of a hung mount must not outlive a failed test.)
    const reader = (r: string) => `(while [ ! -e ${out}/done ] && [ $SECONDS -lt 240 ]; do cat ${dir}/target 2>>${out}/err.${r} | uniq -c >> ${out}/seen.${r}; done)`;
    const run = await sh(
      `exec 3<${dir}/target; pids=; for r in 1 2 3; do ${reader('$r')} & pids="$pids $!"; done; timeout 180 ${writer} ${dir}; rc=$?; touch ${out}/done; ` +
        `for i in $(seq 600); do alive=; for p in $pids; do kill -0 $p 2>/dev/null && alive=1; done; [ -z "$alive" ] && break; sleep 0.1; done; ` +
        `echo "writer $rc readers \${alive:-done}"`,
    );
    expect(run.stdout.trim()).toBe('writer 0 readers done');
    expect(await ok(`cat ${out}/err.*`)).toBe('');
    // Every read that worked saw one whole version: a single line repeated `lines` times.
    const seen = (await ok(`cat ${out}/seen.*`)).trim().split('\n');
    expect(seen.length).toBeGreaterThan(30);
    for (const line of seen) expect(line).toMatch(new RegExp(`^\\s*${lines} v\\d+$`));
    expect(await ok(`cat ${dir}/target`)).toBe('v600\n'.repeat(2));
    await until(async () => (await ok(`ls -A ${dir}`)).trim() === 'target', 'the hidden names to go');
  });

  it('renaming a directory keeps everything beneath it', async () => {
    await ok(`mkdir -p ${m1}/tree/a/b/c ${m1}/elsewhere && for d in a a/b a/b/c; do for i in 1 2 3 4 5; do echo "$d $i" > ${m1}/tree/$d/f$i; done; done && ln -s b ${m1}/tree/a/lnk`);
    const list = `find . -printf '%y %p %s %m\\n' | sort`;
    const before = await ok(list, { cwd: `${m1}/tree` });
    await ok(`mv ${m1}/tree ${m1}/elsewhere/moved`);
    expect((await sh(`test -e ${m1}/tree`)).code).not.toBe(0);
    expect(await ok(list, { cwd: `${m2}/elsewhere/moved` })).toBe(before);
    expect(await ok(`cat ${m1}/elsewhere/moved/a/lnk/c/f5`)).toBe('a/b/c 5\n');
    await ok(`mv ${m1}/elsewhere/moved ${m1}/tree2`);
    expect(await ok(list, { cwd: `${m1}/tree2` })).toBe(before);
  });
});

describe('creates answered ahead in a directory this mount made', () => {
  /**
   * Run work (Python, on d1: m1's dir) and stop m1's mount (SIGSTOP) the moment after, with what
   * it answered ahead maybe unsent; meanwhile run look (Python, on d: m2's dir) in another process;
   * let m1 go on after half a second; what look printed. A look that needs m1's changes must wait
   * for the master's recall of the directory from m1, which m1 answers only once running again.
   */
  async function whileM1Stopped(dir: string, work: string, look: string): Promise<string> {
    const run = await python(scratch, `${dir}.py`, `
import os, signal, subprocess, sys, time
d1, d2, pid = sys.argv[1] + '/${dir}', sys.argv[2] + '/${dir}', int(sys.argv[3])
${work}
os.kill(pid, signal.SIGSTOP)
try:
    look = subprocess.Popen([sys.executable, '-c', 'import os, sys; d = sys.argv[1]; ' + ${JSON.stringify(look)}, d2], stdout=subprocess.PIPE)
    time.sleep(0.5)
finally:
    os.kill(pid, signal.SIGCONT)
print(look.communicate()[0].decode().strip())
`);
    return (await ok(`${run} ${m1} ${m2} ${c.mounts[0].proc.pid}`)).trim();
  }

  it('another mount, looking the moment after, finds every file and byte; O_EXCL there fails; later creates go by the master', async () => {
    // m1 makes the directory (and holds it) and fills it; m2 opens the last file by name, then
    // lists the directory.
    const work = `
os.mkdir(d1)
for i in range(300):
    with open(f'{d1}/f{i}', 'w') as f:
        f.write(f'{i}\\n')`;
    expect(await whileM1Stopped('ahead', work, 'last = open(d + "/f299").read().strip(); print(len(os.listdir(d)), last)')).toBe('300 299');
    expect((await namesAtMaster('/ahead')).length).toBe(300);
    const excl = await sh(`LC_ALL=C bash -c 'set -C; echo from-m2 > ${m2}/ahead/f3'`);
    expect(excl.stderr).toMatch(/File exists|cannot overwrite/);
    // m1 no longer holds it: its next file goes to the master, and m2 sees it.
    await ok(`echo late > ${m1}/ahead/late && echo also > ${m2}/ahead/from-m2`);
    await until(async () => (await sh(`cat ${m2}/ahead/late ${m1}/ahead/from-m2`)).stdout === 'late\nalso\n', 'both new files on both mounts');
    expect(await ok(`cat ${m1}/ahead/f3`)).toBe('3\n');
    // Inode numbers handed out ahead are the master's: all distinct, and the same on both mounts.
    const inos = async (m: string) => (await ok(`stat -c %i ${m}/ahead/*`)).trim().split('\n');
    const seen = await inos(m1);
    expect(new Set(seen).size).toBe(302);
    expect(await inos(m2)).toEqual(seen);
  });

  it('a tree removed under a held directory: gone for another mount that looks at once, in the right order at the master', async () => {
    // m1 makes a tree in a directory it holds and removes part of it (unlinks, then rmdirs: all
    // answered ahead); m2 must find exactly what m1 left (an rmdir applied before the unlinks in
    // it would have failed).
    const work = `
for sub in ('keep', 'drop/deep'):
    os.makedirs(f'{d1}/{sub}')
    for i in range(40):
        with open(f'{d1}/{sub}/f{i}', 'w') as f:
            f.write('x')
for sub in ('drop/deep', 'drop'):
    for name in os.listdir(f'{d1}/{sub}'):
        if name != 'deep':
            os.unlink(f'{d1}/{sub}/{name}')
    os.rmdir(f'{d1}/{sub}')`;
    expect(await whileM1Stopped('gone', work, 'print(os.path.exists(d + "/drop"), sorted(os.listdir(d)), len(os.listdir(d + "/keep")))')).toBe("False ['keep'] 40");
    expect(await namesAtMaster('/gone')).toEqual(['keep']);
  });

  it("a directory's times (and link count) follow the names made and removed in it at once, and the master ends with the same", async () => {
    // Each create, unlink, mkdir and rmdir here is answered by m1 (it holds the directory): the
    // directory's mtime and ctime must move with each as POSIX says, and be what the master takes
    // when the changes reach it (m2 reads the master's), not jump again then. Run twice, ending
    // once with the unlink and once with the rmdir, so that each one's time is the one compared.
    const run = await python(scratch, 'dirtimes.py', `
import os, sys, time
d = sys.argv[1] + '/' + sys.argv[2]
os.mkdir(d)
seen = [os.stat(d)]
for step in sys.argv[3].split(','):
    time.sleep(0.01)
    if step == 'create':
        with open(d + '/f', 'w') as f: f.write('x')
    elif step == 'unlink': os.unlink(d + '/f')
    elif step == 'mkdir': os.mkdir(d + '/sub')
    else: os.rmdir(d + '/sub')
    seen.append(os.stat(d))
print(all(b.st_mtime_ns > a.st_mtime_ns and b.st_ctime_ns == b.st_mtime_ns for a, b in zip(seen, seen[1:])), [s.st_nlink for s in seen])
fd = os.open(d, os.O_RDONLY)
os.fsync(fd)  # the changes answered ahead are at the master
os.close(fd)
print(seen[-1].st_mtime_ns)
`);
    const mtime = async (path: string) => (await ok(`python3 -c 'import os, sys; print(os.stat(sys.argv[1]).st_mtime_ns)' ${path}`)).trim();
    for (const [name, steps, links] of [
      ['dirtimes1', 'create,unlink,mkdir,rmdir', '[2, 2, 2, 3, 2]'],
      ['dirtimes2', 'create,mkdir,rmdir,unlink', '[2, 2, 3, 2, 2]'],
    ]) {
      const [moved, last] = (await ok(`${run} ${m1} ${name} ${steps}`)).trim().split('\n');
      expect(moved).toBe(`True ${links}`);
      expect(await mtime(`${m2}/${name}`)).toBe(last);
      expect(await mtime(`${m1}/${name}`)).toBe(last);
    }
  });

  it('a tree the mount made is listed and removed with the master stopped, and is gone there once it runs', async () => {
    // Everything removing a held tree asks (listings, look-ups, unlinks, rmdirs) is known to the
    // mount: it must not wait for the master, which applies the changes when it runs again.
    const setup = `
for sub in ('a', 'b'):
    os.makedirs(f'{d}/{sub}')
    for i in range(30):
        with open(f'{d}/{sub}/f{i}', 'w') as f:
            f.write('x')`;
    // (Python's, not rm -rf: that asks statfs, which is the master's to answer.)
    const remove = 'import os, shutil, sys; d = sys.argv[1]; print(len(os.listdir(d + "/a"))); shutil.rmtree(d + "/a"); shutil.rmtree(d + "/b"); print(len(os.listdir(d)))';
    expect(await withMasterStopped('offline.py', 'offline', setup, remove)).toBe("True ['30', '0']");
    await until(async () => (await namesAtMaster('/offline')).length === 0, 'the removals to reach the master');
    expect(await ok(`ls -A ${m2}/offline`)).toBe('');
  });
});

/** Python (for withMasterStopped's setup): directory a made, with files f0..f9 holding content (of i). */
const tenFilesInA = (content: string) => `
os.makedirs(f'{d}/a')
for i in range(10):
    with open(f'{d}/a/f{i}', 'w') as f:
        f.write(${content})`;

describe('a directory the mount holds, emptied after its listing would have expired', () => {
  it('is removed at once, with the master stopped (the rmdir is answered by the mount), and is gone there once it runs', async () => {
    const setup = `${tenFilesInA("'x'")}
time.sleep(1.5)  # past the attribute time (1 s): only holding a keeps its listing known
for i in range(10):
    os.unlink(f'{d}/a/f{i}')`;
    const rmdir = 'import os, sys; os.rmdir(sys.argv[1] + "/a"); print("gone")';
    expect(await withMasterStopped('late-rmdir.py', 'late', setup, rmdir)).toBe("True ['gone']");
    await until(async () => (await namesAtMaster('/late')).length === 0, 'the removals to reach the master');
    expect(await ok(`ls -A ${m2}/late`)).toBe('');
  });
});

describe('a directory the mount holds, listed after its attribute time', () => {
  it('is listed with every size, with the master stopped: the files it still holds keep their attributes known', async () => {
    const setup = `${tenFilesInA("'x' * (i + 1)")}
time.sleep(1.5)  # past the attribute time (1 s), before the files' delegations go back (2 s idle)
os.stat(f'{d}/a')  # the path to it known afresh (a directory's attributes are the master's to say)`;
    const list = 'import os, sys; print(",".join(f"{e.name}:{e.stat().st_size}" for e in sorted(os.scandir(sys.argv[1] + "/a"), key=lambda e: e.name)))';
    const want = Array.from({ length: 10 }, (_, i) => `f${i}:${i + 1}`).join(',');
    expect(await withMasterStopped('late-list.py', 'late-list', setup, list)).toBe(`True ['${want}']`);
  });
});

describe('names made on another mount', () => {
  it('a directory listed here shows another mount\'s new name within the attribute time; creating it here never clobbers', async () => {
    await ok(`mkdir ${m1}/seen && touch ${m1}/seen/a`);
    expect(await ok(`ls ${m2}/seen`)).toBe('a\n'); // m2 now knows every name in it, for a while
    await ok(`echo from-m1 > ${m1}/seen/b`);
    // Whatever m2 believes about b, O_EXCL (the shell's noclobber) asks the master: it exists.
    const excl = await sh(`LC_ALL=C bash -c 'set -C; echo from-m2 > ${m2}/seen/b'`);
    expect(excl.code).not.toBe(0);
    expect(excl.stderr).toMatch(/File exists|cannot overwrite/);
    await new Promise((r) => setTimeout(r, 1200)); // the attribute cache time (1 s)
    expect(await ok(`cat ${m2}/seen/b`)).toBe('from-m1\n');
    expect(await ok(`ls ${m2}/seen`)).toBe('a\nb\n');
  });
});

describe('files over 4 GiB', () => {
  it('write past 4 GiB, read back, truncate: sizes and bytes are exact', async () => {
    const at = 4608; // MiB: 4.5 GiB
    await ok(`head -c 3145728 /dev/urandom > ${scratch}/r3`);
    await ok(`dd if=${scratch}/r3 of=${m1}/huge bs=1M seek=${at} conv=notrunc status=none`);
    const size = (at + 3) * 1024 * 1024;
    expect(await stat('%s', `${m1}/huge`)).toBe(String(size));
    expect(await stat('%s', `${m2}/huge`)).toBe(String(size));
    await ok(`dd if=${m2}/huge bs=1M skip=${at} status=none | cmp - ${scratch}/r3`);
    await ok(`dd if=${m1}/huge bs=1M skip=4095 count=2 status=none | cmp - <(head -c 2097152 /dev/zero)`); // the hole
    const cut = at * 1024 * 1024 + 1000001;
    await ok(`truncate -s ${cut} ${m1}/huge`);
    expect(await stat('%s', `${m1}/huge`)).toBe(String(cut));
    await ok(`truncate -s 5000000000 ${m1}/huge`);
    expect(await stat('%s', `${m1}/huge`)).toBe('5000000000');
    // The first million bytes are still there; what the cut dropped reads back as zeros.
    await ok(`dd if=${m2}/huge bs=1M skip=${at} count=2 status=none | cmp - <(head -c 1000001 ${scratch}/r3; head -c 1097151 /dev/zero)`);
    await ok(`rm ${m1}/huge`);
  });
});

describe('permissions', () => {
  it('a user without rights gets EACCES (or EPERM) where ext4 would give it', async () => {
    await ok(`mkdir ${m1}/perm && echo secret > ${m1}/perm/secret && chmod 600 ${m1}/perm/secret && echo ro > ${m1}/perm/ro && mkdir ${m1}/perm/pub && chmod 1777 ${m1}/perm/pub && echo mine > ${m1}/perm/pub/rootfile`);
    const denied = async (cmd: string, message: RegExp) => {
      const r = await sh(`LC_ALL=C ${asNobody(cmd)}`);
      expect(r.code, cmd).not.toBe(0);
      expect(r.stderr, cmd).toMatch(message);
    };
    await denied(`cat ${m1}/perm/secret`, /Permission denied/);
    await denied(`touch ${m1}/perm/new`, /Permission denied/);
    await denied(`echo x >> ${m1}/perm/ro`, /Permission denied/);
    await denied(`chmod 777 ${m1}/perm/ro`, /Operation not permitted/);
    await denied(`rm -f ${m1}/perm/pub/rootfile`, /Operation not permitted/); // sticky directory
    await denied(`touch -d 2001-01-01 ${m2}/perm/ro`, /Permission denied/);
    await ok(asNobody(`ls ${m1}/perm > /dev/null && cat ${m1}/perm/ro && echo hi > ${m1}/perm/pub/theirs && rm ${m1}/perm/pub/theirs && echo again > ${m1}/perm/pub/kept`));
    expect(await stat('%u:%g %a', `${m2}/perm/pub/kept`)).toBe('65534:65534 644');
    await denied(`chown 0 ${m1}/perm/pub/kept`, /Operation not permitted/);
  });

  it('chown by root is honoured (and clears set-user-ID); umask and set-group-ID directories as on ext4', async () => {
    await ok(`mkdir ${m1}/own && echo x > ${m1}/own/f && chmod 4755 ${m1}/own/f && chown 1234:5678 ${m1}/own/f`);
    expect(await stat('%u:%g %a', `${m2}/own/f`)).toBe('1234:5678 755');
    await ok(`chown :4321 ${m1}/own && chmod 2775 ${m1}/own && touch ${m1}/own/g && mkdir ${m1}/own/sub`);
    expect(await stat('%g', `${m1}/own/g`)).toBe('4321');
    expect(await stat('%g %a', `${m1}/own/sub`)).toBe('4321 2755');
    await ok(`umask 027 && touch ${m1}/own/um && mkdir ${m1}/own/umd`);
    expect(await stat('%a', `${m1}/own/um`)).toBe('640');
    expect(await stat('%a', `${m1}/own/umd`)).toBe('2750');
  });

  it('a write or truncate by its owner clears set-user-ID and set-group-ID (if group-executable); by root not', async () => {
    // The mount takes this over from the kernel (FUSE_HANDLE_KILLPRIV_V2): as on ext4.
    await ok(`mkdir -p ${m1}/setid && chmod 777 ${m1}/setid && for f in a b c d; do echo x > ${m1}/setid/$f; done`);
    await ok(`chown 65534:65534 ${m1}/setid/a ${m1}/setid/b ${m1}/setid/c && chmod 6775 ${m1}/setid/a ${m1}/setid/b && chmod 6765 ${m1}/setid/c`);
    await ok(asNobody(`echo more >> ${m1}/setid/a && truncate -s 1 ${m1}/setid/b && echo more >> ${m1}/setid/c`));
    expect(await stat('%a', `${m2}/setid/a`)).toBe('775');
    expect(await stat('%a', `${m2}/setid/b`)).toBe('775');
    expect(await stat('%a', `${m2}/setid/c`)).toBe('2765'); // set-group-ID of a file its group cannot run stays
    await ok(`chmod 6775 ${m1}/setid/d && echo more >> ${m1}/setid/d`);
    expect(await stat('%a', `${m2}/setid/d`)).toBe('6775');
    expect(await ok(`cat ${m2}/setid/a ${m2}/setid/b`)).toBe('x\nmore\nx');
  });
});

describe('extended attributes', () => {
  it('setfattr and getfattr work on user.* attributes, from either mount', async () => {
    await ok(`echo x > ${m1}/xa && setfattr -n user.color -v blue ${m1}/xa && setfattr -n user.size -v 42 ${m1}/xa`);
    expect(await ok(`cd ${m2} && getfattr -d xa`)).toBe('# file: xa\nuser.color="blue"\nuser.size="42"\n\n');
    await ok(`setfattr -n user.color -v green ${m2}/xa && setfattr -x user.size ${m2}/xa`);
    expect(await ok(`getfattr --only-values -n user.color ${m1}/xa`)).toBe('green');
    const missing = await sh(`LC_ALL=C getfattr -n user.size ${m1}/xa`);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/No such attribute/);
    // A 10 KB binary value comes back byte for byte.
    await ok(`head -c 10000 /dev/urandom > ${scratch}/xv && setfattr -n user.blob -v 0s$(base64 -w0 ${scratch}/xv) ${m1}/xa`);
    await ok(`getfattr --only-values -n user.blob ${m2}/xa | cmp - ${scratch}/xv`);
    // ACLs and SELinux labels are not kept: "not supported", for reading and for setting alike
    // (`ls -l` then stops asking for them on this mount).
    for (const cmd of [`getfattr -n security.selinux ${m1}/xa`, `getfattr -n system.posix_acl_access ${m1}/xa`, `setfattr -n security.selinux -v x ${m1}/xa`]) {
      const r = await sh(`LC_ALL=C ${cmd}`);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/Operation not supported/);
    }
    // Permissions are the kernel's: only someone who may write the file may set them.
    const denied = await sh(`LC_ALL=C ${asNobody(`setfattr -n user.x -v 1 ${m1}/xa`)}`);
    expect(denied.stderr).toMatch(/Permission denied/);
    // cp -a carries them over.
    await ok(`cp -a ${m1}/xa ${m1}/xa-copy`);
    expect(await ok(`getfattr --only-values -n user.color ${m1}/xa-copy`)).toBe('green');
    const all = (name: string) => ok(`cd ${m2} && getfattr -d ${name} | tail -n +2`);
    const before = await all('xa');
    expect(before).toMatch(/^user\.blob=0s.*\nuser\.color="green"\n\n$/);
    expect(await all('xa-copy')).toBe(before);
    // They are in the master's op log: a master killed and restarted still has them.
    await c.kill(c.master, 'SIGKILL');
    await c.restartMaster();
    expect(await all('xa')).toBe(before);
    expect(await all('xa-copy')).toBe(before);
  });
});

describe('locks', () => {
  it('flock: exclusive across processes and mounts, shared locks together, released on close', async () => {
    await ok(`touch ${m1}/fl`);
    const out = await ok(
      `flock ${m1}/fl -c "flock -n ${m2}/fl true && echo wrong-m2 || echo busy-m2; flock -n ${m1}/fl true && echo wrong-m1 || echo busy-m1; flock -s -n ${m2}/fl true && echo wrong-shared || echo busy-shared"`,
    );
    expect(out).toBe('busy-m2\nbusy-m1\nbusy-shared\n');
    expect(await ok(`flock -s ${m1}/fl -c "flock -s -n ${m2}/fl -c 'echo shared-too' && (flock -n -x ${m2}/fl true && echo wrong || echo no-exclusive)"`)).toBe('shared-too\nno-exclusive\n');
    // Every lock above ended with its process: an exclusive lock is free again, on both mounts.
    await until(async () => (await sh(`flock -n ${m2}/fl true`)).code === 0, 'the flock to be released');
    await ok(`flock -n ${m1}/fl true`);
  });

  it('a blocked flock waits for the holder on the other mount, and gives up when interrupted', async () => {
    const order = `${scratch}/order`;
    const release = `${scratch}/release-fw`;
    await ok(`touch ${m1}/fw && : > ${order}`);
    const holder = background(`flock ${m1}/fw -c 'echo holding; while [ ! -e ${release} ]; do sleep 0.05; done; echo holder-done >> ${order}'`);
    try {
      await holder.waitFor(/holding/);
      // Waits cut short by a signal (flock -w uses an alarm) end with the lock still held elsewhere.
      const timed = await sh(`flock -w 0.5 ${m2}/fw -c 'echo timed-got >> ${order}'`);
      expect(timed.code).toBe(1);
      const killed = await sh(`timeout -s INT 0.5 flock ${m2}/fw -c 'echo killed-got >> ${order}'`);
      expect(killed.code).toBe(124);
      // A plain waiter gets the lock once the holder lets go, and not before.
      const waiter = background(`flock ${m2}/fw -c 'echo waiter-got >> ${order}'`);
      await ok(`touch ${release}`);
      expect(await waiter.exited).toBe(0);
      expect(await ok(`cat ${order}`)).toBe('holder-done\nwaiter-got\n');
    } finally {
      await holder.stop();
    }
  });

  it('fcntl record locks across mounts: ranges, F_GETLK, F_SETLKW waits, and closing any descriptor releases', async () => {
    await ok(`: > ${m1}/rl && : > ${scratch}/rl-order`);
    const run = await python(scratch, 'rl.py', `
import fcntl, os, struct, sys, time
path, role = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_RDWR)
def getlk(start, length):
    r = fcntl.fcntl(fd, fcntl.F_GETLK, struct.pack('hhqqi', fcntl.F_WRLCK, 0, start, length, 0))
    t, _, s, l, p = struct.unpack('hhqqi', r)
    return t, s, l, p
if role == 'hold':
    fcntl.lockf(fd, fcntl.LOCK_EX, 10, 10)       # bytes 10..19
    print('holding', os.getpid(), flush=True)
    while not os.path.exists(sys.argv[3]): time.sleep(0.05)
    with open(sys.argv[4], 'a') as f: f.write('holder-unlocks\\n')
    fcntl.lockf(fd, fcntl.LOCK_UN, 10, 10)
    time.sleep(600)
elif role == 'probe':
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 5, 12)
        print('overlap granted')
    except OSError as e:
        print('overlap refused', e.errno)
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 0)     # bytes 0..9: free
    fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, 10, 20)    # bytes 20..29: free
    t, s, l, p = getlk(0, 0)
    print('getlk', t == fcntl.F_WRLCK, s, l, p, flush=True)
    fcntl.lockf(fd, fcntl.LOCK_EX, 1, 15)                     # waits for the holder
    with open(sys.argv[3], 'a') as f: f.write('waiter-got\\n')
elif role == 'dup-close':
    fcntl.lockf(fd, fcntl.LOCK_EX, 0, 0)
    other = os.open(path, os.O_RDONLY)
    os.close(other)                                           # POSIX: drops all of this process's locks
    print('closed', flush=True)
    time.sleep(600)
`);
    const release = `${scratch}/release-rl`;
    const holder = background(`${run} ${m1}/rl hold ${release} ${scratch}/rl-order`);
    try {
      await holder.waitFor(/holding/);
      const holderPid = holder.lines.find((l) => l.startsWith('holding'))!.split(' ')[1];
      const probe = background(`${run} ${m2}/rl probe ${scratch}/rl-order`);
      try {
        await probe.waitFor(/^getlk/);
        expect(probe.lines).toEqual(['overlap refused 11', `getlk True 10 10 ${holderPid}`]);
        await ok(`touch ${release}`); // the probe now waits in F_SETLKW until the holder unlocks
        expect(await probe.exited).toBe(0);
      } finally {
        await probe.stop();
      }
      expect(await ok(`cat ${scratch}/rl-order`)).toBe('holder-unlocks\nwaiter-got\n');
    } finally {
      await holder.stop();
    }
    const closer = background(`${run} ${m1}/rl dup-close`);
    try {
      await closer.waitFor(/closed/);
      await ok(`python3 -c "import fcntl, os; fcntl.lockf(os.open('${m2}/rl', os.O_RDWR), fcntl.LOCK_EX | fcntl.LOCK_NB)"`);
    } finally {
      await closer.stop();
    }
  });

  it('the locks of a mount that dies are released', async () => {
    const m3 = await c.mount();
    const dying = c.mounts[c.mounts.length - 1];
    await ok(`touch ${m3}/dl`);
    const holder = background(`flock ${m3}/dl -c 'echo holding; sleep 600'`);
    try {
      await holder.waitFor(/holding/);
      expect((await sh(`flock -n ${m1}/dl true`)).code).toBe(1);
      await c.kill(dying, 'SIGKILL');
      await until(async () => (await sh(`flock -n ${m1}/dl true`)).code === 0, "the dead mount's lock to be dropped");
    } finally {
      await sh(`fusermount -uz ${m3}`);
      await holder.stop();
    }
  });
});
