import type { Worker } from 'node:worker_threads';
import { startModuleWorker, workerChannel, type ThreadChannel } from '../flow/module-worker.js';
import type { FiltersConfig } from '../filter/compile-filters.js';
import { DEFAULT_INGEST_CHANNEL, IngestChannel, type IngestChannelOptions } from './ingest-channel.js';
import type { IngestWorkerInit, IngestWorkerStats, MainToWorker, WorkerToMain } from './messages.js';

/**
 * The ingest worker as the main thread sees it: the thread (thread.ts) and the channel that
 * feeds it packets. The composition root (src/app.ts) starts it first — ready() resolves once
 * the worker has opened the spool, so a wrong key fails start-up before any socket is bound —
 * and stops it after the listeners.
 */

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

export class IngestWorker {
  readonly channel: IngestChannel;
  private readonly worker: Worker;
  private readonly thread: ThreadChannel<WorkerToMain, MainToWorker>;
  private lastStats: IngestWorkerStats | null = null;
  private readonly readyPromise: Promise<void>;
  private readonly stoppedPromise: Promise<void>;
  private resolveStopped: () => void = () => undefined;
  private closePromise: Promise<void> | null = null;
  private exited = false;
  /** Set once the worker reported 'stopped': its exit after that (or our destroy()) is expected. */
  private stopped = false;
  private onFatal: (err: Error) => void = () => undefined;
  private readonly committedListeners: ((lastBatchId: number) => void)[] = [];
  /** Where the thread's JSON log lines go (the app's log output; standard error until one is set). */
  private logLine: (line: string) => void = (line) => process.stderr.write(line);

  constructor(init: IngestWorkerInit, channelOptions: IngestChannelOptions = DEFAULT_INGEST_CHANNEL) {
    this.worker = startModuleWorker(import.meta.url, new URL('./thread', import.meta.url), { workerData: init, resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB } });
    this.thread = workerChannel(this.worker);
    this.channel = new IngestChannel((msg, transfer) => {
      this.thread.post(msg, transfer);
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
    this.thread.on((msg) => {
      switch (msg.type) {
        case 'ready':
          resolveReady();
          break;
        case 'startup-error':
          rejectReady(Object.assign(new Error(msg.message), { code: msg.code, setting: msg.setting }));
          break;
        case 'ack':
          this.channel.acknowledge(msg.id, msg.payloads);
          break;
        case 'committed':
          for (const l of this.committedListeners) l(msg.lastBatchId);
          break;
        case 'stats':
          this.lastStats = msg.stats;
          break;
        case 'log':
          this.logLine(msg.line);
          break;
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

  /** Sends the thread's log lines to `write` (LogOutput.write) instead of standard error. */
  setLogOutput(write: (jsonLine: string) => void): void {
    this.logLine = write;
  }

  /** Called when the worker dies unexpectedly (the app treats it as fatal). */
  setFatalHandler(handler: (err: Error) => void): void {
    this.onFatal = handler;
  }

  /** Called each time batches were committed to the spool, with the newest id (the drain's wake-up). */
  onCommitted(listener: (lastBatchId: number) => void): void {
    this.committedListeners.push(listener);
  }

  /** The worker's last statistics snapshot (null until its first report). */
  stats(): IngestWorkerStats | null {
    return this.lastStats;
  }

  reload(update: { readonly filters: FiltersConfig }): void {
    if (!this.exited) this.thread.post({ type: 'reload', filters: update.filters });
  }

  /**
   * Graceful: the channel stops taking packets (posting what it holds); the worker commits its
   * open batch to the spool, persists decoder state and closes the spool; then the thread
   * ends. Idempotent.
   */
  close(): Promise<void> {
    this.closePromise ??= (async (): Promise<void> => {
      this.channel.close();
      if (!this.exited) this.thread.post({ type: 'stop' });
      await this.stoppedPromise;
      // The worker has committed and closed the spool; whatever handle keeps its loop alive now
      // (a logger flush, an idle timer) holds no data worth waiting for.
      if (!this.exited) await this.worker.terminate();
    })();
    return this.closePromise;
  }

  /** Forced (deadline passed): the thread ends now; committed batches are safe, the open batch is lost. Idempotent. */
  async destroy(): Promise<void> {
    this.channel.close();
    await this.worker.terminate();
  }
}
