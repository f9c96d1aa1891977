import type { ProbeSnapshot } from './probe-metrics.js';

/**
 * The /stats document: the same snapshot as /metrics, shaped for people and scripts.
 * - One spool section: the ingest worker's view of the spool (the drain's copy is not repeated,
 *   so two figures for the same thing cannot disagree), with its checkpoint and compression
 *   counters inside it.
 * - Readable times: instants as ISO 8601 strings (`lastSeen`, `lastSuccessAt`), durations in
 *   seconds (`oldestAgeSeconds`, `backoffRemainingSeconds`); no epoch milliseconds.
 * - Loss by reason in one place (`loss`: the loss ledger's totals since `createdAt`), the same
 *   figures as sealflow_*_lost_total and `sealflow spool status`.
 * No flow data: counters, exporter addresses and identities only.
 */

export interface StatsDocumentInput extends ProbeSnapshot {
  readonly state: string;
  readonly nowMs: number;
  /** Extra sections (e.g. the embedded Fusion stand-in's counters). */
  readonly extra?: Readonly<Record<string, unknown>>;
}

const AT_MS = /^(?:.*At|lastSeen|at)Ms$/;

/**
 * Rewrites time fields: `xAtMs`/`lastSeenMs` (Unix ms) become `xAt`/`lastSeen` (ISO 8601, null
 * stays null), other `xMs` durations become `xSeconds`. Key order is kept.
 */
export function readableTimes(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(readableTimes);
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const time = typeof v === 'number' || v === null;
    if (time && AT_MS.test(k)) out[k.slice(0, -2)] = v === null || v <= 0 ? null : new Date(v).toISOString();
    else if (time && k.endsWith('Ms')) out[`${k.slice(0, -2)}Seconds`] = v === null ? null : Math.round(v) / 1000;
    else out[k] = readableTimes(v);
  }
  return out;
}

/** Seconds until the spool is empty at the drain's current delivery rate; null when nothing is being delivered. */
export function timeToEmptySeconds(spoolRecords: number, deliveredPerSecond: number): number | null {
  if (spoolRecords === 0) return 0;
  return deliveredPerSecond > 0 ? Math.round(spoolRecords / deliveredPerSecond) : null;
}

export function statsDocument(s: StatsDocumentInput): Record<string, unknown> {
  const w = s.worker;
  const d = s.drain;
  // The drain's own copy of the spool status (and the ETA derived from it) is left out: `spool` is the one section.
  const drain = d === null ? null : (({ spool: _spool, etaMs: _eta, ...rest }) => rest)(d);
  const doc = {
    state: s.state,
    generatedAtMs: s.nowMs,
    build: s.build,
    exporters: w?.exporters ?? [],
    loss: s.loss === null ? null : { createdAtMs: s.loss.sinceMs, records: s.loss.records, packets: s.loss.packets },
    listeners: { udp: s.udp, tls: s.tls, dtls: s.dtls, channel: s.channel },
    decode: w?.decode ?? null,
    filter: w?.filter ?? null,
    batcher: w?.batcher ?? null,
    spool: w === null ? null : { ...w.spool, walCheckpointer: w.walCheckpointer, compression: w.compression },
    // Counters and the key in force (fingerprint, period): never an address or a key.
    pseudonymize: w?.pseudonymize ?? null,
    drain: drain === null ? null : { ...drain, timeToEmptySeconds: timeToEmptySeconds(w?.spool.records ?? 0, d?.recordsPerSec ?? 0) },
    certificates: s.certificates.map((c) => ({ setting: c.setting, file: c.file, subject: c.subject, notAfterAtMs: c.notAfterMs, expiresInDays: Math.floor((c.notAfterMs - s.nowMs) / 86_400_000) })),
    ...(s.extra ?? {}),
  };
  return readableTimes(doc) as Record<string, unknown>;
}
