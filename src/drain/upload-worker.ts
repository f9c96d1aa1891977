/**
 * Upload worker thread: takes one leased batch in the batch format (src/batch; transferred,
 * not cloned), turns it into request bodies (Fusion JSON + compression) and uploads them with
 * its own keep-alive HTTPS pool. The drain's main thread keeps the spool, the token, pacing
 * and the ack/park/release decision; the worker only reports which chunks got 2xx and how the
 * batch ended. Decoding here rather than on the drain's thread keeps that thread to leasing,
 * pacing and acks (the format decodes at ~0.2 µs/record).
 */
import { workerData } from 'node:worker_threads';
import { parentChannel } from '../flow/module-worker.js';
import { lowerThreadPriority } from '../flow/thread-priority.js';
import { decodeBatch } from '../batch/decoder.js';
import { uploadChunk, type UploadAnswer } from './chunk-upload.js';
import { FusionHttp } from './fusion-http.js';
import { idempotencyKey, UploadEncoder, type EncodeTimings } from './upload-encoder.js';
import type { DoneChunk, FromUploadWorker, ToUploadWorker, UploadJob, UploadReply, UploadWorkerInit } from './upload-pool.js';

const init = workerData as UploadWorkerInit;
// A backlog can wait in the spool; live ingest cannot (src/flow/thread-priority.ts). gzip runs
// on this thread so that the low priority covers it.
lowerThreadPriority('upload-worker');
const encoder = new UploadEncoder(init.encoder, true);
const http = new FusionHttp(init.tls);
const target = { http, uploadUrl: init.uploadUrl, forbiddenRetryAfterMs: init.forbiddenRetryAfterMs };
const abort = new AbortController();
const parent = parentChannel<ToUploadWorker, FromUploadWorker>();

async function run(job: UploadJob): Promise<UploadReply> {
  const done: DoneChunk[] = [];
  let requests = 0;
  let outcome: UploadAnswer = { kind: 'ok', status: 0, requestId: null };
  let chunkCount = 0;
  try {
    const records = decodeBatch(job.batch);
    const timings: EncodeTimings = { compressMs: 0 };
    const chunks = await encoder.encode(records, timings);
    chunkCount = chunks.length;
    const skip = new Set(job.skip);
    const t0 = performance.now();
    for (const chunk of chunks) {
      const key = idempotencyKey(job.scope, job.batchId, job.createdAtMs, chunk.first, chunk.end);
      if (skip.has(key)) continue;
      requests++;
      const answer = await uploadChunk(target, chunk, key, job.token, Date.now, abort.signal);
      outcome = answer;
      if (answer.kind !== 'ok') break;
      done.push({ key, records: chunk.recordCount, bytes: chunk.body.length, rawBytes: chunk.rawBytes, multiChunk: chunks.length > 1, status: answer.status, requestId: answer.requestId });
    }
    // Only clean first deliveries say how fast the network is: failures end early or time
    // out, and a resumed batch compressed every chunk but sent only some.
    if (outcome.kind === 'ok' && job.skip.length === 0) encoder.gzip.observe(timings.compressMs, performance.now() - t0 + job.pacedMs);
  } catch (err) {
    outcome = { kind: 'retry', reason: 'encode', message: `batch ${job.batchId}: ${(err as Error).message}`, retryAfterMs: null };
  }
  return { type: 'reply', id: job.id, done, chunks: chunkCount, requests, outcome, gzipLevel: encoder.gzip.level };
}

parent.on((msg) => {
  if (msg.type === 'close') {
    abort.abort();
    void http.destroy().then(() => parent.close());
    return;
  }
  if (msg.type === 'reload-ca') {
    try {
      http.reloadCa(msg.caFile);
    } catch {
      // The main thread read the same file a moment before and reported any problem with it.
    }
    return;
  }
  void run(msg.job).then((reply) => parent.post(reply));
});
