import type { ExporterPacket } from '../flow/exporter-packet.js';
import type { ExporterStats } from './messages.js';

/** Exporters tracked individually in /stats; beyond this they are aggregated (a spoofing flood must not grow memory). */
const MAX_TRACKED_EXPORTERS = 4096;
const OTHER_EXPORTERS = 'other';

export type ExporterCounters = { -readonly [K in keyof ExporterStats]: ExporterStats[K] };

/** Per-exporter counters for /stats, keyed by transport, address and identity, bounded. */
export class ExporterTable {
  private readonly exporters = new Map<string, ExporterCounters>();
  // Consecutive packets mostly come from one exporter: the last lookup is remembered so the
  // steady state builds no key string per packet.
  private last: ExporterPacket | null = null;
  private lastCounters: ExporterCounters | null = null;

  /** The counters of `p`'s exporter (the shared "other" entry once the table is full). */
  of(p: ExporterPacket): ExporterCounters {
    const last = this.last;
    if (last !== null && this.lastCounters !== null && p.exporter === last.exporter && p.identity === last.identity && p.transport === last.transport) return this.lastCounters;
    const c = this.lookup(p);
    this.last = p;
    this.lastCounters = c;
    return c;
  }

  private lookup(p: ExporterPacket): ExporterCounters {
    const key = `${p.transport}|${p.exporter}|${p.identity ?? ''}`;
    let c = this.exporters.get(key);
    if (c === undefined) {
      const overflow = this.exporters.size >= MAX_TRACKED_EXPORTERS;
      const k = overflow ? OTHER_EXPORTERS : key;
      c = this.exporters.get(k);
      if (c === undefined) {
        c = { exporter: overflow ? OTHER_EXPORTERS : p.exporter, identity: overflow ? null : p.identity, transport: p.transport, packets: 0, records: 0, decodeErrors: 0, sequenceLost: 0, lastSeenMs: 0 };
        this.exporters.set(k, c);
      }
    }
    return c;
  }

  snapshot(): ExporterStats[] {
    return [...this.exporters.values()].map((c) => ({ ...c }));
  }
}
