// Unit tests of Replies: which request ids a master rebuilds from its op log.

import { describe, expect, it } from 'vitest';
import { Replies } from '../src/master/replies.js';
import { Namespace } from '../src/master/namespace.js';
import type { NsOp } from '../src/master/ops.js';
import type { Handlers } from '../src/protocol/rpc.js';
import type { MasterApi } from '../src/protocol/messages.js';

const unlinkOp = (rid: string) => ({ t: 'unlink', path: '/a', time: [0, 0], rid }) as unknown as NsOp;

describe('Replies', () => {
  it('replay keeps the ids of the last `max` ops only, and answers a retry of those without applying it again', async () => {
    const replies = new Replies(2);
    const ops = ['r1', 'r2', 'r3'].map(unlinkOp);
    ops.forEach((op, i) => replies.replayed(op, ops.length - 1 - i));
    const applied: unknown[] = [];
    const handlers = replies.wrap({ unlink: (req: { rid?: string }) => (applied.push(req.rid), {}) } as unknown as Handlers<MasterApi>, new Namespace());
    const unlink = handlers.unlink as (req: unknown, peer: unknown) => Promise<unknown>;
    for (const rid of ['r3', 'r2', 'r1']) expect(await unlink({ path: '/a', rid }, null)).toEqual({});
    expect(applied).toEqual(['r1']); // r1 had two ops after it: forgotten, as it would have been
  });
});
