import { constants } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import net from 'node:net';
import { basename, dirname } from 'node:path';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { ConfigError, ConfigErrorCode, IngestError, IngestErrorCode } from '../../flow/errors.js';
import type { PacketSink } from '../../flow/pipeline.js';
import { normaliseAddress } from '../../flow/ip.js';
import { RateLimitedLog } from '../../observability/rate-limited-log.js';
import { emptyAuthFailureCounts, reasonFromHandshakeError, reasonFromVerifyError, type AuthFailureReason } from '../trust/auth-failure.js';
import { presentedIdentities } from '../trust/exporter-policy.js';
import { ExporterTrust, type ExporterTrustSettings } from '../trust/exporter-trust.js';
import { IpfixFramer, IPFIX_MAX_MESSAGE_LENGTH, type FramingErrorReason } from './ipfix-framer.js';
import { DEFAULTS } from '../../config/defaults.js';
import { bindErrorMessage, endpointText } from '../../flow/bind-error.js';

/**
 * IPFIX over TLS (RFC 7011 §10.4, §11): the exporter is the TLS client, sealflow the server,
 * and mutual authentication is not optional. A collector MUST NOT accept messages from an
 * exporter it has not verified (§11.3), so:
 *
 *  - every connection must present a certificate that OpenSSL chain-verifies against the
 *    configured CA bundle and CRLs, and whose identity passes the ExporterPolicy (allowlisted
 *    DNS-ID, bound source prefix);
 *  - node's `rejectUnauthorized` is off at the TLS layer only so that the rejection reason can
 *    be counted; the decision is made in the 'secureConnection' handler, which destroys an
 *    unauthorised socket before any 'data' listener exists. Nothing read from such a socket
 *    is ever framed or reaches the sink, and there is no option that changes this;
 *  - each accepted connection is its own Transport Session (template scope, RFC 7011 §10.4.1),
 *    ended at the sink when the connection closes.
 *
 * Admission control (connection limits, handshake rate) runs on the plain TCP socket before
 * any TLS work, so a flood costs an accept() and a close(), not a handshake.
 */

export interface TlsListenerLimits {
  /** Open connections (handshaking or established) across all sources. */
  readonly maxConnections: number;
  /** Open connections from one source address. */
  readonly maxConnectionsPerSource: number;
  /** New connections admitted per second (token bucket, burst = the same number). */
  readonly handshakesPerSecond: number;
  /** Absolute time from TCP accept to a verified handshake (not an inactivity timer: a byte-trickling slow-loris is cut too). */
  readonly handshakeTimeoutMs: number;
  /** An established session with no bytes received for this long is closed. */
  readonly idleTimeoutMs: number;
  /** Largest IPFIX message accepted (16..65535); a longer length field closes the connection. */
  readonly maxMessageBytes: number;
}

/** The listeners.tls settings' defaults (src/config/schema.ts says why). */
export const DEFAULT_TLS_LIMITS: TlsListenerLimits = Object.freeze({
  maxConnections: DEFAULTS.listeners.tls.maxConnections,
  maxConnectionsPerSource: DEFAULTS.listeners.tls.maxConnectionsPerSource,
  handshakesPerSecond: DEFAULTS.listeners.tls.handshakesPerSecond,
  handshakeTimeoutMs: DEFAULTS.listeners.tls.handshakeTimeoutMs,
  idleTimeoutMs: DEFAULTS.listeners.tls.idleTimeoutMs,
  maxMessageBytes: DEFAULTS.listeners.tls.maxMessageBytes,
});

export interface TlsListenerOptions {
  /** Address to bind ('::' for dual stack, '0.0.0.0', '127.0.0.1'). */
  readonly host: string;
  /** TCP port; RFC 7011 §10.4 assigns 4740 to IPFIX over TLS. 0 picks a free port (tests). */
  readonly port: number;
  readonly trust: ExporterTrustSettings;
  /** Configuration path of this listener, used in error messages. Default 'listeners.tls'. */
  readonly settingPrefix?: string;
  readonly limits?: Partial<TlsListenerLimits>;
  /** Reload when a certificate, key or CRL file changes on disk. Default true. */
  readonly watchFiles?: boolean;
}

export interface TlsListenerDeps {
  readonly sink: PacketSink;
  readonly logger: Logger;
  /** Wall clock (Unix ms) for receivedAtMs, validity checks and the handshake rate. */
  readonly now?: () => number;
}

export type TlsLimit = 'max_connections' | 'max_connections_per_source' | 'handshake_rate' | 'handshake_timeout' | 'idle_timeout' | 'max_message_bytes';
const TLS_LIMITS: readonly TlsLimit[] = ['max_connections', 'max_connections_per_source', 'handshake_rate', 'handshake_timeout', 'idle_timeout', 'max_message_bytes'];

export interface TlsListenerStats {
  /** TCP connections currently open (handshaking or established). */
  readonly connectionsOpen: number;
  /** Authenticated sessions currently open. */
  readonly sessionsOpen: number;
  /** TCP connections admitted past the limits. */
  readonly connectionsAccepted: number;
  /** Sessions that passed authentication. */
  readonly sessionsAuthenticated: number;
  readonly authFailures: Readonly<Record<AuthFailureReason, number>>;
  readonly limitHits: Readonly<Record<TlsLimit, number>>;
  readonly framingErrors: Readonly<Record<FramingErrorReason, number>>;
  readonly messages: number;
  /** Decrypted bytes received on authenticated sessions. */
  readonly bytes: number;
  /** Times a session was paused because the sink was above its high-water mark. */
  readonly backpressurePauses: number;
  readonly reloads: number;
  readonly reloadFailures: number;
}

/**
 * TLS 1.2 suites: ECDHE key exchange with AEAD only (no NULL, export, anonymous, static RSA,
 * CBC or SHA-1 MAC suites can ever be negotiated). TLS 1.3 suites are all AEAD.
 */
const TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
];
const TLS13_CIPHERSUITES = ['TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256', 'TLS_AES_128_GCM_SHA256'];
export const TLS_CIPHERS = [...TLS13_CIPHERSUITES, ...TLS12_CIPHERS].join(':');
/** RFC 7011 §11.1 asks for TLS 1.1 or later; we require 1.2 (RFC 8996 deprecates 1.0/1.1). */
export const TLS_MIN_VERSION = 'TLSv1.2';
/** node's own (inactivity-based) handshake timer, a backstop behind our absolute deadline. */
const NODE_HANDSHAKE_BACKSTOP_MS = 1_000;
/** Coalesces bursts of file change events (an editor or cert manager writes several files). */
const RELOAD_DEBOUNCE_MS = 250;
const MS_PER_SECOND = 1_000;
/** At most this many presented names are logged for a rejected certificate. */
const MAX_LOGGED_NAMES = 4;

interface Connection {
  readonly raw: net.Socket;
  readonly source: string;
  readonly port: number;
  /** Set once the connection was accepted or rejected, so it is counted exactly once. */
  decided: boolean;
  deadline: NodeJS.Timeout | null;
  session: Session | null;
}

interface Session {
  readonly socket: tls.TLSSocket;
  readonly sessionKey: string;
  readonly identity: string;
  readonly framer: IpfixFramer;
  readonly openedAtMs: number;
  messages: number;
  paused: boolean;
  closed: boolean;
}

/** The wrapped TCP socket of a server TLSSocket. node keeps it as `_parent` (lib/_tls_wrap.js); there is no public accessor. */
function rawSocketOf(socket: tls.TLSSocket): net.Socket | undefined {
  const parent = (socket as unknown as { _parent?: unknown })._parent;
  return parent instanceof net.Socket ? parent : undefined;
}

/** Read through a call so the compiler does not narrow it across callbacks that may close the session. */
function isOpen(session: Session): boolean {
  return !session.closed;
}

function checkLimits(limits: TlsListenerLimits, prefix: string): void {
  for (const [k, v] of Object.entries(limits)) {
    if (!Number.isInteger(v) || v <= 0) {
      throw new ConfigError(ConfigErrorCode.Invalid, `${prefix}.limits.${k}`, `${prefix}.limits.${k}: ${String(v)} is not a positive integer`);
    }
  }
  if (limits.maxMessageBytes < 16 || limits.maxMessageBytes > IPFIX_MAX_MESSAGE_LENGTH) {
    throw new ConfigError(ConfigErrorCode.Invalid, `${prefix}.limits.maxMessageBytes`, `${prefix}.limits.maxMessageBytes: must be between 16 and 65535 (the IPFIX Length field)`);
  }
}

export class TlsListener {
  private readonly options: TlsListenerOptions;
  private readonly settingPrefix: string;
  private readonly limits: TlsListenerLimits;
  private readonly sink: PacketSink;
  private readonly logger: Logger;
  private readonly authLog: RateLimitedLog;
  private readonly limitLog: RateLimitedLog;
  private readonly now: () => number;
  private trustSettings: ExporterTrustSettings;
  private trust: ExporterTrust;
  private readonly tcpServer: net.Server;
  private readonly tlsServer: tls.Server;
  private readonly connections = new Set<Connection>();
  private readonly byRaw = new WeakMap<net.Socket, Connection>();
  private readonly perSource = new Map<string, number>();
  private readonly paused = new Set<Session>();
  private watchers: FSWatcher[] = [];
  private reloadTimer: NodeJS.Timeout | null = null;
  private sessionCounter = 0;
  private tokens: number;
  private tokensAtMs: number;
  private started = false;
  private closing: Promise<void> | null = null;
  private counters = {
    connectionsAccepted: 0,
    sessionsAuthenticated: 0,
    messages: 0,
    bytes: 0,
    backpressurePauses: 0,
    reloads: 0,
    reloadFailures: 0,
  };
  private readonly authFailures = emptyAuthFailureCounts();
  private readonly limitHits = Object.fromEntries(TLS_LIMITS.map((l) => [l, 0])) as Record<TlsLimit, number>;
  private readonly framingErrors: Record<FramingErrorReason, number> = { bad_version: 0, too_short: 0, too_long: 0 };

  /** Loads and checks the trust material; throws ConfigError naming the bad setting. */
  constructor(options: TlsListenerOptions, deps: TlsListenerDeps) {
    this.options = options;
    this.settingPrefix = options.settingPrefix ?? 'listeners.tls';
    this.limits = { ...DEFAULT_TLS_LIMITS, ...options.limits };
    checkLimits(this.limits, this.settingPrefix);
    this.sink = deps.sink;
    this.logger = deps.logger.child({ component: 'tls-listener' });
    this.authLog = new RateLimitedLog(this.logger, { windowMs: 60_000, burst: 5, maxKeys: 10_000 });
    this.limitLog = new RateLimitedLog(this.logger, { windowMs: 60_000, burst: 5, maxKeys: 10_000 });
    this.now = deps.now ?? Date.now;
    this.trustSettings = options.trust;
    this.trust = ExporterTrust.load(options.trust, this.settingPrefix, this.now());
    this.tokens = this.limits.handshakesPerSecond;
    this.tokensAtMs = this.now();

    this.tlsServer = tls.createServer({
      ...this.secureContextOptions(this.trust),
      requestCert: true,
      // Enforced in onSecureConnection (see the module comment); never accepts an unverified peer.
      rejectUnauthorized: false,
      handshakeTimeout: this.limits.handshakeTimeoutMs + NODE_HANDSHAKE_BACKSTOP_MS,
    });
    this.tlsServer.on('secureConnection', (s: tls.TLSSocket) => this.onSecureConnection(s));
    this.tlsServer.on('tlsClientError', (err: Error, s: tls.TLSSocket) => this.onTlsClientError(err, s));
    this.tcpServer = net.createServer({ noDelay: true }, (raw) => this.onTcpConnection(raw));
    this.sink.onDrain(() => this.resumeAll());
  }

  /** Binds the port. Rejects with IngestError (ERR_INGEST_BIND) naming the address. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        reject(
          new IngestError(IngestErrorCode.Bind, `${this.settingPrefix}: ${bindErrorMessage(err, endpointText('TCP', this.options.host, this.options.port), this.settingPrefix)}`, {
            host: this.options.host,
            port: this.options.port,
          }, { cause: err }),
        );
      };
      this.tcpServer.once('error', onError);
      this.tcpServer.listen({ host: this.options.host, port: this.options.port }, () => {
        this.tcpServer.off('error', onError);
        resolve();
      });
    });
    this.tcpServer.on('error', (err) => this.logger.error({ event: 'tls.server_error', err: err.message }, 'TLS listener socket error'));
    if (this.options.watchFiles ?? true) this.watchFiles();
    const a = this.address();
    this.logger.info({ event: 'tls.listening', host: a.address, port: a.port, exporters: this.trust.policy.names().length }, 'IPFIX over TLS listener started');
  }

  /** The bound address (after start()). */
  address(): net.AddressInfo {
    const a = this.tcpServer.address();
    if (a === null || typeof a === 'string') throw new Error('TLS listener is not listening');
    return a;
  }

  /**
   * Re-reads certificate, key, CA and CRL files (and takes `settings` as the new trust
   * configuration when given, e.g. an edited allowlist). New handshakes use the new material;
   * established sessions continue. On a bad file, throws ConfigError and keeps the old state.
   */
  reload(settings?: ExporterTrustSettings): void {
    const next = settings ?? this.trustSettings;
    let trust: ExporterTrust;
    try {
      trust = ExporterTrust.load(next, this.settingPrefix, this.now());
      this.tlsServer.setSecureContext(this.secureContextOptions(trust));
    } catch (err) {
      this.counters.reloadFailures++;
      this.logger.error({ event: 'tls.reload_failed', err: err instanceof Error ? err.message : String(err) }, 'TLS trust reload failed; keeping the previous certificates');
      throw err;
    }
    this.trust = trust;
    this.trustSettings = next;
    this.counters.reloads++;
    if (this.watchers.length > 0) this.watchFiles();
    this.logger.info({ event: 'tls.reloaded', exporters: trust.policy.names().length, crlFiles: trust.material.crlPems.length }, 'TLS trust material reloaded');
  }

  stats(): TlsListenerStats {
    let sessionsOpen = 0;
    for (const c of this.connections) if (c.session !== null && !c.session.closed) sessionsOpen++;
    return {
      connectionsOpen: this.connections.size,
      sessionsOpen,
      ...this.counters,
      authFailures: { ...this.authFailures },
      limitHits: { ...this.limitHits },
      framingErrors: { ...this.framingErrors },
    };
  }

  /** Stops accepting, closes every connection (ending its transport session). Idempotent. */
  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    this.closing = (async () => {
      for (const w of this.watchers) w.close();
      this.watchers = [];
      if (this.reloadTimer !== null) clearTimeout(this.reloadTimer);
      const closed = this.started ? new Promise<void>((resolve) => this.tcpServer.close(() => resolve())) : Promise.resolve();
      for (const c of [...this.connections]) {
        if (c.session !== null) c.session.socket.destroy();
        c.raw.destroy();
      }
      await closed;
      this.authLog.flush();
      this.limitLog.flush();
    })();
    return this.closing;
  }

  private secureContextOptions(trust: ExporterTrust): tls.SecureContextOptions {
    const m = trust.material;
    return {
      key: m.keyPem,
      cert: m.certPem,
      ca: m.caPem,
      ...(m.crlPems.length > 0 ? { crl: [...m.crlPems] } : {}),
      minVersion: TLS_MIN_VERSION,
      ciphers: TLS_CIPHERS,
      honorCipherOrder: true,
      // No session resumption: a resumed session skips certificate verification, so an
      // exporter revoked after its first handshake could resume past the new CRL. IPFIX
      // connections are long-lived; a full handshake per connection costs nothing that matters.
      // (Without tickets, TLS 1.3 would need the server session cache, which node leaves off.)
      // No renegotiation (TLS 1.2; 1.3 has none): IPFIX needs none, node would otherwise allow
      // a client 3 per 10 minutes, each a full handshake of server CPU, and a renegotiated
      // session could present another certificate after the identity was checked. OpenSSL
      // answers a renegotiating ClientHello with a no_renegotiation alert and ignores it
      // (RFC 5246 §7.2.2); OpenSSL clients then abort the connection. The DTLS addon sets the same.
      secureOptions: constants.SSL_OP_NO_TICKET | constants.SSL_OP_NO_RENEGOTIATION,
    };
  }

  private onTcpConnection(raw: net.Socket): void {
    raw.on('error', () => {
      // Resets and aborts are normal churn; the outcome is counted by the TLS handlers.
    });
    const source = normaliseAddress(raw.remoteAddress ?? '');
    const port = raw.remotePort ?? 0;
    if (this.closing !== null) {
      raw.destroy();
      return;
    }
    const limit = this.admissionLimit(source);
    if (limit !== null) {
      this.limitHit(limit, source, port);
      raw.destroy();
      return;
    }
    const conn: Connection = { raw, source, port, decided: false, deadline: null, session: null };
    this.connections.add(conn);
    this.byRaw.set(raw, conn);
    this.perSource.set(source, (this.perSource.get(source) ?? 0) + 1);
    this.counters.connectionsAccepted++;
    raw.once('close', () => this.onTcpClose(conn));
    conn.deadline = setTimeout(() => {
      conn.deadline = null;
      if (conn.decided) return;
      this.limitHit('handshake_timeout', source, port);
      this.reject(conn, 'handshake_timeout', null, 'no verified handshake within the handshake timeout');
      raw.destroy();
    }, this.limits.handshakeTimeoutMs);
    this.tlsServer.emit('connection', raw);
  }

  private admissionLimit(source: string): TlsLimit | null {
    const t = this.now();
    const rate = this.limits.handshakesPerSecond;
    this.tokens = Math.min(rate, this.tokens + ((t - this.tokensAtMs) * rate) / MS_PER_SECOND);
    this.tokensAtMs = t;
    if (this.connections.size >= this.limits.maxConnections) return 'max_connections';
    if ((this.perSource.get(source) ?? 0) >= this.limits.maxConnectionsPerSource) return 'max_connections_per_source';
    if (this.tokens < 1) return 'handshake_rate';
    this.tokens -= 1;
    return null;
  }

  private onTcpClose(conn: Connection): void {
    if (conn.deadline !== null) clearTimeout(conn.deadline);
    this.connections.delete(conn);
    const n = (this.perSource.get(conn.source) ?? 1) - 1;
    if (n <= 0) this.perSource.delete(conn.source);
    else this.perSource.set(conn.source, n);
    if (conn.session !== null) this.endSession(conn.session);
  }

  private onTlsClientError(err: Error, socket: tls.TLSSocket): void {
    const raw = rawSocketOf(socket);
    const conn = raw === undefined ? undefined : this.byRaw.get(raw);
    socket.destroy();
    if (conn?.decided === true) return;
    const reason = reasonFromHandshakeError(err);
    if (conn !== undefined) {
      if (reason === 'handshake_timeout') this.limitHit('handshake_timeout', conn.source, conn.port);
      this.reject(conn, reason, null, (err as NodeJS.ErrnoException).code ?? err.message);
    } else {
      this.authFailures[reason]++;
    }
  }

  private onSecureConnection(socket: tls.TLSSocket): void {
    const raw = rawSocketOf(socket);
    const conn = raw === undefined ? undefined : this.byRaw.get(raw);
    if (conn === undefined || conn.decided || this.closing !== null) {
      // Not admitted by onTcpConnection (cannot happen), timed out, or shutting down.
      socket.destroy();
      return;
    }
    if (conn.deadline !== null) clearTimeout(conn.deadline);
    conn.deadline = null;
    const cert = socket.getPeerX509Certificate();
    if (cert === undefined) {
      this.reject(conn, 'no_certificate', null, 'no client certificate presented');
      socket.destroy();
      return;
    }
    if (!socket.authorized) {
      const code = String(socket.authorizationError);
      this.reject(conn, reasonFromVerifyError(code), presentedIdentities(cert), code);
      socket.destroy();
      return;
    }
    const check = this.trust.checkExporter(cert, conn.source, this.now());
    if (!check.ok) {
      this.reject(conn, check.reason, presentedIdentities(cert), check.reason);
      socket.destroy();
      return;
    }
    conn.decided = true;
    this.counters.sessionsAuthenticated++;
    const session: Session = {
      socket,
      sessionKey: `tls|${conn.source}|${conn.port}|${++this.sessionCounter}`,
      identity: check.identity,
      framer: new IpfixFramer(this.limits.maxMessageBytes),
      openedAtMs: this.now(),
      messages: 0,
      paused: false,
      closed: false,
    };
    conn.session = session;
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.logger.debug({ event: 'tls.session_error', source: conn.source, port: conn.port, identity: session.identity, code: err.code }, 'TLS session error');
    });
    socket.once('close', () => this.endSession(session));
    socket.setTimeout(this.limits.idleTimeoutMs, () => {
      this.limitHit('idle_timeout', conn.source, conn.port);
      socket.destroy();
    });
    socket.on('data', (chunk: Buffer) => this.onData(conn, session, chunk));
    this.logger.info(
      { event: 'tls.session_open', source: conn.source, port: conn.port, identity: session.identity, sessionKey: session.sessionKey, protocol: socket.getProtocol(), cipher: socket.getCipher().name },
      'exporter authenticated',
    );
  }

  private onData(conn: Connection, session: Session, chunk: Buffer): void {
    if (session.closed) return;
    this.counters.bytes += chunk.length;
    const err = session.framer.push(chunk, (message) => this.onMessage(conn, session, message));
    // The framer may have ended the session from onMessage (domain check): report only live ones.
    if (err !== null && isOpen(session)) {
      this.framingErrors[err.reason]++;
      if (err.reason === 'too_long') this.limitHit('max_message_bytes', conn.source, conn.port);
      this.limitLog.log('warn', `framing|${conn.source}`, {
        event: 'tls.framing_error', source: conn.source, port: conn.port, identity: session.identity,
        reason: err.reason, version: err.version, length: err.length, streamOffset: err.streamOffset,
      }, 'closing TLS session: invalid IPFIX message header');
      this.closeSession(session);
    }
  }

  private onMessage(conn: Connection, session: Session, message: Buffer): void {
    if (session.closed) return;
    // RFC 7011 §3.1: Observation Domain ID at offset 12 of the Message Header.
    const observationDomainId = message.readUInt32BE(12);
    if (!this.trust.domainAllowed(session.identity, observationDomainId)) {
      this.authFailures.domain_not_bound++;
      this.authLog.log('warn', `${conn.source}|domain_not_bound`, {
        event: 'tls.auth_failed', source: conn.source, port: conn.port, reason: 'domain_not_bound', identity: session.identity, observationDomainId,
      }, 'closing TLS session: observation domain not bound to the exporter identity');
      this.closeSession(session);
      return;
    }
    this.counters.messages++;
    session.messages++;
    const accepted = this.sink.submit({
      payload: message,
      exporter: conn.source,
      exporterPort: conn.port,
      transport: 'tls',
      sessionKey: session.sessionKey,
      identity: session.identity,
      receivedAtMs: this.now(),
    });
    if (!accepted && !session.paused) {
      session.paused = true;
      this.paused.add(session);
      this.counters.backpressurePauses++;
      session.socket.pause();
      // A session held back by us is not idle.
      session.socket.setTimeout(0);
    }
  }

  private resumeAll(): void {
    for (const session of this.paused) {
      session.paused = false;
      if (session.closed) continue;
      session.socket.setTimeout(this.limits.idleTimeoutMs);
      session.socket.resume();
    }
    this.paused.clear();
  }

  private closeSession(session: Session): void {
    session.socket.destroy();
    this.endSession(session);
  }

  private endSession(session: Session): void {
    if (session.closed) return;
    session.closed = true;
    this.paused.delete(session);
    this.sink.endSession(session.sessionKey);
    this.logger.info(
      { event: 'tls.session_closed', sessionKey: session.sessionKey, identity: session.identity, messages: session.messages, durationMs: this.now() - session.openedAtMs },
      'exporter session closed',
    );
  }

  private reject(conn: Connection, reason: AuthFailureReason, names: readonly string[] | null, detail: string): void {
    conn.decided = true;
    this.authFailures[reason]++;
    this.authLog.log('warn', `${conn.source}|${reason}`, {
      event: 'tls.auth_failed', source: conn.source, port: conn.port, reason, detail,
      ...(names === null ? {} : { presented: names.slice(0, MAX_LOGGED_NAMES) }),
    }, 'exporter rejected');
  }

  private limitHit(limit: TlsLimit, source: string, port: number): void {
    this.limitHits[limit]++;
    this.limitLog.log('warn', `${source}|${limit}`, { event: 'tls.limit_hit', limit, source, port }, 'TLS listener limit hit');
  }

  private watchFiles(): void {
    for (const w of this.watchers) w.close();
    this.watchers = [];
    // Watch directories, not files: certificate managers replace files by rename, which
    // leaves a watch on the old inode silent.
    const byDir = new Map<string, Set<string>>();
    for (const f of this.trust.material.files) {
      const names = byDir.get(dirname(f)) ?? new Set<string>();
      names.add(basename(f));
      byDir.set(dirname(f), names);
    }
    for (const [dir, names] of byDir) {
      try {
        const w = watch(dir, { persistent: false }, (_event, name) => {
          if (name !== null && names.has(name)) this.scheduleReload();
        });
        w.on('error', () => {
          // The directory went away: the next successful reload re-creates the watches.
        });
        this.watchers.push(w);
      } catch (err) {
        this.logger.warn({ event: 'tls.watch_failed', dir, err: err instanceof Error ? err.message : String(err) }, 'cannot watch certificate directory; reload with SIGHUP');
      }
    }
  }

  private scheduleReload(): void {
    if (this.reloadTimer !== null || this.closing !== null) return;
    this.reloadTimer = setTimeout(() => {
      this.reloadTimer = null;
      try {
        this.reload();
      } catch {
        // Logged and counted by reload(); the previous material stays in force.
      }
    }, RELOAD_DEBOUNCE_MS);
    this.reloadTimer.unref();
  }
}
