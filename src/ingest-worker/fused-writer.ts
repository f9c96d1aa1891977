import type { BatchEncoder } from '../batch/encoder.js';
import * as format from '../batch/format.js';
import { readCounter64, readUnsignedN } from '../decode/byte-reader.js';
import type { FusedSetSink, FusedSetResult, SetMeta } from '../decode/decode-service.js';
import type { FieldPlan, ReadKind } from '../decode/template/field-mapping.js';
import type { RecordContext } from '../decode/template/record-context.js';
import type { FilterFields, WritableFilterFields } from '../filter/compile-filters.js';
import { absoluteFromSysInit, packetIntervalRate, recordDecoderSource } from '../decode/template/record-decoder.js';
import type { Template } from '../decode/template/template-cache.js';
import { templateCost } from '../decode/state-cost.js';
import { A6_REMOVED } from '../privacy/pseudonymizer.js';

/**
 * Fused writers: IPFIX / NetFlow v9 data records of a compiled template go from their wire
 * bytes straight into the open streaming batch's bytes, without a FlowRecord in between.
 * On the ingest worker this is the hot path (measured: decode + FlowRecord + record() was
 * about half of the worker's time); it is used unless something needs the record object (the
 * stdout copy; see the ingest worker). Flow filter rules run inside the writer (FusedRecordFilter).
 *
 * Equivalence is the invariant: a fused writer leaves exactly the bytes that decoding the
 * record into a FlowRecord (compileRecordDecoder) and serializing it (BatchEncoder.record)
 * would, context and bitmap sharing with neighbouring records included. It is built from the
 * same decoder source (recordDecoderSource, with the values in locals instead of a record)
 * followed by a straight-line copy of record() in which the properties the template never
 * sets are left out; presence of the ones it sets is still tested per record (a sysUpTime
 * time is null without an uptime anchor, an IPv4 address may fall back to IPv6, a counter may
 * be a bigint). Tests compare both paths byte for byte (test/unit/fused-writer.test.ts).
 */

/**
 * Writes one record at `p` (see RecordDecoder): returns the offset after it, or -1 when a
 * variable-length field runs past `end` (nothing written then). A record its filter drops is
 * passed over: the offset after it is returned and nothing is written (the encoder's byte
 * count is unchanged, which is how callers tell).
 */
export type FusedRecordWriter = (view: DataView, buf: Uint8Array, p: number, end: number, ctx: RecordContext, e: BatchEncoder, m: SetMeta) => number;

/** Where fused records go: the Batcher's open batch (with its cuts). */
export interface FusedBatchTarget {
  /** Whether it takes fused records now (false once closed: records then take the FlowRecord path and are counted there). */
  readonly acceptsFused: boolean;
  /** Writes the records of [p, end) with `w`; sets result.records and result.malformed (see FusedSetResult). */
  writeFusedSet(w: FusedRecordWriter, view: DataView, buf: Uint8Array, p: number, end: number, minLength: number, ctx: RecordContext, m: SetMeta, result: FusedSetResult): void;
}

/**
 * The flow filter as a fused writer sees it (the ingest worker's FlowFilter): the writer fills
 * `fields` with the values the record's FlowRecord would have, then asks admit(), which
 * decides and counts exactly as for a FlowRecord (filter/flow-filter.ts).
 */
export interface FusedRecordFilter {
  readonly fields: WritableFilterFields;
  admit(f: FilterFields): boolean;
}

/**
 * The pseudonymiser as a fused writer sees it (src/privacy/pseudonymizer.ts): after the filter
 * has seen the real addresses, each address property in `props` is replaced by a4()/a6()'s
 * result (−1 / null: the address is removed), exactly as PseudonymizeStage does to a FlowRecord.
 */
export interface FusedPseudonymizer {
  readonly policy: { readonly props: readonly string[] };
  a4(a: number): number;
  a6(a: Uint8Array): Uint8Array | null;
  /** IPv6 in the packet: A6_KEPT (−1), A6_REMOVED (−2), or the slot whose pseudonym is v6words[4i … 4i+3]. */
  a6at(view: DataView, at: number): number;
  readonly v6words: Uint32Array;
}

/** The properties FilterFields reads, besides the exporter (from the set's metadata). */
const FILTER_PROPS = ['protocol', 'srcPort', 'dstPort', 'srcAddr', 'dstAddr', 'srcAs', 'dstAs'] as const;

/** Optional numeric properties in bitmap order (bits 11..25), as BatchEncoder.record() writes them. */
const OPTIONAL_NUMBERS = format.OPTIONAL_NUMBERS;
const ADDRESSES = [
  ['srcAddr', format.PRESENT_SRC, format.V6_SRC],
  ['dstAddr', format.PRESENT_DST, format.V6_DST],
  ['nextHop', format.PRESENT_NH, format.V6_NH],
  ['bgpNextHop', format.PRESENT_BGPNH, format.V6_BGPNH],
] as const;

const local = (prop: string): string => `x_${prop}`;

/**
 * Properties whose value is always an unsigned integer below 2^24 (a 'uint' field of at most 3
 * bytes, or the ICMP type/code halves of a 2-byte field): 2·v then fits putNum's 32-bit
 * varint loop, with no test (0 included: putNum writes it as the single byte 0 as well).
 */
function smallUintProps(plans: readonly FieldPlan[]): Set<string> {
  const small = new Set<string>();
  for (const plan of plans) {
    for (const t of plan.targets) {
      if (t.fallback) continue;
      if ((t.kind === 'uint' && plan.spec.length <= 3) || t.kind === 'icmpTypeCode') small.add(t.prop);
    }
  }
  return small;
}

/**
 * The read kind of each time property (startMs, endMs) the template maps. Per valueExpr
 * (record-decoder.ts): 'seconds' (u32 × 1000) and 'ntp' ((u32 − const) × 1000 + ⌊u32 / c⌋) are
 * always safe integers and never −0; 'millis' (u32 × 2^32 + u32) is a non-negative integer,
 * never −0, and safe exactly when ≤ 2^53 − 1. Other kinds (sysUpTime, deltaMicros) depend on
 * the context and get the full test.
 */
function timeKinds(plans: readonly FieldPlan[]): Map<string, ReadKind> {
  const kinds = new Map<string, ReadKind>();
  for (const plan of plans) {
    for (const t of plan.targets) if ((t.prop === 'startMs' || t.prop === 'endMs') && !t.fallback) kinds.set(t.prop, t.kind);
  }
  return kinds;
}

/**
 * `Number.isSafeInteger(x) && !Object.is(x, -0)` for a time local, reduced to what its read
 * kind leaves open (see timeKinds); the result is the same for every value the kind can take.
 */
function safeTimeTest(x: string, kind: ReadKind | undefined): string {
  if (kind === 'seconds' || kind === 'ntp') return 'true';
  if (kind === 'millis') return `${x} <= ${Number.MAX_SAFE_INTEGER}`;
  return `Number.isSafeInteger(${x}) && !Object.is(${x}, -0)`;
}

/** 'ipv4' or 'ipv6' for an address property filled by exactly one field of that kind; 'mixed' when it has an IPv6 fallback. */
function addressKinds(plans: readonly FieldPlan[]): Map<string, 'ipv4' | 'ipv6' | 'mixed'> {
  const kinds = new Map<string, 'ipv4' | 'ipv6' | 'mixed'>();
  for (const plan of plans) {
    for (const t of plan.targets) {
      if (t.kind !== 'ipv4' && t.kind !== 'ipv6') continue;
      kinds.set(t.prop, kinds.has(t.prop) ? 'mixed' : t.kind);
    }
  }
  return kinds;
}

/**
 * Generated source of a fused writer for `plans` (exported for tests that read it); with
 * `filtered`, the writer consults the filter `flt` (a constant of the compiled function)
 * between decoding the record into locals and writing it.
 */
export function fusedWriterSource(plans: readonly FieldPlan[], filtered = false, pseudonymized: readonly string[] = []): string {
  // IPv6 addresses are not copied out of the packet (buf.slice allocates a buffer each, about
  // 100 ns per address, measured). For a property with one source, its local holds the
  // constant V6 (a Uint8Array, so the bitmap and ipVersion tests see an IPv6 address) and
  // v6at_<prop> its offset, and the writer moves the 16 bytes from the packet to the batch as
  // four u32s. An address the filter rules read (srcAddr, dstAddr) is a view of the packet
  // instead; it stays in the filter's fields object until the next record overwrites it, but
  // admit() keeps nothing and nothing else reads it (on the ingest worker the frame's buffer
  // is handed back after the frame, which empties such a view). A pseudonymised address is a
  // view too: pz.a6() reads it and returns what to write. Otherwise a pseudonymised IPv6
  // address stays in the packet as well: pz.a6at() looks it up there, and the writer copies
  // either the packet's bytes (kept) or the pseudonym's four words (copied out at once).
  const kinds = addressKinds(plans);
  const filterReads = (prop: string): boolean => filtered && (FILTER_PROPS as readonly string[]).includes(prop);
  const pz = new Set(pseudonymized);
  const inPlace = (prop: string): boolean => !filterReads(prop) && kinds.get(prop) === 'ipv6';
  const src = recordDecoderSource(plans, local, (prop, at) => (inPlace(prop) ? `(v6at_${prop} = ${at}, V6)` : `buf.subarray(${at}, ${at} + 16)`));
  const has = (prop: string): boolean => src.assigned.has(prop);
  const c = format;
  const lines: string[] = [];
  // FlowRecord defaults (newFlowRecord): counters and ipVersion 0, everything else null. The
  // epilogue reads srcAddr/dstAddr (to infer ipVersion) even when the template sets neither.
  for (const prop of new Set([...src.assigned, 'srcAddr', 'dstAddr', 'ipVersion'])) lines.push(`let ${local(prop)} = ${prop === 'octets' || prop === 'packets' || prop === 'ipVersion' ? '0' : 'null'};`);
  for (const [prop] of ADDRESSES) if (has(prop) && inPlace(prop)) lines.push(`let v6at_${prop} = 0;`);
  for (const [prop] of ADDRESSES) if (has(prop) && inPlace(prop) && pz.has(prop)) lines.push(`let pzi_${prop} = -1, q0_${prop} = 0, q1_${prop} = 0, q2_${prop} = 0, q3_${prop} = 0;`);
  lines.push(...src.lines);
  if (filtered) {
    // The values FlowFilter would read from this record's FlowRecord: the template's locals, null for what it never sets.
    lines.push('{ const fv = flt.fields;');
    for (const prop of FILTER_PROPS) lines.push(`fv.${prop} = ${has(prop) ? local(prop) : 'null'};`);
    lines.push('fv.exporter = m.exporter;');
    lines.push(`if (!flt.admit(fv)) return ${src.end}; }`);
  }
  // Pseudonymisation, after the filter saw the real addresses and before anything is written.
  for (const [prop] of ADDRESSES) {
    if (!has(prop) || !pz.has(prop)) continue;
    const x = local(prop);
    const kind = kinds.get(prop);
    const v4 = `{ ${x} = pz.a4(${x}); if (${x} < 0) ${x} = null; }`;
    if (kind === 'ipv4') lines.push(`if (${x} !== null) ${v4}`);
    else if (kind === 'ipv6' && inPlace(prop)) {
      const i = `pzi_${prop}`;
      lines.push(
        `if (${x} !== null) { ${i} = pz.a6at(view, v6at_${prop}); if (${i} === ${A6_REMOVED}) ${x} = null; else if (${i} >= 0) { const b = ${i} * 4; q0_${prop} = PW[b]; q1_${prop} = PW[b + 1]; q2_${prop} = PW[b + 2]; q3_${prop} = PW[b + 3]; } }`,
      );
    } else if (kind === 'ipv6') lines.push(`if (${x} !== null) ${x} = pz.a6(${x});`);
    else lines.push(`if (${x} !== null) { if (typeof ${x} === 'number') ${v4} else ${x} = pz.a6(${x}); }`);
  }
  // The bitmap, as record() computes it; properties this template never sets are null.
  lines.push('let bits = m.identity !== null ? ' + String(c.PRESENT_IDENTITY) + ' : 0;');
  for (const [prop, present, v6] of ADDRESSES) {
    if (has(prop)) lines.push(`if (${local(prop)} !== null) bits |= typeof ${local(prop)} === 'number' ? ${present} : ${present | v6};`);
  }
  if (has('octets')) lines.push(`if (typeof x_octets === 'bigint') bits |= ${c.BIGINT_OCTETS};`);
  if (has('packets')) lines.push(`if (typeof x_packets === 'bigint') bits |= ${c.BIGINT_PACKETS};`);
  OPTIONAL_NUMBERS.forEach((prop, i) => {
    if (has(prop)) lines.push(`if (${local(prop)} !== null) bits |= ${1 << (c.OPTIONAL_BASE_BIT + i)};`);
  });
  if (has('startMs')) lines.push(`if (x_startMs !== null) bits |= ${c.PRESENT_START};`);
  if (has('endMs')) lines.push(`if (x_endMs !== null) bits |= ${c.PRESENT_END};`);
  if (has('uptimeMs')) lines.push(`if (x_uptimeMs !== null) bits |= ${c.PRESENT_UPTIME};`);
  const timed = has('startMs') && has('endMs');
  lines.push('const base = m.exportTimeS * 1000;');
  // record()'s test, with the parts each time's read kind settles left out (see timeKinds).
  const tk = timeKinds(plans);
  lines.push(
    timed
      ? `const td = x_startMs !== null && x_endMs !== null && ${safeTimeTest('x_startMs', tk.get('startMs'))} && ${safeTimeTest('x_endMs', tk.get('endMs'))} && Number.isSafeInteger(base) && Math.abs(x_startMs - base) < ${c.MAX_TIME_DELTA} && Math.abs(x_endMs - x_startMs) < ${c.MAX_TIME_DELTA};`
      : 'const td = false;',
  );
  lines.push(`e.fusedRecordEnd = ${src.end};`);
  lines.push(`let o = e.writeHead(bits, td, 'netflow', m.version, m.transport, m.exporter, m.identity, m.observationDomainId, m.exportTimeS, ${local('ipVersion')}, ${local('samplingInterval')});`);
  lines.push('const ob = e.out, ov = e.outView;');
  // An address with one source is written in place: an IPv4 field's u32 (always a valid one,
  // read by getUint32) or an IPv6 field's 16 bytes, from the packet (see inPlace) or from its
  // copy; one with an IPv6 fallback can be either.
  for (const [prop] of ADDRESSES) {
    if (!has(prop)) continue;
    const x = local(prop);
    const kind = kinds.get(prop);
    if (kind === 'ipv4') lines.push(`if (${x} !== null) { ov.setUint32(o, ${x}, false); o += 4; }`);
    else if (inPlace(prop)) {
      const a = `v6at_${prop}`;
      const fromPacket = `ov.setUint32(o, view.getUint32(${a})); ov.setUint32(o + 4, view.getUint32(${a} + 4)); ov.setUint32(o + 8, view.getUint32(${a} + 8)); ov.setUint32(o + 12, view.getUint32(${a} + 12));`;
      if (pz.has(prop)) {
        const fromPseudonym = `ov.setUint32(o, q0_${prop}); ov.setUint32(o + 4, q1_${prop}); ov.setUint32(o + 8, q2_${prop}); ov.setUint32(o + 12, q3_${prop});`;
        lines.push(`if (${x} !== null) { if (pzi_${prop} >= 0) { ${fromPseudonym} } else { ${fromPacket} } o += 16; }`);
      } else lines.push(`if (${x} !== null) { ${fromPacket} o += 16; }`);
    } else if (kind === 'ipv6') lines.push(`if (${x} !== null) { ob.set(${x}, o); o += 16; }`);
    else lines.push(`if (${x} !== null) o = putAddr(ob, ov, o, ${x});`);
  }
  // putNum, putCounter and putZigzag are written out in place (V8 would not inline twenty calls
  // into a function this size), each with the same tests as the function it stands for:
  // varint(z) is putVarint's loop for 0 ≤ z < 2^28 (32-bit shifts stay exact there).
  const varint = (z: string): string => `{ let z = ${z}; while (z >= 128) { ob[o++] = (z & 127) | 128; z >>>= 7; } ob[o++] = z; }`;
  // putNum(x) for a number x: the fast path (0 < x < 2^29, an integer), else putNumOther.
  const num = (x: string): string => `if ((${x} | 0) === ${x} && ${x} > 0 && ${x} < ${c.SMALL_NUM_LIMIT}) ${varint(`${x} * 2`)} else o = putNumOther(ob, ov, o, ${x});`;
  for (const counter of ['octets', 'packets']) {
    const x = local(counter);
    // A counter the template does not carry is the number 0, which putNum writes as the byte 0.
    lines.push(has(counter) ? `if (typeof ${x} === 'number') { ${num(x)} } else o = putCounter(ob, ov, o, ${x});` : 'ob[o++] = 0;');
  }
  // Values known to be small unsigned integers (< 2^24) skip putNum's test: 2·v is always in the loop's range.
  const small = smallUintProps(plans);
  for (const prop of OPTIONAL_NUMBERS) {
    if (!has(prop)) continue;
    const x = local(prop);
    lines.push(small.has(prop) ? `if (${x} !== null) ${varint(`${x} * 2`)}` : `if (${x} !== null) { ${num(x)} }`);
  }
  // putZigzag(d) = putVarint(zz(d)); with td the deltas are safe integers below 2^50.
  const zigzag = (d: string): string => `{ const d = ${d}; const zz = d >= 0 ? d * 2 : -d * 2 - 1; if (zz < ${2 ** 28}) ${varint('zz')} else o = putVarint(ob, o, zz); }`;
  if (timed) lines.push(`if (td) { ${zigzag('x_startMs - base')} ${zigzag('x_endMs - x_startMs')} } else {`);
  if (has('startMs')) lines.push('if (x_startMs !== null) o = putNum(ob, ov, o, x_startMs);');
  if (has('endMs')) lines.push('if (x_endMs !== null) o = putNum(ob, ov, o, x_endMs);');
  if (timed) lines.push('}');
  if (has('uptimeMs')) lines.push('if (x_uptimeMs !== null) o = putNum(ob, ov, o, x_uptimeMs);');
  lines.push('e.endRecord(o);');
  lines.push(`return ${src.end};`);
  return lines.join('\n  ');
}

/**
 * Compiles a fused writer for `plans`, consulting `filter` and applying `pseudonymizer` when
 * given (the source is built from numbers and fixed property names only, never from packet text).
 */
export function compileFusedWriter(plans: readonly FieldPlan[], filter: FusedRecordFilter | null = null, pseudonymizer: FusedPseudonymizer | null = null): FusedRecordWriter {
  const body = fusedWriterSource(plans, filter !== null, pseudonymizer?.policy.props ?? []);
  const c = format;
  // eslint-disable-next-line @typescript-eslint/no-implied-eval -- the specialised writer is the point (see above)
  const factory = new Function(
    'readCounter64',
    'readUnsignedN',
    'putNum',
    'putNumOther',
    'putAddr',
    'putCounter',
    'putVarint',
    'flt',
    'pz',
    'PW',
    'V6',
    'absoluteFromSysInit',
    'packetIntervalRate',
    `return function fusedRecord(view, buf, p, end, ctx, e, m) {\n  ${body}\n};`,
  ) as (
    rc: typeof readCounter64,
    ru: typeof readUnsignedN,
    pn: typeof c.putNum,
    pno: typeof c.putNumOther,
    pa: typeof c.putAddr,
    pc: typeof c.putCounter,
    pv: typeof c.putVarint,
    flt: FusedRecordFilter | null,
    pz: FusedPseudonymizer | null,
    pw: Uint32Array,
    v6: Uint8Array,
    af: typeof absoluteFromSysInit,
    pr: typeof packetIntervalRate,
  ) => FusedRecordWriter;
  return factory(readCounter64, readUnsignedN, c.putNum, c.putNumOther, c.putAddr, c.putCounter, c.putVarint, filter, pseudonymizer, pseudonymizer?.v6words ?? new Uint32Array(0), V6_IN_PACKET, absoluteFromSysInit, packetIntervalRate);
}

/** The value of an IPv6 address local whose bytes stay in the packet (see fusedWriterSource); never read or written. */
const V6_IN_PACKET = new Uint8Array(16);

/**
 * Bound on the compiled writers kept, in estimated bytes (like the decoders' cache: the decoder
 * state budget's per-template cost, src/decode/state-budget.ts); part of the ingest worker's
 * fixed memory overhead (docs/decoding.md, "Memory").
 */
export const MAX_CACHED_WRITER_BYTES = 8 * 1024 * 1024;

/**
 * The DecodeService's FusedSetSink on the ingest worker: compiles (once per template layout
 * and filter) and runs fused writers into `target`. A template whose writer cannot be
 * compiled, or any set while the target refuses, takes the FlowRecord path instead.
 */
export class FusedSetWriter implements FusedSetSink {
  readonly #writers = new Map<string, FusedRecordWriter | null>();
  #writerBytes = 0;
  #filter: FusedRecordFilter | null;
  readonly #pseudonymizer: FusedPseudonymizer | null;

  /**
   * `filter`: null when every record is kept (no filter code in the writers at all);
   * `pseudonymizer`: null when addresses are stored as decoded (no pseudonymisation code).
   */
  constructor(private readonly target: FusedBatchTarget, filter: FusedRecordFilter | null = null, pseudonymizer: FusedPseudonymizer | null = null) {
    this.#filter = filter;
    this.#pseudonymizer = pseudonymizer;
  }

  /** Swaps the filter the writers consult (a reload); writers are compiled again as templates come. */
  setFilter(filter: FusedRecordFilter | null): void {
    if (filter === this.#filter) return;
    this.#filter = filter;
    this.#writers.clear();
    this.#writerBytes = 0;
  }

  writeSet(t: Template, view: DataView, buf: Uint8Array, p: number, end: number, ctx: RecordContext, meta: SetMeta, result: FusedSetResult): boolean {
    if (!this.target.acceptsFused) return false;
    let w = this.#writers.get(t.signature);
    if (w === undefined) {
      try {
        w = compileFusedWriter(t.plans, this.#filter, this.#pseudonymizer);
      } catch {
        w = null;
      }
      const bytes = templateCost(t.plans.length);
      if (this.#writerBytes + bytes > MAX_CACHED_WRITER_BYTES) {
        this.#writers.clear();
        this.#writerBytes = 0;
      }
      this.#writers.set(t.signature, w);
      this.#writerBytes += bytes;
    }
    if (w === null) return false;
    this.target.writeFusedSet(w, view, buf, p, end, t.minLength, ctx, meta, result);
    return true;
  }
}
