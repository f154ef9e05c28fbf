// Helpers for tests that run ordinary programs against a mount: background processes with their
// output, small scripts in a scratch directory (outside the mount), running as an unprivileged user.

import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

/** Single-quote s for bash. */
export const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** cmd run by bash as nobody (uid/gid 65534, no supplementary groups). */
export const asNobody = (cmd: string): string => `setpriv --reuid=65534 --regid=65534 --clear-groups -- bash -c ${q(cmd)}`;

/** Poll check until it returns true; fails after deadlineMs (a deadline, not a timing assertion). */
export async function until(check: () => Promise<boolean> | boolean, what: string, deadlineMs = 30_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  for (let pause = 20; ; pause = Math.min(pause * 2, 500)) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, pause));
  }
}

export interface Background {
  proc: ChildProcess;
  lines: string[];
  /** Resolves when a line of output (stdout or stderr) matches re. */
  waitFor(re: RegExp, what?: string): Promise<void>;
  /** Resolves with the exit code (or signal name) once it has exited. */
  exited: Promise<number | string>;
  /** SIGKILL its process group (by id) if still running, and wait for the exit. */
  stop(): Promise<void>;
}

/** Start a bash command in the background (never inside the test process's own mount calls). */
export function background(cmd: string): Background {
  // Its own process group, so that stop() ends whatever it started too (by that group's id).
  const proc = spawn('bash', ['-c', cmd], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const lines: string[] = [];
  const listeners: Array<() => void> = [];
  for (const stream of [proc.stdout!, proc.stderr!]) {
    createInterface({ input: stream }).on('line', (l) => {
      lines.push(l);
      for (const f of listeners) f();
    });
  }
  const exited = new Promise<number | string>((resolve) => proc.once('exit', (code, sig) => resolve(code ?? sig ?? -1)));
  return {
    proc,
    lines,
    exited,
    waitFor: (re, what) => until(() => lines.some((l) => re.test(l)), what ?? `output ${re} of ${cmd}`),
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        try {
          process.kill(-proc.pid!, 'SIGKILL');
        } catch {
          proc.kill('SIGKILL');
        }
      }
      await exited;
    },
  };
}

/** Write a Python script into dir and return the command that runs it. */
export async function python(dir: string, name: string, code: string): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, code);
  return `python3 ${q(file)}`;
}
