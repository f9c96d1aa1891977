import type { DecodeError } from '../flow/errors.js';
import type { FlowRecord, RawRecord } from '../flow/flow-record.js';

/**
 * What decoding gives back: per call a DecodeOutcome (records, options records, counted
 * problems), and the running totals in DecodeServiceStats, summed from each outcome.
 */

/** One options data record (RFC 7011 §3.4.2.2, RFC 3954 §6.1), kept for later stages (decodeElements). */
export interface OptionsRecord {
  readonly templateId: number;
  readonly observationDomainId: number;
  /** records.length when this options record was decoded: its position in the packet's record stream (records taken by a FusedSetSink are not in `records`). */
  readonly recordIndex: number;
  readonly raw: RawRecord;
}

/** Counts of template, options and sequence events; per packet in DecodeOutcome, totals in stats(). */
export interface DecodeCounters {
  templatesLearned: number;
  templatesReplaced: number;
  templatesWithdrawn: number;
  /** Withdrawals received over UDP/DTLS and ignored (RFC 7011 §8.4). */
  withdrawalsIgnored: number;
  templatesExpired: number;
  optionsRecords: number;
  /** Estimated records (IPFIX), packets (v9, sFlow) or flows (v5) lost before this packet. */
  sequenceLost: number;
  /** Data sets held for a template not known yet. */
  pendingHeld: number;
  /** Held data sets decoded now that their template arrived. */
  pendingDecoded: number;
  /** Held data sets dropped (template never came in time). */
  pendingExpired: number;
  /** Data sets dropped immediately for an unknown template (holding disabled or full). */
  unknownTemplateSets: number;
  /** Records naming a sampler / selector that no options data described: sampled at the domain default (1 when unknown). */
  samplerUnknown: number;
}

export interface DecodeOutcome extends DecodeCounters {
  records: FlowRecord[];
  /** Records handed to the FusedSetSink instead of `records`. */
  fusedRecords: number;
  /** Options data records, in wire order. Sampling and uptime from them are already applied. */
  options: OptionsRecord[];
  /** The first MAX_ERRORS_PER_OUTCOME problems; `errorCount` has them all. */
  errors: DecodeError[];
  errorCount: number;
  /** Protocol version of the (last) message: 5, 9, 10, or 5 for sFlow; null when unreadable. */
  version: number | null;
  observationDomainId: number | null;
}

/** Why decoder state was evicted or refused (state-budget.ts): the exporter's budget, the total budget, or maxSessions. */
export type BudgetReason = 'exporter' | 'total' | 'sessions';

export interface StateBudgetCounters {
  /** Sessions evicted to make room, by reason. */
  evictions: Record<BudgetReason, number>;
  /** New state (a session, domain, template, sampler or held set) refused, by reason. */
  refusals: Record<BudgetReason, number>;
}

export interface DecodeServiceStats extends DecodeCounters {
  packets: number;
  /** Every record decoded, both paths. */
  records: number;
  /** Of `records`, those written by the FusedSetSink (the ingest worker's fused path to the spool). */
  fusedRecords: number;
  errorsByCode: Record<string, number>;
  templatesLive: number;
  sessions: number;
  pendingSets: number;
  pendingBytes: number;
  /** Packets slightly behind the expected sequence (reordered or duplicated). */
  sequenceReordered: number;
  /** Wild sequence jumps not (yet) believed (RFC 7011 §11; see SequenceTracker). */
  sequenceJumpsHeld: number;
  /** Sessions dropped to stay within maxSessions or the state budget (by reason in stateBudget.evictions). */
  sessionsEvicted: number;
  /** Bytes charged to the state budget now (an upper estimate of the decoder state's memory). */
  stateBytes: number;
  /** Exporter addresses with state. */
  stateExporters: number;
  stateBudget: StateBudgetCounters;
}

/** Errors kept per outcome; a flood of bad records is counted, not listed. */
export const MAX_ERRORS_PER_OUTCOME = 64;

function zeroCounters(): DecodeCounters {
  return {
    templatesLearned: 0,
    templatesReplaced: 0,
    templatesWithdrawn: 0,
    withdrawalsIgnored: 0,
    templatesExpired: 0,
    optionsRecords: 0,
    sequenceLost: 0,
    pendingHeld: 0,
    pendingDecoded: 0,
    pendingExpired: 0,
    unknownTemplateSets: 0,
    samplerUnknown: 0,
  };
}

/** The counters addOutcome sums one by one; the assertion below makes a missing one a compile error. */
type UnrolledCounter =
  | 'templatesLearned'
  | 'templatesReplaced'
  | 'templatesWithdrawn'
  | 'withdrawalsIgnored'
  | 'templatesExpired'
  | 'optionsRecords'
  | 'sequenceLost'
  | 'pendingHeld'
  | 'pendingDecoded'
  | 'pendingExpired'
  | 'unknownTemplateSets'
  | 'samplerUnknown';
export const UNROLLED_COUNTERS_COMPLETE: [Exclude<keyof DecodeCounters, UnrolledCounter>] extends [never] ? true : never = true;

/**
 * A fresh outcome, written out property by property (no spread): one is made per packet, and a
 * literal gives every outcome the same hidden class, which keeps addOutcome and the callers'
 * property reads monomorphic.
 */
export function newOutcome(): DecodeOutcome {
  return {
    records: [],
    fusedRecords: 0,
    options: [],
    errors: [],
    errorCount: 0,
    version: null,
    observationDomainId: null,
    templatesLearned: 0,
    templatesReplaced: 0,
    templatesWithdrawn: 0,
    withdrawalsIgnored: 0,
    templatesExpired: 0,
    optionsRecords: 0,
    sequenceLost: 0,
    pendingHeld: 0,
    pendingDecoded: 0,
    pendingExpired: 0,
    unknownTemplateSets: 0,
    samplerUnknown: 0,
  };
}

export function newStats(): DecodeServiceStats {
  return {
    packets: 0,
    records: 0,
    fusedRecords: 0,
    errorsByCode: {},
    templatesLive: 0,
    sessions: 0,
    pendingSets: 0,
    pendingBytes: 0,
    sequenceReordered: 0,
    sequenceJumpsHeld: 0,
    sessionsEvicted: 0,
    stateBytes: 0,
    stateExporters: 0,
    stateBudget: { evictions: { exporter: 0, total: 0, sessions: 0 }, refusals: { exporter: 0, total: 0, sessions: 0 } },
    ...zeroCounters(),
  };
}

/** Counts `err` in the outcome (listing the first MAX_ERRORS_PER_OUTCOME) and in the totals by code. */
export function recordError(out: DecodeOutcome, stats: DecodeServiceStats, err: DecodeError): void {
  out.errorCount++;
  if (out.errors.length < MAX_ERRORS_PER_OUTCOME) out.errors.push(err);
  const by = stats.errorsByCode;
  by[err.code] = (by[err.code] ?? 0) + 1;
}

/** Adds an outcome's counts to the totals (once per outcome). */
export function addOutcome(s: DecodeServiceStats, out: DecodeOutcome): void {
  s.records += out.records.length + out.fusedRecords;
  s.fusedRecords += out.fusedRecords;
  // Unrolled (runs once per packet; a loop over the keys is a megamorphic keyed access).
  // UNROLLED_COUNTERS_COMPLETE fails to compile when a counter is added but not summed here.
  s.templatesLearned += out.templatesLearned;
  s.templatesReplaced += out.templatesReplaced;
  s.templatesWithdrawn += out.templatesWithdrawn;
  s.withdrawalsIgnored += out.withdrawalsIgnored;
  s.templatesExpired += out.templatesExpired;
  s.optionsRecords += out.optionsRecords;
  s.sequenceLost += out.sequenceLost;
  s.pendingHeld += out.pendingHeld;
  s.pendingDecoded += out.pendingDecoded;
  s.pendingExpired += out.pendingExpired;
  s.unknownTemplateSets += out.unknownTemplateSets;
  s.samplerUnknown += out.samplerUnknown;
}
