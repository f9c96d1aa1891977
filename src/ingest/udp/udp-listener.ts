import { createSocket, type RemoteInfo, type Socket, type SocketOptions } from 'node:dgram';
import { isIP } from 'node:net';
import { getSystemErrorName } from 'node:util';
import type { Logger } from 'pino';
import type { PrefixSet } from '../../flow/cidr.js';
import { IngestError, IngestErrorCode } from '../../flow/errors.js';
import type { ExporterPacket } from '../../flow/exporter-packet.js';
import { ipv4ToString, ipv6ToString, normaliseAddress } from '../../flow/ip.js';
import type { PacketSink } from '../../flow/pipeline.js';
import { DEFAULT_RATE_LIMIT, RateLimitedLog, type RateLimitOptions } from '../../observability/rate-limited-log.js';
import {
  FLAG_FAMILY_MASK,
  FLAG_TRUNCATED,
  loadUdpReceiverAddon,
  META_ADDRESS,
  META_FLAGS,
  META_LENGTH,
  META_OFFSET,
  META_PORT,
  META_WORDS,
  type NativeReceiver,
  type UdpReceiverAddon,
} from './native-receiver.js';
import type { UdpTee } from './tee.js';
import { bindMessage, SocketState, SourceState, UNTRACKED_ALLOWED, UNTRACKED_REJECTED, type UdpEndpoint } from './udp-state.js';
import type { UdpExporterStats, UdpListenerStats, UdpRejectedSourceStats } from './udp-stats.js';
import { DEFAULT_RECEIVE_BUFFER_BYTES, DEFAULTS, MAX_UDP_DATAGRAM_BYTES } from '../../config/defaults.js';

export { readKernelUdpDrops } from './kernel-drops.js';
export type { UdpEndpoint } from './udp-state.js';
export type { UdpExporterStats, UdpListenerStats, UdpRejectedSourceStats, UdpSocketStats } from './udp-stats.js';

/**
 * UDP ingest: one socket per configured (address, port), datagrams → ExporterPacket →
 * PacketSink. The receive path, in order, per datagram:
 *   1. exporter allowlist (RFC 7011 §11.6: UDP has no authentication, so the source address
 *      is the only gate) — anything else is dropped before any other work, counted per
 *      source and logged rate-limited with the source address;
 *   2. size limit; 3. tee forwarding (raw bytes, allowlisted only); 4. sink.submit().
 * It is kept lean because it runs once per datagram on the event loop: per-source state
 * (normalised address, allowlist decision, tee mask, last session key) is cached in bounded
 * maps, so the steady state allocates only the ExporterPacket itself. Nothing is logged on
 * the accepted path.
 *
 * Two receivers feed that same per-datagram path (receiveDatagram / receiveFrame → reject /
 * deliver):
 *   - "native" (Linux): the addon in ./native binds the socket and a thread of its own reads
 *     it with recvmmsg(2), handing over batches of up to 64 datagrams in one buffer ("frame")
 *     per call; sources are looked up by their IPv4 u32 and payloads are views of the frame,
 *     so the event loop pays one callback per batch instead of one callback, Buffer and rinfo
 *     object per datagram;
 *   - "node": node:dgram, one 'message' event per datagram (other platforms, host-name
 *     addresses, an injected createSocket, or when configured).
 *
 * Bounded memory: at most `maxTrackedExporters` accepted and `maxTrackedSources` rejected
 * source addresses are tracked; beyond that datagrams are still handled correctly but
 * counted under "other" (a spoofed-source flood cannot grow the maps).
 */

/** The listeners.udp setting's default endpoints (IPFIX 4739, NetFlow 2055, sFlow 6343). */
export const DEFAULT_UDP_ENDPOINTS: readonly UdpEndpoint[] = DEFAULTS.listeners.udp.map((u) => ({ address: u.address, port: u.port, ...(u.name === undefined ? {} : { name: u.name }) }));
/**
 * The listeners.udp[] receiveBufferBytes default (32 MiB). Linux caps it at net.core.rmem_max
 * (and reports twice the granted value, the doubling covering bookkeeping overhead: socket(7)
 * SO_RCVBUF).
 */
export const DEFAULT_RECV_BUFFER_BYTES = DEFAULT_RECEIVE_BUFFER_BYTES;
/** An IPFIX message length is a 16-bit field (RFC 7011 §3.1), so nothing legitimate is larger. */
export const DEFAULT_MAX_DATAGRAM_BYTES = MAX_UDP_DATAGRAM_BYTES;
/** Exporters are configured devices: a few thousand is far beyond any real deployment. */
export const DEFAULT_MAX_TRACKED_EXPORTERS = 4096;
/** Rejected sources may be spoofed at will; track a bounded number for stats. */
export const DEFAULT_MAX_TRACKED_SOURCES = 1024;

export interface UdpListenerOptions {
  readonly endpoints?: readonly UdpEndpoint[];
  /** Exporter allowlist: addresses and CIDR prefixes. Empty = nobody. */
  readonly allowlist: PrefixSet;
  readonly sink: PacketSink;
  readonly logger: Logger;
  /** Wall clock for receivedAtMs (Unix ms). */
  readonly now?: () => number;
  /** Requested SO_RCVBUF per socket in bytes unless the endpoint says otherwise (default 32 MiB). */
  readonly receiveBufferBytes?: number;
  /** Datagram size limit unless the endpoint says otherwise (default 65535). */
  readonly maxDatagramBytes?: number;
  readonly maxTrackedExporters?: number;
  readonly maxTrackedSources?: number;
  /** Throttle of the "rejected source" log line, per source address. */
  readonly rejectLog?: RateLimitOptions;
  /** Raw-datagram forwarding; started/closed by its owner, not by the listener. */
  readonly tee?: UdpTee | null;
  /** Socket factory (injection point); default node:dgram createSocket. Implies the "node" receiver. */
  readonly createSocket?: (options: SocketOptions) => Socket;
  /**
   * "native": the recvmmsg(2) receiver thread (start() fails where it is unavailable); "node":
   * node:dgram; "auto" (default): native where available, else node.
   */
  readonly receiver?: UdpReceiverMode;
}

export type UdpReceiverMode = 'auto' | 'native' | 'node';

export class UdpListener {
  private readonly sockets: readonly SocketState[];
  private allowlist: PrefixSet;
  private readonly sink: PacketSink;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly maxExporters: number;
  private readonly maxSources: number;
  private readonly rejectLog: RateLimitedLog;
  private readonly tee: UdpTee | null;
  private readonly makeSocket: (options: SocketOptions) => Socket;
  private readonly receiverMode: UdpReceiverMode;
  private readonly injectedSocket: boolean;
  /** The addon when start() chose the native receiver. */
  private addon: UdpReceiverAddon | null = null;
  /**
   * Keyed by the socket's address text (node: rinfo.address, before normalisation) or, for
   * native IPv6 sources, the address's four u32 words joined by commas.
   */
  private readonly exporters = new Map<string, SourceState>();
  private readonly rejectedSources = new Map<string, SourceState>();
  /** Native IPv4 sources, keyed by the address as a u32: no string per datagram. */
  private readonly exporters4 = new Map<number, SourceState>();
  private readonly rejected4 = new Map<number, SourceState>();
  private otherPackets = 0;
  private otherBytes = 0;
  private otherRejected = 0;
  private rejectedTotal = 0;
  private started = false;
  private closing: Promise<void> | null = null;

  constructor(options: UdpListenerOptions) {
    const endpoints = options.endpoints ?? DEFAULT_UDP_ENDPOINTS;
    const recv = options.receiveBufferBytes ?? DEFAULT_RECV_BUFFER_BYTES;
    const maxDatagram = options.maxDatagramBytes ?? DEFAULT_MAX_DATAGRAM_BYTES;
    this.sockets = endpoints.map(
      (e, i) => new SocketState(e, e.name ?? `udp-${e.port}`, e.setting ?? `listeners.udp[${i}]`, e.receiveBufferBytes ?? recv, e.maxDatagramBytes ?? maxDatagram),
    );
    this.allowlist = options.allowlist;
    this.sink = options.sink;
    this.logger = options.logger;
    this.now = options.now ?? Date.now;
    this.maxExporters = options.maxTrackedExporters ?? DEFAULT_MAX_TRACKED_EXPORTERS;
    this.maxSources = options.maxTrackedSources ?? DEFAULT_MAX_TRACKED_SOURCES;
    this.rejectLog = new RateLimitedLog(this.logger, options.rejectLog ?? DEFAULT_RATE_LIMIT);
    this.tee = options.tee ?? null;
    this.makeSocket = options.createSocket ?? createSocket;
    this.injectedSocket = options.createSocket !== undefined;
    this.receiverMode = options.receiver ?? 'auto';
  }

  /** The addon to use, or null for node:dgram; throws when "native" was required but is unavailable. */
  private chooseReceiver(): UdpReceiverAddon | null {
    if (this.receiverMode === 'node') return null;
    let reason: string | null = null;
    let addon: UdpReceiverAddon | null = null;
    if (this.injectedSocket) {
      reason = 'a socket factory was injected';
    } else if (this.sockets.some((st) => isIP(st.endpoint.address) === 0)) {
      reason = 'a listener address is a host name (the native receiver binds numeric addresses only)';
    } else {
      const load = loadUdpReceiverAddon();
      addon = load.addon;
      reason = load.reason;
    }
    if (addon !== null) return addon;
    if (this.receiverMode === 'native') {
      throw new IngestError(IngestErrorCode.Native, `listeners.udpReceiver is "native" but the native UDP receiver is unavailable: ${reason ?? ''}`, { reason });
    }
    this.logger.info({ reason }, 'UDP listeners use the node:dgram receiver');
    return null;
  }

  /**
   * Binds every socket. On any failure the sockets already bound are closed and an
   * IngestError ERR_INGEST_BIND names the listener setting and the fix.
   */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    if (this.allowlist.size === 0) {
      this.logger.warn('UDP exporter allowlist is empty: every UDP datagram will be rejected (an empty allowlist means nobody)');
    }
    try {
      this.addon = this.chooseReceiver();
      for (const st of this.sockets) {
        if (this.addon === null) await this.bind(st);
        else this.bindNative(st, this.addon);
      }
    } catch (err) {
      await this.closeSockets();
      throw err;
    }
  }

  private async bind(st: SocketState): Promise<void> {
    const e = st.endpoint;
    const v6 = e.address.includes(':');
    const socket = this.makeSocket(v6 ? { type: 'udp6', reuseAddr: false, ipv6Only: e.ipv6Only ?? false } : { type: 'udp4', reuseAddr: false });
    try {
      await new Promise<void>((resolve, reject) => {
        const onError = (err: Error): void => {
          socket.off('listening', onListening);
          reject(err);
        };
        const onListening = (): void => {
          socket.off('error', onError);
          resolve();
        };
        socket.once('error', onError);
        socket.once('listening', onListening);
        socket.bind({ address: e.address, port: e.port, exclusive: true });
      });
    } catch (err) {
      socket.close();
      const ex = err as NodeJS.ErrnoException;
      throw new IngestError(IngestErrorCode.Bind, bindMessage(ex, st), { setting: st.setting, address: e.address, port: e.port, errno: ex.code ?? null }, { cause: err });
    }
    st.socket = socket;
    const bound = socket.address();
    try {
      socket.setRecvBufferSize(st.recvBufferRequested);
    } catch (err) {
      this.logger.warn({ listener: st.name, err: (err as Error).message }, 'could not set the UDP receive buffer size');
    }
    this.bound(st, bound.address, bound.port, socket.getRecvBufferSize());
    socket.on('error', (err: Error) => {
      this.socketError(st, err.message);
    });
    st.onMessage = (msg, rinfo) => {
      this.receiveDatagram(st, msg, rinfo);
    };
    socket.on('message', st.onMessage);
    this.ready(st, 'node');
  }

  /** Binds with the addon and starts its receiver thread. */
  private bindNative(st: SocketState, addon: UdpReceiverAddon): void {
    const e = st.endpoint;
    let native: NativeReceiver;
    try {
      native = new addon.Receiver({
        address: e.address,
        port: e.port,
        ipv6Only: e.ipv6Only ?? false,
        recvBufferBytes: st.recvBufferRequested,
        maxDatagramBytes: st.maxDatagramBytes,
      });
    } catch (err) {
      const ex = err as NodeJS.ErrnoException;
      throw new IngestError(IngestErrorCode.Bind, bindMessage(ex, st), { setting: st.setting, address: e.address, port: e.port, errno: ex.code ?? null }, { cause: err });
    }
    st.native = native;
    const bound = native.address();
    this.bound(st, bound?.address ?? e.address, bound?.port ?? e.port, native.recvBufferGranted());
    native.start((buffer, count, errno) => {
      this.receiveFrame(st, buffer, count, errno);
    });
    this.ready(st, 'native');
  }

  /** After either receiver bound: addresses, tee mask, and the receive-buffer warning. */
  private bound(st: SocketState, address: string, port: number, recvBufferGranted: number): void {
    st.boundAddress = address;
    st.boundPort = port;
    st.rejectFields.listener = st.name;
    st.rejectFields.port = port;
    st.teeMask = this.tee === null ? 0 : this.tee.listenerMask(port);
    st.recvBufferGranted = recvBufferGranted;
    // Linux reports twice the effective size (socket(7)); a smaller report means rmem_max capped it.
    if (st.recvBufferGranted < st.recvBufferRequested) {
      this.logger.warn(
        { listener: st.name, port, requestedBytes: st.recvBufferRequested, grantedBytes: st.recvBufferGranted },
        `kernel capped the UDP receive buffer (${st.recvBufferGranted} of ${st.recvBufferRequested} bytes requested); bursts may be dropped — raise it with "sysctl -w net.core.rmem_max=${st.recvBufferRequested}"`,
      );
    }
  }

  private ready(st: SocketState, receiver: 'native' | 'node'): void {
    this.logger.info(
      { listener: st.name, address: st.boundAddress, port: st.boundPort, receiver, recvBufferBytes: st.recvBufferGranted, tees: this.tee?.size ?? 0 },
      'UDP listener ready',
    );
  }

  private socketError(st: SocketState, message: string): void {
    // Receive-side socket errors are transient (e.g. ICMP errors); the socket keeps working.
    st.socketErrors++;
    this.rejectLog.log('warn', `socket-error|${st.name}`, { listener: st.name, err: message }, 'UDP listener socket error');
  }

  /** node:dgram, one call per datagram. See the module comment for the order of checks. */
  private receiveDatagram(st: SocketState, msg: Buffer, rinfo: RemoteInfo): void {
    const t = this.now();
    let src = this.exporters.get(rinfo.address) ?? this.rejectedSources.get(rinfo.address);
    src ??= this.admit(rinfo.address);
    const untracked = src.address === '' ? normaliseAddress(rinfo.address) : '';
    if (!src.allowed) {
      this.reject(st, src, untracked, rinfo.port, t);
      return;
    }
    if (msg.length > st.maxDatagramBytes) {
      st.oversize++;
      return;
    }
    this.deliver(st, src, untracked, rinfo.port, msg, t);
  }

  /**
   * Native receiver, one call per frame (layout: native-receiver.ts). The same steps as
   * receiveDatagram per datagram, in arrival order. One clock read per frame: the frame's
   * datagrams were read by one recvmmsg(2) call, so they share the receive time.
   */
  private receiveFrame(st: SocketState, buffer: ArrayBuffer | null, count: number, errno: number): void {
    if (buffer === null) {
      if (errno !== 0) this.socketError(st, `recvmmsg: ${getSystemErrorName(-errno)}`);
      return;
    }
    if (st.native === null) return; // closed while this frame was being delivered
    const meta = new Uint32Array(buffer, 0, count * META_WORDS);
    const t = this.now();
    for (let m = 0; m < meta.length; m += META_WORDS) {
      const flags = meta[m + META_FLAGS] ?? 0;
      const port = meta[m + META_PORT] ?? 0;
      let src: SourceState;
      let untracked = '';
      if ((flags & FLAG_FAMILY_MASK) === 4) {
        const a = meta[m + META_ADDRESS] ?? 0;
        src = this.exporters4.get(a) ?? this.rejected4.get(a) ?? this.admit4(a);
        if (src.address === '') untracked = ipv4ToString(a);
      } else {
        const key = `${meta[m + META_ADDRESS] ?? 0},${meta[m + META_ADDRESS + 1] ?? 0},${meta[m + META_ADDRESS + 2] ?? 0},${meta[m + META_ADDRESS + 3] ?? 0}`;
        src = this.exporters.get(key) ?? this.rejectedSources.get(key) ?? this.admit6(key, buffer, m);
        if (src.address === '') untracked = ipv6ToString(new Uint8Array(buffer, (m + META_ADDRESS) * 4, 16));
      }
      if (!src.allowed) {
        this.reject(st, src, untracked, port, t);
        continue;
      }
      if ((flags & FLAG_TRUNCATED) !== 0) {
        st.oversize++;
        continue;
      }
      this.deliver(st, src, untracked, port, new Uint8Array(buffer, meta[m + META_OFFSET] ?? 0, meta[m + META_LENGTH] ?? 0), t);
    }
  }

  /**
   * An allowlisted datagram within the size limit: counters, tee, sink. `untracked` is the
   * normalised source address when `src` is a shared untracked state, else ''.
   */
  private deliver(st: SocketState, src: SourceState, untracked: string, srcPort: number, msg: Uint8Array, t: number): void {
    const size = msg.length;
    st.packets++;
    st.bytes += size;
    let exporter: string;
    let sessionKey: string;
    if (src.address === '') {
      // Untracked (beyond the exporter cap): correct but uncached.
      this.otherPackets++;
      this.otherBytes += size;
      exporter = untracked;
      sessionKey = `udp|${exporter}|${srcPort}|${st.boundPort}`;
      if (this.tee !== null) this.tee.forward(msg, this.tee.exporterMask(exporter) & st.teeMask);
    } else {
      src.packets++;
      src.bytes += size;
      src.lastSeenMs = t;
      exporter = src.address;
      if (src.lastSrcPort !== srcPort || src.lastListenerPort !== st.boundPort) {
        src.lastSrcPort = srcPort;
        src.lastListenerPort = st.boundPort;
        src.lastSessionKey = `udp|${exporter}|${srcPort}|${st.boundPort}`;
      }
      sessionKey = src.lastSessionKey;
      if (this.tee !== null) this.tee.forward(msg, src.teeMask & st.teeMask);
    }
    const packet: ExporterPacket = {
      payload: msg,
      exporter,
      exporterPort: srcPort,
      transport: 'udp',
      sessionKey,
      identity: null,
      receivedAtMs: t,
    };
    if (!this.sink.submit(packet)) st.backpressured++;
  }

  /** A datagram from a source outside the allowlist; `untracked` as for deliver(). */
  private reject(st: SocketState, src: SourceState, untracked: string, srcPort: number, t: number): void {
    st.rejected++;
    this.rejectedTotal++;
    let source: string;
    if (src.address === '') {
      this.otherRejected++;
      source = untracked;
    } else {
      src.rejected++;
      src.lastRejectedMs = t;
      source = src.address;
    }
    const f = st.rejectFields;
    f.source = source;
    f.sourcePort = srcPort;
    f.packets = src.address === '' ? this.otherRejected : src.rejected;
    this.rejectLog.log('warn', source, f, 'dropped UDP datagram from a source not in the exporter allowlist', 'udp.source_rejected');
  }

  /**
   * First datagram from an address (normalised text): decide, and create its state if there
   * is room under the cap, else return a shared untracked state (empty address).
   */
  private newSource(address: string): SourceState {
    const allowed = this.allowlist.containsText(address);
    const tracked = allowed ? this.exporters.size + this.exporters4.size : this.rejectedSources.size + this.rejected4.size;
    if (tracked >= (allowed ? this.maxExporters : this.maxSources)) return allowed ? UNTRACKED_ALLOWED : UNTRACKED_REJECTED;
    return new SourceState(address, allowed, allowed && this.tee !== null ? this.tee.exporterMask(address) : 0);
  }

  /** node:dgram source, keyed by rinfo.address. */
  private admit(raw: string): SourceState {
    const st = this.newSource(normaliseAddress(raw));
    if (st.address !== '') (st.allowed ? this.exporters : this.rejectedSources).set(raw, st);
    return st;
  }

  /** Native IPv4 source (host-order u32). */
  private admit4(a: number): SourceState {
    const st = this.newSource(ipv4ToString(a));
    if (st.address !== '') (st.allowed ? this.exporters4 : this.rejected4).set(a, st);
    return st;
  }

  /** Native IPv6 source: 16 address bytes at metadata word `m` + META_ADDRESS of the frame. */
  private admit6(key: string, buffer: ArrayBuffer, m: number): SourceState {
    const st = this.newSource(ipv6ToString(new Uint8Array(buffer, (m + META_ADDRESS) * 4, 16)));
    if (st.address !== '') (st.allowed ? this.exporters : this.rejectedSources).set(key, st);
    return st;
  }

  private sourceMaps(): Iterable<Map<string, SourceState> | Map<number, SourceState>> {
    return [this.exporters, this.rejectedSources, this.exporters4, this.rejected4];
  }

  /** Replaces the allowlist (SIGHUP); takes effect for the next datagram. */
  reload(allowlist: PrefixSet): void {
    this.allowlist = allowlist;
    for (const map of this.sourceMaps()) {
      for (const st of map.values()) {
        st.allowed = allowlist.containsText(st.address);
        st.teeMask = st.allowed && this.tee !== null ? this.tee.exporterMask(st.address) : 0;
      }
    }
    if (allowlist.size === 0) this.logger.warn('UDP exporter allowlist reloaded empty: every UDP datagram will be rejected');
    this.logger.info({ prefixes: allowlist.size }, 'UDP exporter allowlist reloaded');
  }

  /** Bound (address, port) per listener, in configuration order; port is 0 before start(). */
  addresses(): { name: string; address: string; port: number }[] {
    return this.sockets.map((s) => ({ name: s.name, address: s.boundAddress, port: s.boundPort }));
  }

  stats(): UdpListenerStats {
    const exporters: UdpExporterStats[] = [];
    const rejectedSources: UdpRejectedSourceStats[] = [];
    for (const map of this.sourceMaps()) {
      for (const s of map.values()) {
        if (s.packets > 0) exporters.push({ exporter: s.address, packets: s.packets, bytes: s.bytes, lastSeenMs: s.lastSeenMs });
        if (s.rejected > 0) rejectedSources.push({ source: s.address, packets: s.rejected, lastSeenMs: s.lastRejectedMs });
      }
    }
    return {
      listeners: this.sockets.map((s) => ({
        name: s.name,
        address: s.boundAddress,
        port: s.boundPort,
        recvBufferRequested: s.recvBufferRequested,
        recvBufferGranted: s.recvBufferGranted,
        packets: s.packets,
        bytes: s.bytes,
        rejected: s.rejected,
        oversize: s.oversize,
        backpressured: s.backpressured,
        socketErrors: s.socketErrors,
        kernelDrops: s.open ? s.readKernelDrops() : s.kernelDrops,
      })),
      exporters,
      otherExporters: { packets: this.otherPackets, bytes: this.otherBytes },
      rejectedSources,
      otherRejected: this.otherRejected,
      rejectedTotal: this.rejectedTotal,
    };
  }

  /** Stops receiving and closes every socket; idempotent. */
  close(): Promise<void> {
    this.closing ??= this.closeSockets();
    this.rejectLog.flush();
    return this.closing;
  }

  private async closeSockets(): Promise<void> {
    await Promise.all(
      this.sockets.map(
        (st) =>
          new Promise<void>((resolve) => {
            // The final tally, for the loss ledger's last reading after the listeners closed.
            if (st.open) st.readKernelDrops();
            if (st.native !== null) {
              // Joins the receiver thread; frames not yet delivered are dropped.
              st.native.close();
              st.native = null;
            }
            const s = st.socket;
            st.socket = null;
            if (s === null) {
              resolve();
              return;
            }
            s.off('message', st.onMessage);
            s.close(() => resolve());
          }),
      ),
    );
  }
}
