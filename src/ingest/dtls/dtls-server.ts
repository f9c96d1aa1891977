import { randomBytes } from 'node:crypto';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import { reasonFromHandshakeError, reasonFromVerifyError, type AuthFailureReason } from '../trust/auth-failure.js';
import { clientHelloRandom, inspectDtlsDatagram, protectedRecordsFit, type DatagramRejectReason } from './dtls-datagram.js';
import {
  ListenKind, NativeState, loadDtlsAddon,
  type NativeAddon, type NativeContext, type NativeListener, type NativeResult,
} from './native-binding.js';
import { DEFAULTS } from '../../config/defaults.js';
import { DtlsSession, type DtlsCloseReason, type DtlsSessionHost } from './dtls-session.js';
import { emptyCounters, type DtlsAuthFailure, type DtlsServerStats } from './dtls-stats.js';

export { DtlsSession, type DtlsCloseReason } from './dtls-session.js';
export type { DtlsAuthFailure, DtlsCounter, DtlsServerStats } from './dtls-stats.js';

/**
 * A DTLS 1.2 server over a node:dgram socket, shaped like a future `node:dtls` so it can be
 * swapped for core DTLS: `server.listen()`, 'session' per authenticated association,
 * `session.on('message')` per decrypted record, `session.send()`, 'close'.
 *
 * Split of duties: OpenSSL (the addon) does the handshake, record protection, replay window
 * and chain/CRL verification. This module owns everything stateful around it:
 *   1. every datagram is size-checked and its record headers inspected (dtls-datagram.ts)
 *      before OpenSSL sees it;
 *   2. demultiplexing by remote "address|port";
 *   3. the stateless cookie exchange (RFC 6347 §4.2.1): a ClientHello from a peer with no
 *      handshake in progress goes to the shared listening SSL, which answers a cookie-less
 *      hello with HelloVerifyRequest and keeps nothing; only a valid cookie creates a session;
 *   4. limits (sessions total and per source address, new handshakes per second, handshake
 *      timeout, idle timeout, datagram size), each counted when hit;
 *   5. retransmission timers (DTLSv1_get_timeout / DTLSv1_handle_timeout);
 *   6. the `authorize` hook (identity allowlist) after OpenSSL verified the chain.
 *
 * Re-handshake from the same address:port (an exporter that restarted): its ClientHello
 * passes the same stateless cookie check and then runs in a separate pending slot next to
 * the live association. Only when that handshake completes and is authorized does it replace
 * the live one; if it fails or times out the live association is untouched. A forged
 * ClientHello from a spoofed source therefore only earns a HelloVerifyRequest sent to the
 * real peer (which ignores it) and cannot end or stall the live association. Hellos are told
 * apart by their client random (kept by a client across HelloVerifyRequest and
 * retransmissions): the pending handshake's own random goes to it, the live association's is a
 * late duplicate and dropped, any other takes the stateless path, and a cookie-verified one
 * supersedes a stale pending handshake (an exporter that restarted mid-handshake).
 */

export interface DtlsServerOptions {
  /** Collector certificate chain (PEM, leaf first). */
  readonly cert: string | Buffer;
  /** Collector private key (PEM). Secret: never logged. */
  readonly key: string | Buffer;
  /** Trust anchors for client certificates (PEM bundle). */
  readonly ca: string | Buffer;
  /** CRLs (PEM); any present turns on leaf revocation checking. */
  readonly crl?: readonly (string | Buffer)[];
  readonly ciphers?: string;
  /** Datagram payload size OpenSSL fragments handshake flights to. */
  readonly mtu?: number;
  readonly maxDatagramBytes?: number;
  readonly maxSessions?: number;
  readonly maxSessionsPerSource?: number;
  readonly maxHandshakesPerSecond?: number;
  readonly handshakeTimeoutMs?: number;
  readonly idleTimeoutMs?: number;
  readonly cookieSecretRotateMs?: number;
  /** How often handshake and idle deadlines are checked. */
  readonly sweepIntervalMs?: number;
  /** Identity policy, called once the chain verified; a rejection ends the association. */
  readonly authorize?: (session: DtlsSession) => DtlsAuthorization;
  /** Requested SO_RCVBUF in bytes (Linux caps it at net.core.rmem_max). */
  readonly recvBufferBytes?: number;
  /** IPv6 socket (udp6) instead of IPv4; chosen from the listen address when absent. */
  readonly ipv6?: boolean;
  readonly now?: () => number;
  /** Socket injection (tests); the server binds it in listen() unless already bound. */
  readonly socket?: Socket;
}

export type DtlsAuthorization = { readonly ok: true; readonly identity: string } | { readonly ok: false; readonly reason: AuthFailureReason };

/** Below a typical 1500-byte Ethernet MTU minus IPv6 (40) and UDP (8) headers, with slack. */
export const DEFAULT_MTU = 1_400;
// The limits that are settings (listeners.dtls.*) default to the schema's values (src/config/schema.ts says why).
const DTLS = DEFAULTS.listeners.dtls;
/** Cookie validity is two rotation periods (current + previous secret). */
export const DEFAULT_COOKIE_ROTATE_MS = 30_000;
export const DEFAULT_SWEEP_INTERVAL_MS = 1_000;
/**
 * 4 MiB: a burst of a few thousand handshake or record datagrams while the event loop is
 * busy with handshakes; the kernel default (~200 KiB) drops a 250-datagram burst.
 */
export const DEFAULT_RECV_BUFFER_BYTES = 4 * 1024 * 1024;
const COOKIE_SECRET_BYTES = 32;

function toBuffer(v: string | Buffer): Buffer {
  return typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
}

function peerKeyOf(address: string, port: number): string {
  return `${address}|${port}`;
}

interface Association {
  live: DtlsSession | null;
  pending: DtlsSession | null;
}

export class DtlsServer extends EventEmitter<{
  session: [DtlsSession];
  authFailure: [DtlsAuthFailure];
  listening: [];
  close: [];
  error: [Error];
}> implements DtlsSessionHost {
  private readonly addon: NativeAddon;
  private ctx: NativeContext;
  private readonly listener: NativeListener;
  private readonly socket: Socket;
  private readonly assocs = new Map<string, Association>();
  private readonly perSource = new Map<string, number>();
  private sessionCount = 0;
  private handshakingCount = 0;
  private readonly counters = emptyCounters();
  private readonly malformed: Partial<Record<DatagramRejectReason, number>> = {};
  private readonly authFailures: Partial<Record<AuthFailureReason, number>> = {};
  private readonly now: () => number;
  private readonly opts: Required<Pick<DtlsServerOptions,
    'mtu' | 'maxDatagramBytes' | 'maxSessions' | 'maxSessionsPerSource' | 'maxHandshakesPerSecond' |
    'handshakeTimeoutMs' | 'idleTimeoutMs' | 'cookieSecretRotateMs' | 'sweepIntervalMs' | 'recvBufferBytes'>>;
  private readonly authorize: ((session: DtlsSession) => DtlsAuthorization) | undefined;
  private tokens: number;
  private tokensAtMs: number;
  private sweepTimer: NodeJS.Timeout | null = null;
  private rotateTimer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(options: DtlsServerOptions) {
    super();
    this.addon = loadDtlsAddon();
    this.now = options.now ?? Date.now;
    this.opts = {
      mtu: options.mtu ?? DEFAULT_MTU,
      maxDatagramBytes: options.maxDatagramBytes ?? DTLS.maxDatagramBytes,
      maxSessions: options.maxSessions ?? DTLS.maxSessions,
      maxSessionsPerSource: options.maxSessionsPerSource ?? DTLS.maxSessionsPerSource,
      maxHandshakesPerSecond: options.maxHandshakesPerSecond ?? DTLS.handshakesPerSecond,
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? DTLS.handshakeTimeoutMs,
      idleTimeoutMs: options.idleTimeoutMs ?? DTLS.idleTimeoutMs,
      cookieSecretRotateMs: options.cookieSecretRotateMs ?? DEFAULT_COOKIE_ROTATE_MS,
      sweepIntervalMs: options.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS,
      recvBufferBytes: options.recvBufferBytes ?? DEFAULT_RECV_BUFFER_BYTES,
    };
    this.authorize = options.authorize;
    this.tokens = this.opts.maxHandshakesPerSecond;
    this.tokensAtMs = this.now();
    this.ctx = this.newContext(options);
    this.listener = new this.addon.Listener(this.ctx, this.opts.mtu);
    this.listener.setCookieSecret(randomBytes(COOKIE_SECRET_BYTES));
    this.socket = options.socket ?? createSocket({ type: options.ipv6 === true ? 'udp6' : 'udp4' });
    this.socket.on('message', (msg, rinfo) => {
      this.handleDatagram(msg, rinfo);
    });
    this.socket.on('error', (err) => this.emit('error', err));
  }

  private newContext(o: Pick<DtlsServerOptions, 'cert' | 'key' | 'ca' | 'crl' | 'ciphers'>): NativeContext {
    const crl = o.crl !== undefined && o.crl.length > 0 ? Buffer.concat(o.crl.map((c) => toBuffer(c))) : undefined;
    return new this.addon.Context({
      server: true,
      cert: toBuffer(o.cert),
      key: toBuffer(o.key),
      ca: toBuffer(o.ca),
      ...(crl !== undefined ? { crl } : {}),
      ...(o.ciphers !== undefined ? { ciphers: o.ciphers } : {}),
    });
  }

  /** Binds the socket (unless an injected one is bound) and starts the timers. */
  async listen(port: number, host: string): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => {
        reject(err);
      };
      this.socket.once('error', onError);
      this.socket.bind(port, host, () => {
        this.socket.off('error', onError);
        try {
          this.socket.setRecvBufferSize(this.opts.recvBufferBytes);
        } catch {
          // capped or refused by the kernel: the default buffer still works, just drops sooner
        }
        resolve();
      });
    });
    this.startTimers();
    this.emit('listening');
    return this.socket.address();
  }

  address(): AddressInfo {
    return this.socket.address();
  }

  private startTimers(): void {
    this.sweepTimer = setInterval(() => {
      this.sweep();
    }, this.opts.sweepIntervalMs);
    this.sweepTimer.unref();
    this.rotateTimer = setInterval(() => {
      this.listener.setCookieSecret(randomBytes(COOKIE_SECRET_BYTES));
    }, this.opts.cookieSecretRotateMs);
    this.rotateTimer.unref();
  }

  /**
   * New certificate, key, CAs and CRLs for handshakes that start from now on; established
   * associations keep the context they were made with (SSL objects hold a reference to it).
   * Throws (and keeps the old context) if the material is rejected.
   */
  reload(material: Pick<DtlsServerOptions, 'cert' | 'key' | 'ca' | 'crl' | 'ciphers'>): void {
    const next = this.newContext(material);
    this.listener.setContext(next);
    const prev = this.ctx;
    this.ctx = next;
    prev.destroy();
  }

  stats(): DtlsServerStats {
    return {
      counters: { ...this.counters },
      malformed: { ...this.malformed },
      authFailures: { ...this.authFailures },
      sessionsOpen: this.sessionCount - this.handshakingCount,
      sessionsHandshaking: this.handshakingCount,
    };
  }

  /** Sessions (live and pending) currently held. */
  sessionTotal(): number {
    return this.sessionCount;
  }

  /** Sends close_notify on every association, closes the socket and frees OpenSSL state. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.sweepTimer !== null) clearInterval(this.sweepTimer);
    if (this.rotateTimer !== null) clearInterval(this.rotateTimer);
    for (const a of [...this.assocs.values()]) {
      if (a.pending !== null) this.closeSession(a.pending, 'server_close');
      if (a.live !== null) this.closeSession(a.live, 'server_close');
    }
    this.listener.destroy();
    this.ctx.destroy();
    await new Promise<void>((resolve) => {
      try {
        this.socket.close(() => {
          resolve();
        });
      } catch {
        resolve(); // not bound / already closed
      }
    });
    this.emit('close');
  }

  // --- receive path ---------------------------------------------------------------------------

  /** Exposed for tests that drive the server without a socket. */
  handleDatagram(msg: Buffer, rinfo: Pick<RemoteInfo, 'address' | 'port'>): void {
    if (this.closed) return;
    this.counters.datagrams++;
    if (msg.length > this.opts.maxDatagramBytes) {
      this.counters.datagramsTooLarge++;
      return;
    }
    const inspection = inspectDtlsDatagram(msg);
    if (!inspection.ok) {
      this.counters.datagramsMalformed++;
      this.malformed[inspection.reason] = (this.malformed[inspection.reason] ?? 0) + 1;
      return;
    }
    const key = peerKeyOf(rinfo.address, rinfo.port);
    const assoc = this.assocs.get(key);
    if (inspection.clientHello) {
      // A retransmitted hello of the handshake in progress (same client random) goes to it;
      // any other hello — a restarted exporter, or a forgery — takes the stateless path, where
      // only a valid cookie (proof the sender receives at this address:port) gets further.
      // A later fragment of a fragmented hello carries no random; it belongs to the pending
      // handshake if there is one (RFC 6347 §4.2.3).
      const random = clientHelloRandom(msg);
      if (assoc?.pending != null && (random === null || random === assoc.pending.helloRandom)) {
        this.feed(assoc.pending, msg);
      } else if (assoc?.live != null && random !== null && random === assoc.live.helloRandom) {
        // A late duplicate of the hello that built the live association: nothing to do.
        this.counters.hellosDropped++;
      } else {
        this.statelessHello(msg, key, rinfo.address, rinfo.port, assoc, random);
      }
      return;
    }
    if (assoc === undefined) {
      this.counters.datagramsUnknownPeer++;
      return;
    }
    // Handshake traffic belongs to the pending handshake when there is one; application data
    // to the live association. OpenSSL silently discards a record that fails authentication,
    // so a misrouted record costs nothing but the lookup.
    const target = assoc.pending !== null && !inspection.hasApplicationData ? assoc.pending : (assoc.live ?? assoc.pending);
    if (target === null) return;
    if (target.state === 'open' && inspection.maxEpoch > 0 && !protectedRecordsFit(msg, target.recordOverhead)) {
      this.counters.datagramsMalformed++;
      this.malformed.short_protected_record = (this.malformed.short_protected_record ?? 0) + 1;
      return;
    }
    this.feed(target, msg);
  }

  private statelessHello(msg: Buffer, key: string, address: string, port: number, assoc: Association | undefined, random: string | null): void {
    const r = this.listener.handle(msg, key);
    if (r.kind !== ListenKind.Accepted || r.session === undefined) {
      this.sendRaw(r.out, address, port);
      if (r.kind === ListenKind.VerifyRequest) this.counters.helloVerifyRequests++;
      else this.counters.hellosDropped++;
      return;
    }
    const native = r.session;
    this.counters.cookiesAccepted++;
    const limit = this.admit(address, assoc?.live != null || assoc?.pending != null);
    if (limit !== null) {
      native.destroy();
      this.counters[limit]++;
      return;
    }
    // A cookie-verified hello with a new client random while a handshake is pending for this
    // address:port: the exporter restarted mid-handshake. The stale attempt gives way.
    if (assoc?.pending != null) {
      this.counters.handshakesSuperseded++;
      this.closeSession(assoc.pending, 'replaced', false);
    }
    const session = new DtlsSession(this, native, address, port, this.now());
    session.helloRandom = random;
    this.sessionCount++;
    this.handshakingCount++;
    this.perSource.set(address, (this.perSource.get(address) ?? 0) + 1);
    const current = this.assocs.get(key);
    if (current === undefined) this.assocs.set(key, { live: null, pending: session });
    else current.pending = session;
    this.process(session, native.advance());
  }

  /**
   * Checks the limits that guard creating per-client state; returns the counter to bump or
   * null. A handshake that would replace the live or pending association of the same
   * address:port (an exporter restart) is exempt from the session-count limits: it takes that
   * association's place, at most one pending slot exists per peer, and otherwise a restarted
   * exporter at its per-source limit would be locked out until the stale one timed out.
   */
  private admit(address: string, replacing: boolean): 'limitHandshakeRate' | 'limitSessions' | 'limitSessionsPerSource' | null {
    if (!replacing && this.sessionCount >= this.opts.maxSessions) return 'limitSessions';
    if (!replacing && (this.perSource.get(address) ?? 0) >= this.opts.maxSessionsPerSource) return 'limitSessionsPerSource';
    // Token bucket: maxHandshakesPerSecond tokens, refilled continuously.
    const t = this.now();
    const rate = this.opts.maxHandshakesPerSecond;
    this.tokens = Math.min(rate, this.tokens + ((t - this.tokensAtMs) * rate) / 1000);
    this.tokensAtMs = t;
    if (this.tokens < 1) return 'limitHandshakeRate';
    this.tokens -= 1;
    return null;
  }

  private feed(session: DtlsSession, msg: Buffer): void {
    if (session.native === null) return;
    this.process(session, session.native.feed(msg));
  }

  /** Applies one addon result: send, authorize on completion, deliver records, end on close/failure. */
  private process(session: DtlsSession, r: NativeResult): void {
    this.sendOut(session, r.out);
    // Only authenticated progress counts as activity: a spoofer feeding garbage that OpenSSL
    // discards must not keep a dead association alive past its idle timeout.
    if (r.opened || r.data.length > 0) session.lastActivityMs = this.now();
    if (r.opened) {
      this.onHandshakeDone(session);
      if (session.state !== 'open') return;
    }
    if (session.state === 'open') {
      for (const record of r.data) {
        this.counters.records++;
        session.emit('message', record);
        if (!session.isOpen()) return; // a 'message' listener closed it
      }
    }
    if (r.state === NativeState.Closed) {
      this.closeSession(session, 'close_notify', false);
    } else if (r.state === NativeState.Failed) {
      if (session.state === 'handshake') this.failHandshake(session, this.failureReason(r), r.errorText ?? '');
      else {
        this.counters.sessionErrors++;
        this.closeSession(session, 'error', false);
      }
    } else if (session.state === 'handshake') {
      this.armRetransmit(session);
    }
  }

  private failureReason(r: NativeResult): AuthFailureReason {
    const reasons = this.addon.reasons;
    if (r.errorReason === reasons.peerDidNotReturnCertificate) return 'no_certificate';
    if (r.verifyResult !== this.addon.verifyErrors.ok) return reasonFromVerifyError(r.verifyResult);
    if (r.errorReason === reasons.readTimeoutExpired) return 'handshake_timeout';
    if (r.errorReason === reasons.unsupportedProtocol || r.errorReason === reasons.versionTooLow) return 'protocol_version';
    return reasonFromHandshakeError({ message: r.errorText ?? '' });
  }

  private onHandshakeDone(session: DtlsSession): void {
    this.handshakingCount--;
    this.clearRetransmit(session);
    session.recordOverhead = Math.max(session.native?.recordOverhead() ?? 0, 0);
    const verdict: DtlsAuthorization = this.authorize === undefined ? { ok: true, identity: '' } : this.authorize(session);
    if (!verdict.ok) {
      this.counters.authRejected++;
      this.countAuthFailure(verdict.reason);
      this.emit('authFailure', { remoteAddress: session.remoteAddress, remotePort: session.remotePort, reason: verdict.reason, detail: 'identity policy' });
      session.state = 'open'; // so closeSession sends close_notify and accounts it as open
      this.closeSession(session, 'error');
      return;
    }
    session.identity = verdict.identity;
    session.state = 'open';
    this.counters.handshakesCompleted++;
    const key = peerKeyOf(session.remoteAddress, session.remotePort);
    const assoc = this.assocs.get(key);
    if (assoc !== undefined) {
      const old = assoc.live;
      assoc.pending = null;
      assoc.live = session;
      if (old !== null && old !== session) {
        this.counters.sessionsReplaced++;
        this.closeSession(old, 'replaced');
      }
    }
    session.announced = true;
    this.emit('session', session);
  }

  private failHandshake(session: DtlsSession, reason: AuthFailureReason, detail: string): void {
    this.counters.handshakesFailed++;
    if (reason === 'handshake_timeout') this.counters.handshakeTimeouts++;
    this.countAuthFailure(reason);
    this.emit('authFailure', { remoteAddress: session.remoteAddress, remotePort: session.remotePort, reason, detail });
    this.closeSession(session, 'error', false);
  }

  private countAuthFailure(reason: AuthFailureReason): void {
    this.authFailures[reason] = (this.authFailures[reason] ?? 0) + 1;
  }

  // --- timers ---------------------------------------------------------------------------------

  private armRetransmit(session: DtlsSession): void {
    this.clearRetransmit(session);
    const native = session.native;
    if (native === null) return;
    const ms = native.timeoutMs();
    if (ms < 0) return;
    session.retransmitTimer = setTimeout(() => {
      session.retransmitTimer = null;
      if (session.native === null || session.state !== 'handshake') return;
      this.process(session, session.native.handleTimeout());
    }, Math.max(1, Math.ceil(ms)));
    session.retransmitTimer.unref();
  }

  private clearRetransmit(session: DtlsSession): void {
    if (session.retransmitTimer !== null) {
      clearTimeout(session.retransmitTimer);
      session.retransmitTimer = null;
    }
  }

  /** Handshake and idle deadlines. Exposed for tests with an injected clock. */
  sweep(): void {
    const t = this.now();
    for (const a of [...this.assocs.values()]) {
      for (const s of [a.pending, a.live]) {
        if (s === null) continue;
        if (s.state === 'handshake' && t - s.createdAtMs >= this.opts.handshakeTimeoutMs) {
          this.failHandshake(s, 'handshake_timeout', 'handshake timeout');
        } else if (s.state === 'open' && t - s.lastActivityMs >= this.opts.idleTimeoutMs) {
          this.counters.idleTimeouts++;
          this.closeSession(s, 'idle_timeout');
        }
      }
    }
  }

  // --- send / close ---------------------------------------------------------------------------

  /** @internal */
  sendOut(session: DtlsSession, out: readonly Buffer[]): void {
    this.sendRaw(out, session.remoteAddress, session.remotePort);
  }

  private sendRaw(out: readonly Buffer[], address: string, port: number): void {
    for (const d of out) {
      try {
        this.socket.send(d, port, address);
      } catch {
        // socket closed under us during shutdown: nothing left to tell the peer
      }
    }
  }

  /**
   * Ends an association: close_notify (when `notify` and it was open), native state freed,
   * slot released, 'close' emitted if the session had been announced. Idempotent.
   * @internal
   */
  closeSession(session: DtlsSession, reason: DtlsCloseReason, notify = true): void {
    if (session.state === 'closed') return;
    const wasHandshaking = session.state === 'handshake';
    this.clearRetransmit(session);
    const native = session.native;
    if (native !== null) {
      if (notify && !wasHandshaking) this.sendOut(session, native.shutdown());
      native.destroy();
      session.native = null;
    }
    session.state = 'closed';
    if (wasHandshaking) this.handshakingCount--;
    this.sessionCount--;
    const n = (this.perSource.get(session.remoteAddress) ?? 1) - 1;
    if (n <= 0) this.perSource.delete(session.remoteAddress);
    else this.perSource.set(session.remoteAddress, n);
    const key = peerKeyOf(session.remoteAddress, session.remotePort);
    const assoc = this.assocs.get(key);
    if (assoc !== undefined) {
      if (assoc.live === session) assoc.live = null;
      if (assoc.pending === session) assoc.pending = null;
      if (assoc.live === null && assoc.pending === null) this.assocs.delete(key);
    }
    if (session.announced) {
      this.counters.sessionsClosed++;
      session.emit('close', reason);
    }
  }
}

/** `node:dtls`-style factory: `createDtlsServer(opts, (session) => …).listen(4740, '::')`. */
export function createDtlsServer(options: DtlsServerOptions, onSession?: (session: DtlsSession) => void): DtlsServer {
  const server = new DtlsServer(options);
  if (onSession !== undefined) server.on('session', onSession);
  return server;
}
