// Connections to chunkservers by address, dialled on first use and shared by every caller.
// Used by clients (reads, pushes, commits) and by chunkservers (forwarding, replication).

import { GfsError } from './errors.js';
import type { ChunkserverDataApi, ServerAddress } from './messages.js';
import { connect, type ConnectOptions, type Peer } from './rpc.js';

export type ChunkserverPeer = Peer<ChunkserverDataApi>;

export class PeerPool {
  private readonly peers = new Map<ServerAddress, Promise<ChunkserverPeer>>();

  constructor(private readonly opts: ConnectOptions) {}

  get(address: ServerAddress): Promise<ChunkserverPeer> {
    let p = this.peers.get(address);
    if (!p) {
      p = connect<ChunkserverDataApi>(address, this.opts);
      this.peers.set(address, p);
      p.then(
        (peer) => peer.onClose(() => this.forget(address, p!)),
        () => this.forget(address, p!),
      );
    }
    return p;
  }

  /** Call type on the chunkserver at address; a dead address is an EUNAVAIL error, never a throw elsewhere. */
  async call<K extends keyof ChunkserverDataApi & string>(
    address: ServerAddress,
    type: K,
    body: ChunkserverDataApi[K][0],
    timeoutMs?: number,
  ): Promise<ChunkserverDataApi[K][1]> {
    const peer = await this.get(address);
    if (!peer.open) {
      this.forget(address, this.peers.get(address)!);
      throw new GfsError('EUNAVAIL', `${address}: connection closed`);
    }
    return peer.call(type, body, timeoutMs);
  }

  closeAll(): void {
    for (const p of this.peers.values()) p.then((peer) => peer.close(), () => {});
    this.peers.clear();
  }

  private forget(address: ServerAddress, p: Promise<ChunkserverPeer>): void {
    if (this.peers.get(address) === p) this.peers.delete(address);
  }
}
