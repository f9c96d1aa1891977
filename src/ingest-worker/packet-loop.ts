import type { DecodeOutcome, DecodeService } from '../decode/decode-service.js';
import { compileFilters, type FiltersConfig } from '../filter/compile-filters.js';
import { FlowFilter } from '../filter/flow-filter.js';
import type { FlowRecord } from '../flow/flow-record.js';
import { FusionJsonWriter } from '../flow/fusion-record.js';
import type { RecordSink } from '../flow/pipeline.js';
import type { RateLimitedLog } from '../observability/rate-limited-log.js';
import { PseudonymizeStage, type Pseudonymizer } from '../privacy/pseudonymizer.js';
import type { Batcher } from './batcher.js';
import { ExporterTable, type ExporterCounters } from './exporter-table.js';
import { FusedSetWriter } from './fused-writer.js';
import type { ExporterStats } from './messages.js';
import { unpackFrame, type PacketFrame } from './packet-frame.js';

/**
 * What the ingest worker does with each packet: decode it, hand its records through the flow
 * filter to the batcher, and count it (per exporter, per decode error). Two paths lead from
 * the decoder to the batch, with the same bytes and counts:
 * - the fused path: IPFIX/v9 records of compiled templates go from the packet bytes straight
 *   into the batcher's open batch (fused-writer.ts), flow filter rules running inside the
 *   generated writers on the values the FlowRecord would have (counted by the same FlowFilter);
 *   with no rules, the writers carry no filter code and the records are counted as passed;
 * - the FlowRecord path: NetFlow v5, sFlow, templates without a fused writer, and every record
 *   when stdoutRecords wants the record objects.
 * Which applies is re-decided on every filter reload.
 * With a pseudonymiser (privacy.pseudonymize), both paths replace the policy's addresses after
 * the filter has seen the real ones and before the record is serialized (or printed): the
 * fused writers call it inline, the FlowRecord path goes through PseudonymizeStage. Its key
 * rotates only between batches: before a frame (or timed housekeeping) past the period's end,
 * the open batch is flushed, then the key changes.
 */
export interface PacketLoopOptions {
  readonly decode: DecodeService;
  readonly batcher: Batcher;
  readonly filters: FiltersConfig;
  /** Also print accepted records as NDJSON Fusion records on stdout (they then all take the FlowRecord path). */
  readonly stdoutRecords: boolean;
  /** Malformed flow data is logged through this (rate-limited). */
  readonly decodeLog: RateLimitedLog;
  /** Pseudonymises addresses before they are written; null: stored as decoded. */
  readonly pseudonymizer?: Pseudonymizer | null;
  readonly clock?: () => number;
}

/** Prints accepted records as NDJSON Fusion records, then passes them on. */
class StdoutRecordSink implements RecordSink {
  private readonly json = new FusionJsonWriter();
  constructor(private readonly downstream: RecordSink) {}
  accept(records: readonly FlowRecord[]): void {
    if (records.length > 0) process.stdout.write(this.json.ndjson(records));
    this.downstream.accept(records);
  }
}

export interface PacketLoopCounters {
  readonly packets: number;
  readonly records: number;
  readonly decodeErrors: Readonly<Record<string, number>>;
  readonly exporters: readonly ExporterStats[];
}

export class PacketLoop {
  readonly filter: FlowFilter;
  private readonly decode: DecodeService;
  private readonly fused: FusedSetWriter;
  private readonly stdoutRecords: boolean;
  private readonly decodeLog: RateLimitedLog;
  private readonly exporters = new ExporterTable();
  private packets = 0;
  private records = 0;
  private readonly decodeErrors: Record<string, number> = {};
  private readonly batcher: Batcher;
  private readonly pseudonymizer: Pseudonymizer | null;
  private readonly clock: () => number;

  constructor(options: PacketLoopOptions) {
    this.decode = options.decode;
    this.batcher = options.batcher;
    this.stdoutRecords = options.stdoutRecords;
    this.decodeLog = options.decodeLog;
    this.pseudonymizer = options.pseudonymizer ?? null;
    this.clock = options.clock ?? Date.now;
    let afterFilter: RecordSink = options.stdoutRecords ? new StdoutRecordSink(options.batcher) : options.batcher;
    if (this.pseudonymizer !== null) afterFilter = new PseudonymizeStage(this.pseudonymizer, afterFilter);
    this.filter = new FlowFilter(compileFilters(options.filters), afterFilter);
    this.fused = new FusedSetWriter(options.batcher, null, this.pseudonymizer);
    this.chooseFusedPath();
  }

  /** Before records are written: a pseudonymisation period that has ended closes the open batch, then its key changes. */
  private keyInForce(): void {
    const pz = this.pseudonymizer;
    if (pz === null) return;
    const now = this.clock();
    if (now < pz.periodEndMs) return;
    this.batcher.flush();
    pz.rotate(now);
  }

  /** Decodes a frame's packets in order. Returns the receive time of its oldest packet (-1: none). */
  frame(frame: PacketFrame): number {
    this.keyInForce();
    let oldestMs = -1;
    for (const p of unpackFrame(frame)) {
      if (oldestMs < 0) oldestMs = p.receivedAtMs;
      this.packets++;
      const who = this.exporters.of(p);
      who.packets++;
      who.lastSeenMs = p.receivedAtMs;
      this.handle(this.decode.decode(p), who);
    }
    return oldestMs;
  }

  endSession(sessionKey: string): void {
    this.decode.endSession(sessionKey);
  }

  /** New flow filter rules (throws ConfigError, keeping the old ones, when they are invalid). */
  reload(filters: FiltersConfig): void {
    this.filter.reload(compileFilters(filters));
    this.chooseFusedPath();
  }

  /** Time-driven decoder housekeeping: held data and templates past their time (counted). */
  expire(nowMs: number): void {
    this.keyInForce();
    this.handle(this.decode.expire(nowMs), null);
  }

  /**
   * At stop: held data whose template never came is counted now rather than silently lost;
   * templates stay, so the persisted state lets UDP data decode right after a restart.
   */
  flushHeld(): void {
    this.keyInForce();
    this.handle(this.decode.flushPending(), null);
  }

  counters(): PacketLoopCounters {
    return { packets: this.packets, records: this.records, decodeErrors: { ...this.decodeErrors }, exporters: this.exporters.snapshot() };
  }

  private chooseFusedPath(): void {
    this.fused.setFilter(this.filter.acceptsAll ? null : this.filter);
    this.decode.setFusedSink(this.stdoutRecords ? null : this.fused);
  }

  private handle(outcome: DecodeOutcome, who: ExporterCounters | null): void {
    if (outcome.fusedRecords > 0) {
      this.records += outcome.fusedRecords;
      if (who !== null) who.records += outcome.fusedRecords;
      // With rules loaded the fused writers called filter.admit() for each (filters reload only between frames).
      if (this.filter.acceptsAll) this.filter.passedUnseen(outcome.fusedRecords);
    }
    if (outcome.records.length > 0) {
      this.records += outcome.records.length;
      if (who !== null) who.records += outcome.records.length;
      this.filter.accept(outcome.records);
    }
    if (outcome.errorCount > 0) {
      if (who !== null) who.decodeErrors += outcome.errorCount;
      const errors = this.decodeErrors;
      for (const e of outcome.errors) {
        errors[e.code] = (errors[e.code] ?? 0) + 1;
        this.decodeLog.log('warn', `${who?.exporter ?? '-'}|${e.code}`, { exporter: who?.exporter, transport: who?.transport, code: e.code, offset: e.offset, detail: e.message }, 'malformed flow data skipped');
      }
      const unlisted = outcome.errorCount - outcome.errors.length;
      if (unlisted > 0) errors.unlisted = (errors.unlisted ?? 0) + unlisted;
    }
    if (who !== null && outcome.sequenceLost > 0) who.sequenceLost += outcome.sequenceLost;
  }
}
