import type { FlowRecord } from '../flow/flow-record.js';
import type { RecordSink } from '../flow/pipeline.js';
import type { CompiledFilters, FilterAction, FilterFields, WritableFilterFields } from './compile-filters.js';

/**
 * The flow filter stage: a RecordSink that applies CompiledFilters to every record and hands
 * the accepted ones to the downstream sink (the batcher in front of the encrypted spool), so a
 * dropped record never reaches the disk. Matches are counted per rule; the labels are the
 * rule names/indexes, so the label set is bounded by the configuration.
 *
 * Hot path: a batch with nothing dropped is passed on as the same array; otherwise one output
 * array is allocated per batch. No per-record allocation.
 */
export interface FilterRuleStats {
  readonly index: number;
  readonly label: string;
  readonly action: FilterAction;
  /** Records this rule matched first (and so accepted or dropped). */
  readonly matched: number;
}

export interface FlowFilterStats {
  readonly rules: readonly FilterRuleStats[];
  readonly defaultAction: FilterAction;
  /** Records no rule matched. */
  readonly defaultMatched: number;
  readonly accepted: number;
  readonly dropped: number;
}

export class FlowFilter implements RecordSink {
  private compiled: CompiledFilters;
  /** matched[i] = records rule i matched first; since the last reload. */
  private matched: Float64Array;
  private defaultMatched = 0;
  private accepted = 0;
  private dropped = 0;

  constructor(
    compiled: CompiledFilters,
    private readonly downstream: RecordSink,
  ) {
    this.compiled = compiled;
    this.matched = new Float64Array(compiled.rules.length);
  }

  /** Swaps in a newly compiled rule set (SIGHUP). Per-rule counts restart; totals continue. */
  reload(compiled: CompiledFilters): void {
    this.compiled = compiled;
    this.matched = new Float64Array(compiled.rules.length);
    this.defaultMatched = 0;
  }

  /** True when the rules accept every record without looking at it (no rules, default accept): records may then bypass this stage (see passedUnseen). */
  get acceptsAll(): boolean {
    return this.compiled.rules.length === 0 && !this.compiled.defaultDrop;
  }

  /** Counts `n` records that went downstream without passing through here while acceptsAll (the ingest worker's fused path). */
  passedUnseen(n: number): void {
    this.accepted += n;
    this.defaultMatched += n;
  }

  /**
   * A reusable object for admit(): the ingest worker's fused writers fill it with the fields
   * of the record they are about to write (no FlowRecord exists on that path).
   */
  readonly fields: WritableFilterFields = { protocol: null, srcPort: null, dstPort: null, srcAddr: null, dstAddr: null, srcAs: null, dstAs: null, exporter: '' };

  /** Decides and counts one record (as accept() does for each of its records): true to keep it. */
  admit(f: FilterFields): boolean {
    const k = this.compiled.firstMatch(f);
    let drop: boolean;
    if (k < 0) {
      this.defaultMatched++;
      drop = this.compiled.defaultDrop;
    } else {
      this.matched[k] = (this.matched[k] ?? 0) + 1;
      drop = this.compiled.rules[k]?.drop ?? this.compiled.defaultDrop;
    }
    if (drop) this.dropped++;
    else this.accepted++;
    return !drop;
  }

  accept(records: readonly FlowRecord[]): void {
    const { rules, defaultDrop } = this.compiled;
    if (rules.length === 0 && !defaultDrop) {
      this.accepted += records.length;
      this.defaultMatched += records.length;
      if (records.length > 0) this.downstream.accept(records);
      return;
    }
    let out: FlowRecord[] | null = null;
    for (let i = 0; i < records.length; i++) {
      const r = records[i];
      if (r === undefined) continue;
      if (!this.admit(r)) {
        // First drop in this batch: copy the accepted prefix, then append from here on.
        out ??= records.slice(0, i);
      } else if (out !== null) out.push(r);
    }
    const result = out ?? records;
    if (result.length > 0) this.downstream.accept(result);
  }

  stats(): FlowFilterStats {
    const { rules, defaultDrop } = this.compiled;
    return {
      rules: rules.map((r, i) => ({ index: r.index, label: r.label, action: r.drop ? 'drop' : 'accept', matched: this.matched[i] ?? 0 })),
      defaultAction: defaultDrop ? 'drop' : 'accept',
      defaultMatched: this.defaultMatched,
      accepted: this.accepted,
      dropped: this.dropped,
    };
  }
}
