// What every gfs daemon does the same way: announce readiness, stop cleanly on SIGTERM/SIGINT,
// and never die of one bad request.

import type { Logger } from './log.js';

/** The line a daemon prints on stdout once it serves; `gfs up` and the tests wait for it. */
export const READY = 'gfs-ready';

export function announceReady(what: string): void {
  process.stdout.write(`${READY} ${what}\n`);
}

export function runUntilSignal(log: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const onSignal = (sig: string) => {
    if (stopping) return;
    stopping = true;
    log.info(`${sig}: stopping`);
    const force = setTimeout(() => {
      log.warn('stop took too long; exiting');
      process.exit(1);
    }, 15_000);
    force.unref();
    stop().then(
      () => process.exit(0),
      (e) => {
        log.warn(`stop failed: ${(e as Error).message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  // A bug in one request's handling must not take the whole daemon (and every client) down.
  process.on('uncaughtException', (e) => log.warn(`uncaught: ${e.stack ?? e.message}`));
  process.on('unhandledRejection', (e) => log.warn(`unhandled rejection: ${(e as Error)?.stack ?? String(e)}`));
}

/** Print a one-line reason and exit non-zero (bad arguments, unreachable master, ...). */
export function fail(msg: string): never {
  process.stderr.write(`gfs: ${msg}\n`);
  process.exit(1);
}
