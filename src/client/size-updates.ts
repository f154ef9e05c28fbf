// New file sizes that background pushes (write-behind) made known, sent to the master with this
// client's next create instead of an extend request each. A small file written and closed used to
// cost the master two requests and two log writes (its create, then the extend after its push);
// while files keep being created, as in `cp -r` or an unpacking, it is one of each.
//
// Nothing waits longer than waitMs: what no create has taken by then goes in a request of its own
// (extendMany: all of it in one), and so does everything as soon as someone needs it (hurry: a
// stat, read, fsync or recall of a file here, an unmount). A create that fails, or whose reply
// does not say how each size went (a retried create answered from the master's memory of it),
// leaves its sizes to such a request as well; an extend only ever grows a file, so one applied
// twice does no harm. (One request per size, as before, was half of the master's requests in
// `cp -r`: 3,433 extends for 6,900 files, the batches of creates often not quite due yet.)

import { GfsError } from '../protocol/errors.js';
import type { Attr, MasterClientApi, SizeUpdate } from '../protocol/messages.js';

type Outcome = NonNullable<MasterClientApi['create'][1]['sized']>[number];

/** The longest a size waits for a create to take it: what a push after a close may take longer. */
export const SIZE_WAIT_MS = 5;
/**
 * The longest sizes wait for the create that took them. A create can wait at the master for a
 * recall of a file another mount holds, and that mount's recall for one of our files, which waits
 * for one of these sizes: they go alone as well after this (an extend applied twice does no harm).
 */
const CREATE_WAIT_MS = 100;

interface Waiting {
  update: SizeUpdate;
  resolve(attr: Attr): void;
  reject(err: Error): void;
  /** waiting: in the queue or a create; sent: in an extend of its own; done: settled. */
  state: 'waiting' | 'sent' | 'done';
}

export class SizeUpdates {
  private queued: Waiting[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    /** Sizes in a request of their own; resolves with each one's outcome, in order. */
    private readonly sendMany: (updates: SizeUpdate[]) => Promise<Outcome[]>,
    private readonly waitMs: number,
  ) {}

  /** Resolves with the file's attributes once the master has the size on disk. */
  add(update: SizeUpdate): Promise<Attr> {
    return new Promise<Attr>((resolve, reject) => {
      this.queued.push({ update, resolve, reject, state: 'waiting' });
      this.timer ??= setTimeout(() => this.hurry(), this.waitMs);
    });
  }

  /**
   * The sizes waiting, for a create to carry: settle(sized) with the reply's outcomes, or
   * settle(undefined) when the create failed.
   */
  take(): { updates: SizeUpdate[]; settle(sized: Outcome[] | undefined): void } | undefined {
    if (this.queued.length === 0) return undefined;
    const taken = this.drain();
    const late = setTimeout(() => this.send(taken), CREATE_WAIT_MS);
    return {
      updates: taken.map((w) => w.update),
      settle: (sized) => {
        clearTimeout(late);
        this.send(taken.filter((w, i) => !settle(w, sized?.[i])));
      },
    };
  }

  /** Everything waiting goes now. */
  hurry(): void {
    if (this.queued.length === 0) return; // (on every read and stat of a file being written)
    this.send(this.drain());
  }

  private drain(): Waiting[] {
    clearTimeout(this.timer);
    this.timer = undefined;
    const out = this.queued;
    this.queued = [];
    return out;
  }

  /** Those still waiting go in one request of their own. */
  private send(ws: Waiting[]): void {
    const going = ws.filter((w) => w.state === 'waiting');
    if (going.length === 0) return;
    for (const w of going) w.state = 'sent';
    this.sendMany(going.map((w) => w.update)).then(
      (sized) => going.forEach((w, i) => settle(w, sized[i]) || finish(w, () => w.reject(new GfsError('EIO', 'the master did not say how a size went')))),
      (err: Error) => going.forEach((w) => finish(w, () => w.reject(err))),
    );
  }
}

/** Settle w with its outcome from a reply; false if the reply had none for it. */
function settle(w: Waiting, r: Outcome | undefined): boolean {
  if (r && 'ino' in r) finish(w, () => w.resolve(r));
  else if (r && 'code' in r) finish(w, () => w.reject(new GfsError(r.code, r.message)));
  else return false;
  return true;
}

/** The first outcome of a size counts (the create's, or its extend's when both went). */
function finish(w: Waiting, settle: () => void): void {
  if (w.state === 'done') return;
  w.state = 'done';
  settle();
}
