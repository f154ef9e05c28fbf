// Daemons log one line per event to stderr: "<ISO time> <role> <message>". GFS_DEBUG=1 adds debug lines.

const debugOn = process.env.GFS_DEBUG === '1';

export interface Logger {
  info(msg: string): void;
  warn(msg: string): void;
  debug(msg: string): void;
}

/**
 * Set once stderr fails (its reader went away: `gfs master 2>&1 | head`). The daemon keeps serving,
 * silently: each failed write raised an error that was logged to stderr again, and the daemon spun
 * at full CPU in that loop (and took 15 s to stop on SIGTERM).
 */
let stderrGone = false;
let watching = false;

export function logger(role: string): Logger {
  if (!watching) {
    watching = true;
    process.stderr.on('error', () => void (stderrGone = true));
    process.stdout.on('error', () => {}); // the ready line's reader went away: nothing else goes there
  }
  const line = (level: string, msg: string) => {
    if (!stderrGone) process.stderr.write(`${new Date().toISOString()} ${role}${level} ${msg}\n`);
  };
  return {
    info: (msg) => line('', msg),
    warn: (msg) => line(' WARN', msg),
    debug: (msg) => {
      if (debugOn) line(' debug', msg);
    },
  };
}
