import type { Worker } from 'node:worker_threads';
import { startModuleWorker, workerChannel, type ThreadChannel } from '../flow/module-worker.js';
import type { ChunkResult, UploadAnswer } from './chunk-upload.js';
import type { FusionTlsSettings } from './fusion-http.js';
import type { EncoderSettings } from './upload-encoder.js';

/**
 * A fixed pool of upload worker threads (upload-worker.ts). Each job is one batch; it goes to
 * the worker with the fewest jobs in flight. `destroy()` terminates the threads: jobs in
 * flight reject, and the drain releases their batches (nothing is acked without a reply).
 */

export interface UploadWorkerInit {
  readonly encoder: EncoderSettings;
  readonly tls: FusionTlsSettings;
  readonly uploadUrl: string;
  readonly forbiddenRetryAfterMs: number;
}

export interface UploadJob {
  readonly id: number;
  /** The batch in the batch format (src/batch), transferred to the worker. */
  readonly batch: Uint8Array;
  readonly batchId: number;
  readonly createdAtMs: number;
  readonly scope: string;
  /** Idempotency keys of chunks already delivered (not resent). */
  readonly skip: readonly string[];
  readonly token: string;
  /** Real time the drain held this batch back for the byte-rate cap (network time for the gzip level control). */
  readonly pacedMs: number;
}

export interface DoneChunk {
  readonly key: string;
  readonly records: number;
  readonly bytes: number;
  readonly rawBytes: number;
  /** The batch was split into several chunks (the drain remembers delivered ones). */
  readonly multiChunk: boolean;
  /** Fusion's answer to this chunk (status, request id). */
  readonly status: number;
  readonly requestId: string | null;
}

export interface UploadReply {
  readonly type: 'reply';
  readonly id: number;
  readonly done: readonly DoneChunk[];
  /** Chunks the batch was cut into (delivered now, earlier, or not yet). */
  readonly chunks: number;
  readonly requests: number;
  readonly outcome: UploadAnswer;
  /** The worker's gzip level after this job. */
  readonly gzipLevel: number;
}

/** To an upload worker. */
export type ToUploadWorker = { readonly type: 'job'; readonly job: UploadJob } | { readonly type: 'reload-ca'; readonly caFile: string | null } | { readonly type: 'close' };
/** From an upload worker: one reply per job. */
export type FromUploadWorker = UploadReply;

interface Slot {
  readonly worker: Worker;
  readonly channel: ThreadChannel<FromUploadWorker, ToUploadWorker>;
  readonly pending: Map<number, { resolve: (r: UploadReply) => void; reject: (e: Error) => void }>;
  dead: boolean;
}

/** One upload worker thread (upload-worker.ts next to this module). */
function createWorker(init: UploadWorkerInit): Worker {
  return startModuleWorker(import.meta.url, new URL('./upload-worker', import.meta.url), { workerData: init });
}

export class UploadPool {
  private readonly slots: Slot[] = [];
  private nextId = 1;
  private destroyed = false;

  constructor(size: number, init: UploadWorkerInit) {
    for (let i = 0; i < size; i++) {
      const worker = createWorker(init);
      const slot: Slot = { worker, channel: workerChannel(worker), pending: new Map(), dead: false };
      slot.channel.on((reply) => {
        const p = slot.pending.get(reply.id);
        slot.pending.delete(reply.id);
        p?.resolve(reply);
      });
      const fail = (err: Error): void => {
        slot.dead = true;
        for (const p of slot.pending.values()) p.reject(err);
        slot.pending.clear();
      };
      slot.worker.on('error', fail);
      slot.worker.on('exit', (code) => fail(new Error(`upload worker exited (${code})`)));
      // Idle workers must not keep the process alive.
      slot.worker.unref();
      this.slots.push(slot);
    }
  }

  get size(): number {
    return this.slots.length;
  }

  run(job: Omit<UploadJob, 'id'>): Promise<UploadReply> {
    let chosen: Slot | undefined;
    for (const s of this.slots) if (!s.dead && (chosen === undefined || s.pending.size < chosen.pending.size)) chosen = s;
    if (this.destroyed || chosen === undefined) return Promise.reject(new Error('upload workers are not running'));
    const slot = chosen;
    const id = this.nextId++;
    const full: UploadJob = { ...job, id };
    return new Promise<UploadReply>((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      slot.worker.ref();
      slot.channel.post({ type: 'job', job: full }, [job.batch.buffer as ArrayBuffer]);
    }).finally(() => {
      if (slot.pending.size === 0) slot.worker.unref();
    });
  }

  /** Each worker reads drain.fusion.caFile (`caFile`) again; the main thread checked the file just before. */
  reloadCa(caFile: string | null): void {
    for (const s of this.slots) if (!s.dead) s.channel.post({ type: 'reload-ca', caFile });
  }

  /** Graceful: workers finish nothing new and exit. */
  async close(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await Promise.all(this.slots.map(async (s) => {
      if (s.dead) return;
      s.channel.post({ type: 'close' });
      await s.worker.terminate();
    }));
  }

  /** Forced: in-flight jobs reject. */
  async destroy(): Promise<void> {
    this.destroyed = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}

export type { ChunkResult };
