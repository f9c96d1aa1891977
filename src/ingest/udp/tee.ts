import { createSocket, type Socket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import { parsePrefix, PrefixSet } from '../../flow/cidr.js';
import { ConfigError, ConfigErrorCode, IngestError, IngestErrorCode } from '../../flow/errors.js';
import { DEFAULT_RATE_LIMIT, RateLimitedLog, type RateLimitOptions } from '../../observability/rate-limited-log.js';

/**
 * Tees: forward the raw datagrams a UDP listener accepted, byte for byte, to other collectors
 * so existing tools keep receiving flows (NetoFlow's "tee"/packet replication).
 *
 * Invariants:
 * - Only datagrams that passed the exporter allowlist are forwarded (the listener calls
 *   forward() after its allowlist check); tees attach to UDP listeners only, so nothing that
 *   arrived over TLS or DTLS is ever forwarded in plaintext.
 * - Forwarding never blocks or slows ingest: each target has its own connected UDP socket and
 *   sends are fire-and-forget. When the socket's send queue is above `maxQueueBytes` (the
 *   target path is congested) the datagram is dropped for that target and counted.
 * - Failures are counted, never thrown: a connected UDP socket reports ICMP port/host
 *   unreachable as an asynchronous ECONNREFUSED/EHOSTUNREACH 'error' event.
 * - Source address: the datagrams leave from sealflow's own address. Keeping the exporter's
 *   address as the source would need a raw socket (or IP_TRANSPARENT) with CAP_NET_RAW, which
 *   Node.js does not offer; `spoofSource: true` is therefore rejected at configuration time.
 *   Where the original source matters, duplicate in the kernel instead (nftables `dup to`,
 *   iptables TEE target) — those copies keep the exporter address.
 */

/** One tee (the `tees[i]` configuration entry): a set of targets sharing one selection. */
export interface TeeConfig {
  /** "host:port" UDP destinations ("[v6addr]:port" for IPv6); host names are resolved once at start. */
  readonly targets: readonly string[];
  /** Only forward datagrams from these exporters (addresses/CIDR prefixes); absent = all allowlisted. */
  readonly exporters?: readonly string[];
  /** Only forward datagrams received on this UDP listener port; absent = every UDP listener. */
  readonly listenerPort?: number;
}

export interface UdpTeeOptions {
  readonly tees: readonly TeeConfig[];
  readonly logger: Logger;
  /** Per-target send queue bound in bytes; beyond it datagrams are dropped (counted). */
  readonly maxQueueBytes?: number;
  /**
   * Forward with the exporter's address as source. Unsupported (see the module comment);
   * true makes the constructor throw a ConfigError explaining why.
   */
  readonly spoofSource?: boolean;
  /** Configuration path of the tee list, for error messages (default "tees"). */
  readonly setting?: string;
  /** Throttle of the per-target "send failed" warning. */
  readonly failureLog?: RateLimitOptions;
  /** Host name resolution (injected in tests); default node:dns lookup. */
  readonly resolve?: (host: string) => Promise<string>;
}

export interface TeeTargetStats {
  /** "host:port" as configured. */
  readonly name: string;
  /** Index of the tee in the configuration. */
  readonly tee: number;
  readonly address: string;
  readonly port: number;
  /** Datagrams handed to the kernel. */
  readonly sent: number;
  readonly sentBytes: number;
  /** Send errors plus asynchronous ICMP errors (unreachable target). */
  readonly failed: number;
  /** Datagrams dropped because the socket's send queue was over its bound. */
  readonly droppedCongested: number;
  readonly lastError: string | null;
}

/** Each target gets one bit in a 31-bit mask (a V8 small integer), so at most 31 targets. */
export const MAX_TEE_TARGETS = 31;
/** 4 MiB: a few thousand typical flow datagrams of backlog per target before dropping. */
export const DEFAULT_TEE_MAX_QUEUE_BYTES = 4 * 1024 * 1024;
const MAX_PORT = 0xffff;

class TeeTarget {
  sent = 0;
  sentBytes = 0;
  failed = 0;
  droppedCongested = 0;
  lastError: string | null = null;
  socket: Socket | null = null;
  address = '';
  /** Created once: send completion, no closure per datagram. */
  readonly onSent = (err: Error | null, bytes: number): void => {
    if (err === null) {
      this.sent++;
      this.sentBytes += bytes;
    } else this.fail(err);
  };
  readonly onError = (err: Error): void => this.fail(err);
  /** Reused log fields (pino serialises synchronously). */
  private readonly failFields: { tee: number; target: string; err: string; failed: number };
  constructor(
    readonly name: string,
    readonly tee: number,
    readonly setting: string,
    readonly host: string,
    readonly port: number,
    readonly exporters: PrefixSet | null,
    readonly listenerPort: number | null,
    private readonly failLog: RateLimitedLog,
  ) {
    this.failFields = { tee, target: name, err: '', failed: 0 };
  }
  private fail(err: Error): void {
    this.failed++;
    this.lastError = (err as NodeJS.ErrnoException).code ?? err.message;
    this.failFields.err = this.lastError;
    this.failFields.failed = this.failed;
    this.failLog.log('warn', this.name, this.failFields, 'tee target send failed (counted; ingest continues)');
  }
  /** Writes the pending suppressed-lines summary (the log is shared by a tee's targets; idempotent). */
  flushLog(): void {
    this.failLog.flush();
  }
}

/** "host:port" or "[v6]:port" → parts; null when malformed. */
export function parseHostPort(text: string): { host: string; port: number } | null {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:[\]\s]+):(\d{1,5})$/.exec(text);
  if (m === null) return null;
  const port = Number(m[2]);
  if (port < 1 || port > MAX_PORT) return null;
  return { host: m[1] ?? '', port };
}

function teeError(setting: string, message: string): ConfigError {
  return new ConfigError(ConfigErrorCode.Invalid, setting, `${setting}: ${message}`);
}

export class UdpTee {
  private readonly targets: readonly TeeTarget[];
  private readonly logger: Logger;
  private readonly maxQueueBytes: number;
  private readonly resolve: (host: string) => Promise<string>;
  private started = false;
  private closing: Promise<void> | null = null;

  /** Validates the configuration; throws ConfigError naming the setting. No sockets yet. */
  constructor(options: UdpTeeOptions) {
    const base = options.setting ?? 'tees';
    if (options.spoofSource === true) {
      throw teeError(
        `${base}.spoofSource`,
        'forwarding with the exporter\'s source address is not supported: it needs a raw socket with CAP_NET_RAW, ' +
          'which Node.js cannot open. sealflow tees send from the probe\'s own address; if collectors must see the ' +
          'original exporter address, duplicate the packets in the kernel instead (nftables "dup to", iptables TEE) ' +
          'and remove spoofSource',
      );
    }
    const targets: TeeTarget[] = [];
    const failLog = new RateLimitedLog(options.logger, options.failureLog ?? DEFAULT_RATE_LIMIT);
    options.tees.forEach((tee, i) => {
      const s = `${base}[${i}]`;
      if (tee.targets.length === 0) throw teeError(`${s}.targets`, 'must list at least one "host:port" destination');
      let exporters: PrefixSet | null = null;
      if (tee.exporters !== undefined) {
        if (tee.exporters.length === 0) throw teeError(`${s}.exporters`, 'is an empty list, which would forward nothing; remove it to forward from every allowlisted exporter');
        tee.exporters.forEach((e, k) => {
          if (parsePrefix(e) === null) throw teeError(`${s}.exporters[${k}]`, `${JSON.stringify(e)} is not an IP address or CIDR prefix (e.g. 192.0.2.0/24, 2001:db8::/32)`);
        });
        exporters = PrefixSet.parse(tee.exporters);
      }
      const listenerPort = tee.listenerPort ?? null;
      if (listenerPort !== null && (!Number.isInteger(listenerPort) || listenerPort < 1 || listenerPort > MAX_PORT)) {
        throw teeError(`${s}.listenerPort`, `must be a UDP listener port 1..${MAX_PORT}`);
      }
      tee.targets.forEach((text, k) => {
        const hp = parseHostPort(text);
        if (hp === null) throw teeError(`${s}.targets[${k}]`, `${JSON.stringify(text)} must be "host:port" with a port 1..${MAX_PORT} (IPv6 as "[addr]:port")`);
        targets.push(new TeeTarget(text, i, `${s}.targets[${k}]`, hp.host, hp.port, exporters, listenerPort, failLog));
      });
    });
    if (targets.length > MAX_TEE_TARGETS) throw teeError(base, `${targets.length} tee targets configured; at most ${MAX_TEE_TARGETS} are supported`);
    this.targets = targets;
    this.logger = options.logger;
    this.maxQueueBytes = options.maxQueueBytes ?? DEFAULT_TEE_MAX_QUEUE_BYTES;
    this.resolve = options.resolve ?? (async (host) => (await lookup(host)).address);
  }

  get size(): number {
    return this.targets.length;
  }

  /** Resolves targets and opens one connected socket per target. Never fails on an unreachable target. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    try {
      for (const t of this.targets) await this.open(t);
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  private async open(t: TeeTarget): Promise<void> {
    try {
      t.address = isIP(t.host) !== 0 ? t.host : await this.resolve(t.host);
    } catch (err) {
      throw new IngestError(IngestErrorCode.Bind, `${t.setting}: cannot resolve tee target host ${JSON.stringify(t.host)}: ${(err as Error).message}`, { setting: t.setting }, { cause: err });
    }
    const socket = createSocket({ type: isIP(t.address) === 6 ? 'udp6' : 'udp4' });
    socket.on('error', t.onError);
    t.socket = socket;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      socket.once('error', onError);
      socket.connect(t.port, t.address, () => {
        socket.off('error', onError);
        resolve();
      });
    });
    this.logger.info(
      { tee: t.tee, target: t.name, address: t.address, port: t.port, listenerPort: t.listenerPort ?? 'all', exporters: t.exporters?.prefixes.map((p) => p.text) ?? 'all' },
      'tee forwarding raw UDP datagrams; they are sent from this probe\'s own address (the exporter source address is not preserved)',
    );
  }

  /** Bit mask of the targets that take datagrams from this exporter (normalised address text). */
  exporterMask(exporter: string): number {
    let mask = 0;
    for (let i = 0; i < this.targets.length; i++) {
      const set = this.targets[i]?.exporters;
      if (set === null || set?.containsText(exporter) === true) mask |= 1 << i;
    }
    return mask;
  }

  /** Bit mask of the targets that take datagrams from this listener port. */
  listenerMask(listenerPort: number): number {
    let mask = 0;
    for (let i = 0; i < this.targets.length; i++) {
      const p = this.targets[i]?.listenerPort;
      if (p === null || p === listenerPort) mask |= 1 << i;
    }
    return mask;
  }

  /**
   * Forwards one accepted datagram, unchanged, to the targets in `mask`
   * (exporterMask & listenerMask). Never throws, never waits.
   */
  forward(payload: Uint8Array, mask: number): void {
    if (mask === 0 || this.closing !== null) return;
    const targets = this.targets;
    for (let i = 0; i < targets.length; i++) {
      if ((mask & (1 << i)) === 0) continue;
      const t = targets[i];
      const socket = t?.socket ?? null;
      if (t === undefined || socket === null) continue;
      if (socket.getSendQueueSize() > this.maxQueueBytes) {
        t.droppedCongested++;
        continue;
      }
      try {
        socket.send(payload, t.onSent);
      } catch (err) {
        t.onError(err as Error);
      }
    }
  }

  stats(): TeeTargetStats[] {
    return this.targets.map((t) => ({
      name: t.name,
      tee: t.tee,
      address: t.address,
      port: t.port,
      sent: t.sent,
      sentBytes: t.sentBytes,
      failed: t.failed,
      droppedCongested: t.droppedCongested,
      lastError: t.lastError,
    }));
  }

  /** Closes the sockets; idempotent. Datagrams still queued in the kernel may be lost. */
  close(): Promise<void> {
    for (const t of this.targets) t.flushLog();
    this.closing ??= Promise.all(
      this.targets.map(
        (t) =>
          new Promise<void>((resolve) => {
            const s = t.socket;
            t.socket = null;
            if (s === null) {
              resolve();
              return;
            }
            s.close(() => resolve());
          }),
      ),
    ).then(() => undefined);
    return this.closing;
  }
}
