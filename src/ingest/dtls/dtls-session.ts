import { X509Certificate } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { NativeSession } from './native-binding.js';

/** Why an association ended (the 'close' event's argument). */
export type DtlsCloseReason =
  | 'close_notify' | 'idle_timeout' | 'replaced' | 'server_close' | 'destroyed' | 'error';

/** What a session asks of its server (DtlsServer): record protection output sent to the peer, and the end of the association. */
export interface DtlsSessionHost {
  sendOut(session: DtlsSession, out: readonly Buffer[]): void;
  closeSession(session: DtlsSession, reason: DtlsCloseReason, notify?: boolean): void;
}

let sessionSerial = 0;

/** One DTLS association. Emits 'message' per decrypted record and 'close' once. */
export class DtlsSession extends EventEmitter<{ message: [Buffer]; close: [DtlsCloseReason] }> {
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** Unique per association for the process lifetime. */
  readonly id: number;
  /** Authorized identity (set before 'session' is emitted). */
  identity: string | null = null;
  /** @internal */ state: 'handshake' | 'open' | 'closed' = 'handshake';
  /** @internal */ announced = false;
  /** @internal */ readonly createdAtMs: number;
  /** @internal */ lastActivityMs: number;
  /** @internal */ retransmitTimer: NodeJS.Timeout | null = null;
  /** @internal Client random of the hello that created this association (hex). */
  helloRandom: string | null = null;
  /** @internal Protected-record overhead of the negotiated cipher (set when the handshake completes). */
  recordOverhead = 0;
  /** @internal */ native: NativeSession | null;
  private readonly server: DtlsSessionHost;

  /** @internal */
  constructor(server: DtlsSessionHost, native: NativeSession, address: string, port: number, nowMs: number) {
    super();
    this.server = server;
    this.native = native;
    this.remoteAddress = address;
    this.remotePort = port;
    this.id = ++sessionSerial;
    this.createdAtMs = nowMs;
    this.lastActivityMs = nowMs;
  }

  isOpen(): boolean {
    return this.state === 'open';
  }

  /** The client certificate (DER) OpenSSL verified, or null. */
  getPeerCertificateDer(): Buffer | null {
    return this.native?.peerCertificate() ?? null;
  }

  getPeerX509Certificate(): X509Certificate | null {
    const der = this.getPeerCertificateDer();
    return der === null ? null : new X509Certificate(der);
  }

  get protocol(): string | null {
    return this.native?.info().protocol ?? null;
  }

  get cipher(): string | null {
    return this.native?.info().cipher ?? null;
  }

  /** Sends one application record (one datagram). Throws unless the association is open. */
  send(record: Buffer): void {
    if (this.state !== 'open' || this.native === null) throw new Error('DTLS session is not open');
    this.server.sendOut(this, this.native.write(record));
  }

  /** Graceful: close_notify to the peer, then gone. Idempotent. */
  close(): void {
    this.server.closeSession(this, 'server_close');
  }

  /** Forced: no close_notify. Idempotent. */
  destroy(): void {
    this.server.closeSession(this, 'destroyed', false);
  }
}
