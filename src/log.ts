// Daemons log one line per event to stderr: "<ISO time> <role> <message>". GFS_DEBUG=1 adds debug lines.

const debugOn = process.env.GFS_DEBUG === '1';

export interface Logger {
  info(msg: string): void;
  warn(msg: string): void;
  debug(msg: string): void;
}

export function logger(role: string): Logger {
  const line = (level: string, msg: string) =>
    process.stderr.write(`${new Date().toISOString()} ${role}${level} ${msg}\n`);
  return {
    info: (msg) => line('', msg),
    warn: (msg) => line(' WARN', msg),
    debug: (msg) => {
      if (debugOn) line(' debug', msg);
    },
  };
}
