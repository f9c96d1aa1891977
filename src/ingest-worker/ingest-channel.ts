import type { Worker } from 'node:worker_threads';
import { startModuleWorker } from '../flow/module-worker.js';
import type { ExporterPacket } from '../flow/exporter-packet.js';
import type { PacketSink } from '../flow/pipeline.js';
import { PacketFrameBuilder } from './packet-frame.js';
import type { MainToWorker, WorkerToMain, IngestWorkerInit, IngestWorkerStats } from './ingest-protocol.js';

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

/**
 * The ingest worker's young generation. On the FlowRecord path (sFlow, v5, the stdout copy)
 * records live while their frame is decoded and serialized; with V8's default 16 MiB
 * semi-spaces, scavenges copy what is still live and promote it to the old generation, which
 * then has to be collected too. 96 MiB gives 32 MiB semi-spaces, so nearly all of it dies
 * young, for up to ~32 MiB more resident memory. Measured in one thread on the 2-core bench
 * machine when records still waited for a whole batch: decode → batch 490 → 360 ns CPU per
 * record; decode → SQLite ~6% less (within the pipeline bench's noise).
 */
const WORKER_YOUNG_GENERATION_MB = 96;

/** The ingest worker thread (ingest-worker.ts next to this module). */
function createWorker(base: URL, workerData: IngestWorkerInit): Worker {
  return startModuleWorker(import.meta.url, base, { workerData, resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB } });
}

/**
 * The ingest worker thread and its channel. `start()` resolves once the worker has opened the
 * spool (so a wrong key fails start-up, in order); `stop()` asks it to flush the in-memory
 * batch into the spool, persist decoder state and close the spool, then waits for it.
 */
export class IngestWorker {
  readonly channel: IngestChannel;
  private readonly worker: Worker;
  private lastStats: IngestWorkerStats | null = null;
  private readyPromise: Promise<void>;
  private stoppedPromise: Promise<void>;
  private resolveStopped: () => void = () => undefined;
  private exited = false;
  /** Set once the worker reported 'stopped': its exit after that (or our terminate()) is expected. */
  private stopped = false;
  private onFatal: (err: Error) => void = () => undefined;

  constructor(init: IngestWorkerInit, channelOptions: IngestChannelOptions = DEFAULT_INGEST_CHANNEL) {
    this.worker = createWorker(new URL('./ingest-worker', import.meta.url), init);
    this.channel = new IngestChannel((msg, transfer) => {
      this.worker.postMessage(msg, transfer);
    }, channelOptions);
    let resolveReady: () => void = () => undefined;
    let rejectReady: (e: Error) => void = () => undefined;
    this.readyPromise = new Promise<void>((res, rej) => {
      resolveReady = res;
      rejectReady = rej;
    });
    this.stoppedPromise = new Promise<void>((res) => {
      this.resolveStopped = res;
    });
    this.worker.on('message', (msg: WorkerToMain) => {
      switch (msg.type) {
        case 'ready':
          resolveReady();
          break;
        case 'ack':
          this.channel.acknowledge(msg.id, msg.payloads);
          break;
        case 'stats':
          this.lastStats = msg.stats;
          break;
        case 'startup-error': {
          const err = Object.assign(new Error(msg.message), { code: msg.code, setting: msg.setting });
          rejectReady(err);
          break;
        }
        case 'stopped':
          this.lastStats = msg.stats;
          this.stopped = true;
          this.resolveStopped();
          break;
      }
    });
    this.worker.on('error', (err) => {
      rejectReady(err);
      this.onFatal(err);
    });
    this.worker.on('exit', (code) => {
      this.exited = true;
      this.resolveStopped();
      rejectReady(new Error(`ingest worker exited with code ${code} before it was ready`));
      if (code !== 0 && !this.stopped) this.onFatal(new Error(`ingest worker exited with code ${code}`));
    });
  }

  ready(): Promise<void> {
    return this.readyPromise;
  }

  /** Called when the worker dies unexpectedly (the app treats it as fatal). */
  setFatalHandler(handler: (err: Error) => void): void {
    this.onFatal = handler;
  }

  stats(): IngestWorkerStats | null {
    return this.lastStats;
  }

  reload(update: Pick<IngestWorkerInit, 'filters'>): void {
    if (!this.exited) this.worker.postMessage({ type: 'reload', filters: update.filters } satisfies MainToWorker);
  }

  async stop(): Promise<void> {
    this.channel.close();
    if (!this.exited) this.worker.postMessage({ type: 'stop' } satisfies MainToWorker);
    await this.stoppedPromise;
    // The worker has flushed and closed the spool; whatever handle keeps its loop alive now
    // (a logger flush, an idle timer) holds no data worth waiting for.
    if (!this.exited) await this.worker.terminate();
  }

  /** Forced stop (deadline passed): the spool's committed batches are safe; the in-memory batch is lost. */
  async terminate(): Promise<void> {
    await this.worker.terminate();
  }
}
