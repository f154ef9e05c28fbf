// Exactly-once namespace changes across lost replies. A client sends a retried request (see
// retriedRequests in messages.ts) with the same request id on every try. The first try that
// changes the namespace logs the id with its op; a later try with that id — the reply was lost in
// a dropped connection or a master crash — gets the first outcome, rebuilt from the op, instead
// of a second application (which would fail: EEXIST for the file just created, ENOENT for the name
// just removed). Ids are kept for the last `max` changes, rebuilt from the op log at start-up (a
// checkpoint forgets them: it happens only every checkpointEvery records).

import { retriedRequests, type MasterApi } from '../protocol/messages.js';
import type { Handlers } from '../protocol/rpc.js';
import type { Namespace } from './namespace.js';
import type { NsOp } from './ops.js';

type Tagged = NsOp & { rid?: string };

const MAX_RID_CHARS = 128;

/** What a retried request needs of the first try's op: the inode it made, the link's new path. */
type Outcome = number | string | null;

export class Replies {
  /** rid → the outcome of the op it made. */
  private readonly done = new Map<string, Outcome>();
  /**
   * The ids in the order they came, as a ring: evicting the oldest is one slot, O(1). (Deleting a
   * Map's first key instead walks past every slot deleted before it: 40 µs an eviction at 100,000
   * ids, 39 s of a 1M-record replay, measured.)
   */
  private readonly ring: Array<string | undefined>;
  private at = 0;
  private readonly running = new Map<string, Promise<unknown>>();
  /**
   * The id of the request whose handler is running its synchronous part. Every retried request's
   * handler applies and tags its op before its first await (server.ts: mutate), so a plain field
   * set around that part is enough; AsyncLocalStorage did it for any await too, but its promise
   * hooks taxed every promise of the master.
   */
  private current: string | undefined;

  constructor(private readonly max = 100_000) {
    this.ring = new Array<string | undefined>(max);
  }

  /**
   * Op-log replay: remember the ids of replayed ops. Those with at least `max` ops after them would
   * be evicted before the end anyway: skipped (a tenth of a 1M-record replay went to them).
   */
  replayed(op: NsOp, after = 0): void {
    const rid = (op as Tagged).rid;
    if (typeof rid === 'string' && after < this.max) this.remember(rid, op);
  }

  /** The record to log for op: tagged with the id of the request being served, if it has one. */
  tag(op: NsOp): NsOp {
    const rid = this.current;
    if (rid === undefined) return op;
    this.current = undefined; // only the request's first op is its outcome, and tagged
    this.remember(rid, op);
    return { ...op, rid } as Tagged;
  }

  /** handlers, with the retried requests answered once per id. */
  wrap(handlers: Handlers<MasterApi>, ns: Namespace): Handlers<MasterApi> {
    const out: Record<string, unknown> = { ...handlers };
    for (const type of retriedRequests) {
      const h = handlers[type] as ((req: unknown, peer: unknown) => unknown) | undefined;
      if (!h) continue;
      out[type] = (req: { rid?: unknown }, peer: unknown) => {
        const rid = typeof req.rid === 'string' && req.rid.length > 0 && req.rid.length <= MAX_RID_CHARS ? req.rid : undefined;
        if (rid === undefined) return h(req, peer);
        const running = this.running.get(rid);
        if (running) return running; // the first try is still being served
        if (this.done.has(rid)) return outcome(this.done.get(rid)!, ns);
        const p = Promise.resolve()
          .then(() => {
            this.current = rid;
            try {
              return h(req, peer);
            } finally {
              this.current = undefined;
            }
          })
          .finally(() => this.running.delete(rid));
        this.running.set(rid, p);
        return p;
      };
    }
    return out as Handlers<MasterApi>;
  }

  /** The first op of a request is its outcome (a handler may log more than one). */
  private remember(rid: string, op: NsOp): void {
    if (this.done.has(rid)) return;
    const old = this.ring[this.at];
    if (old !== undefined) this.done.delete(old);
    this.ring[this.at] = rid;
    this.at = (this.at + 1) % this.max;
    this.done.set(rid, outcomeOf(op));
  }
}

function outcomeOf(op: NsOp): Outcome {
  switch (op.t) {
    case 'create':
    case 'mkdir':
    case 'symlink':
      return op.ino;
    case 'link':
      return op.to;
    default:
      return null;
  }
}

/** The reply the first try got (attributes as they are now, for the ops that reply with them). */
function outcome(o: Outcome, ns: Namespace): unknown {
  if (typeof o === 'number') return ns.attr(ns.get(o));
  if (typeof o === 'string') return ns.attr(ns.resolve(o));
  return {};
}
