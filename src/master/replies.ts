// Exactly-once namespace changes across lost replies. A client sends a retried request (see
// retriedRequests in messages.ts) with the same request id on every try. The first try that
// changes the namespace logs the id with its op; a later try with that id — the reply was lost in
// a dropped connection or a master crash — gets the first outcome, rebuilt from the op, instead
// of a second application (which would fail: EEXIST for the file just created, ENOENT for the name
// just removed). Ids are kept for the last `max` changes, rebuilt from the op log at start-up (a
// checkpoint forgets them: it happens only every checkpointEvery records).

import { AsyncLocalStorage } from 'node:async_hooks';
import { retriedRequests, type MasterApi } from '../protocol/messages.js';
import type { Handlers } from '../protocol/rpc.js';
import type { Namespace } from './namespace.js';
import type { NsOp } from './ops.js';

type Tagged = NsOp & { rid?: string };

const MAX_RID_CHARS = 128;

export class Replies {
  /** rid → the op it made, oldest first (Map order). */
  private readonly done = new Map<string, NsOp>();
  private readonly running = new Map<string, Promise<unknown>>();
  private readonly current = new AsyncLocalStorage<string>();

  constructor(private readonly max = 100_000) {}

  /** Op-log replay: remember the ids of replayed ops. */
  replayed(op: NsOp): void {
    const rid = (op as Tagged).rid;
    if (typeof rid === 'string') this.remember(rid, op);
  }

  /** The record to log for op: tagged with the id of the request being served, if it has one. */
  tag(op: NsOp): NsOp {
    const rid = this.current.getStore();
    if (rid === undefined) return op;
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
        const op = this.done.get(rid);
        if (op) return outcome(op, ns);
        const p = Promise.resolve()
          .then(() => this.current.run(rid, () => h(req, peer)))
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
    this.done.set(rid, op);
    if (this.done.size > this.max) this.done.delete(this.done.keys().next().value!);
  }
}

/** The reply the first try got (attributes as they are now, for the ops that reply with them). */
function outcome(op: NsOp, ns: Namespace): unknown {
  switch (op.t) {
    case 'create':
    case 'mkdir':
    case 'symlink':
      return ns.attr(ns.get(op.ino));
    case 'link':
      return ns.attr(ns.resolve(op.to));
    default:
      return {};
  }
}
