import type { ExporterPacket } from '../flow/exporter-packet.js';
import type { PacketSink } from '../flow/pipeline.js';
import { PacketFrameBuilder } from './packet-frame.js';
import type { MainToWorker } from './messages.js';

/**
 * The receive loops' PacketSink: packs packets into frames and posts them to the ingest
 * worker (decode → filter → batch → encrypt → SQLite), keeping the socket callbacks lean.
 *
 * Flow control: frames posted but not yet acknowledged by the worker are "in flight". Above
 * the high-water mark submit() returns false (TLS pauses its sockets) and, above the hard
 * limit, datagrams are dropped and counted here instead of queueing without bound — UDP
 * cannot be paused, and an unbounded queue would turn a burst into an out-of-memory crash.
 */
export interface IngestChannelOptions {
  /** A frame is posted when it holds this many packets or bytes, or `maxFrameDelayMs` after its first packet. */
  readonly maxFramePackets: number;
  readonly maxFrameBytes: number;
  /**
   * Longest a packet waits in a partly filled frame. Posting per event-loop turn instead would
   * cost one cross-thread message (and one acknowledgement) per few datagrams, which at tens
   * of thousands of datagrams per second costs more than decoding them.
   */
  readonly maxFrameDelayMs: number;
  /** In-flight bytes above which submit() returns false. */
  readonly highWaterBytes: number;
  /** In-flight bytes below which paused producers are resumed. */
  readonly lowWaterBytes: number;
  /** In-flight bytes above which packets are dropped (counted). */
  readonly hardLimitBytes: number;
}

export const DEFAULT_INGEST_CHANNEL: IngestChannelOptions = {
  maxFramePackets: 512,
  maxFrameBytes: 512 * 1024,
  maxFrameDelayMs: 5,
  highWaterBytes: 32 * 1024 * 1024,
  lowWaterBytes: 8 * 1024 * 1024,
  hardLimitBytes: 128 * 1024 * 1024,
};

/** Largest payload one packet can have: a UDP datagram, or an IPFIX message (16-bit length, RFC 7011 §3.1). */
const MAX_PACKET_BYTES = 65_535;

export interface IngestChannelStats {
  readonly framesPosted: number;
  readonly packetsPosted: number;
  readonly inFlightBytes: number;
  readonly droppedPackets: number;
  readonly droppedBytes: number;
}

export class IngestChannel implements PacketSink {
  private readonly builder: PacketFrameBuilder;
  private flushTimer: NodeJS.Timeout | null = null;
  private inFlightBytes = 0;
  private readonly frameBytes = new Map<number, number>();
  private nextFrameId = 1;
  private aboveHighWater = false;
  private readonly drainListeners: (() => void)[] = [];
  private framesPosted = 0;
  private packetsPosted = 0;
  private droppedPackets = 0;
  private droppedBytes = 0;
  private closed = false;

  constructor(
    private readonly post: (msg: MainToWorker, transfer: ArrayBuffer[]) => void,
    private readonly options: IngestChannelOptions = DEFAULT_INGEST_CHANNEL,
  ) {
    // Room for a full frame plus the datagram that crosses maxFrameBytes, so a busy frame never
    // grows its buffer and buffers come back to the builder at the one size it reuses.
    this.builder = new PacketFrameBuilder(options.maxFrameBytes + MAX_PACKET_BYTES);
  }

  submit(packet: ExporterPacket): boolean {
    if (this.closed || this.inFlightBytes + this.builder.bytes + packet.payload.length > this.options.hardLimitBytes) {
      this.droppedPackets++;
      this.droppedBytes += packet.payload.length;
      return false;
    }
    this.builder.add(packet);
    if (this.builder.packets >= this.options.maxFramePackets || this.builder.bytes >= this.options.maxFrameBytes) {
      this.flush();
    } else if (this.flushTimer === null) {
      this.flushTimer = setTimeout(this.flushSoon, this.options.maxFrameDelayMs);
    }
    if (this.inFlightBytes + this.builder.bytes >= this.options.highWaterBytes) this.aboveHighWater = true;
    return !this.aboveHighWater;
  }

  endSession(sessionKey: string): void {
    // Frames are delivered in order, so the worker sees the end after the session's last packets.
    this.flush();
    this.post({ type: 'end-session', sessionKey }, []);
  }

  onDrain(listener: () => void): void {
    this.drainListeners.push(listener);
  }

  /** The worker finished a frame (and may have given its payload buffer back for reuse). */
  acknowledge(frameId: number, payloads?: ArrayBuffer): void {
    if (payloads !== undefined) this.builder.recycle(payloads);
    const bytes = this.frameBytes.get(frameId);
    if (bytes === undefined) return;
    this.frameBytes.delete(frameId);
    this.inFlightBytes -= bytes;
    if (this.aboveHighWater && this.inFlightBytes <= this.options.lowWaterBytes) {
      this.aboveHighWater = false;
      for (const l of this.drainListeners) l();
    }
  }

  /** Posts whatever is buffered now. */
  flush(): void {
    if (this.flushTimer !== null) {
      clearTimeout(this.flushTimer);
      this.flushTimer = null;
    }
    if (this.builder.packets === 0) return;
    // Flow control counts payload bytes; a frame's buffer holds at most twice that (see take()).
    const bytes = this.builder.bytes;
    const frame = this.builder.take();
    const id = this.nextFrameId++;
    this.frameBytes.set(id, bytes);
    this.inFlightBytes += bytes;
    this.framesPosted++;
    this.packetsPosted += frame.count;
    this.post({ type: 'frame', id, frame }, [frame.payloads, frame.meta.buffer as ArrayBuffer]);
  }

  /** Stops accepting packets (later ones are dropped and counted) after posting what is buffered. */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
  }

  stats(): IngestChannelStats {
    return {
      framesPosted: this.framesPosted,
      packetsPosted: this.packetsPosted,
      inFlightBytes: this.inFlightBytes,
      droppedPackets: this.droppedPackets,
      droppedBytes: this.droppedBytes,
    };
  }

  private readonly flushSoon = (): void => {
    this.flushTimer = null;
    this.flush();
  };
}
