// Real programs against a real mount of a real cluster, each expected to behave exactly as on a
// local ext4 directory: tar, cp -a, rsync -a, git, sqlite3 (rollback journal and WAL, one and two
// mounts) and make. Source trees are built in a scratch directory outside the mount.

import { beforeAll, describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ok, sh, withCluster, type TestCluster } from './helpers/cluster.js';
import { q } from './helpers/programs.js';

const env = withCluster();
let c: TestCluster, m1: string, m2: string, scratch: string;
beforeAll(async () => {
  ({ c, m1, m2, scratch } = env);
});

/**
 * A tree of dirs x files small files under root, with varied modes, a symlink, a hard link, an
 * empty directory and mtimes with nanoseconds (files and directories).
 */
async function makeTree(root: string, dirs: number, files: number): Promise<void> {
  await ok(`mkdir -p ${root} && cd ${root} && for d in $(seq 1 ${dirs}); do mkdir d$d; for f in $(seq 1 ${files}); do echo "file $d/$f $RANDOM" > d$d/f$f; done; done
    chmod 600 d1/f1; chmod 755 d1/f2; chmod 640 d2/f1; chmod 750 d2; mkdir empty; ln -s d1/f3 link; ln d1/f4 hardlink
    head -c 300000 /dev/urandom > d1/bigger
    i=0; for p in $(find . -mindepth 1 -depth); do i=$((i+1)); touch -h -d "2019-03-04 05:06:07.$(printf %09d $((i * 7919)))" "$p"; done
    touch -d '2018-01-01 00:00:00.5' .`);
}

/** Every entry with type, mode, size, owner and mtime to the nanosecond (not atime, not ctime). */
const listing = (dir: string) => ok(`cd ${q(dir)} && find . -printf '%y %m %s %u:%g %T@ %p -> %l\\n' | sort`);

describe('archives and copies', () => {
  it('tar xpf of 2,000 files restores contents, modes and mtimes: tar -d finds no difference', async () => {
    const src = join(scratch, 'tree');
    await makeTree(src, 20, 100);
    // posix (pax) format: it keeps nanoseconds, so the comparison below can be exact.
    await ok(`tar --format=posix -cf ${scratch}/tree.tar -C ${src} .`);
    await ok(`mkdir ${m1}/untar && tar xpf ${scratch}/tree.tar -C ${m1}/untar`, { timeoutMs: 170_000 });
    const diff = await sh(`cd ${m1}/untar && tar -df ${scratch}/tree.tar`);
    expect(diff.stdout + diff.stderr).toBe('');
    expect(diff.code).toBe(0);
    const want = await listing(src);
    expect(want.split('\n').length).toBeGreaterThan(2000);
    expect(await listing(`${m2}/untar`)).toBe(want);
    await ok(`diff -r ${src} ${m2}/untar`);
  });

  it('cp -a and rsync -a keep modes and mtimes to the nanosecond', async () => {
    const src = join(scratch, 'small');
    await makeTree(src, 5, 40);
    const want = await listing(src);
    await ok(`cp -a ${src} ${m1}/cpa`);
    expect(await listing(`${m1}/cpa`)).toBe(want);
    await ok(`rsync -a ${src}/ ${m1}/rs/`);
    expect(await listing(`${m2}/rs`)).toBe(want);
    // And rsync itself finds nothing left to do (sizes and mtimes agree for it).
    expect(await ok(`rsync -ai --dry-run ${src}/ ${m1}/rs/`)).toBe('');
    await ok(`diff -r ${src} ${m1}/rs && diff -r ${src} ${m2}/cpa`);
  });
});

describe('git', () => {
  it('init, add and commit 2,000 files, edit, git mv, gc, fsck --strict, and clone --local with hard links', async () => {
    const repo = `${m1}/repo`;
    const git = `git -c user.email=t@example.com -c user.name=tester -c init.defaultBranch=main -c gc.auto=0`;
    await makeTree(join(scratch, 'gitsrc'), 20, 100);
    await ok(`mkdir ${repo} && cd ${repo} && ${git} init -q . && cp -r ${scratch}/gitsrc/. . && ${git} add -A && ${git} commit -qm first`, { timeoutMs: 170_000 });
    await ok(`cd ${repo} && echo edited >> d1/f1 && ${git} mv d2/f2 d2/moved && ${git} commit -qam second && ${git} status --porcelain`);
    expect(await ok(`cd ${repo} && ${git} status --porcelain`)).toBe('');
    await ok(`cd ${repo} && ${git} gc -q && ${git} fsck --strict --no-progress`);
    expect((await ok(`cd ${repo} && ${git} count-objects -v`)).match(/^count: (\d+)/m)?.[1]).toBe('0'); // all packed
    // A local clone hard-links the object files: same inode, two links.
    await ok(`cd ${m1} && ${git} clone -q --local repo clone`);
    const pack = (await ok(`cd ${m1}/clone/.git/objects/pack && ls *.pack`)).trim();
    const [a, b] = await Promise.all([
      ok(`stat -c '%h %i' ${repo}/.git/objects/pack/${pack}`),
      ok(`stat -c '%h %i' ${m1}/clone/.git/objects/pack/${pack}`),
    ]);
    expect(a).toBe(b);
    expect(a.split(' ')[0]).toBe('2');
    expect(await ok(`cd ${m1}/clone && ${git} log --format=%s`)).toBe('second\nfirst\n');
    expect(await ok(`cd ${m1}/clone && ${git} status --porcelain && cat d2/moved d1/f1 | tail -1`)).toBe('edited\n');
    await ok(`cd ${m1}/clone && ${git} fsck --strict --no-progress`);
    // Removing the original keeps the clone's (now single) links intact.
    await ok(`rm -rf ${repo}`);
    expect((await ok(`stat -c %h ${m1}/clone/.git/objects/pack/${pack}`)).trim()).toBe('1');
    await ok(`cd ${m2}/clone && ${git} fsck --strict --no-progress`);
  });
});

describe('sqlite3', () => {
  const sqlite = (db: string, sql: string) => ok(`sqlite3 -bail -cmd '.timeout 120000' ${db} ${q(sql)}`);
  /** n transactions, each bumping a counter and adding a row (a lost update shows in the counter). */
  const writer = (db: string, who: string, n: number) =>
    `for i in $(seq 1 ${n}); do echo "begin immediate; update c set n = n + 1; insert into t values('${who}', $i, randomblob(3000)); commit;"; done | sqlite3 -bail -cmd '.timeout 120000' ${db} >/dev/null`;
  /** Run shell commands side by side; fails if any of them fails. */
  const together = (...cmds: string[]) =>
    ok(`set -o pipefail; pids=""; ${cmds.map((cmd) => `(${cmd}) & pids="$pids $!";`).join(' ')} fail=0; for p in $pids; do wait $p || fail=1; done; exit $fail`, { timeoutMs: 170_000 });

  it('rollback journal: thousands of inserts, integrity_check ok, VACUUM', async () => {
    const db = `${m1}/journal.db`;
    const inserts = Array.from({ length: 3000 }, (_, i) => `insert into t(v, b) values('row ${i}', randomblob(${i % 500}));`).join('\n');
    await writeFile(`${scratch}/inserts.sql`, `create table t(id integer primary key, v text, b blob);\nbegin;\n${inserts}\ncommit;\n`);
    await ok(`sqlite3 -bail ${db} < ${scratch}/inserts.sql`);
    for (let k = 0; k < 10; k++) await sqlite(db, `begin; insert into t(v) select v || '+' from t where id <= 3000 and id % 10 = ${k}; commit;`);
    expect(await sqlite(db, `pragma journal_mode; pragma integrity_check; select count(*) from t;`)).toBe('delete\nok\n6000\n');
    await sqlite(db, `delete from t where id % 2 = 0; vacuum;`);
    expect(await sqlite(`${m2}/journal.db`, `pragma integrity_check; select count(*) from t;`)).toBe('ok\n3000\n');
    expect((await sh(`ls ${m1}/journal.db-journal`)).code).not.toBe(0);
  });

  it('WAL: two writers and two readers on one mount (shared mmap), checkpoint, VACUUM', async () => {
    const db = `${m1}/wal.db`;
    expect(await sqlite(db, `pragma journal_mode=wal; create table c(n int); insert into c values(0); create table t(who text, i int, b blob);`)).toBe('wal\n');
    const reader = `for i in $(seq 1 80); do echo "select count(*) from t;"; done | sqlite3 -bail -cmd '.timeout 120000' ${db} >/dev/null`;
    await together(writer(db, 'a', 200), writer(db, 'b', 200), reader, reader);
    expect(await sqlite(db, `pragma integrity_check; select n from c; select count(*) from t;`)).toBe('ok\n400\n400\n');
    expect(await sqlite(db, `pragma wal_checkpoint(truncate);`)).toBe('0|0|0\n');
    await sqlite(db, `delete from t where i % 4 = 0; vacuum;`);
    expect(await sqlite(db, `pragma integrity_check; select count(*) from t;`)).toBe('ok\n300\n');
  });

  it('two processes on two mounts take turns by fcntl locks: no update is lost', async () => {
    const db = `${m1}/shared.db`;
    await sqlite(db, `create table c(n int); insert into c values(0); create table t(who text, i int, b blob);`);
    await together(writer(`${m1}/shared.db`, 'one', 150), writer(`${m2}/shared.db`, 'two', 150));
    expect(await sqlite(`${m2}/shared.db`, `pragma integrity_check; select n from c; select who, count(*) from t group by who;`)).toBe('ok\n300\none|150\ntwo|150\n');
    expect(await sqlite(`${m1}/shared.db`, `select n from c;`)).toBe('300\n');
  });
});

describe('make', () => {
  it('rebuilds exactly what an edited source requires', async () => {
    const dir = `${m1}/build`;
    const makefile = [
      'app: a.o b.o', '\tcat a.o b.o > app; echo built app',
      'a.o: a.c common.h', '\tcat a.c common.h > a.o; echo built a.o',
      'b.o: b.c', '\tcat b.c > b.o; echo built b.o',
    ].join('\n');
    await ok(`mkdir ${dir} && printf '%s\\n' ${q(makefile)} > ${dir}/Makefile && echo a > ${dir}/a.c && echo b > ${dir}/b.c && echo h > ${dir}/common.h`);
    const make = async () => (await ok(`make -s -C ${dir}`)).trim().split('\n').filter((l) => l.startsWith('built')).join(',');
    expect(await make()).toBe('built a.o,built b.o,built app');
    expect(await make()).toBe('');
    // Each edit right after a build: the new mtime is later than the target's, at once.
    await ok(`echo a2 >> ${dir}/a.c`);
    expect(await make()).toBe('built a.o,built app');
    await ok(`touch ${dir}/b.c`);
    expect(await make()).toBe('built b.o,built app');
    await ok(`echo h2 >> ${dir}/common.h`);
    expect(await make()).toBe('built a.o,built app');
    expect(await make()).toBe('');
    expect(await ok(`cat ${dir}/app`)).toBe('a\na2\nh\nh2\nb\n');
  });
});
