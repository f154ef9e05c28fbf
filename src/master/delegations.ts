// Write delegations (as NFSv4 and CephFS have them): a client that opens a file for writing may
// be granted the file for itself. While it holds it, no other client can see or change the file
// without the master first recalling it, so the holder may
// - open the file again without asking the master (close-to-open holds: nobody changed it), and
// - answer close before its writes have reached the chunkservers (write-behind): they are pushed
//   in the background, and in full before it answers a recall.
// A client that makes a directory may be granted the directory the same way: it then answers
// creates in it itself and sends them later (client/deferred-changes.ts), so a request of another
// client whose path passes through the directory waits for its recall, which sends them.
// Every request of another client that reads or changes the file (its attributes, its names, its
// data, the listing of its directory) waits here until the holder has answered the recall. A
// holder that goes away (its connection closes) loses its delegations: what it had not pushed is
// lost with it, as a local file system loses unwritten pages in a crash. Delegations live in
// memory: after a master restart clients hold none (they drop theirs when the connection drops).

import type { Handlers, Peer } from '../protocol/rpc.js';
import type { ClientApi, MasterApi, MasterClientApi } from '../protocol/messages.js';
import type { Logger } from '../log.js';
import type { Namespace } from './namespace.js';

export type ClientPeer = Peer<ClientApi, MasterClientApi>;

/** Client requests that never read or change a file (no recall before them). */
const untouching = new Set<string>(['statfs', 'status', 'trash', 'drain', 'lock', 'testLock', 'cancelLock', 'giveBack', 'reportBad', 'readlink']);
/** Client requests whose handlers make their recalls themselves (before()). */
const selfGuarded = new Set<string>(['changes']);

export class Delegations {
  private readonly holders = new Map<number, ClientPeer>();
  /** Inode → the number of the grant its holder has (numbers only grow). */
  private readonly grants = new Map<number, number>();
  private lastGrant = 0;
  private readonly byPeer = new Map<ClientPeer, Set<number>>();
  private readonly recalls = new Map<number, Promise<void>>();

  constructor(
    private readonly ns: Namespace,
    /** How long a recall may take before the holder is taken as gone (its delegation dropped). */
    private readonly recallMs: number,
    private readonly log: Logger,
  ) {}

  get size(): number {
    return this.holders.size;
  }

  holder(ino: number): ClientPeer | undefined {
    return this.holders.get(ino);
  }

  /** Grant ino to peer if no other client holds it: the grant's number, or 0. */
  grant(ino: number, peer: ClientPeer): number {
    if (this.recalls.has(ino)) return 0; // (the holder itself asking again while it answers one)
    const held = this.holders.get(ino);
    if (held && held !== peer) return 0;
    if (held) return this.grants.get(ino)!;
    let mine = this.byPeer.get(peer);
    if (!mine) {
      this.byPeer.set(peer, (mine = new Set()));
      peer.onClose(() => this.dropPeer(peer));
    }
    mine.add(ino);
    this.holders.set(ino, peer);
    this.grants.set(ino, ++this.lastGrant);
    return this.lastGrant;
  }

  giveBack(inos: number[], peer: ClientPeer): void {
    for (const ino of inos) if (this.holders.get(ino) === peer) this.drop(ino);
  }

  /**
   * handlers, each client request served only after the recalls it needs; isClient tells a
   * client's connection from a chunkserver's (whose size updates for record appends are the
   * holder's own writes).
   */
  guard(handlers: Handlers<MasterApi>, isClient: (peer: Peer<any, any>) => boolean): Handlers<MasterApi> {
    const out: Record<string, unknown> = { ...handlers };
    for (const [type, handler] of Object.entries(handlers) as Array<[string, (req: unknown, peer: Peer<any, any>) => unknown]>) {
      if (untouching.has(type) || selfGuarded.has(type)) continue;
      out[type] = (req: unknown, peer: Peer<any, any>) => {
        if (this.holders.size === 0 || !isClient(peer) || typeof req !== 'object' || req === null) return handler(req, peer);
        return this.before(type, req as Record<string, unknown>, peer as ClientPeer).then(() => handler(req, peer));
      };
    }
    return out as Handlers<MasterApi>;
  }

  /**
   * Before a request of `peer` is served: recall every delegation another client holds on what the
   * request touches (see touched()).
   */
  async before(type: string, req: Record<string, unknown>, peer: ClientPeer): Promise<void> {
    if (this.holders.size === 0) return;
    const inos = this.touched(type, req);
    const others = inos === 'all' ? [...this.holders.keys()] : inos;
    const waits = others.filter((ino) => this.holders.get(ino) !== undefined && this.holders.get(ino) !== peer).map((ino) => this.recall(ino));
    if (waits.length > 0) await Promise.all(waits);
  }

  /** The delegated inodes a client request reads or changes; 'all' for a directory's rename. */
  private touched(type: string, req: Record<string, unknown>): number[] | 'all' {
    const out: number[] = [];
    const add = (ino: unknown) => {
      if (typeof ino === 'number' && this.holders.has(ino)) out.push(ino);
    };
    add(req.ino);
    if ((type === 'create' || type === 'changes' || type === 'extendMany') && Array.isArray(req.sizes)) for (const u of req.sizes) add((u as { ino?: unknown } | null)?.ino);
    const paths: unknown[] = [req.path, req.from, req.to];
    if (type === 'changes' && Array.isArray(req.items)) for (const item of req.items) paths.push((item as { path?: unknown } | null)?.path);
    for (const path of paths) {
      if (typeof path !== 'string') continue;
      const along = this.ns.along(path);
      // Every delegated directory on the way: its holder may have made names in it that the
      // master does not know yet (creates answered ahead), and changed its times.
      for (const node of along) add(node.ino);
      const node = this.ns.find(path);
      if (node?.type !== 'dir') continue;
      if (type === 'readdir') for (const ino of node.children!.values()) add(ino);
      else if (type === 'rename') return 'all'; // the names of everything beneath it change
    }
    return out;
  }

  private recall(ino: number): Promise<void> {
    let p = this.recalls.get(ino);
    if (p) return p;
    const holder = this.holders.get(ino)!;
    p = holder
      .call('recall', { ino, grant: this.grants.get(ino)! }, this.recallMs)
      .catch((e: Error) => this.log.warn(`recall of inode ${ino} from ${holder.label}: ${e.message}; its delegation is dropped`))
      .then(() => {
        if (this.holders.get(ino) === holder) this.drop(ino);
      })
      .finally(() => this.recalls.delete(ino));
    this.recalls.set(ino, p);
    return p;
  }

  private drop(ino: number): void {
    const peer = this.holders.get(ino);
    if (!peer) return;
    this.holders.delete(ino);
    this.grants.delete(ino);
    const mine = this.byPeer.get(peer);
    mine?.delete(ino);
  }

  private dropPeer(peer: ClientPeer): void {
    for (const ino of this.byPeer.get(peer) ?? []) if (this.holders.get(ino) === peer) this.drop(ino);
    this.byPeer.delete(peer);
  }
}
