// Request/reply over one WebSocket, in both directions, with msgpack frames.
//
// A frame is a msgpack array:
//   [0, id, type, body]      a request
//   [1, id, body]            its reply
//   [2, id, code, message]   its error (code is an ErrorCode)
//   [3, 0, frames]           several of the above, sent in one loop turn (coalesced)
// A frame that does not decode, or a request of an unknown type, gets an EPROTO error (id 0 when the
// id itself is unreadable) and the connection stays up; a frame over maxFrameBytes closes it (ws 1009).
//
// Bulk data: when a request or reply body has a large `data` Buffer, the frame is sent as
//   0xc1, u32 header length, the msgpack frame without data, then the data bytes as they are
// (0xc1 is the one byte msgpack never uses). The data is then never copied into an encoding
// buffer on the way out, and is a view of the received message on the way in.
//
// Coalescing: the first frame of a turn of the event loop goes at once; the ones sent after it in
// the same turn go together as one [3, 0, frames] message at its end (setImmediate). Why: on this machine kind every message costs a socket write
// and a wake-up of the process it goes to, far more than its bytes; a batch of creates answered
// at once makes as many pushes, a primary as many forwards, each of them as many replies.

import { Packr } from 'msgpackr';
import WebSocket, { WebSocketServer } from 'ws';
import type { AddressInfo } from 'node:net';
import { GfsError, asGfsError, isErrorCode } from './errors.js';
import type { Api } from './messages.js';
import type { Logger } from '../log.js';

const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });
export const encode = (value: unknown): Buffer => packr.pack(value);
/**
 * encode for a one-off large value (a checkpoint). msgpackr encodes into one buffer shared by
 * every encoder, grown to the largest value ever encoded and kept: after a master of a million
 * files wrote a checkpoint it held ~125 MB for good (measured: 199 -> 410 bytes per file). Once
 * this value is out, the encoder is handed a small buffer again; what it returned stays valid.
 */
export const encodeLarge = (value: unknown): Buffer => {
  const out = packr.pack(value);
  packr.useBuffer(Buffer.allocUnsafe(8192));
  return out;
};
export const decode = (frame: Buffer): unknown => packr.unpack(frame);
const NIL = Buffer.from([0xc0]);
/**
 * msgpackr keeps the buffer it last decoded (and a DataView of it) until it decodes another: after
 * a master loaded a checkpoint of a million files, its ~125 MB stayed in memory until the first
 * request came (measured: 327 -> 199 bytes per file right after the load). Decoding a one-byte
 * nil lets it go.
 */
export const releaseDecoded = (): void => void packr.unpack(NIL);

const TAIL_MARK = 0xc1;
/** Bodies with data at least this big carry it as a raw tail. */
const TAIL_MIN = 64 * 1024;

/** The body of a frame, where a `data` field would be: [0, id, type, body] or [1, id, body]. */
const bodyAt = (frame: unknown[]): number => (frame[0] === 0 ? 3 : frame[0] === 1 ? 2 : -1);

/** The large data a frame's body carries, to send as a raw tail; undefined if none. */
function tailOf(frame: unknown[]): { at: number; body: object; data: Buffer } | undefined {
  const at = bodyAt(frame);
  const body = at >= 0 ? (frame[at] as { data?: unknown } | undefined) : undefined;
  const data = body?.data;
  return Buffer.isBuffer(data) && data.length >= TAIL_MIN ? { at, body: body!, data } : undefined;
}

/** A tail frame as the parts to send: a header and the raw data. */
function encodeTailFrame(frame: unknown[], { at, body, data }: { at: number; body: object; data: Buffer }): Buffer[] {
  const header = encode(frame.map((v, i) => (i === at ? { ...body, data: null } : v)));
  const lead = Buffer.allocUnsafe(5);
  lead[0] = TAIL_MARK;
  lead.writeUInt32BE(header.length, 1);
  return [Buffer.concat([lead, header]), data];
}

/**
 * The frame in a received message, as the fragments it came in (throws on a malformed one). A
 * tail frame sent as encodeTailFrame's two parts arrives as two fragments: its data is the second as
 * it came, not copied into one joined message (1 GiB read through a mount copied 1 GiB less).
 */
function decodeFrame(fragments: Buffer[]): unknown {
  const [first, second] = fragments;
  if (fragments.length === 2 && first.length >= 5 && first[0] === TAIL_MARK && first.readUInt32BE(1) === first.length - 5) {
    return withTail(decode(first.subarray(5)), second);
  }
  const msg = fragments.length === 1 ? first : Buffer.concat(fragments);
  if (msg.length === 0 || msg[0] !== TAIL_MARK) return decode(msg);
  const len = msg.length >= 5 ? msg.readUInt32BE(1) : -1;
  if (len < 0 || 5 + len > msg.length) throw new Error('bad tail frame');
  return withTail(decode(msg.subarray(5, 5 + len)), msg.subarray(5 + len));
}

/** A decoded tail frame's header with its data put back. */
function withTail(frame: unknown, data: Buffer): unknown {
  if (!Array.isArray(frame)) throw new Error('bad tail frame');
  const at = bodyAt(frame);
  const body = frame[at];
  if (at < 0 || typeof body !== 'object' || body === null) throw new Error('tail frame without a body');
  (body as { data: Buffer }).data = data;
  return frame;
}

export type Handlers<A extends Api<A>> = {
  [K in keyof A]?: (req: A[K][0], peer: Peer<any, any>) => Promise<A[K][1]> | A[K][1];
};

interface Pending {
  resolve(value: unknown): void;
  reject(err: GfsError): void;
  timer: NodeJS.Timeout | undefined;
}

/**
 * One connection. Remote is the API the other side serves (what we may call); Local is ours.
 */
export class Peer<Remote extends Api<Remote>, Local extends Api<Local> = Record<never, never>> {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private closedError: GfsError | null = null;
  private readonly closeListeners: Array<(peer: this) => void> = [];
  /** Something was sent in this turn of the event loop: what follows waits in the outbox. */
  private busyTurn = false;
  /** Frames to go out together at the end of this turn of the event loop. */
  private outbox: unknown[][] = [];
  /** Free-form tag, e.g. the chunkserver id a master connection belongs to. */
  tag: string | undefined;

  constructor(
    private readonly ws: WebSocket,
    private readonly handlers: Handlers<Local>,
    readonly label: string,
    private readonly log: Logger,
    private readonly timeoutMs: number,
  ) {
    ws.binaryType = 'fragments'; // see decodeFrame
    ws.on('message', (data, isBinary) => this.onFrame(Array.isArray(data) ? data : [data as Buffer], isBinary));
    ws.on('error', (err) => this.log.debug(`${label}: ${err.message}`));
    ws.on('close', () => this.closed());
  }

  get open(): boolean {
    return this.closedError === null && this.ws.readyState === WebSocket.OPEN;
  }

  /** timeoutMs Infinity: no time-out (a lock wait; it still fails when the connection closes). */
  call<K extends keyof Remote & string>(type: K, body: Remote[K][0], timeoutMs = this.timeoutMs): Promise<Remote[K][1]> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    return new Promise<Remote[K][1]>((resolve, reject) => {
      const timer = Number.isFinite(timeoutMs) ? setTimeout(() => {
        this.pending.delete(id);
        reject(new GfsError('ETIMEDOUT', `${this.label}: ${type} timed out after ${timeoutMs} ms`));
      }, timeoutMs) : undefined;
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.send([0, id, type, body]);
    });
  }

  onClose(listener: (peer: this) => void): void {
    if (this.closedError) listener(this);
    else this.closeListeners.push(listener);
  }

  close(): void {
    this.sendOutbox(); // (what was sent before the close goes first)
    this.ws.close();
    this.closed();
  }

  private send(frame: unknown[]): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    const tail = tailOf(frame);
    if (!tail && this.busyTurn) {
      this.outbox.push(frame);
      return;
    }
    // The first frame of a turn goes at once (a lone request waits for nothing); the turn's later
    // ones go together at its end.
    if (!this.busyTurn) {
      this.busyTurn = true;
      setImmediate(() => {
        this.busyTurn = false;
        this.sendOutbox();
      });
    }
    if (!tail) return void this.ws.send(encode(frame), { binary: true });
    this.sendOutbox(); // (in order)
    const parts = encodeTailFrame(frame, tail);
    // Two fragments of one message: ws writes each straight to the socket, no joined copy.
    for (let i = 0; i < parts.length; i++) this.ws.send(parts[i], { binary: true, fin: i === parts.length - 1 });
  }

  private sendOutbox(): void {
    const frames = this.outbox;
    if (frames.length === 0) return;
    this.outbox = [];
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(encode(frames.length === 1 ? frames[0] : [3, 0, frames]), { binary: true });
  }

  private onFrame(data: Buffer[], isBinary: boolean): void {
    let frame: unknown;
    try {
      if (!isBinary) throw new Error('text frame');
      frame = decodeFrame(data);
    } catch {
      this.send([2, 0, 'EPROTO', 'malformed frame']);
      return;
    }
    if (Array.isArray(frame) && frame[0] === 3 && Array.isArray(frame[2])) {
      for (const f of frame[2] as unknown[]) this.onOne(f);
      return;
    }
    this.onOne(frame);
  }

  private onOne(frame: unknown): void {
    if (!Array.isArray(frame) || typeof frame[1] !== 'number') {
      this.send([2, 0, 'EPROTO', 'frame is not a [kind, id, ...] array']);
      return;
    }
    const [kind, id] = frame as [unknown, number];
    if (kind === 0) {
      void this.serve(id, frame[2], frame[3]);
    } else if (kind === 1 || kind === 2) {
      const p = this.pending.get(id);
      if (!p) return; // a reply after its time-out: nothing waits for it any more
      this.pending.delete(id);
      clearTimeout(p.timer);
      if (kind === 1) p.resolve(frame[2]);
      else p.reject(GfsError.answer(isErrorCode(frame[2]) ? frame[2] : 'EIO', `${String(frame[3])}`));
    } else {
      this.send([2, id, 'EPROTO', `unknown frame kind ${String(kind)}`]);
    }
  }

  private async serve(id: number, type: unknown, body: unknown): Promise<void> {
    const handler =
      typeof type === 'string' && Object.prototype.hasOwnProperty.call(this.handlers, type)
        ? (this.handlers as Record<string, (req: unknown, peer: Peer<any, any>) => unknown>)[type]
        : undefined;
    if (!handler) {
      this.send([2, id, 'EPROTO', `unknown request type ${JSON.stringify(type)}`]);
      return;
    }
    if (typeof body !== 'object' || body === null) {
      this.send([2, id, 'EPROTO', `${type}: body must be a map`]);
      return;
    }
    try {
      const result = await handler(body, this);
      this.send([1, id, result ?? {}]);
    } catch (e) {
      const err = e instanceof TypeError ? new GfsError('EPROTO', `${type}: ${e.message}`) : asGfsError(e);
      if (err.code === 'EIO' || err.code === 'EPROTO') this.log.debug(`${this.label}: ${type} failed: ${err.message}`);
      this.send([2, id, err.code, err.message]);
    }
  }

  private closed(): void {
    if (this.closedError) return;
    this.closedError = new GfsError('EUNAVAIL', `${this.label}: connection closed`);
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(this.closedError);
    }
    this.pending.clear();
    for (const l of this.closeListeners.splice(0)) l(this);
  }
}

export interface ListenOptions {
  host: string;
  port: number;
  maxFrameBytes: number;
  timeoutMs: number;
  log: Logger;
}

/** A listening server; every accepted connection becomes a Peer served by handlers. */
export class RpcServer<Local extends Api<Local>, Remote extends Api<Remote> = Record<never, never>> {
  private constructor(
    private readonly wss: WebSocketServer,
    readonly address: string,
  ) {}

  static listen<L extends Api<L>, R extends Api<R> = Record<never, never>>(
    opts: ListenOptions,
    handlers: Handlers<L>,
    onPeer?: (peer: Peer<R, L>) => void,
  ): Promise<RpcServer<L, R>> {
    return new Promise((resolve, reject) => {
      const wss = new WebSocketServer({ host: opts.host, port: opts.port, maxPayload: opts.maxFrameBytes, perMessageDeflate: false });
      wss.once('error', reject);
      wss.on('connection', (ws, req) => {
        const label = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
        const peer = new Peer<R, L>(ws, handlers, label, opts.log, opts.timeoutMs);
        onPeer?.(peer);
      });
      wss.on('listening', () => {
        wss.off('error', reject);
        wss.on('error', (err) => opts.log.warn(`server: ${err.message}`));
        const a = wss.address() as AddressInfo;
        resolve(new RpcServer<L, R>(wss, `${a.address}:${a.port}`));
      });
    });
  }

  close(): Promise<void> {
    for (const ws of this.wss.clients) ws.terminate();
    return new Promise((resolve) => this.wss.close(() => resolve()));
  }
}

export interface ConnectOptions {
  maxFrameBytes: number;
  timeoutMs: number;
  log: Logger;
}

/** Dial ws://host:port; rejects with EUNAVAIL when nobody answers. */
export function connect<R extends Api<R>, L extends Api<L> = Record<never, never>>(
  url: string,
  opts: ConnectOptions,
  handlers: Handlers<L> = {},
): Promise<Peer<R, L>> {
  const target = url.startsWith('ws://') ? url : `ws://${url}`;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(target, {
      maxPayload: opts.maxFrameBytes,
      perMessageDeflate: false,
      handshakeTimeout: opts.timeoutMs,
      // Masking protects browsers' proxies; between our own daemons it only costs a pass over
      // every byte of data. An all-zero mask makes ws skip it.
      generateMask: (mask: Buffer) => void mask.fill(0),
    });
    const fail = (err: Error) => {
      ws.removeAllListeners();
      ws.on('error', () => {});
      ws.terminate();
      reject(new GfsError('EUNAVAIL', `cannot reach ${target}: ${err.message}`));
    };
    ws.once('error', fail);
    ws.once('open', () => {
      ws.off('error', fail);
      resolve(new Peer<R, L>(ws, handlers, target, opts.log, opts.timeoutMs));
    });
  });
}
