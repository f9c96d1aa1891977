import type { FlowRecord } from '../../flow/flow-record.js';
import { readCounter64, readUnsignedN } from '../byte-reader.js';
import type { FieldPlan, ReadKind, TargetProp } from './field-mapping.js';
import { readVarLength, VARIABLE_LENGTH } from './field-mapping.js';
import type { RecordContext } from './record-context.js';

/**
 * Fills `r` from the data record starting at byte `p` of `buf`/`view` (the same bytes), reading
 * no further than `end`. Returns the offset just past the record, or -1 when a variable-length
 * field runs past `end` (RFC 7011 §7). The caller has checked that the template's minimum
 * record length fits before `end`.
 */
export type RecordDecoder = (view: DataView, buf: Uint8Array, p: number, end: number, r: FlowRecord, ctx: RecordContext) => number;

/** Seconds between the NTP era 0 epoch (1900) and the Unix epoch (RFC 7011 §6.1.9). */
const NTP_UNIX_OFFSET_S = 2208988800;
/** An NTP fraction unit is 2^-32 s, so ms = fraction / (2^32 / 1000). */
const NTP_FRACTION_PER_MS = 4294967.296;
const TWO_POW_32 = 4294967296;

/** Minimum bytes a record of this layout takes (a variable-length field takes at least its 1-byte length). */
export function minRecordLength(plans: readonly FieldPlan[]): number {
  let n = 0;
  for (const f of plans) n += f.spec.length === VARIABLE_LENGTH ? 1 : f.spec.length;
  return n;
}

/** JS expression reading an unsigned integer of `len` bytes at `at` as a number. */
function uintExpr(at: string, len: number): string {
  switch (len) {
    case 1:
      return `view.getUint8(${at})`;
    case 2:
      return `view.getUint16(${at})`;
    case 3:
      return `(view.getUint8(${at}) * 65536 + view.getUint16(${at} + 1))`;
    case 4:
      return `view.getUint32(${at})`;
    default:
      return `Number(readUnsignedN(view, ${at}, ${len}))`;
  }
}

function valueExpr(kind: ReadKind, at: string, len: number): string {
  switch (kind) {
    case 'uint':
      return uintExpr(at, len);
    case 'counter':
      if (len <= 4) return uintExpr(at, len);
      return len === 8 ? `readCounter64(view, ${at})` : `readUnsignedN(view, ${at}, ${len})`;
    case 'ipv4':
      return `view.getUint32(${at})`;
    case 'ipv6':
      return `buf.slice(${at}, ${at} + 16)`;
    case 'seconds':
      return `view.getUint32(${at}) * 1000`;
    case 'millis':
      return `(view.getUint32(${at}) * ${TWO_POW_32} + view.getUint32(${at} + 4))`;
    case 'ntp':
      return `((view.getUint32(${at}) - ${NTP_UNIX_OFFSET_S}) * 1000 + Math.floor(view.getUint32(${at} + 4) / ${NTP_FRACTION_PER_MS}))`;
    case 'sysUpTime':
      return `ctx.absoluteFromUptime(view.getUint32(${at}))`;
    case 'deltaMicros':
      return `(ctx.exportMs - Math.floor(view.getUint32(${at}) / 1000))`;
    case 'icmpTypeCode':
      return `view.getUint16(${at})`;
  }
}

interface EpilogueNeeds {
  fallbacks: TargetProp[];
  hasIpVersion: boolean;
  hasSamplerId: boolean;
  hasSamplingInterval: boolean;
  /** The record carries samplingPacketInterval (305): its rate is (interval + space) / interval (RFC 5476 §6.5.2). */
  hasPacketInterval: boolean;
  /** The record carries systemInitTimeMilliseconds (160): its sysUpTime times are anchored to it. */
  hasSysInit: boolean;
  /** Time properties read as sysUpTime (resolved in the epilogue when hasSysInit). */
  upTimes: TargetProp[];
}

function epilogueNeeds(plans: readonly FieldPlan[]): EpilogueNeeds {
  const needs: EpilogueNeeds = { fallbacks: [], hasIpVersion: false, hasSamplerId: false, hasSamplingInterval: false, hasPacketInterval: false, hasSysInit: false, upTimes: [] };
  for (const f of plans) {
    for (const t of f.targets) {
      if (t.fallback) needs.fallbacks.push(t.prop);
      else if (t.prop === 'ipVersion') needs.hasIpVersion = true;
      else if (t.prop === 'samplerId') needs.hasSamplerId = true;
      else if (t.prop === 'samplingInterval') needs.hasSamplingInterval = true;
      else if (t.prop === 'samplingPacketInterval') needs.hasPacketInterval = true;
      else if (t.prop === 'sysInit') needs.hasSysInit = true;
      else if (t.kind === 'sysUpTime') needs.upTimes.push(t.prop);
    }
  }
  return needs;
}

/**
 * Absolute Unix ms of a sysUpTime value `v` given the exporter's boot time `sysInitMs` from
 * the record itself: the same signed 32-bit difference as RecordContext.absoluteFromUptime,
 * with the uptime at export = exportMs − sysInitMs (RFC 7011 §6.1: IE 160, IE 22/21).
 */
/** RFC 5476 §6.5.2 systematic count-based sampling: 1-in-N of `interval` selected, `space` skipped; 0 when not a believable rate. */
export function packetIntervalRate(interval: number, space: number): number {
  const n = Math.round((interval + space) / interval);
  return n >= 1 && n <= 0x7fffffff ? n : 0;
}

export function absoluteFromSysInit(exportMs: number, sysInitMs: number, v: number): number {
  return exportMs - ((exportMs - sysInitMs - v) | 0);
}

/**
 * Source of a decoder specialised to one template (see compileRecordDecoder), for reuse by
 * code generators that keep the decoded values in locals instead of a FlowRecord (the
 * spool's fused writer). `out(prop)` names where a property is written and read: `r.<prop>`
 * for a record, a local for a fused writer, which must then declare the locals (null, or 0
 * for the counters and ipVersion) for every property in `assigned`. The lines end with the
 * epilogue (address fallbacks, ipVersion, samplingInterval, uptimeMs); `end` is the
 * expression for the offset just past the record. The source is built solely from numbers
 * and a fixed set of property names, never from packet text.
 */
export interface DecoderSource {
  readonly lines: readonly string[];
  readonly end: string;
  /** Properties the lines write (epilogue ones included), in first-write order. */
  readonly assigned: ReadonlySet<string>;
}

/**
 * `ipv6`, when given, replaces the expression that reads a (non-fallback) IPv6 field — by
 * default a 16-byte copy, `buf.slice(at, at + 16)` — for code generators that take the bytes
 * from the packet themselves; `at` is the field's offset expression, valid where it is read.
 */
export function recordDecoderSource(plans: readonly FieldPlan[], out: (prop: string) => string, ipv6?: (prop: string, at: string) => string): DecoderSource {
  const lines: string[] = [];
  const assigned = new Set<string>();
  const set = (prop: string, expr: string): string => {
    assigned.add(prop);
    return `${out(prop)} = ${expr};`;
  };
  const needs = epilogueNeeds(plans);
  let offset = 0;
  let dynamic = false;
  // Bytes the remaining fields need at least, so one check per variable-length field covers the fixed reads after it.
  let restMin = minRecordLength(plans);
  lines.push('let n = 0, t = 0, sid = -1, si = 0, sinit = -1, spi = 0, sps = 0;');
  for (const p of needs.fallbacks) lines.push(`let fb_${p} = -1;`);
  // With an in-record boot time, sysUpTime fields keep their raw value until the epilogue (160 may come after them).
  if (needs.hasSysInit) for (const p of needs.upTimes) lines.push(`let su_${p} = -1;`);
  for (const plan of plans) {
    const len = plan.spec.length;
    if (len === VARIABLE_LENGTH) {
      if (!dynamic) {
        lines.push(`let q = p + ${offset};`);
        dynamic = true;
      }
      restMin -= 1;
      lines.push('if (q >= end) return -1;');
      lines.push('n = view.getUint8(q); q += 1;');
      // RFC 7011 §7: a first length byte of 255 means the real length follows in 2 bytes.
      lines.push('if (n === 255) { if (q + 2 > end) return -1; n = view.getUint16(q); q += 2; }');
      lines.push(`if (q + n + ${restMin} > end) return -1;`);
      lines.push('q += n;');
      continue;
    }
    restMin -= len;
    const at = dynamic ? 'q' : `p + ${offset}`;
    for (const t of plan.targets) {
      const expr = t.kind === 'ipv6' && ipv6 !== undefined ? ipv6(t.prop, at) : valueExpr(t.kind, at, len);
      if (t.kind === 'icmpTypeCode') {
        lines.push(`t = ${expr};`);
        lines.push(t.prop === 'icmpType' ? set('icmpType', 't >>> 8') : set('icmpCode', 't & 255'));
      } else if (t.fallback) {
        // Only the position: the IPv6 copy is made in the epilogue, and only when needed.
        lines.push(`fb_${t.prop} = ${at};`);
      } else if (t.prop === 'samplerId') {
        lines.push(`sid = ${expr};`);
      } else if (t.prop === 'samplingInterval') {
        lines.push(`si = ${expr};`);
      } else if (t.prop === 'sysInit') {
        lines.push(`sinit = ${expr};`);
      } else if (t.prop === 'samplingPacketInterval') {
        lines.push(`spi = ${expr};`);
      } else if (t.prop === 'samplingPacketSpace') {
        lines.push(`sps = ${expr};`);
      } else if (needs.hasSysInit && t.kind === 'sysUpTime') {
        lines.push(`su_${t.prop} = view.getUint32(${at});`);
      } else {
        lines.push(set(t.prop, expr));
      }
    }
    if (dynamic) lines.push(`q += ${len};`);
    else offset += len;
  }
  for (const p of needs.fallbacks) lines.push(`if (${out(p)} === null || ${out(p)} === 0) ${set(p, `buf.slice(fb_${p}, fb_${p} + 16)`)}`);
  for (const p of needs.hasSysInit ? needs.upTimes : []) {
    lines.push(set(p, `su_${p} < 0 ? null : sinit >= 0 ? absoluteFromSysInit(ctx.exportMs, sinit, su_${p}) : ctx.absoluteFromUptime(su_${p})`));
  }
  const infer = `a = ${out('srcAddr')} !== null ? ${out('srcAddr')} : ${out('dstAddr')}; ${set('ipVersion', 'a === null ? 0 : typeof a === "number" ? 4 : 6')}`;
  lines.push(needs.hasIpVersion ? `if (${out('ipVersion')} !== 4 && ${out('ipVersion')} !== 6) { let ${infer} }` : `let ${infer}`);
  // The interval-plus-space form in the record: rate = (interval + space) / interval, unless 34/50 gave one.
  if (needs.hasPacketInterval) lines.push(`if (si <= 0 && spi > 0) si = packetIntervalRate(spi, sps);`);
  lines.push(
    set(
      'samplingInterval',
      needs.hasSamplingInterval || needs.hasPacketInterval
        ? `si > 0 ? si : ${needs.hasSamplerId ? 'ctx.samplingFor(sid)' : 'ctx.defaultSampling'}`
        : needs.hasSamplerId
          ? 'ctx.samplingFor(sid)'
          : 'ctx.defaultSampling',
    ),
  );
  lines.push(
    set(
      'uptimeMs',
      needs.hasSysInit
        ? 'sinit >= 0 ? (ctx.exportMs >= sinit ? ctx.exportMs - sinit : null) : ctx.hasUptime && ctx.uptimeMs >= 0 ? ctx.uptimeMs : null'
        : 'ctx.hasUptime && ctx.uptimeMs >= 0 ? ctx.uptimeMs : null',
    ),
  );
  return { lines, end: dynamic ? 'q' : `p + ${offset}`, assigned };
}

/**
 * Builds a decoder specialised to one template: straight-line code with constant offsets up
 * to the first variable-length field, a running offset after it, and only the reads the
 * mapping needs. Generated once per learned template (see recordDecoderSource).
 */
export function compileRecordDecoder(plans: readonly FieldPlan[]): RecordDecoder {
  const src = recordDecoderSource(plans, (prop) => `r.${prop}`);
  const body = [...src.lines, `return ${src.end};`].join('\n  ');
  // eslint-disable-next-line @typescript-eslint/no-implied-eval -- the specialised decoder is the point (see above)
  const factory = new Function('readCounter64', 'readUnsignedN', 'absoluteFromSysInit', 'packetIntervalRate', `return function decodeRecord(view, buf, p, end, r, ctx) {\n  ${body}\n};`) as (
    rc: typeof readCounter64,
    ru: typeof readUnsignedN,
    af: typeof absoluteFromSysInit,
    pr: typeof packetIntervalRate,
  ) => RecordDecoder;
  return factory(readCounter64, readUnsignedN, absoluteFromSysInit, packetIntervalRate);
}

/** The same decoding as compileRecordDecoder, by a per-field loop (used when compilation is off). */
export function genericRecordDecoder(plans: readonly FieldPlan[]): RecordDecoder {
  const lengths = plans.map((p) => p.spec.length);
  const targets = plans.map((p) => p.targets);
  const needs = epilogueNeeds(plans);
  return (view, buf, p, end, r, ctx) => {
    let q = p;
    let sid = -1;
    let si = 0;
    let sinit = -1;
    let spi = 0;
    let sps = 0;
    let suStart = -1;
    let suEnd = -1;
    let fbSrc: Uint8Array | null = null;
    let fbDst: Uint8Array | null = null;
    let fbNext: Uint8Array | null = null;
    let fbBgp: Uint8Array | null = null;
    for (let i = 0; i < lengths.length; i++) {
      const n = lengths[i] ?? 0;
      if (n === VARIABLE_LENGTH) {
        const v = readVarLength(view, q, end);
        if (v < 0) return -1;
        q += (v & 3) + (v >>> 2);
        continue;
      }
      if (q + n > end) return -1;
      for (const t of targets[i] ?? []) {
        if (t.kind === 'ipv6') {
          const v6 = buf.slice(q, q + 16);
          if (t.fallback) {
            if (t.prop === 'srcAddr') fbSrc = v6;
            else if (t.prop === 'dstAddr') fbDst = v6;
            else if (t.prop === 'nextHop') fbNext = v6;
            else fbBgp = v6;
          } else if (t.prop === 'srcAddr') r.srcAddr = v6;
          else if (t.prop === 'dstAddr') r.dstAddr = v6;
          else if (t.prop === 'nextHop') r.nextHop = v6;
          else r.bgpNextHop = v6;
          continue;
        }
        if (t.prop === 'sysInit') {
          sinit = view.getUint32(q) * TWO_POW_32 + view.getUint32(q + 4);
          continue;
        }
        if (needs.hasSysInit && t.kind === 'sysUpTime') {
          if (t.prop === 'startMs') suStart = view.getUint32(q);
          else suEnd = view.getUint32(q);
          continue;
        }
        const v = readValue(t.kind, view, q, n, ctx);
        switch (t.prop) {
          case 'octets':
            r.octets = v ?? 0;
            break;
          case 'packets':
            r.packets = v ?? 0;
            break;
          case 'samplerId':
            sid = Number(v);
            break;
          case 'samplingInterval':
            si = Number(v);
            break;
          case 'samplingPacketInterval':
            spi = Number(v);
            break;
          case 'samplingPacketSpace':
            sps = Number(v);
            break;
          case 'icmpType':
            r.icmpType = t.kind === 'icmpTypeCode' ? Number(v) >>> 8 : Number(v);
            break;
          case 'icmpCode':
            r.icmpCode = t.kind === 'icmpTypeCode' ? Number(v) & 255 : Number(v);
            break;
          case 'startMs':
          case 'endMs':
            r[t.prop] = v === null ? null : Number(v);
            break;
          case 'ipVersion':
            r.ipVersion = Number(v);
            break;
          default:
            r[t.prop] = Number(v);
        }
      }
      q += n;
    }
    if (fbSrc !== null && (r.srcAddr === null || r.srcAddr === 0)) r.srcAddr = fbSrc;
    if (fbDst !== null && (r.dstAddr === null || r.dstAddr === 0)) r.dstAddr = fbDst;
    if (fbNext !== null && (r.nextHop === null || r.nextHop === 0)) r.nextHop = fbNext;
    if (fbBgp !== null && (r.bgpNextHop === null || r.bgpNextHop === 0)) r.bgpNextHop = fbBgp;
    if (!needs.hasIpVersion || (r.ipVersion !== 4 && r.ipVersion !== 6)) {
      const a = r.srcAddr ?? r.dstAddr;
      r.ipVersion = a === null ? 0 : typeof a === 'number' ? 4 : 6;
    }
    if (needs.hasSysInit) {
      const at = (v: number): number | null => (v < 0 ? null : sinit >= 0 ? absoluteFromSysInit(ctx.exportMs, sinit, v) : ctx.absoluteFromUptime(v));
      if (needs.upTimes.includes('startMs')) r.startMs = at(suStart);
      if (needs.upTimes.includes('endMs')) r.endMs = at(suEnd);
    }
    if (si <= 0 && spi > 0) si = packetIntervalRate(spi, sps);
    r.samplingInterval = si > 0 ? si : sid >= 0 ? ctx.samplingFor(sid) : ctx.defaultSampling;
    // A system init time after the export time means the exporter's clocks disagree (e.g.
    // softflowd replaying an old capture): its uptime is unknown, not negative.
    if (sinit >= 0) r.uptimeMs = ctx.exportMs >= sinit ? ctx.exportMs - sinit : null;
    else r.uptimeMs = ctx.hasUptime && ctx.uptimeMs >= 0 ? ctx.uptimeMs : null;
    return q;
  };
}

function readValue(kind: ReadKind, view: DataView, at: number, len: number, ctx: RecordContext): number | bigint | null {
  switch (kind) {
    case 'uint':
      return Number(readUnsignedN(view, at, len));
    case 'counter':
      return readUnsignedN(view, at, len);
    case 'ipv4':
    case 'icmpTypeCode':
      return len === 4 ? view.getUint32(at) : view.getUint16(at);
    case 'ipv6':
      return null;
    case 'seconds':
      return view.getUint32(at) * 1000;
    case 'millis':
      return view.getUint32(at) * TWO_POW_32 + view.getUint32(at + 4);
    case 'ntp':
      return (view.getUint32(at) - NTP_UNIX_OFFSET_S) * 1000 + Math.floor(view.getUint32(at + 4) / NTP_FRACTION_PER_MS);
    case 'sysUpTime':
      return ctx.absoluteFromUptime(view.getUint32(at));
    case 'deltaMicros':
      return ctx.exportMs - Math.floor(view.getUint32(at) / 1000);
  }
}
