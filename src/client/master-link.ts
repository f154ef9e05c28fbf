// The client's connection to the master. It re-dials by itself; while the master is away, calls
// wait (retrying with back-off) up to cfg.clientRetryMs and then fail with EIO, so a mount neither
// hangs forever nor fails at the first hiccup.

import { GfsError, asGfsError } from '../protocol/errors.js';
import { randomBytes } from 'node:crypto';
import { retriedRequests, type ClientApi, type MasterClientApi } from '../protocol/messages.js';
import { connect, type Handlers, type Peer } from '../protocol/rpc.js';
import type { GfsConfig } from '../config.js';
import type { Logger } from '../log.js';

type MasterPeer = Peer<MasterClientApi, ClientApi>;

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Errors that mean "the other side is (maybe briefly) not there", worth waiting out. */
export const isUnreachable = (e: GfsError) => e.code === 'EUNAVAIL' || e.code === 'ETIMEDOUT';

/**
 * Run attempt until it succeeds, fails with an error retry() rejects, or retryMs have passed
 * (then the last error, as EIO if it was a reachability error).
 */
export async function withRetry<T>(retryMs: number, retry: (e: GfsError) => boolean, attempt: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + retryMs;
  let pause = 20;
  for (;;) {
    try {
      return await attempt();
    } catch (e) {
      const err = asGfsError(e);
      if (!retry(err)) throw err;
      if (Date.now() + pause > deadline) {
        throw isUnreachable(err) ? new GfsError('EIO', `gave up after ${retryMs} ms: ${err.message}`) : err;
      }
      await sleep(pause);
      pause = Math.min(pause * 2, 1000);
    }
  }
}

const retried = new Set<string>(retriedRequests);

export class MasterLink {
  private peer: Promise<MasterPeer> | null = null;
  private closed = false;
  private readonly clientId = randomBytes(8).toString('hex');
  private seq = 0;

  constructor(
    readonly url: string,
    private readonly cfg: GfsConfig,
    private readonly log: Logger,
    /** What the master may ask of this client (a recall). */
    private readonly handlers: Handlers<ClientApi> = {},
    /** The connection dropped: the master may have forgotten this client's delegations. */
    private readonly onLost: () => void = () => {},
  ) {}

  /** Dial once; rejects if the master cannot be reached now (used to fail fast at start-up). */
  async connectOnce(): Promise<void> {
    await this.get();
  }

  /** timeoutMs: how long one attempt may wait for its reply (a lock wait has none: pass Infinity). */
  call<K extends keyof MasterClientApi & string>(type: K, body: MasterClientApi[K][0], retry: (e: GfsError) => boolean = isUnreachable, timeoutMs?: number): Promise<MasterClientApi[K][1]> {
    // A namespace change may be applied and its reply lost: every try carries the same request id.
    if (retried.has(type)) body = { ...(body as object), rid: this.requestId() } as unknown as MasterClientApi[K][0];
    return withRetry(this.cfg.clientRetryMs, retry, async () => (await this.get()).call(type, body, timeoutMs));
  }

  /** A request id (RequestId) unique to this client, for a change that must be applied once. */
  requestId(): string {
    return `${this.clientId}-${++this.seq}`;
  }

  close(): void {
    this.closed = true;
    this.peer?.then((p) => p.close(), () => {});
    this.peer = null;
  }

  private get(): Promise<MasterPeer> {
    if (this.closed) return Promise.reject(new GfsError('EUNAVAIL', 'client closed'));
    if (!this.peer) {
      const p = connect<MasterClientApi, ClientApi>(this.url, { maxFrameBytes: this.cfg.maxFrameBytes, timeoutMs: this.cfg.rpcTimeoutMs, log: this.log }, this.handlers);
      this.peer = p;
      p.then(
        (peer) => peer.onClose(() => {
          if (this.peer === p) this.peer = null;
          this.onLost();
          if (!this.closed) this.log.warn('lost the master connection; re-dialling on next use');
        }),
        () => {
          if (this.peer === p) this.peer = null;
        },
      );
    }
    return this.peer;
  }
}
