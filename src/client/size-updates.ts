// New file sizes that background pushes (write-behind) made known, sent to the master with this
// client's next create instead of an extend request each. A small file written and closed used to
// cost the master two requests and two log writes (its create, then the extend after its push);
// while files keep being created, as in `cp -r` or an unpacking, it is one of each.
//
// Nothing waits longer than waitMs: what no create has taken by then goes in extends of its own,
// and so does everything as soon as someone needs it (hurry: a stat, read, fsync or recall of a
// file here, an unmount). A create that fails, or whose reply does not say how each size went (a
// retried create answered from the master's memory of it), leaves its sizes to extends as well;
// an extend only ever grows a file, so one applied twice does no harm.

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
    /** An extend request of its own. */
    private readonly sendAlone: (update: SizeUpdate) => Promise<Attr>,
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
    const late = setTimeout(() => taken.forEach((w) => this.send(w)), CREATE_WAIT_MS);
    return {
      updates: taken.map((w) => w.update),
      settle: (sized) => {
        clearTimeout(late);
        taken.forEach((w, i) => {
          const r = sized?.[i];
          if (r && 'ino' in r) finish(w, () => w.resolve(r));
          else if (r && 'code' in r) finish(w, () => w.reject(new GfsError(r.code, r.message)));
          else this.send(w);
        });
      },
    };
  }

  /** Everything waiting goes now. */
  hurry(): void {
    if (this.queued.length === 0) return; // (on every read and stat of a file being written)
    for (const w of this.drain()) this.send(w);
  }

  private drain(): Waiting[] {
    clearTimeout(this.timer);
    this.timer = undefined;
    const out = this.queued;
    this.queued = [];
    return out;
  }

  private send(w: Waiting): void {
    if (w.state !== 'waiting') return;
    w.state = 'sent';
    this.sendAlone(w.update).then(
      (attr) => finish(w, () => w.resolve(attr)),
      (err: Error) => finish(w, () => w.reject(err)),
    );
  }
}

/** The first outcome of a size counts (the create's, or its extend's when both went). */
function finish(w: Waiting, settle: () => void): void {
  if (w.state === 'done') return;
  w.state = 'done';
  settle();
}
