/**
 * A DTLS 1.2 client for tests and benchmarks, built on the sealflow addon in client role over
 * a real node:dgram socket. It plays an IPFIX exporter: one send() = one DTLS record = one
 * datagram. Not product code: the product is only ever the DTLS server.
 */
import { createSocket, type Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { loadDtlsAddon, NativeState, type NativeContext, type NativeResult, type NativeSession } from '../../src/ingest/dtls/native-binding.js';

export interface DtlsClientOptions {
  readonly host: string;
  readonly port: number;
  /** PEM files; omit cert/key to connect without a client certificate. */
  readonly certFile?: string;
  readonly keyFile?: string;
  /** Trust anchor for the server certificate; omit to skip server verification. */
  readonly caFile?: string;
  /** Give up the handshake after this long (default 10 s). */
  readonly timeoutMs?: number;
  /** Local port to bind (default: any). Reusing a port simulates an exporter restart. */
  readonly localPort?: number;
  /** Route datagrams through this port instead of `port` (a lossy relay), replies still accepted. */
  readonly viaPort?: number;
  readonly mtu?: number;
  /** OpenSSL cipher list offered (default: the addon's); a long list makes a big ClientHello. */
  readonly ciphers?: string;
}

export class DtlsHandshakeError extends Error {
  constructor(message: string, readonly alertReceived: number, readonly errorText: string) {
    super(message);
    this.name = 'DtlsHandshakeError';
  }
}

export class DtlsTestClient {
  readonly socket: Socket;
  readonly received: Buffer[] = [];
  private readonly ctx: NativeContext;
  private readonly session: NativeSession;
  private readonly target: number;
  private readonly host: string;
  private timer: NodeJS.Timeout | null = null;
  private state: 'handshake' | 'open' | 'closed' = 'handshake';
  /** Server close_notify received. */
  peerClosed = false;

  private constructor(ctx: NativeContext, session: NativeSession, socket: Socket, host: string, target: number) {
    this.ctx = ctx;
    this.session = session;
    this.socket = socket;
    this.host = host;
    this.target = target;
  }

  /** Completes a handshake or rejects with DtlsHandshakeError (alert received, OpenSSL text). */
  static async connect(o: DtlsClientOptions): Promise<DtlsTestClient> {
    const addon = loadDtlsAddon();
    const ctx = new addon.Context({
      server: false,
      ...(o.certFile !== undefined ? { cert: readFileSync(o.certFile) } : {}),
      ...(o.keyFile !== undefined ? { key: readFileSync(o.keyFile) } : {}),
      ...(o.caFile !== undefined ? { ca: readFileSync(o.caFile) } : {}),
      ...(o.ciphers !== undefined ? { ciphers: o.ciphers } : {}),
    });
    const session = new addon.Session(ctx, `${o.host}|${o.port}`, o.mtu ?? 1400);
    const socket = createSocket({ type: o.host.includes(':') ? 'udp6' : 'udp4', reuseAddr: o.localPort !== undefined });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(o.localPort ?? 0, o.host.includes(':') ? '::1' : '127.0.0.1', () => {
        socket.off('error', reject);
        resolve();
      });
    });
    const client = new DtlsTestClient(ctx, session, socket, o.host, o.viaPort ?? o.port);
    try {
      await client.handshake(o.timeoutMs ?? 10_000);
    } catch (err) {
      client.destroy();
      throw err;
    }
    return client;
  }

  get localPort(): number {
    return this.socket.address().port;
  }

  private handshake(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const deadline = setTimeout(() => {
        reject(new DtlsHandshakeError('DTLS handshake timed out', -1, 'timeout'));
      }, timeoutMs);
      const settle = (r: NativeResult): void => {
        if (r.opened) {
          clearTimeout(deadline);
          resolve();
        } else if (r.state === NativeState.Failed || r.state === NativeState.Closed) {
          clearTimeout(deadline);
          reject(new DtlsHandshakeError(`DTLS handshake failed: ${r.errorText ?? 'closed'}`, r.alertReceived, r.errorText ?? ''));
        }
      };
      this.socket.on('message', (msg) => {
        if (this.state === 'closed') return;
        const r = this.session.feed(msg);
        this.apply(r);
        settle(r);
      });
      const r = this.session.advance();
      this.apply(r);
      settle(r);
    });
  }

  private apply(r: NativeResult): void {
    for (const d of r.out) this.socket.send(d, this.target, this.host);
    if (r.opened) this.state = 'open';
    for (const d of r.data) this.received.push(d);
    if (r.state === NativeState.Closed) {
      this.peerClosed = true;
      this.state = 'closed';
    }
    if (r.state === NativeState.Failed) this.state = 'closed';
    this.arm();
  }

  private arm(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.state !== 'handshake') return;
    const ms = this.session.timeoutMs();
    if (ms < 0) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.state === 'handshake') this.apply(this.session.handleTimeout());
    }, Math.max(1, Math.ceil(ms)));
  }

  /** One application record (one IPFIX message) in one datagram. */
  send(record: Buffer): void {
    for (const d of this.session.write(record)) this.socket.send(d, this.target, this.host);
  }

  /** Like send() but resolves once the datagram left the socket (for flow control in loops). */
  sendAsync(record: Buffer): Promise<void> {
    const out = this.session.write(record);
    return new Promise((resolve, reject) => {
      let left = out.length;
      if (left === 0) resolve();
      for (const d of out) {
        this.socket.send(d, this.target, this.host, (err) => {
          if (err !== null) reject(err);
          else if (--left === 0) resolve();
        });
      }
    });
  }

  /** Sends close_notify and closes the socket. */
  async close(): Promise<void> {
    if (this.state === 'open') {
      const out = this.session.shutdown();
      await Promise.all(out.map((d) => new Promise<void>((resolve) => this.socket.send(d, this.target, this.host, () => resolve()))));
    }
    this.destroy();
  }

  /** Closes without close_notify (an exporter that crashed). Idempotent. */
  destroy(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.state = 'closed';
    this.session.destroy();
    this.ctx.destroy();
    try {
      this.socket.close();
    } catch {
      // already closed
    }
  }
}

/** The first flight of a fresh client (a cookie-less ClientHello), for floods and fuzzing. */
export function clientHelloDatagram(): Buffer {
  const addon = loadDtlsAddon();
  const ctx = new addon.Context({ server: false });
  const s = new addon.Session(ctx, 'x|0', 1400);
  const r = s.advance();
  s.destroy();
  ctx.destroy();
  const first = r.out[0];
  if (first === undefined) throw new Error('client produced no ClientHello');
  return first;
}
