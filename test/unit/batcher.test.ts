import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Batcher } from '../../src/ingest-worker/batcher.js';
import type { AppendDone, AppendResult, BatchSink } from '../../src/flow/pipeline.js';
import { ipv4Records } from '../support/spool-fixtures.js';

class Target implements BatchSink {
  readonly batches: number[] = [];
  readonly writable = true;
  dropNext = false;
  append(_batch: Uint8Array, recordCount: number): AppendResult {
    this.batches.push(recordCount);
    const dropped = this.dropNext ? recordCount : 0;
    this.dropNext = false;
    return { id: dropped ? null : this.batches.length, records: recordCount, droppedRecords: dropped, evictedBatches: 0, evictedRecords: 0, evictedDiskFullRecords: 0, dropReason: dropped ? 'io' : null };
  }
  enqueue(batch: Uint8Array, recordCount: number, done: AppendDone): void {
    done(null, this.append(batch, recordCount));
  }
  reject(): void {
    throw new Error('not reached: every record here serializes');
  }
}

function fakeTimers(): { set: (fn: () => void, ms: number) => unknown; clear: (h: unknown) => void; fire: () => void; pending: () => number } {
  const timers = new Map<number, () => void>();
  let next = 1;
  return {
    set: (fn) => {
      timers.set(next, fn);
      return next++;
    },
    clear: (h) => timers.delete(h as number),
    fire: () => {
      const all = [...timers.values()];
      timers.clear();
      for (const fn of all) fn();
    },
    pending: () => timers.size,
  };
}

test('flushes by record count, splitting large inputs', () => {
  const t = new Target();
  const timers = fakeTimers();
  const b = new Batcher(t, { maxRecords: 100, setTimer: timers.set, clearTimer: timers.clear });
  b.accept(ipv4Records(250));
  assert.deepEqual(t.batches, [100, 100]);
  assert.equal(timers.pending(), 1);
  b.flush();
  assert.deepEqual(t.batches, [100, 100, 50]);
  assert.equal(timers.pending(), 0);
});

test('flushes by estimated bytes', () => {
  const t = new Target();
  const timers = fakeTimers();
  const b = new Batcher(t, { maxRecords: 10_000, maxBytes: 40 * 25, setTimer: timers.set, clearTimer: timers.clear });
  b.accept(ipv4Records(60));
  assert.deepEqual(t.batches, [25, 25]);
});

test('flushes by age through the injected timer, once per batch', () => {
  const t = new Target();
  const timers = fakeTimers();
  let armedMs = -1;
  const b = new Batcher(t, { maxAgeMs: 750, setTimer: (fn, ms) => ((armedMs = ms), timers.set(fn, ms)), clearTimer: timers.clear });
  b.accept(ipv4Records(3));
  b.accept(ipv4Records(4));
  assert.equal(timers.pending(), 1);
  assert.equal(armedMs, 750);
  assert.deepEqual(t.batches, []);
  timers.fire();
  assert.deepEqual(t.batches, [7]);
  timers.fire();
  assert.deepEqual(t.batches, [7]);
});

test('counts appended and dropped records; close flushes, is idempotent, and later records are counted as dropped and reported (onError)', () => {
  const t = new Target();
  const timers = fakeTimers();
  const errors: number[] = [];
  const b = new Batcher(t, { maxRecords: 10, setTimer: timers.set, clearTimer: timers.clear, onError: (_e, n) => errors.push(n) });
  t.dropNext = true;
  b.accept(ipv4Records(10));
  b.accept(ipv4Records(5));
  b.close();
  b.close();
  b.accept(ipv4Records(2));
  assert.deepEqual(t.batches, [10, 5]);
  assert.deepEqual(b.counters(), { batches: 2, records: 5, droppedRecords: 12, inFlightRecords: 0 });
  assert.deepEqual(errors, [2], 'the records after close() reach the outcome handler (the loss ledger counts them)');
  const closed = (): never => {
    throw new Error('closed');
  };
  const throwing = new Batcher({ append: closed, enqueue: closed, reject: closed, writable: true }, { maxRecords: 3, setTimer: timers.set, clearTimer: timers.clear, onError: (_e, n) => errors.push(n) });
  throwing.accept(ipv4Records(3));
  assert.deepEqual(errors, [2, 3]);
  assert.equal(throwing.counters().droppedRecords, 3);
});
