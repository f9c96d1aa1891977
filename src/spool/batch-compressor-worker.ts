/**
 * The batch compressor thread (see batch-compressor.ts): compresses each job synchronously and
 * posts the result, transferred, on the results port. Runs until 'stop'.
 */
import { workerData } from 'node:worker_threads';
import { parentChannel } from '../flow/module-worker.js';
import { lowerThreadPriority } from '../flow/thread-priority.js';
import type { CompressorInit, CompressorResult, FromCompressor, ToCompressor } from './batch-compressor.js';
import { batchDigest, compressBatch } from './compression.js';

const { results } = workerData as CompressorInit;
const parent = parentChannel<ToCompressor, FromCompressor>();

lowerThreadPriority('batch-compressor');
parent.on((job) => {
  if (job.type === 'stop') {
    results.close();
    parent.close();
    return;
  }
  let msg: CompressorResult;
  try {
    const digest = batchDigest(job.plain);
    const out = compressBatch(job.format, job.plain);
    msg = { type: 'compressed', seq: job.seq, out, digest, error: null };
  } catch (err) {
    msg = { type: 'compressed', seq: job.seq, out: null, digest: null, error: (err as Error).message };
  }
  // The output is a fresh Buffer; transferring its ArrayBuffer is safe only when it owns it whole (not a pool slice).
  const transfer = msg.out !== null && msg.out.byteOffset === 0 && msg.out.byteLength === msg.out.buffer.byteLength ? [msg.out.buffer as ArrayBuffer] : [];
  results.postMessage(msg, transfer);
});
parent.post({ type: 'ready' });
