import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { DecodeService, type SetMeta } from '../../src/decode/decode-service.js';
import { RecordContext } from '../../src/decode/template/record-context.js';
import type { ExporterPacket } from '../../src/flow/exporter-packet.js';
import type { FlowRecord } from '../../src/flow/flow-record.js';
import { FusedSetWriter, type FusedRecordWriter } from '../../src/ingest-worker/fused-writer.js';
import { dataSet, exporterPacket, ipfixMessage, ipfixTemplateSet, type FieldDef } from '../support/ipfix-builder.js';
import { Spool, type AppendResult } from '../../src/spool/spool.js';
import { Batcher, type BatcherOptions } from '../../src/ingest-worker/batcher.js';
import { BatchCompressor } from '../../src/spool/batch-compressor.js';
import { BatchEncoder } from '../../src/batch/encoder.js';
import { decodeBatch } from '../../src/batch/decoder.js';
import { decompressBatch, SEAL_FORMAT_BROTLI, SEAL_FORMAT_DEFLATE, SEAL_FORMAT_NONE } from '../../src/spool/compression.js';
import { batchAeadEngine, useBatchAeadEngine, type BatchAeadEngine } from '../../src/spool/spool-crypto.js';
import { edgeRecords, ipv4Records, repoRoot, tempDir, testKek } from '../support/spool-fixtures.js';
import { corpora } from '../support/corpora.js';
import { appendRecords, enqueueRecords, exportRecords, leaseRecords } from '../support/spool-records.js';
import { SpoolError } from '../../src/flow/errors.js';

const KEK = testKek(1);

/** The ingest worker's Batcher (queued, streaming into `spool`) with an age timer that never fires: batches close by count, bytes or flush(). */
function queuedBatcher(spool: Spool, options: BatcherOptions): Batcher {
  return new Batcher(spool.writer, { maxBytes: 1 << 20, maxAgeMs: 1000, ...options, queued: true, setTimer: () => null, clearTimer: () => undefined });
}

function noRaw(records: readonly FlowRecord[]): FlowRecord[] {
  return records.map((r) => ({ ...r, raw: null }));
}

describe('spool round trip', () => {
  test('records in → batches → records out, exact (64-bit, IPv6), across a reopen', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const a = ipv4Records(1234, 7);
      const b = edgeRecords();
      let spool = await Spool.open({ dir, kek: KEK });
      const ra = appendRecords(spool.writer, a);
      const rb = appendRecords(spool.writer, b);
      assert.equal(ra.id, 1);
      assert.equal(rb.id, 2);
      assert.equal(ra.droppedRecords + rb.droppedRecords, 0);
      spool.close();
      spool.close(); // idempotent
      spool = await Spool.open({ dir, kek: KEK });
      const leased = leaseRecords(spool.reader, 10);
      assert.deepEqual(leased.map((l) => l.id), [1, 2]);
      assert.deepStrictEqual(leased[0]!.records, noRaw(a));
      assert.deepStrictEqual(leased[1]!.records, noRaw(b));
      assert.equal(leased[1]!.records[0]!.octets, 18446744073709551615n);
      assert.equal(leased[0]!.recordCount, 1234);
      assert.equal(leased[0]!.attempts, 1);
      assert.ok(leased[0]!.bytes > 0);
      assert.deepStrictEqual(exportRecords(spool.inspector), noRaw([...a, ...b]));
      spool.close();
    } finally {
      cleanup();
    }
  });

  test('a spool sealed by one AEAD engine verifies and reads with the other (libsodium ⇄ OpenSSL), across reopens', async () => {
    const { dir, cleanup } = tempDir();
    const initial = batchAeadEngine();
    try {
      const order: BatchAeadEngine[] = ['libsodium', 'openssl', 'libsodium'];
      const written: FlowRecord[] = [];
      for (const [i, e] of order.entries()) {
        useBatchAeadEngine(e);
        const spool = await Spool.open({ dir, kek: KEK });
        useBatchAeadEngine(e); // open() picks the engine again (sodiumReady)
        const records = i === 1 ? edgeRecords() : ipv4Records(300 + i, i);
        appendRecords(spool.writer, records);
        written.push(...noRaw(records));
        spool.close();
      }
      for (const e of ['openssl', 'libsodium'] as const) {
        const spool = await Spool.open({ dir, kek: KEK });
        useBatchAeadEngine(e);
        assert.equal(spool.inspector.verify().ok, true, e);
        assert.deepStrictEqual(exportRecords(spool.inspector), written, e);
        assert.deepEqual(spool.reader.lease(10).map((l) => l.id), [1, 2, 3], e);
        spool.close();
      }
    } finally {
      useBatchAeadEngine(initial);
      cleanup();
    }
  });

  test('deflate and brotli batches mix in one spool (compression is per batch, bound into its associated data)', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const a = ipv4Records(500, 1);
      const b = ipv4Records(500, 2);
      let spool = await Spool.open({ dir, kek: KEK, compression: 'deflate' });
      appendRecords(spool.writer, a);
      spool.close();
      spool = await Spool.open({ dir, kek: KEK });
      appendRecords(spool.writer, b);
      const db = new Database(join(dir, 'spool.db'), { readonly: true });
      assert.deepEqual((db.prepare('SELECT format FROM batches ORDER BY id').all() as { format: number }[]).map((r) => r.format), [1, 2]);
      db.close();
      assert.deepStrictEqual(leaseRecords(spool.reader, 2).map((l) => l.records), [noRaw(a), noRaw(b)]);
      assert.equal(spool.inspector.verify().ok, true);
      spool.close();
    } finally {
      cleanup();
    }
  });

  test('lease skips leased and parked batches; release, park, ack; out-of-order acks keep the chain verifiable', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const spool = await Spool.open({ dir, kek: KEK });
      for (let i = 0; i < 6; i++) appendRecords(spool.writer, ipv4Records(10 + i, i));
      assert.deepEqual(spool.reader.lease(2).map((l) => l.id), [1, 2]);
      assert.deepEqual(spool.reader.lease(2).map((l) => l.id), [3, 4]);
      spool.reader.release(1);
      const again = spool.reader.lease(1);
      assert.deepEqual(again.map((l) => [l.id, l.attempts]), [[1, 2]]);
      spool.reader.park(3, 'rejected by receiver: 400');
      spool.reader.ack(4); // out of order: tombstone
      spool.reader.ack(2); // out of order: tombstone
      let st = spool.inspector.status();
      assert.equal(st.batches, 4);
      assert.equal(st.parkedBatches, 1);
      assert.deepEqual(st.parkedByReason, { 'rejected by receiver: 400': 1 });
      assert.equal(st.tombstones, 2);
      assert.equal(spool.inspector.verify().ok, true);
      spool.reader.ack(1); // front: 1 and tombstone 2 are deleted, the anchor moves to 2
      st = spool.inspector.status();
      assert.equal(st.tombstones, 1);
      assert.equal(st.records, 12 + 14 + 15);
      const v = spool.inspector.verify();
      assert.equal(v.ok, true, JSON.stringify(v));
      assert.equal(v.verified, 3);
      assert.deepEqual(spool.reader.lease(10).map((l) => l.id), [5, 6]);
      spool.reader.ack(999); // unknown: counted no-op
      spool.reader.ack(4); // already acked: counted no-op
      assert.equal(spool.inspector.status().ackMisses, 2);
      assert.equal(spool.reader.unpark(), 1);
      assert.deepEqual(spool.reader.lease(10).map((l) => l.id), [3]);
      for (const id of [3, 5, 6]) spool.reader.ack(id);
      st = spool.inspector.status();
      assert.equal(st.batches, 0);
      assert.equal(st.tombstones, 0);
      assert.equal(spool.inspector.verify().ok, true);
      // Ids are never reused.
      assert.equal(appendRecords(spool.writer, ipv4Records(1)).id, 7);
      assert.equal(spool.inspector.verify().ok, true);
      spool.close();
    } finally {
      cleanup();
    }
  });

  test('lease hands out verified batch-format bytes (decoded by the drain, or in its upload workers), each batch once', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const spool = await Spool.open({ dir, kek: KEK });
      const a = ipv4Records(40, 1);
      const b = edgeRecords();
      appendRecords(spool.writer, a);
      appendRecords(spool.writer, b);
      const [first] = spool.reader.lease(1);
      assert.equal(first?.id, 1);
      assert.equal(first.recordCount, 40);
      assert.deepStrictEqual(decodeBatch(first.batch), noRaw(a));
      // A leased batch is not leased again.
      const rest = spool.reader.lease(5);
      assert.deepEqual(rest.map((l) => l.id), [2]);
      assert.deepStrictEqual(decodeBatch(rest[0]!.batch), noRaw(b));
      spool.reader.ack(1);
      spool.reader.ack(2);
      assert.equal(spool.inspector.status().batches, 0);
      spool.close();
    } finally {
      cleanup();
    }
  });

  test('lease pages past many batches already leased here', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const spool = await Spool.open({ dir, kek: KEK });
      for (let i = 0; i < 300; i++) appendRecords(spool.writer, ipv4Records(1, i));
      assert.deepEqual(spool.reader.lease(280).map((l) => l.id), Array.from({ length: 280 }, (_, i) => i + 1));
      spool.reader.release(3);
      assert.deepEqual(spool.reader.lease(30).map((l) => l.id), [3, ...Array.from({ length: 20 }, (_, i) => 281 + i)]);
      assert.deepEqual(spool.reader.lease(5), []);
      assert.equal(spool.inspector.status().leased, 300);
      spool.close();
    } finally {
      cleanup();
    }
  });

  test('an idle spool still checkpoints its last commits (the power-cut window does not wait for traffic)', async () => {
    const { dir, cleanup } = tempDir();
    try {
      let now = 1_763_800_000_000;
      const ticks: (() => void)[] = [];
      const spool = await Spool.open({ dir, kek: KEK, clock: () => now, setInterval: (fn) => ticks.push(fn), clearInterval: () => undefined });
      assert.equal(ticks.length, 1);
      appendRecords(spool.writer, ipv4Records(100));
      now += 1_000;
      ticks[0]!(); // the first mark also records (in the database) that marks exist
      assert.ok(existsSync(join(dir, 'spool.hwm')));
      appendRecords(spool.writer, ipv4Records(100));
      assert.ok(statSync(join(dir, 'spool.db-wal')).size > 0);
      ticks[0]!(); // not due yet
      assert.ok(statSync(join(dir, 'spool.db-wal')).size > 0);
      now += 1_000;
      ticks[0]!();
      assert.equal(statSync(join(dir, 'spool.db-wal')).size, 0);
      spool.close();
    } finally {
      cleanup();
    }
  });

  test('synchronous normal: an idle spool checkpoints a commit within 1.25 checkpoint intervals, whatever the idle tick\'s phase', async () => {
    const interval = 1_000;
    for (const phase of [0.01, 0.5, 0.99]) {
      const { dir, cleanup } = tempDir();
      try {
        const t0 = 1_763_800_000_000;
        let now = t0;
        let tick: () => void = () => undefined;
        let period = 0;
        const spool = await Spool.open({
          dir,
          kek: KEK,
          synchronous: 'normal',
          checkpointIntervalMs: interval,
          clock: () => now,
          setInterval: (fn, ms) => {
            tick = fn;
            period = ms;
          },
          clearInterval: () => undefined,
        });
        const walBytes = (): number => statSync(join(dir, 'spool.db-wal')).size;
        // A commit an interval after the last checkpoint is checkpointed at once (checked at each
        // commit). The first one also records in the database that high-water marks exist, so a
        // second one, with the WAL then empty, fixes the last checkpoint at t0 + 2 intervals.
        now = t0 + interval;
        appendRecords(spool.writer, ipv4Records(10));
        now += interval;
        appendRecords(spool.writer, ipv4Records(10));
        assert.equal(walBytes(), 0, 'the due checkpoint ran with the commit');
        const checkpointAt = now;
        now += 1;
        appendRecords(spool.writer, ipv4Records(10));
        const committedAt = now;
        assert.ok(walBytes() > 0);
        // No further traffic: only the idle tick, firing every `period` at this phase, can checkpoint it.
        let coveredAt = -1;
        for (let k = 0; k < 20 && coveredAt < 0; k++) {
          const at = checkpointAt + (phase + k) * period;
          if (at <= committedAt) continue;
          now = at;
          tick();
          if (walBytes() === 0) coveredAt = now;
        }
        assert.ok(coveredAt > 0, `phase ${phase}: the idle tick checkpointed the commit`);
        assert.ok(coveredAt - committedAt <= 1.25 * interval, `phase ${phase}: checkpointed ${coveredAt - committedAt} ms after the commit (tick every ${period} ms)`);
        spool.close();
      } finally {
        cleanup();
      }
    }
  });

  test('leases are in memory: after reopening, unacked batches are leasable again', async () => {
    const { dir, cleanup } = tempDir();
    try {
      let spool = await Spool.open({ dir, kek: KEK });
      appendRecords(spool.writer, ipv4Records(5));
      appendRecords(spool.writer, ipv4Records(5));
      assert.equal(spool.reader.lease(5).length, 2);
      spool.close();
      spool = await Spool.open({ dir, kek: KEK });
      assert.deepEqual(spool.reader.lease(5).map((l) => [l.id, l.attempts]), [[1, 2], [2, 2]]);
      spool.close();
    } finally {
      cleanup();
    }
  });

  test('decoder state is stored encrypted and survives a reopen; a tampered state reads as null', async () => {
    const { dir, cleanup } = tempDir();
    try {
      let spool = await Spool.open({ dir, kek: KEK });
      assert.equal(spool.decoderState.load(), null);
      const state = new TextEncoder().encode('templates: 256=[8,12,7,11] canary-template-state');
      spool.decoderState.save(state);
      spool.close();
      const raw = new Database(join(dir, 'spool.db'));
      const blob = (raw.prepare('SELECT blob FROM decoder_state').get() as { blob: Buffer }).blob;
      assert.equal(blob.includes(Buffer.from('canary-template-state')), false);
      raw.close();
      spool = await Spool.open({ dir, kek: KEK });
      assert.deepEqual(spool.decoderState.load(), state);
      spool.close();
      const db = new Database(join(dir, 'spool.db'));
      db.prepare('UPDATE decoder_state SET blob = ?').run(Buffer.concat([blob.subarray(0, 30), Buffer.from([blob[30]! ^ 1]), blob.subarray(31)]));
      db.close();
      spool = await Spool.open({ dir, kek: KEK });
      assert.equal(spool.decoderState.load(), null);
      spool.close();
    } finally {
      cleanup();
    }
  });

  test('epoch keys rotate with time and are destroyed when their epoch is empty (crypto-shredding)', async () => {
    const { dir, cleanup } = tempDir();
    try {
      let now = 1_763_800_000_000;
      const spool = await Spool.open({ dir, kek: KEK, epochMs: 60_000, clock: () => now });
      appendRecords(spool.writer, ipv4Records(3)); // epoch 1
      now += 61_000;
      appendRecords(spool.writer, ipv4Records(3)); // epoch 2
      assert.equal(spool.inspector.status().epochs, 2);
      const db = new Database(join(dir, 'spool.db'), { readonly: true });
      assert.deepEqual((db.prepare('SELECT epoch FROM batches ORDER BY id').all() as { epoch: number }[]).map((r) => r.epoch), [1, 2]);
      spool.reader.lease(1);
      now += 5 * 60_000; // past epoch 1's end plus the shredding grace
      spool.reader.ack(1);
      assert.deepEqual((db.prepare('SELECT id FROM epochs').all() as { id: number }[]).map((r) => r.id), [2]);
      assert.equal(spool.inspector.status().shreddedEpochs, 1);
      db.close();
      assert.equal(spool.inspector.verify().ok, true);
      spool.close();
    } finally {
      cleanup();
    }
  });

  test('Batcher groups by count, bytes and age and appends to the spool', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const spool = await Spool.open({ dir, kek: KEK });
      const timers: (() => void)[] = [];
      const batcher = new Batcher(spool.writer, { maxRecords: 100, maxBytes: 1 << 20, maxAgeMs: 1000, setTimer: (fn) => timers.push(fn), clearTimer: () => undefined });
      batcher.accept(ipv4Records(250));
      assert.equal(spool.inspector.status().batches, 2);
      timers.at(-1)!(); // the age timer fires
      assert.equal(spool.inspector.status().batches, 3);
      assert.equal(spool.inspector.status().records, 250);
      batcher.accept(ipv4Records(5));
      batcher.close();
      assert.equal(spool.inspector.status().records, 255);
      assert.deepEqual(batcher.counters(), { batches: 4, records: 255, droppedRecords: 0, inFlightRecords: 0 });
      spool.close();
    } finally {
      cleanup();
    }
  });

  test('the compressor thread returns each batch compressed in the requested format, matched by sequence number', async () => {
    const compressor = await BatchCompressor.start();
    try {
      const plainA = new BatchEncoder().encode(ipv4Records(500, 8)).slice();
      const plainB = new BatchEncoder().encode(ipv4Records(300, 9)).slice();
      const sentA = plainA.slice();
      compressor.submit(7, SEAL_FORMAT_BROTLI, sentA);
      compressor.submit(8, SEAL_FORMAT_DEFLATE, plainB.slice());
      assert.equal(sentA.byteLength, 0, 'the batch was transferred, not copied');
      assert.throws(() => compressor.submit(9, SEAL_FORMAT_BROTLI, plainA.subarray(1)), RangeError);
      const got = new Map<number, Uint8Array | null>();
      for (let i = 0; i < 500 && got.size < 2; i++) {
        const r = compressor.poll();
        if (r === undefined) await new Promise((resolve) => setTimeout(resolve, 10));
        else got.set(r.seq, r.out);
      }
      assert.equal(got.size, 2);
      assert.ok(got.get(7)!.length < plainA.length);
      assert.deepEqual(new Uint8Array(decompressBatch(SEAL_FORMAT_BROTLI, got.get(7)!)), plainA);
      assert.deepEqual(new Uint8Array(decompressBatch(SEAL_FORMAT_DEFLATE, got.get(8)!)), plainB);
      assert.equal(compressor.poll(), undefined);
    } finally {
      await compressor.close();
      await compressor.close(); // idempotent
    }
  });

  test('a compressor thread that ends with batches out: they are dropped and counted, later batches compress inline', { timeout: 30_000 }, async () => {
    const { dir, cleanup } = tempDir();
    const compressor = await BatchCompressor.start();
    try {
      const spool = await Spool.open({ dir, kek: KEK });
      spool.writer.useCompressor(compressor);
      const batcher = queuedBatcher(spool, { maxRecords: 100 });
      batcher.accept(ipv4Records(100, 1));
      assert.equal(batcher.counters().inFlightRecords, 100, 'the batch is out on the thread');
      await compressor.close(); // its results port closes with it: the batch never comes back
      await spool.writer.settled();
      assert.deepEqual(batcher.counters(), { batches: 1, records: 0, droppedRecords: 100, inFlightRecords: 0 });
      batcher.accept(ipv4Records(100, 2));
      await spool.writer.settled();
      assert.deepEqual(batcher.counters(), { batches: 2, records: 100, droppedRecords: 100, inFlightRecords: 0 }, 'inline from now on');
      assert.equal(spool.writer.compressionStats().inline, 1);
      assert.equal(spool.inspector.status().records, 100);
      spool.close();
    } finally {
      await compressor.close();
      cleanup();
    }
  });

  test('close() waits for batches out on the compressor thread only up to compressorWaitMs; those not back are dropped and counted, the rest verifies', { timeout: 30_000 }, async () => {
    const { dir, cleanup } = tempDir();
    const compressor = await BatchCompressor.start();
    try {
      // A bound of 0: close() does not wait at all, so the batch just handed to the (live) thread cannot be back.
      const spool = await Spool.open({ dir, kek: KEK, compressorWaitMs: 0 });
      spool.writer.useCompressor(null);
      const results: { id: number | null; dropped: number }[] = [];
      const batcher = queuedBatcher(spool, { maxRecords: 100, onAppend: (r) => results.push({ id: r.id, dropped: r.droppedRecords }) });
      batcher.accept(ipv4Records(100, 3)); // compressed inline (committed by useCompressor below at the latest)
      spool.writer.useCompressor(compressor);
      batcher.accept(ipv4Records(100, 4));
      assert.equal(batcher.counters().inFlightRecords, 100, 'the second batch is out on the thread');
      const t0 = Date.now();
      spool.close();
      assert.ok(Date.now() - t0 < 2000, 'close() did not wait');
      assert.deepEqual(results, [{ id: 1, dropped: 0 }, { id: null, dropped: 100 }]);
      assert.deepEqual(batcher.counters(), { batches: 2, records: 100, droppedRecords: 100, inFlightRecords: 0 });
      const again = await Spool.open({ dir, kek: KEK });
      try {
        assert.equal(again.inspector.verify().ok, true);
        assert.equal(again.inspector.status().records, 100);
      } finally {
        again.close();
      }
    } finally {
      await compressor.close();
      cleanup();
    }
  });

  test('destroy() does not wait for the compressor thread: batches out on it are dropped and reported (reason closed, for the loss ledger), committed ones stay; close() and destroy() are idempotent', { timeout: 30_000 }, async () => {
    const { dir, cleanup } = tempDir();
    const compressor = await BatchCompressor.start();
    try {
      // compressorWaitMs is long: only destroy() may skip the wait.
      const spool = await Spool.open({ dir, kek: KEK, compressorWaitMs: 20_000 });
      const results: { id: number | null; dropped: number; reason: string | null }[] = [];
      const batcher = queuedBatcher(spool, { maxRecords: 100, onAppend: (r) => results.push({ id: r.id, dropped: r.droppedRecords, reason: r.dropReason }) });
      batcher.accept(ipv4Records(100, 5)); // compressed inline: no compressor attached yet
      spool.writer.useCompressor(compressor);
      batcher.accept(ipv4Records(100, 6));
      assert.equal(batcher.counters().inFlightRecords, 100, 'the second batch is out on the thread');
      spool.destroy();
      spool.destroy();
      spool.close();
      assert.deepEqual(results, [{ id: 1, dropped: 0, reason: null }, { id: null, dropped: 100, reason: 'closed' }]);
      assert.throws(() => spool.inspector.status(), (e: unknown) => e instanceof SpoolError && e.code === 'ERR_SPOOL_CLOSED');
      const again = await Spool.open({ dir, kek: KEK });
      try {
        assert.equal(again.inspector.verify().ok, true);
        const st = again.inspector.status();
        assert.equal(st.records, 100, 'the committed batch stays, the dropped one is not stored');
        again.close();
        again.close();
        again.destroy();
      } finally {
        again.close();
      }
    } finally {
      await compressor.close();
      cleanup();
    }
  });

  /** Serializes `records` into the spool's open batch and closes it; the result lands in `results[slot]`. */
  function queueBatch(spool: Spool, records: readonly FlowRecord[], results: (AppendResult | Error | undefined)[], slot: number): void {
    enqueueRecords(spool.writer, records, (err, result) => {
      results[slot] = err !== null && err !== undefined ? (err as Error) : (result ?? new Error('no result'));
    });
  }

  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

  test('overload (stored uncompressed): ready batches commit as a group — within 20 ms, or at once when 8 are ready — reported in order after the commit', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const spool = await Spool.open({ dir, kek: KEK });
      spool.writer.setCompressionBypass(true);
      const written: FlowRecord[] = [];
      const results: (AppendResult | Error | undefined)[] = [];
      const committed = (): number => {
        const db = new Database(join(dir, 'spool.db'), { readonly: true });
        try {
          return (db.prepare('SELECT COUNT(*) AS n FROM batches').get() as { n: number }).n;
        } finally {
          db.close();
        }
      };
      // Three batches: none is committed or reported before the group's deadline.
      for (let i = 0; i < 3; i++) {
        const records = ipv4Records(100, i);
        written.push(...noRaw(records));
        queueBatch(spool, records, results, i);
      }
      assert.equal(results.filter((r) => r !== undefined).length, 0, 'reported before the commit');
      assert.equal(committed(), 0);
      for (let waited = 0; results[2] === undefined && waited < 2000; waited += 5) await sleep(5);
      assert.deepEqual(results.map((r) => (r instanceof Error ? r.message : r?.id)), [1, 2, 3]);
      assert.equal(committed(), 3);
      // Eight ready batches commit at once, inside the eighth flushQueued().
      for (let i = 3; i < 11; i++) {
        const records = ipv4Records(100, i);
        written.push(...noRaw(records));
        queueBatch(spool, records, results, i);
        if (i < 10) assert.equal(results[3], undefined, `reported with ${i - 2} ready`);
      }
      assert.deepEqual(results.slice(3).map((r) => (r instanceof Error ? r.message : r?.id)), [4, 5, 6, 7, 8, 9, 10, 11]);
      // Two more, then close(): it commits them rather than leaving them to the timer.
      for (let i = 11; i < 13; i++) {
        const records = ipv4Records(100, i);
        written.push(...noRaw(records));
        queueBatch(spool, records, results, i);
      }
      spool.close();
      assert.deepEqual(results.slice(11).map((r) => (r instanceof Error ? r.message : r?.id)), [12, 13]);
      const again = await Spool.open({ dir, kek: KEK });
      try {
        assert.equal(again.inspector.verify().ok, true);
        assert.deepStrictEqual(exportRecords(again.inspector), written);
      } finally {
        again.close();
      }
    } finally {
      cleanup();
    }
  });

  test('a group that hits disk full rolls back as a whole and each batch is stored on its own (drop-oldest evicts and retries); counts exact', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const spool = await Spool.open({ dir, kek: KEK, maxDbBytes: 300_000, fullPolicy: 'drop-oldest' });
      spool.writer.setCompressionBypass(true);
      const results: (AppendResult | Error | undefined)[] = [];
      for (let i = 0; i < 60; i++) {
        queueBatch(spool, ipv4Records(300, i), results, i);
        if (i % 6 === 5) await sleep(40); // groups of six, committed by the timer
      }
      await spool.writer.settled();
      assert.equal(results.length, 60);
      let ok = 0;
      let evicted = 0;
      for (const r of results) {
        assert.ok(r !== undefined && !(r instanceof Error), r instanceof Error ? r.message : 'no result');
        if (r.id !== null) ok++;
        else assert.equal(r.dropReason, 'disk-full');
        evicted += r.evictedBatches;
      }
      // Disk-full eviction happens only on the single-batch retry path, so the groups fell back to it.
      assert.ok(evicted > 0, 'never hit the cap');
      const st = spool.inspector.status();
      assert.equal(st.batches, ok - evicted);
      assert.equal(spool.inspector.verify().ok, true);
      assert.equal(spool.inspector.integrityCheck(), 'ok');
      spool.close();
    } finally {
      cleanup();
    }
  });

  test('compression bypass (overload) and compression "none" store sealed, uncompressed batches that read back exactly', async () => {
    const { dir, cleanup } = tempDir();
    const compressor = await BatchCompressor.start();
    try {
      const spool = await Spool.open({ dir, kek: KEK });
      spool.writer.useCompressor(compressor);
      const batcher = queuedBatcher(spool, { maxRecords: 500 });
      const a = ipv4Records(500, 11);
      const b = ipv4Records(500, 12);
      const c = ipv4Records(500, 13);
      batcher.accept(a);
      spool.writer.setCompressionBypass(true);
      batcher.accept(b);
      spool.writer.setCompressionBypass(false);
      batcher.accept(c);
      await spool.writer.settled();
      assert.deepEqual(spool.writer.compressionStats(), { offThread: 2, inline: 0, bypassed: 1 });
      spool.close();
      let again = await Spool.open({ dir, kek: KEK, compression: 'none' });
      appendRecords(again.writer, edgeRecords());
      again.close();

      const db = new Database(join(dir, 'spool.db'), { readonly: true });
      const rows = db.prepare('SELECT format, bytes FROM batches ORDER BY id').all() as { format: number; bytes: number }[];
      db.close();
      assert.deepEqual(rows.map((r) => r.format), [SEAL_FORMAT_BROTLI, SEAL_FORMAT_NONE, SEAL_FORMAT_BROTLI, SEAL_FORMAT_NONE]);
      assert.ok(rows[1]!.bytes > rows[0]!.bytes * 1.2, `the uncompressed batch is larger (${rows[1]!.bytes} vs ${rows[0]!.bytes} bytes)`);

      again = await Spool.open({ dir, kek: KEK });
      try {
        const report = again.inspector.verify();
        assert.equal(report.ok, true, JSON.stringify(report.failures));
        assert.deepStrictEqual(exportRecords(again.inspector), noRaw([...a, ...b, ...c, ...edgeRecords()]));
      } finally {
        again.close();
      }
    } finally {
      await compressor.close();
      cleanup();
    }
  });

  test('streaming batches: cut at the exact serialized size; a record that cannot be serialized fails only its batch; closing the batcher commits its open batch', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const spool = await Spool.open({ dir, kek: KEK });
      const results: { id: number | null; dropped: number }[] = [];
      const batcher = queuedBatcher(spool, { maxRecords: 1_000_000, maxBytes: 4000, onAppend: (r) => results.push({ id: r.id, dropped: r.droppedRecords }) });
      const input = ipv4Records(400, 21);
      batcher.accept(input);
      await spool.writer.settled();
      const db = new Database(join(dir, 'spool.db'), { readonly: true });
      const counts = (db.prepare('SELECT records FROM batches ORDER BY id').all() as { records: number }[]).map((r) => r.records);
      db.close();
      // ~30–45 bytes per record: 4000-byte batches hold about a hundred; all but the open one are full.
      assert.ok(counts.length >= 3 && counts.every((c) => c > 60 && c < 160), JSON.stringify(counts));
      const open = batcher.counters();
      assert.equal(open.records + open.inFlightRecords + batcher.openRecords, 400);

      const bad = ipv4Records(3, 22);
      bad[1]!.srcAddr = 2 ** 33; // not an IPv4 address: the serializer refuses it
      batcher.flush();
      batcher.accept(bad);
      batcher.flush();
      batcher.accept(ipv4Records(5, 23));
      batcher.flush();
      await spool.writer.settled();
      assert.deepEqual(results.slice(-2).map((r) => r.dropped), [3, 0], 'the bad batch is dropped whole, the next one is stored');
      assert.equal(batcher.counters().droppedRecords, 3);

      batcher.accept(ipv4Records(7, 24)); // left open: close() must still store it
      batcher.close();
      spool.close();
      const again = await Spool.open({ dir, kek: KEK });
      try {
        assert.equal(again.inspector.verify().ok, true);
        assert.equal(again.inspector.status().records, 400 + 5 + 7);
      } finally {
        again.close();
      }
    } finally {
      cleanup();
    }
  });

  test('fused path (IPFIX/v9 bytes → open batch, no FlowRecord): cut inside sets at exact counts, same records out as the FlowRecord path, closed batcher falls back', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const expected = JSON.parse(readFileSync(join(corpora, 'expected.json'), 'utf8')) as { captures: Record<string, { feed_in_order: string[] }> };
      const packets: ExporterPacket[] = [];
      for (const [name, c] of Object.entries(expected.captures)) {
        for (const f of c.feed_in_order) packets.push({ payload: new Uint8Array(readFileSync(join(corpora, f))), exporter: '192.0.2.1', exporterPort: 2055, transport: 'udp', sessionKey: name, identity: null, receivedAtMs: 1_700_000_000_000 });
      }
      const reference: FlowRecord[] = [];
      const plain = new DecodeService({}, { rawRecords: false });
      for (const p of packets) reference.push(...plain.decode(p).records);

      const spool = await Spool.open({ dir, kek: KEK });
      const counts: number[] = [];
      const batcher = queuedBatcher(spool, { maxRecords: 7, onAppend: (r) => counts.push(r.records) });
      const fused = new DecodeService({}, { rawRecords: false, fused: new FusedSetWriter(batcher) });
      let direct = 0;
      for (const p of packets) {
        const o = fused.decode(p);
        direct += o.fusedRecords;
        batcher.accept(o.records); // NetFlow v5 / sFlow: the FlowRecord path, into the same batches
      }
      batcher.flush();
      await spool.writer.settled();
      assert.ok(direct > 100, `fused records: ${direct}`);
      assert.ok(counts.slice(0, -1).every((n) => n === 7), `every batch but the last has exactly maxRecords: ${JSON.stringify(counts)}`);
      assert.equal(counts.reduce((a, b) => a + b, 0), reference.length);
      const out = exportRecords(spool.inspector);
      assert.equal(out.length, reference.length);
      // Same records; the order can differ only where one packet mixes both paths (none in the corpora).
      assert.deepStrictEqual(out, noRaw(reference));
      assert.equal(spool.inspector.verify().ok, true);

      batcher.close();
      assert.equal(batcher.acceptsFused, false);
      const after = fused.decode(packets.find((p) => p.payload[1] === 10 && fused.decode(p).records.length > 0) ?? packets[0]!);
      assert.equal(after.fusedRecords, 0, 'a closed batcher takes no fused records: they come back as FlowRecords (and are counted as dropped there)');
      spool.close();
    } finally {
      cleanup();
    }
  });

  test('fused writers that throw: while decoding the batch is untouched and the error is the decoder\'s; part-way through a record the batch fails (counted)', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const spool = await Spool.open({ dir, kek: KEK });
      const results: number[] = [];
      const batcher = queuedBatcher(spool, { maxRecords: 100, onAppend: (r) => results.push(r.droppedRecords) });
      const buf = new Uint8Array(64);
      const view = new DataView(buf.buffer);
      const meta: SetMeta = { version: 10, transport: 'udp', exporter: '192.0.2.1', identity: null, observationDomainId: 0, exportTimeS: 1_700_000_000, v9UptimeMs: -1 };
      const ctx = new RecordContext();
      const result = { records: 0, malformed: false, malformedAt: 0 };
      batcher.accept(ipv4Records(3, 31));
      const whileDecoding: FusedRecordWriter = () => {
        throw new RangeError('offset is outside the bounds of the DataView');
      };
      assert.throws(() => batcher.writeFusedSet(whileDecoding, view, buf, 0, 64, 8, ctx, meta, result), RangeError);
      assert.equal(batcher.openRecords, 3, 'nothing was added');
      // Through a DecodeService the same failure is a counted decode error (its packet's records are lost, the batch is not).
      const fields: FieldDef[] = [{ id: 8, length: 4 }];
      const svc = new DecodeService({}, { rawRecords: false, fused: { writeSet: (t, v, b, p, end, c, m, r) => (batcher.writeFusedSet(whileDecoding, v, b, p, end, t.minLength, c, m, r), true) } });
      const out = svc.decode(exporterPacket(ipfixMessage({ sequence: 0 }, [ipfixTemplateSet([{ id: 256, fields }]), dataSet(256, fields, [['10.0.0.1']])])));
      assert.deepEqual(out.errors.map((e) => e.code), ['ERR_DECODE_BAD_RECORD']);
      batcher.flush();
      await spool.writer.settled();
      assert.deepEqual(results, [0], 'the batch with the three good records is stored');

      // Eight 8-byte records, each failing after its head (as a too-long exporter identity would).
      const partWay: FusedRecordWriter = (_v, _b, p, _end, _c, e) => {
        e.fusedRecordEnd = p + 8;
        e.writeHead(0, false, 'netflow', 10, 'udp', '192.0.2.1', null, 0, 1_700_000_000, 4, 1);
        throw new Error('serializer failure');
      };
      batcher.accept(ipv4Records(2, 32));
      batcher.writeFusedSet(partWay, view, buf, 0, 64, 8, ctx, meta, result);
      assert.equal(result.records, 8, 'every record of the set is counted (dropped with their batch), as on the FlowRecord path');
      batcher.flush();
      await spool.writer.settled();
      assert.deepEqual(results, [0, 10], 'the batch the failures happened in is dropped whole and counted');
      assert.equal(spool.inspector.verify().ok, true);
      assert.equal(batcher.acceptsFused, true);
      spool.close();
      assert.equal(batcher.acceptsFused, false, 'a closed spool takes no fused records: they take the FlowRecord path (counted as dropped there)');
    } finally {
      cleanup();
    }
  });

  for (const [withThread, synchronous] of [[true, 'full'], [false, 'full'], [false, 'normal']] as const) {
    test(`queued appends commit in call order, exact, with the chain intact (${withThread ? 'compressor thread' : 'no compressor thread: compressed inline'}, synchronous ${synchronous})`, async () => {
      const { dir, cleanup } = tempDir();
      const compressor = withThread ? await BatchCompressor.start() : null;
      try {
        const spool = await Spool.open({ dir, kek: KEK, synchronous });
        spool.writer.useCompressor(compressor);
        const results: (number | null)[] = [];
        const batcher = queuedBatcher(spool, { maxRecords: 100, onAppend: (r) => results.push(r.id) });
        const input = ipv4Records(1200, 5);
        // 12 batches at once: the first few go to the thread, the rest compress here (bounded); all commit in order.
        batcher.accept(input);
        const c = batcher.counters();
        assert.equal(c.records + c.inFlightRecords, 1200);
        // Inline: with normal each batch commits at once; with full they wait for a group (one
        // WAL sync for several): the first 8 commit together when the 8th is ready, the other 4
        // within the group timer.
        if (!withThread) assert.equal(c.inFlightRecords, synchronous === 'normal' ? 0 : 400, `inline compression, synchronous ${synchronous}`);
        await spool.writer.settled();
        assert.deepEqual(batcher.counters(), { batches: 12, records: 1200, droppedRecords: 0, inFlightRecords: 0 });
        assert.deepEqual(results, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        assert.deepStrictEqual(exportRecords(spool.inspector), noRaw(input));

        // A synchronous append() behind queued ones commits after them; close() commits what is still queued.
        const more = ipv4Records(300, 6);
        batcher.accept(more.slice(0, 200));
        const direct = appendRecords(spool.writer, more.slice(200, 250));
        assert.equal(direct.id, 15);
        batcher.accept(more.slice(250));
        batcher.flush();
        spool.close();
        assert.deepEqual(results.slice(12), [13, 14, 16]);
        const again = await Spool.open({ dir, kek: KEK });
        try {
          const report = again.inspector.verify();
          assert.equal(report.ok, true, JSON.stringify(report.failures));
          assert.equal(report.batches, 16);
          assert.deepStrictEqual(exportRecords(again.inspector), noRaw([...input, ...more]));
        } finally {
          again.close();
        }
      } finally {
        await compressor?.close();
        cleanup();
      }
    });
  }

  test('an appending worker thread and a draining main thread share one spool file', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const total = 40;
      const worker = new Worker(
        // tsx's loader is registered in the worker so it can load the TypeScript child module.
        `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(join(repoRoot, 'test/support/spool-child.ts'))}); })
           .then((m) => m.appendInWorker(${JSON.stringify(dir)}, ${total}));`,
        { eval: true },
      );
      const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
      let main: Spool | null = null;
      const got = new Set<number>();
      let records = 0;
      const deadline = Date.now() + 30_000;
      while (got.size < total && Date.now() < deadline) {
        if (main === null) {
          try {
            main = await Spool.open({ dir, kek: testKek(9), create: false });
          } catch {
            await new Promise((r) => setTimeout(r, 20));
            continue;
          }
        }
        for (const b of leaseRecords(main.reader, 8)) {
          got.add(b.id);
          records += b.records.length;
          main.reader.ack(b.id);
        }
        await new Promise((r) => setTimeout(r, 5));
      }
      assert.equal(await exited, 0);
      assert.ok(main !== null);
      assert.equal(got.size, total);
      assert.equal(records, total * 50);
      assert.equal(main.inspector.status().batches, 0);
      assert.equal(main.inspector.verify().ok, true);
      assert.equal(main.inspector.status().quarantined, 0);
      main.close();
    } finally {
      cleanup();
    }
  });
});
