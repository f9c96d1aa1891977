/**
 * The batch compressor thread (see batch-compressor.ts): compresses each job synchronously and
 * posts the result, transferred, on the results port. Runs until 'stop'.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { lowerThreadPriority } from '../flow/thread-priority.js';
import type { CompressorInit, CompressorJob, CompressorResult } from './batch-compressor.js';
import { compressBatch } from './compression.js';

const { results } = workerData as CompressorInit;

lowerThreadPriority('batch-compressor');
parentPort?.on('message', (job: CompressorJob) => {
  if (job === 'stop') {
    results.close();
    parentPort?.close();
    return;
  }
  let msg: CompressorResult;
  try {
    const out = compressBatch(job.format, job.plain);
    msg = { seq: job.seq, out, error: null };
  } catch (err) {
    msg = { seq: job.seq, out: null, error: (err as Error).message };
  }
  // The output is a fresh Buffer; transferring its ArrayBuffer is safe only when it owns it whole (not a pool slice).
  const transfer = msg.out !== null && msg.out.byteOffset === 0 && msg.out.byteLength === msg.out.buffer.byteLength ? [msg.out.buffer as ArrayBuffer] : [];
  results.postMessage(msg, transfer);
});
parentPort?.postMessage('ready');
