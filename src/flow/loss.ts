/**
 * The loss catalogue: every way a flow record (or a packet, before its records are known) can
 * fail to reach Fusion, as one closed list of reasons, and the port the loss ledger reports
 * through (src/observability/loss-ledger.ts; an audit trail subscribes to it).
 *
 * Two units, so that totals add up: a reason is counted in records where the records are known
 * (they were decoded), in packets where they are not (dropped before decoding, or malformed).
 * `sent = stored + delivered + Σ records lost` holds for records that reached the decoder; loss
 * before it is in packets. Refusals by policy (allowlist, certificates, domain binding) are not
 * loss: they are counted by the listeners' own families.
 *
 * Reasons are never renamed once published (metrics, dashboards, alerts and the ledger file key
 * on them); a new source of loss adds a reason.
 */

export const RECORD_LOSS_REASONS = [
  /** Dropped by a flow filter rule (on purpose). */
  'filter',
  /** The oldest spooled batches, evicted to stay within spool.quotaBytes (fullPolicy drop-oldest). */
  'quota_eviction',
  /** Spooled batches older than spool.maxAgeSeconds, destroyed before delivery (on purpose: retention). */
  'retention',
  /** New batches refused by the quota (fullPolicy drop-newest, or a batch larger than the quota). */
  'quota_dropped',
  /** New batches dropped, or the oldest evicted, because the filesystem (or spool.maxDbBytes) was full. */
  'disk_full',
  /** New batches dropped on any other storage error (EIO, a read-only or vanished file). */
  'io_error',
  /** Spooled batches that failed authentication when read (altered or corrupt), set aside encrypted. */
  'integrity',
  /** Batches Fusion rejected permanently (4xx), set aside encrypted. */
  'parked',
  /** Batches still queued when a stop ran out of time (forced stop). */
  'stopped',
  /** A failure inside sealflow: a batch that could not be serialized or compressed, a spool closed under the writer. A bug to report. */
  'internal_error',
  /** Loss the exporters' sequence numbers reveal: before the data reached sealflow (or in the kernel). */
  'sequence_gap',
] as const;

export const PACKET_LOSS_REASONS = [
  /** Datagrams the kernel dropped because the socket's receive queue was full. */
  'kernel_drop',
  /** Datagrams shed because the ingest worker was too far behind. */
  'channel_full',
  /** Datagrams larger than the listener's maxDatagramBytes. */
  'oversize',
  /** Malformed or undecodable input skipped, once per decode error (a packet, a set, a template, or the records after the error; codes in src/flow/errors.ts). */
  'decode_error',
] as const;

export type RecordLossReason = (typeof RECORD_LOSS_REASONS)[number];
export type PacketLossReason = (typeof PACKET_LOSS_REASONS)[number];
export type LossUnit = 'records' | 'packets';

/** Counts by reason, per unit. A reason not present counts 0. */
export interface LossCounts {
  readonly records: Readonly<Partial<Record<RecordLossReason, number>>>;
  readonly packets: Readonly<Partial<Record<PacketLossReason, number>>>;
}

/** What the ledger reports for a period in which something was lost (the audit trail records it). */
export interface LossReport {
  /** The period, Unix ms: from the previous report (or the ledger's start) to now. */
  readonly fromMs: number;
  readonly toMs: number;
  /** What was lost in the period, non-zero reasons only. */
  readonly lost: LossCounts;
  /** Totals since the ledger was created (`since`), every reason. */
  readonly totals: LossCounts;
  readonly sinceMs: number;
}

/** The ledger's subscribers (an audit trail): called on the ledger's thread, never with flow data. */
export type LossListener = (report: LossReport) => void;

/** Sum of every reason of a unit. */
export function totalLost(counts: Readonly<Partial<Record<string, number>>>): number {
  let n = 0;
  for (const v of Object.values(counts)) n += v ?? 0;
  return n;
}
