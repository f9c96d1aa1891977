import type { Logger } from 'pino';
import { IngestError, IngestErrorCode } from '../../flow/errors.js';
import type { ExporterPacket } from '../../flow/exporter-packet.js';
import { normaliseAddress } from '../../flow/ip.js';
import type { PacketSink } from '../../flow/pipeline.js';
import { DEFAULT_RATE_LIMIT, RateLimitedLog, type RateLimitOptions } from '../../observability/rate-limited-log.js';
import { emptyAuthFailureCounts, type AuthFailureReason } from '../trust/auth-failure.js';
import type { ExporterTrust } from '../trust/exporter-trust.js';
import { DtlsServer, type DtlsAuthFailure, type DtlsServerStats, type DtlsSession } from './dtls-server.js';
import { bindErrorMessage, endpointText } from '../../flow/bind-error.js';

/**
 * IPFIX over DTLS (RFC 7011 §10.5, §11): the collector side on UDP port 4740. Each
 * authenticated DTLS association is its own transport session (its own sessionKey, ended
 * with sink.endSession when the association goes away, so templates never outlive it:
 * RFC 7011 §8.4 UDP rules apply inside). Each decrypted DTLS record is one IPFIX message
 * (RFC 7011 §10.5.2: one message per record) and becomes one ExporterPacket carrying the
 * certificate identity.
 *
 * Trust: OpenSSL verifies the chain and CRLs inside the addon; the identity allowlist,
 * source-prefix binding and observation-domain binding are ExporterTrust's (shared with TLS).
 * A message claiming an observation domain the identity is not bound to is dropped, counted
 * as 'domain_not_bound' and logged (rate-limited); the association stays up because the
 * other domains it reports may be legitimate.
 */

export interface DtlsListenerOptions {
  /** Local address: "127.0.0.1", "0.0.0.0", "::" (IPv6 socket), "::1". */
  readonly address: string;
  /** UDP port; IANA "ipfixs" 4740 (RFC 7011 §10.3.4); 0 picks a free port (tests). */
  readonly port: number;
  readonly trust: ExporterTrust;
  readonly sink: PacketSink;
  readonly logger: Logger;
  readonly maxSessions?: number;
  readonly maxSessionsPerSource?: number;
  readonly handshakesPerSecond?: number;
  readonly handshakeTimeoutMs?: number;
  readonly idleTimeoutMs?: number;
  readonly maxDatagramBytes?: number;
  /** Datagram payload size for handshake flights (default 1400). */
  readonly mtu?: number;
  /** Requested SO_RCVBUF in bytes (default 4 MiB; capped by net.core.rmem_max). */
  readonly recvBufferBytes?: number;
  /** Wall clock (Unix ms) for receivedAtMs, certificate validity and deadlines. */
  readonly now?: () => number;
  /** Throttle of the rejection/drop log lines, per source address. */
  readonly rejectLog?: RateLimitOptions;
  /** Configuration path, named in errors (default 'listeners.dtls'). */
  readonly setting?: string;
}

export interface DtlsListenerStats extends DtlsServerStats {
  /** Every authentication failure by reason, all reasons present (RFC 7011 §11.6). */
  readonly rejected: Readonly<Record<AuthFailureReason, number>>;
  readonly messages: number;
  readonly messagesDomainRejected: number;
  /** Records too short to be an IPFIX message header (16 bytes) or with another version. */
  readonly messagesNotIpfix: number;
  /**
   * Messages handed on while the sink reported it is above its high-water mark. UDP cannot
   * push back on the exporter, so they are still submitted; the sink decides what to shed.
   */
  readonly messagesAboveHighWater: number;
  readonly sessionsActive: number;
}

/** IPFIX message header (RFC 7011 §3.1): version u16 = 10, length u16, exportTime u32, sequence u32, observationDomainId u32. */
const IPFIX_VERSION = 10;
const IPFIX_HEADER_BYTES = 16;
const OBSERVATION_DOMAIN_OFFSET = 12;

export class DtlsListener {
  private readonly server: DtlsServer;
  private trust: ExporterTrust;
  private readonly sink: PacketSink;
  private readonly logger: Logger;
  private readonly rejectLog: RateLimitedLog;
  private readonly now: () => number;
  private readonly options: DtlsListenerOptions;
  private readonly rejected = emptyAuthFailureCounts();
  private readonly active = new Map<string, DtlsSession>();
  private messages = 0;
  private messagesDomainRejected = 0;
  private messagesNotIpfix = 0;
  private messagesAboveHighWater = 0;
  private localPort = 0;
  private started = false;
  private stopped = false;

  /** Throws IngestError ERR_INGEST_NATIVE when the addon is unavailable or rejects the material. */
  constructor(options: DtlsListenerOptions) {
    this.options = options;
    this.trust = options.trust;
    this.sink = options.sink;
    this.logger = options.logger.child({ component: 'ingest.dtls' });
    this.rejectLog = new RateLimitedLog(this.logger, options.rejectLog ?? DEFAULT_RATE_LIMIT);
    this.now = options.now ?? Date.now;
    const m = options.trust.material;
    try {
      this.server = new DtlsServer({
        cert: m.certPem,
        key: m.keyPem,
        ca: m.caPem,
        crl: m.crlPems,
        ipv6: options.address.includes(':'),
        now: this.now,
        authorize: (session) => {
          const cert = session.getPeerX509Certificate();
          return this.trust.checkExporter(cert, session.remoteAddress, this.now());
        },
        ...(options.mtu !== undefined ? { mtu: options.mtu } : {}),
        ...(options.recvBufferBytes !== undefined ? { recvBufferBytes: options.recvBufferBytes } : {}),
        ...(options.maxSessions !== undefined ? { maxSessions: options.maxSessions } : {}),
        ...(options.maxSessionsPerSource !== undefined ? { maxSessionsPerSource: options.maxSessionsPerSource } : {}),
        ...(options.handshakesPerSecond !== undefined ? { maxHandshakesPerSecond: options.handshakesPerSecond } : {}),
        ...(options.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: options.handshakeTimeoutMs } : {}),
        ...(options.idleTimeoutMs !== undefined ? { idleTimeoutMs: options.idleTimeoutMs } : {}),
        ...(options.maxDatagramBytes !== undefined ? { maxDatagramBytes: options.maxDatagramBytes } : {}),
      });
    } catch (err) {
      if (err instanceof IngestError) throw err;
      // The addon's message names the OpenSSL check that failed; it never contains key bytes.
      throw new IngestError(IngestErrorCode.Native, `${options.setting ?? 'listeners.dtls'}: DTLS context rejected the certificate material (${err instanceof Error ? err.message : String(err)})`, {}, { cause: err });
    }
    this.server.on('session', (s) => {
      this.onSession(s);
    });
    this.server.on('authFailure', (f) => {
      this.onAuthFailure(f);
    });
    this.server.on('error', (err) => {
      this.logger.error({ err }, 'DTLS socket error');
    });
  }

  /** Binds the socket. Throws IngestError ERR_INGEST_BIND naming the setting. */
  async start(): Promise<{ address: string; port: number }> {
    if (this.started) throw new IngestError(IngestErrorCode.Bind, 'DTLS listener already started');
    this.started = true;
    try {
      const a = await this.server.listen(this.options.port, this.options.address);
      this.localPort = a.port;
      this.logger.info({ address: a.address, port: a.port }, 'DTLS listener started');
      return { address: a.address, port: a.port };
    } catch (err) {
      const setting = this.options.setting ?? 'listeners.dtls';
      throw new IngestError(IngestErrorCode.Bind, `${setting}: ${bindErrorMessage(err, endpointText('UDP', this.options.address, this.options.port), setting)}`, { address: this.options.address, port: this.options.port }, { cause: err });
    }
  }

  /**
   * Swaps in reloaded trust (SIGHUP): new handshakes use the new certificate, CAs, CRLs and
   * allowlist; established associations continue. Throws (and keeps the old trust) if the
   * DTLS context rejects the new material.
   */
  reload(trust: ExporterTrust): void {
    const m = trust.material;
    this.server.reload({ cert: m.certPem, key: m.keyPem, ca: m.caPem, crl: m.crlPems });
    this.trust = trust;
    this.logger.info('DTLS trust reloaded');
  }

  /** Graceful: closes every association (close_notify), ends their transport sessions, closes the socket. Idempotent. */
  async close(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.server.close();
    this.rejectLog.flush();
  }

  stats(): DtlsListenerStats {
    return {
      ...this.server.stats(),
      rejected: { ...this.rejected },
      messages: this.messages,
      messagesDomainRejected: this.messagesDomainRejected,
      messagesNotIpfix: this.messagesNotIpfix,
      messagesAboveHighWater: this.messagesAboveHighWater,
      sessionsActive: this.active.size,
    };
  }

  private onAuthFailure(f: DtlsAuthFailure): void {
    this.rejected[f.reason]++;
    this.rejectLog.log('warn', `auth|${f.remoteAddress}`,
      { event: 'dtls_auth_failed', source: f.remoteAddress, sourcePort: f.remotePort, reason: f.reason, detail: f.detail },
      'DTLS exporter rejected');
  }

  private onSession(s: DtlsSession): void {
    const identity = s.identity ?? '';
    const exporter = normaliseAddress(s.remoteAddress);
    const sessionKey = `dtls|${exporter}|${s.remotePort}|${this.localPort}|${s.id}`;
    this.active.set(sessionKey, s);
    this.logger.info({ event: 'dtls_session_open', source: exporter, sourcePort: s.remotePort, identity, protocol: s.protocol, cipher: s.cipher }, 'DTLS exporter connected');
    s.on('message', (record) => {
      this.onMessage(s, sessionKey, exporter, identity, record);
    });
    s.on('close', (reason) => {
      this.active.delete(sessionKey);
      this.sink.endSession(sessionKey);
      this.logger.info({ event: 'dtls_session_closed', source: exporter, sourcePort: s.remotePort, identity, reason }, 'DTLS exporter disconnected');
    });
  }

  private onMessage(s: DtlsSession, sessionKey: string, exporter: string, identity: string, record: Buffer): void {
    if (record.length >= IPFIX_HEADER_BYTES && record.readUInt16BE(0) === IPFIX_VERSION) {
      const domain = record.readUInt32BE(OBSERVATION_DOMAIN_OFFSET);
      if (!this.trust.domainAllowed(identity, domain)) {
        this.messagesDomainRejected++;
        this.rejected.domain_not_bound++;
        this.rejectLog.log('warn', `domain|${exporter}`,
          { event: 'dtls_domain_not_bound', source: exporter, sourcePort: s.remotePort, identity, observationDomainId: domain, reason: 'domain_not_bound' },
          'DTLS message for an observation domain the exporter identity is not bound to dropped');
        return;
      }
    } else {
      // Not an IPFIX header: still handed on (the decoder counts it as malformed), but noted.
      this.messagesNotIpfix++;
    }
    this.messages++;
    const packet: ExporterPacket = {
      payload: record,
      exporter,
      exporterPort: s.remotePort,
      transport: 'dtls',
      sessionKey,
      identity,
      receivedAtMs: this.now(),
    };
    if (!this.sink.submit(packet)) this.messagesAboveHighWater++;
  }
}
