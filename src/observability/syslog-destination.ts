import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { isIP, Socket as TcpSocket } from 'node:net';
import { hostname } from 'node:os';

/**
 * A pino destination that forwards every log line to a syslog receiver as an RFC 5424 message,
 * over UDP (RFC 5426: one message per datagram) or TCP (RFC 6587 §3.4.1 octet counting:
 * "LEN SP MSG"). The MSG part is the pino JSON line itself, so structured fields survive.
 *
 * Invariants: write() never throws and never blocks logging — a receiver that is down costs
 * counted drops, not a stalled or crashed probe. TCP reconnects with capped backoff and keeps
 * at most MAX_PENDING_BYTES while disconnected (oldest dropped first). Lines already passed
 * pino's redaction, so secrets are censored before they get here.
 */

export const SYSLOG_FACILITIES = {
  kern: 0, user: 1, mail: 2, daemon: 3, auth: 4, syslog: 5, lpr: 6, news: 7, uucp: 8, cron: 9, authpriv: 10, ftp: 11,
  local0: 16, local1: 17, local2: 18, local3: 19, local4: 20, local5: 21, local6: 22, local7: 23,
} as const;
export type SyslogFacility = keyof typeof SYSLOG_FACILITIES;

export interface SyslogOptions {
  readonly host: string;
  readonly port: number;
  readonly protocol: 'udp' | 'tcp';
  readonly facility: SyslogFacility;
  /** APP-NAME (RFC 5424 §6.2.5, at most 48 printable ASCII characters). */
  readonly appName: string;
  /** HOSTNAME field; default os.hostname(). */
  readonly hostname?: string;
  readonly now?: () => Date;
}

export interface SyslogStats {
  readonly sent: number;
  readonly dropped: number;
  readonly errors: number;
  readonly connected: boolean;
}

/**
 * rsyslog's default maxMessageSize is 8 KiB; longer lines are truncated (and stay readable up to
 * there) rather than dropped. RFC 5426 §3.2 only guarantees 480/1180 bytes over UDP.
 */
export const MAX_SYSLOG_MESSAGE_BYTES = 8192;
/** Bytes kept for a disconnected TCP receiver: minutes of normal logging, bounded memory. */
export const MAX_PENDING_BYTES = 1024 * 1024;
const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 30_000;
/** RFC 5424 field limits (§6): HOSTNAME 255, APP-NAME 48, PROCID 128, MSGID 32. */
const HOSTNAME_MAX = 255;
const APP_NAME_MAX = 48;
const MSGID_MAX = 32;

/** pino level → syslog severity (RFC 5424 §6.2.1 table 2). */
function severityOf(level: number): number {
  if (level >= 60) return 2; // fatal → critical
  if (level >= 50) return 3; // error
  if (level >= 40) return 4; // warning
  if (level >= 30) return 6; // informational
  return 7; // debug, trace
}

/** PRINTUSASCII (%d33-126) only; empty becomes the NILVALUE "-". */
function headerField(text: string, max: number): string {
  const clean = text.replace(/[^\x21-\x7e]/g, '').slice(0, max);
  return clean === '' ? '-' : clean;
}

/** Formats one RFC 5424 message from a pino JSON line. */
export function formatSyslogMessage(line: string, options: Pick<SyslogOptions, 'facility' | 'appName' | 'hostname'>, now: Date, pid: number): Buffer {
  const text = line.endsWith('\n') ? line.slice(0, -1) : line;
  let level = 30;
  let msgId = '-';
  try {
    const parsed = JSON.parse(text) as { level?: unknown; component?: unknown };
    if (typeof parsed.level === 'number') level = parsed.level;
    if (typeof parsed.component === 'string') msgId = headerField(parsed.component, MSGID_MAX);
  } catch {
    // Not JSON (should not happen with pino): sent as informational text.
  }
  const pri = SYSLOG_FACILITIES[options.facility] * 8 + severityOf(level);
  const header = `<${pri}>1 ${now.toISOString()} ${headerField(options.hostname ?? hostname(), HOSTNAME_MAX)} ${headerField(options.appName, APP_NAME_MAX)} ${pid} ${msgId} - `;
  const msg = Buffer.from(header + text, 'utf8');
  return msg.length > MAX_SYSLOG_MESSAGE_BYTES ? msg.subarray(0, MAX_SYSLOG_MESSAGE_BYTES) : msg;
}

export class SyslogDestination {
  private udp: UdpSocket | null = null;
  private tcp: TcpSocket | null = null;
  private tcpConnected = false;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private reconnectDelayMs = RECONNECT_MIN_MS;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private sent = 0;
  private dropped = 0;
  private errors = 0;
  private readonly now: () => Date;

  constructor(private readonly options: SyslogOptions) {
    this.now = options.now ?? (() => new Date());
    if (options.protocol === 'udp') {
      this.udp = createSocket(isIP(options.host) === 6 ? 'udp6' : 'udp4');
      this.udp.on('error', () => {
        this.errors++;
      });
      this.udp.unref();
    } else {
      this.connect();
    }
  }

  /** pino DestinationStream: one JSON line per call. */
  write(line: string): void {
    if (this.closed) {
      this.dropped++;
      return;
    }
    const msg = formatSyslogMessage(line, this.options, this.now(), process.pid);
    if (this.udp !== null) {
      this.udp.send(msg, this.options.port, this.options.host, (err) => {
        if (err) {
          this.errors++;
          this.dropped++;
        } else {
          this.sent++;
        }
      });
      return;
    }
    // RFC 6587 §3.4.1 octet counting: the length in bytes, a space, the message.
    const framed = Buffer.concat([Buffer.from(`${msg.length} `, 'ascii'), msg]);
    if (this.tcpConnected && this.tcp !== null) {
      this.tcp.write(framed);
      this.sent++;
      return;
    }
    this.pending.push(framed);
    this.pendingBytes += framed.length;
    while (this.pendingBytes > MAX_PENDING_BYTES && this.pending.length > 0) {
      const old = this.pending.shift();
      this.pendingBytes -= old?.length ?? 0;
      this.dropped++;
    }
  }

  stats(): SyslogStats {
    return { sent: this.sent, dropped: this.dropped + (this.closed ? this.pending.length : 0), errors: this.errors, connected: this.udp !== null || this.tcpConnected };
  }

  private connect(): void {
    if (this.closed) return;
    const sock = new TcpSocket();
    this.tcp = sock;
    sock.setNoDelay(true);
    sock.on('connect', () => {
      this.tcpConnected = true;
      this.reconnectDelayMs = RECONNECT_MIN_MS;
      const queued = this.pending;
      this.pending = [];
      this.pendingBytes = 0;
      for (const b of queued) sock.write(b);
      this.sent += queued.length;
    });
    sock.on('error', () => {
      this.errors++;
    });
    sock.on('close', () => {
      this.tcpConnected = false;
      if (this.tcp === sock) this.tcp = null;
      this.scheduleReconnect();
    });
    sock.connect({ host: this.options.host, port: this.options.port });
    sock.unref();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer !== null) return;
    const delay = this.reconnectDelayMs;
    this.reconnectDelayMs = Math.min(RECONNECT_MAX_MS, this.reconnectDelayMs * 2);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.connect();
    }, delay);
    this.reconnectTimer.unref();
  }

  /** Flushes what the socket holds and closes. Idempotent. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    return new Promise<void>((resolve) => {
      if (this.udp !== null) {
        this.udp.close(() => {
          resolve();
        });
        return;
      }
      const sock = this.tcp;
      if (sock === null || !this.tcpConnected) {
        sock?.destroy();
        resolve();
        return;
      }
      sock.end(() => {
        resolve();
      });
    });
  }
}

/** The `log.syslog` config block (src/config/schema.ts). */
export interface SyslogConfig {
  readonly address: string;
  readonly port: number;
  readonly protocol: 'udp' | 'tcp';
  readonly facility: SyslogFacility;
  readonly appName: string;
}

/** A destination for `log.syslog`, or undefined when syslog is not configured. Pass it as LoggerSettings.syslog; close() it last at shutdown. */
export function syslogDestinationFromConfig(config: SyslogConfig | undefined): SyslogDestination | undefined {
  if (config === undefined) return undefined;
  return new SyslogDestination({ host: config.address, port: config.port, protocol: config.protocol, facility: config.facility, appName: config.appName });
}
