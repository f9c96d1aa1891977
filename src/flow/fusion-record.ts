import type { Counter, FlowRecord, IpAddr } from './flow-record.js';
import { grownBytes } from './byte-buffer.js';
import { ipToString, ipv6ToString } from './ip.js';
import { protocolName } from './protocols.js';

/**
 * The Fusion flow record (docs/FUSION.md, "The flow record"): the JSON object the drain
 * uploads and `--stdout` / `sealflow decode` print. Enrichment fields that Fusion adds on its
 * side (owner AS, geo, reputation, interface names) are not sent.
 *
 * Exact 64-bit counters: `bits` and `packets` are JSON numbers while they are safe integers
 * (≤ 2^53 - 1) and decimal strings beyond that, so no precision is ever lost.
 */
export type JsonCounter = number | string;

export interface FusionAs {
  asnumber: number;
  asorg: string;
}

export interface FusionTcpFlags {
  urg: boolean;
  ack: boolean;
  psh: boolean;
  rst: boolean;
  syn: boolean;
  fin: boolean;
  ece: boolean;
  cwr: boolean;
  ns: boolean;
}

export interface FusionFlowRecord {
  timestamp: number;
  flowtype: string;
  flowversion: number;
  flowsrcip: string;
  ipversion: number;
  srcip: string | null;
  dstip: string | null;
  srcport: number | null;
  dstport: number | null;
  protocol: string | null;
  protocolint: number | null;
  bits: JsonCounter;
  packets: JsonCounter;
  pbratio: number;
  flowbrate: number;
  flowprate: number;
  tos: number | null;
  tcpflags: FusionTcpFlags | null;
  tcpflagsint: number | null;
  input: number | null;
  output: number | null;
  srcmask: number | null;
  dstmask: number | null;
  nexthop: string | null;
  bgpnexthop: string | null;
  srcas: FusionAs | null;
  dstas: FusionAs | null;
  srcvlan: number | null;
  dstvlan: number | null;
  icmptype: number | null;
  icmpcode: number | null;
  /** Flow start/end, absolute Unix milliseconds. */
  start: number | null;
  end: number | null;
  /** end - start in ms. */
  duration: number | null;
  samplerate: number;
  /** Exporter sysUpTime in ms, where the protocol carries it. */
  uptime: number | null;
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** JSON form of an exact counter: a number while safe, else a decimal string. */
export function counterToJson(c: Counter): JsonCounter {
  if (typeof c === 'number') return c;
  return c <= MAX_SAFE ? Number(c) : c.toString();
}

/** octets × 8 exactly. */
export function bitsOf(octets: Counter): Counter {
  if (typeof octets === 'number') {
    const bits = octets * 8;
    return bits <= Number.MAX_SAFE_INTEGER ? bits : BigInt(octets) * 8n;
  }
  return octets * 8n;
}

/** A counter as a (possibly rounded) double, for rates and ratios only. */
function approx(c: Counter): number {
  return typeof c === 'number' ? c : Number(c);
}

function ipOrNull(a: IpAddr | null): string | null {
  return a === null ? null : ipToString(a);
}

export function tcpFlagsOf(v: number): FusionTcpFlags {
  return {
    fin: (v & 0x01) !== 0,
    syn: (v & 0x02) !== 0,
    rst: (v & 0x04) !== 0,
    psh: (v & 0x08) !== 0,
    ack: (v & 0x10) !== 0,
    urg: (v & 0x20) !== 0,
    ece: (v & 0x40) !== 0,
    cwr: (v & 0x80) !== 0,
    ns: (v & 0x100) !== 0,
  };
}

function round6(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

export function toFusionRecord(r: FlowRecord): FusionFlowRecord {
  const bits = bitsOf(r.octets);
  const bitsApprox = approx(bits);
  const packetsApprox = approx(r.packets);
  const duration = r.startMs !== null && r.endMs !== null && r.endMs >= r.startMs ? r.endMs - r.startMs : null;
  // Rates over the flow's duration; a zero-length flow (single packet) has no meaningful
  // rate, so it reports its totals as a per-second rate, as NetoFlow does.
  const seconds = duration !== null && duration > 0 ? duration / 1000 : 1;
  const icmp = r.protocol === 1 || r.protocol === 58;
  return {
    timestamp: r.exportTime,
    flowtype: r.flowtype,
    flowversion: r.flowversion,
    flowsrcip: r.exporter,
    ipversion: r.ipVersion,
    srcip: ipOrNull(r.srcAddr),
    dstip: ipOrNull(r.dstAddr),
    srcport: r.srcPort,
    dstport: r.dstPort,
    protocol: r.protocol === null ? null : protocolName(r.protocol),
    protocolint: r.protocol,
    bits: counterToJson(bits),
    packets: counterToJson(r.packets),
    pbratio: bitsApprox > 0 ? round6(packetsApprox / bitsApprox) : 0,
    flowbrate: round6(bitsApprox / seconds),
    flowprate: round6(packetsApprox / seconds),
    tos: r.tos,
    tcpflags: r.tcpFlags === null ? null : tcpFlagsOf(r.tcpFlags),
    tcpflagsint: r.tcpFlags,
    input: r.inputIf,
    output: r.outputIf,
    srcmask: r.srcMask,
    dstmask: r.dstMask,
    nexthop: ipOrNull(r.nextHop),
    bgpnexthop: ipOrNull(r.bgpNextHop),
    srcas: r.srcAs === null ? null : { asnumber: r.srcAs, asorg: '' },
    dstas: r.dstAs === null ? null : { asnumber: r.dstAs, asorg: '' },
    srcvlan: r.srcVlan,
    dstvlan: r.dstVlan,
    icmptype: icmp ? r.icmpType : null,
    icmpcode: icmp ? r.icmpCode : null,
    start: r.startMs,
    end: r.endMs,
    duration,
    samplerate: r.samplingInterval,
    uptime: r.uptimeMs,
  };
}

// --- Direct JSON rendering ----------------------------------------------------------------
//
// FusionJsonWriter renders records as JSON bytes that are byte for byte
// JSON.stringify(toFusionRecord(r)) (the unit tests check it over random records), straight
// into one growing buffer: no intermediate objects or strings per record, so the drain's
// serialization costs a fraction of the generic path and leaves almost nothing for the GC.
// Rules it relies on:
// - JSON.stringify renders a finite number exactly as String(n) does (so -0 as "0") and NaN
//   or ±Infinity as null (ECMA-262 SerializeJSONProperty); String(n) of an integer of
//   magnitude ≤ 2^53 is its plain decimal digits, which the writer produces itself;
// - address text (ipToString), protocol keywords, decimal counters and the fixed keys are
//   ASCII with nothing JSON must escape; other strings go through JSON.stringify once and
//   are cached (an exporter repeats record after record).

const utf8 = new TextEncoder();

/** Worst case of one record's bytes apart from its two free-text strings (keys ~420 B, 36 values ≤ 47 B). */
const MAX_RECORD_BYTES_WITHOUT_STRINGS = 2048;
const TWO_POW_31 = 2147483648;
/** round6 values below 4·10^9 in millionths (see FusionJsonWriter.rounded6). */
const MAX_FIXED6_UNITS = 4e15;

const KEYS = {
  timestamp: utf8.encode('{"timestamp":'),
  flowtype: utf8.encode(',"flowtype":'),
  flowversion: utf8.encode(',"flowversion":'),
  flowsrcip: utf8.encode(',"flowsrcip":'),
  ipversion: utf8.encode(',"ipversion":'),
  srcip: utf8.encode(',"srcip":'),
  dstip: utf8.encode(',"dstip":'),
  srcport: utf8.encode(',"srcport":'),
  dstport: utf8.encode(',"dstport":'),
  protocol: utf8.encode(',"protocol":'),
  protocolint: utf8.encode(',"protocolint":'),
  bits: utf8.encode(',"bits":'),
  packets: utf8.encode(',"packets":'),
  pbratio: utf8.encode(',"pbratio":'),
  flowbrate: utf8.encode(',"flowbrate":'),
  flowprate: utf8.encode(',"flowprate":'),
  tos: utf8.encode(',"tos":'),
  tcpflags: utf8.encode(',"tcpflags":'),
  tcpflagsint: utf8.encode(',"tcpflagsint":'),
  input: utf8.encode(',"input":'),
  output: utf8.encode(',"output":'),
  srcmask: utf8.encode(',"srcmask":'),
  dstmask: utf8.encode(',"dstmask":'),
  nexthop: utf8.encode(',"nexthop":'),
  bgpnexthop: utf8.encode(',"bgpnexthop":'),
  srcas: utf8.encode(',"srcas":'),
  dstas: utf8.encode(',"dstas":'),
  srcvlan: utf8.encode(',"srcvlan":'),
  dstvlan: utf8.encode(',"dstvlan":'),
  icmptype: utf8.encode(',"icmptype":'),
  icmpcode: utf8.encode(',"icmpcode":'),
  start: utf8.encode(',"start":'),
  end: utf8.encode(',"end":'),
  duration: utf8.encode(',"duration":'),
  samplerate: utf8.encode(',"samplerate":'),
  uptime: utf8.encode(',"uptime":'),
  asOpen: utf8.encode('{"asnumber":'),
  asClose: utf8.encode(',"asorg":""}'),
  null: utf8.encode('null'),
};

/** JSON of tcpFlagsOf(v) for each value of the nine flag bits (v & 0x1ff; ToInt32 as tcpFlagsOf's own masks). */
const TCP_FLAGS_JSON: readonly Uint8Array[] = Array.from({ length: 0x200 }, (_, i) => utf8.encode(JSON.stringify(tcpFlagsOf(i))));
/** `"name"` of each protocol number 0–255. */
const PROTOCOL_JSON: readonly Uint8Array[] = Array.from({ length: 256 }, (_, i) => utf8.encode(JSON.stringify(protocolName(i))));

/** One-entry cache of a string's JSON bytes. */
class QuotedCache {
  private text: string | null = null;
  private json: Uint8Array = KEYS.null;
  get(s: string): Uint8Array {
    if (s !== this.text) {
      this.json = utf8.encode(JSON.stringify(s));
      this.text = s;
    }
    return this.json;
  }
}

/**
 * Writes Fusion flow records as JSON into a reusable buffer. Use `record()` per record and
 * `byte()` for separators; `take(start)` copies out what was written since `start`.
 */
export class FusionJsonWriter {
  private buf: Uint8Array;
  private pos = 0;
  private readonly exporters = new QuotedCache();
  private readonly flowtypes = new QuotedCache();

  constructor(initialBytes = 1 << 20) {
    this.buf = new Uint8Array(Math.max(initialBytes, MAX_RECORD_BYTES_WITHOUT_STRINGS));
  }

  /** Bytes written since the last reset. */
  get length(): number {
    return this.pos;
  }

  reset(): void {
    this.pos = 0;
  }

  /** A copy of the bytes written in [start, end). */
  take(start: number, end = this.pos): Buffer {
    return Buffer.from(this.buf.buffer.slice(start, end));
  }

  /** Forgets the bytes before `start`: what follows moves to the front (keeps the buffer small). */
  discard(start: number): void {
    this.buf.copyWithin(0, start, this.pos);
    this.pos -= start;
  }

  /** The records as NDJSON (one record and "\n" each), in a buffer of their own. */
  ndjson(records: readonly FlowRecord[]): Buffer {
    this.reset();
    for (const r of records) {
      this.record(r);
      this.byte(0x0a);
    }
    return this.take(0);
  }

  byte(c: number): void {
    this.ensure(1);
    this.buf[this.pos++] = c;
  }

  record(r: FlowRecord): void {
    const exporter = this.exporters.get(r.exporter);
    const flowtype = this.flowtypes.get(r.flowtype);
    this.ensure(MAX_RECORD_BYTES_WITHOUT_STRINGS + exporter.length + flowtype.length);
    const bits = bitsOf(r.octets);
    const bitsApprox = approx(bits);
    const packetsApprox = approx(r.packets);
    const { startMs, endMs, protocol } = r;
    const duration = startMs !== null && endMs !== null && endMs >= startMs ? endMs - startMs : null;
    const seconds = duration !== null && duration > 0 ? duration / 1000 : 1;
    const icmp = protocol === 1 || protocol === 58;
    // Key order is toFusionRecord's.
    this.seg(KEYS.timestamp);
    this.num(r.exportTime);
    this.seg(KEYS.flowtype);
    this.seg(flowtype);
    this.seg(KEYS.flowversion);
    this.num(r.flowversion);
    this.seg(KEYS.flowsrcip);
    this.seg(exporter);
    this.seg(KEYS.ipversion);
    this.num(r.ipVersion);
    this.seg(KEYS.srcip);
    this.ip(r.srcAddr);
    this.seg(KEYS.dstip);
    this.ip(r.dstAddr);
    this.seg(KEYS.srcport);
    this.opt(r.srcPort);
    this.seg(KEYS.dstport);
    this.opt(r.dstPort);
    this.seg(KEYS.protocol);
    if (protocol === null) this.seg(KEYS.null);
    else if (Number.isInteger(protocol) && protocol >= 0 && protocol <= 255) this.seg(PROTOCOL_JSON[protocol] ?? KEYS.null);
    else this.ascii(JSON.stringify(protocolName(protocol)));
    this.seg(KEYS.protocolint);
    this.opt(protocol);
    this.seg(KEYS.bits);
    this.counter(counterToJson(bits));
    this.seg(KEYS.packets);
    this.counter(counterToJson(r.packets));
    this.seg(KEYS.pbratio);
    if (bitsApprox > 0) this.rounded6(packetsApprox / bitsApprox);
    else this.buf[this.pos++] = 0x30;
    this.seg(KEYS.flowbrate);
    this.rounded6(bitsApprox / seconds);
    this.seg(KEYS.flowprate);
    this.rounded6(packetsApprox / seconds);
    this.seg(KEYS.tos);
    this.opt(r.tos);
    this.seg(KEYS.tcpflags);
    this.seg(r.tcpFlags === null ? KEYS.null : (TCP_FLAGS_JSON[r.tcpFlags & 0x1ff] ?? KEYS.null));
    this.seg(KEYS.tcpflagsint);
    this.opt(r.tcpFlags);
    this.seg(KEYS.input);
    this.opt(r.inputIf);
    this.seg(KEYS.output);
    this.opt(r.outputIf);
    this.seg(KEYS.srcmask);
    this.opt(r.srcMask);
    this.seg(KEYS.dstmask);
    this.opt(r.dstMask);
    this.seg(KEYS.nexthop);
    this.ip(r.nextHop);
    this.seg(KEYS.bgpnexthop);
    this.ip(r.bgpNextHop);
    this.seg(KEYS.srcas);
    this.as(r.srcAs);
    this.seg(KEYS.dstas);
    this.as(r.dstAs);
    this.seg(KEYS.srcvlan);
    this.opt(r.srcVlan);
    this.seg(KEYS.dstvlan);
    this.opt(r.dstVlan);
    this.seg(KEYS.icmptype);
    this.opt(icmp ? r.icmpType : null);
    this.seg(KEYS.icmpcode);
    this.opt(icmp ? r.icmpCode : null);
    this.seg(KEYS.start);
    this.opt(startMs);
    this.seg(KEYS.end);
    this.opt(endMs);
    this.seg(KEYS.duration);
    this.opt(duration);
    this.seg(KEYS.samplerate);
    this.num(r.samplingInterval);
    this.seg(KEYS.uptime);
    this.opt(r.uptimeMs);
    this.buf[this.pos++] = 0x7d; // }
  }

  private ensure(n: number): void {
    if (this.pos + n > this.buf.length) this.buf = grownBytes(this.buf, this.pos, n);
  }

  private seg(b: Uint8Array): void {
    // A plain loop: these runs are short, and TypedArray#set costs more per call than it
    // saves; i < b.length, so the element exists (a `?? 0` here costs ~25 % of the writer).
    const buf = this.buf;
    const p = this.pos;
    const n = b.length;
    // eslint-disable-next-line @typescript-eslint/non-nullable-type-assertion-style -- see above; `!` is banned in src
    for (let i = 0; i < n; i++) buf[p + i] = b[i] as number;
    this.pos = p + n;
  }

  /** A string known to be ASCII and free of JSON escapes (number text, address text). */
  private ascii(s: string): void {
    const buf = this.buf;
    let p = this.pos;
    for (let i = 0; i < s.length; i++) buf[p++] = s.charCodeAt(i);
    this.pos = p;
  }

  private opt(v: number | null): void {
    if (v === null) this.seg(KEYS.null);
    else this.num(v);
  }

  private num(v: number): void {
    if (!Number.isInteger(v) || v > Number.MAX_SAFE_INTEGER || v < -Number.MAX_SAFE_INTEGER) {
      // Fractions, NaN, ±Infinity and huge magnitudes (exponent notation): the engine's own text.
      this.ascii(Number.isFinite(v) ? `${v}` : 'null');
      return;
    }
    if (v < 0) {
      this.buf[this.pos++] = 0x2d; // -
      v = -v;
    }
    if (v < TWO_POW_31) {
      this.digits(v);
      return;
    }
    // Two halves below 2^31 each: hi = v div 10^9 (< 2^24 as v ≤ 2^53), lo its nine digits.
    const hi = Math.floor(v / 1e9);
    this.digits(hi);
    this.nineDigits(v - hi * 1e9);
  }

  /** Decimal digits of an integer 0 ≤ v < 2^31. */
  private digits(v: number): void {
    const buf = this.buf;
    const len = v < 1e5
      ? (v < 10 ? 1 : v < 100 ? 2 : v < 1e3 ? 3 : v < 1e4 ? 4 : 5)
      : (v < 1e6 ? 6 : v < 1e7 ? 7 : v < 1e8 ? 8 : v < 1e9 ? 9 : 10);
    let p = this.pos + len;
    this.pos = p;
    do {
      const q = (v / 10) | 0;
      buf[--p] = 0x30 + v - q * 10;
      v = q;
    } while (v !== 0);
  }

  /**
   * JSON of round6(y) = k / 10^6 with k = Math.round(y · 10^6). While |k| < 4·10^15 (value
   * below 4·10^9 < 2^32, where a double's spacing is under 10^-6), k / 10^6 is the double
   * nearest the decimal k·10^-6 and no other decimal with at most six places maps to it, so
   * the shortest round-trip text (Number#toString) is that decimal without trailing zeros:
   * written here from k's digits. Larger or non-finite values take the engine's text.
   */
  rounded6(y: number): void {
    const k = Math.round(y * 1e6);
    if (!(k < MAX_FIXED6_UNITS && k > -MAX_FIXED6_UNITS)) {
      this.num(k / 1e6);
      return;
    }
    let u = k;
    if (u < 0) {
      this.buf[this.pos++] = 0x2d; // -
      u = -u;
    }
    const whole = Math.floor(u / 1e6);
    let frac = u - whole * 1e6;
    this.num(whole);
    if (frac === 0) return;
    let places = 6;
    while (frac % 10 === 0) {
      frac /= 10;
      places--;
    }
    const buf = this.buf;
    buf[this.pos] = 0x2e; // .
    let p = this.pos + 1 + places;
    this.pos = p;
    for (let i = 0; i < places; i++) {
      const q = (frac / 10) | 0;
      buf[--p] = 0x30 + frac - q * 10;
      frac = q;
    }
  }

  /** Exactly nine digits (zero-padded) of an integer 0 ≤ v < 10^9. */
  private nineDigits(v: number): void {
    const buf = this.buf;
    let p = this.pos + 9;
    this.pos = p;
    for (let i = 0; i < 9; i++) {
      const q = (v / 10) | 0;
      buf[--p] = 0x30 + v - q * 10;
      v = q;
    }
  }

  private counter(c: JsonCounter): void {
    if (typeof c === 'number') {
      this.num(c);
      return;
    }
    // A decimal beyond 2^53 (≤ 20 digits for the 64-bit counters the type promises; checked anyway).
    this.ensure(c.length + 2);
    this.buf[this.pos++] = 0x22;
    this.ascii(c);
    this.buf[this.pos++] = 0x22;
  }

  private ip(a: IpAddr | null): void {
    if (a === null) {
      this.seg(KEYS.null);
      return;
    }
    this.buf[this.pos++] = 0x22;
    if (typeof a === 'number' && Number.isInteger(a) && a >= 0 && a < 4294967296) {
      this.digits(a >>> 24);
      this.buf[this.pos++] = 0x2e;
      this.digits((a >>> 16) & 0xff);
      this.buf[this.pos++] = 0x2e;
      this.digits((a >>> 8) & 0xff);
      this.buf[this.pos++] = 0x2e;
      this.digits(a & 0xff);
    } else {
      this.ascii(typeof a === 'number' ? ipToString(a) : ipv6ToString(a));
    }
    this.buf[this.pos++] = 0x22;
  }

  private as(asn: number | null): void {
    if (asn === null) {
      this.seg(KEYS.null);
      return;
    }
    this.seg(KEYS.asOpen);
    this.num(asn);
    this.seg(KEYS.asClose);
  }
}

/** JSON.stringify(toFusionRecord(r)) through the writer (one-off uses: tools, tests). */
export function fusionRecordJson(r: FlowRecord): string {
  const w = new FusionJsonWriter(0);
  w.record(r);
  return w.take(0).toString('utf8');
}
