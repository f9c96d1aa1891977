import { MessageChannel, receiveMessageOnPort, type MessagePort, type Worker } from 'node:worker_threads';
import { startModuleWorker, whenWorkerReady, workerChannel, type StartupMessage, type ThreadChannel } from '../flow/module-worker.js';

/**
 * A thread that compresses serialized batches for the appending thread, so that the ingest
 * worker — the pipeline's bottleneck — only serializes, seals and commits. Compression is the
 * append path's costliest step (brotli-0: ~150 ns per IPv4 record on the bench machine).
 *
 * Why results are polled rather than delivered as events: the ingest worker is busiest exactly
 * when this matters, and a busy worker's event loop turns rarely (Node delivers every queued
 * channel message in one callback), so completion events — node:zlib's async API included —
 * would wait for seconds. Results come back on a dedicated MessagePort with no listener, read
 * synchronously with receiveMessageOnPort() by poll(), which the appending thread calls between
 * packets and from a short timer while work is outstanding.
 *
 * Invariants: a job carries only the serialized batch (transferred: memory only, never disk,
 * like every plaintext of the append path); results are matched by sequence number; the caller
 * decides the commit order (the spool's hash chain), this thread only compresses.
 */

/** To the compressor thread. */
export type ToCompressor = { readonly type: 'job'; readonly seq: number; readonly format: number; readonly plain: Uint8Array } | { readonly type: 'stop' };

/** From the compressor thread: on its parent port, its StartupMessage. */
export type FromCompressor = StartupMessage;

/** From the compressor thread, on the results port. */
export interface CompressorResult {
  readonly type: 'compressed';
  readonly seq: number;
  readonly out: Uint8Array | null;
  /** SHA-256 (hex) of the plaintext batch (batchDigest), for the audit trail. */
  readonly digest: string | null;
  readonly error: string | null;
}

export interface CompressorInit {
  readonly results: MessagePort;
}

export class BatchCompressor {
  private readonly exited: Promise<void>;
  private closing = false;
  private ended = false;

  private readonly channel: ThreadChannel<FromCompressor, ToCompressor>;

  private constructor(
    private readonly worker: Worker,
    private readonly results: MessagePort,
  ) {
    this.channel = workerChannel(worker);
    this.exited = new Promise((resolve) => {
      worker.once('exit', () => {
        this.ended = true;
        resolve();
      });
    });
    // An uncaught error ends the thread ('exit' follows); the spool then stops waiting for it.
    worker.on('error', () => {
      this.ended = true;
    });
  }

  /** Starts the thread; resolves once it is ready to take jobs. */
  static async start(): Promise<BatchCompressor> {
    const { port1, port2 } = new MessageChannel();
    const init: CompressorInit = { results: port2 };
    const worker = startModuleWorker(import.meta.url, new URL('./batch-compressor-worker', import.meta.url), { workerData: init, transferList: [port2] });
    try {
      await whenWorkerReady(worker, 'batch compressor');
    } catch (err) {
      port1.close();
      throw err;
    }
    return new BatchCompressor(worker, port1);
  }

  /**
   * Queues `plain` for compression in `format` (the spool's seal format byte). Its ArrayBuffer
   * is transferred, not copied (a structured clone cost the ingest worker ~45 ns per record):
   * `plain` must own its whole buffer, and is empty (detached) afterwards.
   */
  submit(seq: number, format: number, plain: Uint8Array): void {
    if (plain.byteOffset !== 0 || plain.byteLength !== plain.buffer.byteLength) throw new RangeError('submit: the batch must own its whole ArrayBuffer (it is transferred)');
    this.channel.post({ type: 'job', seq, format, plain }, [plain.buffer as ArrayBuffer]);
  }

  /** False once the thread has ended (stopped, or crashed): results not yet polled may still be read, no new ones come. */
  get alive(): boolean {
    return !this.ended;
  }

  /** The next finished result, if any; never waits. */
  poll(): CompressorResult | undefined {
    const m = receiveMessageOnPort(this.results);
    return m === undefined ? undefined : (m.message as CompressorResult);
  }

  /**
   * Graceful: the thread ends after the job it is on; results not yet polled are lost, so
   * detach it from the spool first (useCompressor(null) waits for them). Idempotent.
   */
  close(): Promise<void> {
    if (!this.closing) {
      this.closing = true;
      // Referenced again so that a caller awaiting the thread's end keeps the event loop alive.
      this.worker.ref();
      this.channel.post({ type: 'stop' });
      this.results.close();
    }
    return this.exited;
  }

  /** Forced: ends the thread now; batches out on it are lost (the spool drops and counts them). Idempotent. */
  async destroy(): Promise<void> {
    this.closing = true;
    this.results.close();
    await this.worker.terminate();
    await this.exited;
  }
}
