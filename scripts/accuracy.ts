/**
 * `npm run accuracy`: decodes every flow capture in test/fixtures/corpora with sealflow and
 * with the reference decoders .ci/install-deps installs (tshark for all; nfdump, through
 * nfcapd over loopback UDP, for NetFlow/IPFIX), and prints per capture and per field how many
 * records agree. Every disagreement must match an entry of scripts/accuracy/known-differences.ts,
 * which says why; an unexplained one is listed and makes the exit status 1.
 *
 * Fields: the 5-tuple (key), octets and packets (nfdump: multiplied by the sampling rate,
 * as nfcapd stores them), and for sFlow the sampling rate. Records are matched by key, in
 * order, one to one. `--json` prints the figures as JSON instead of a table.
 */
import { DecodeService } from '../src/decode/decode-service.js';
import type { FlowRecord } from '../src/flow/flow-record.js';
import { ipToString, parseIp } from '../src/flow/ip.js';
import { loadCaptures, type Capture } from './accuracy/captures.js';
import { KNOWN_DIFFERENCES, type Field, type Reference } from './accuracy/known-differences.js';
import { haveTool, nfdumpRows, sourceOf, tsharkRows, type RefRow } from './accuracy/references.js';

interface Row extends RefRow {
  /** The reverse half of a biflow (RFC 5103): sealflow's own record, which no reference prints. */
  reverse: boolean;
  samplingInterval: number;
}

function norm(a: string | null): string | null {
  if (a === null || a === '') return null;
  const p = parseIp(a);
  return p === null ? a : ipToString(p);
}

function sealflowRows(c: Capture, index: number): Row[] {
  const svc = new DecodeService();
  const records: FlowRecord[] = [];
  for (const [j, payload] of c.datagrams.entries()) {
    const o = svc.decode({ payload, exporter: sourceOf(index), exporterPort: 40000, transport: 'udp', sessionKey: `accuracy|${index}`, identity: null, receivedAtMs: 1_700_000_000_000 + index * 1000 + j });
    records.push(...o.records);
  }
  return records.map((r, i) => ({
    src: r.srcAddr === null ? null : ipToString(r.srcAddr),
    dst: r.dstAddr === null ? null : ipToString(r.dstAddr),
    sport: r.srcPort,
    dport: r.dstPort,
    proto: r.protocol,
    octets: Number(r.octets),
    packets: Number(r.packets),
    samplerate: r.samplingInterval,
    samplingInterval: r.samplingInterval,
    reverse: i > 0 && r.raw !== null && r.raw === records[i - 1]?.raw,
  }));
}

/**
 * The 5-tuple as both sides can state it. nfdump has no "absent": a port the exporter did not
 * send is 0 there, and for ICMP it puts type/code in the ports (dp = type × 256 + code, sp = 0)
 * whatever the exporter sent; so against nfdump absent ports are 0 and ICMP ports are not compared.
 */
function keyOf(r: RefRow, reference: Reference | null = null): string {
  let sport: number | string | null = r.sport;
  let dport: number | string | null = r.dport;
  if (reference === 'nfdump') {
    sport ??= 0;
    dport ??= 0;
    if (r.proto === 1 || r.proto === 58) sport = dport = '*';
  }
  return `${norm(r.src) ?? '-'}|${norm(r.dst) ?? '-'}|${sport ?? '-'}|${dport ?? '-'}|${r.proto ?? '-'}`;
}

/** No flow key at all: an options record that a reference prints as a flow, or a record of counters only. */
const NO_KEY = '-|-|-|-|-';

interface Disagreement {
  capture: string;
  reference: Reference;
  field: Field;
  sealflow: string;
  theirs: string;
  reason: string | null;
}

interface Score {
  records: number;
  agree: number;
  documented: number;
  unexplained: number;
}

function explain(capture: string, reference: Reference, field: Field): string | null {
  for (const k of KNOWN_DIFFERENCES) if (k.reference === reference && k.field === field && k.capture.test(capture)) return k.reason;
  return null;
}

function compare(capture: string, reference: Reference, ours: readonly Row[], theirs: readonly RefRow[], sflow: boolean, out: Disagreement[]): Score {
  const pool = new Map<string, RefRow[]>();
  for (const t of theirs) {
    const k = keyOf(t, reference);
    if (k === NO_KEY) continue;
    pool.set(k, [...(pool.get(k) ?? []), t]);
  }
  const score: Score = { records: 0, agree: 0, documented: 0, unexplained: 0 };
  const note = (field: Field, a: string, b: string): boolean => {
    const reason = explain(capture, reference, field);
    out.push({ capture, reference, field, sealflow: a, theirs: b, reason });
    return reason !== null;
  };
  for (const r of ours) {
    score.records++;
    if (r.reverse) {
      // No reference splits biflows: the reverse record is sealflow's own (RFC 5103).
      if (note('biflow', keyOf(r), '(none)')) score.documented++;
      else score.unexplained++;
      continue;
    }
    const k = keyOf(r, reference);
    if (k === NO_KEY) {
      score.records--;
      continue;
    }
    const t = pool.get(k)?.shift();
    const scale = reference === 'nfdump' ? r.samplingInterval : 1;
    const diffs: [Field, string, string][] = [];
    if (t === undefined) diffs.push(['key', k, '(no record with this key)']);
    else {
      const octets = (r.octets ?? 0) * scale;
      const packets = (r.packets ?? 0) * scale;
      if (t.octets !== null && t.octets !== octets) diffs.push(['octets', String(octets), String(t.octets)]);
      if (t.packets !== null && t.packets !== packets) diffs.push(['packets', String(packets), String(t.packets)]);
      if (sflow && t.samplerate !== null && t.samplerate !== r.samplerate) diffs.push(['samplerate', String(r.samplerate), String(t.samplerate)]);
    }
    if (diffs.length === 0) score.agree++;
    else if (diffs.map(([f, a, b]) => note(f, a, b)).every(Boolean)) score.documented++;
    else score.unexplained++;
  }
  for (const rest of pool.values()) {
    for (const t of rest) {
      if (note('missing', '(no record)', keyOf(t, reference))) score.documented++;
      else score.unexplained++;
    }
  }
  return score;
}

async function main(): Promise<number> {
  const json = process.argv.includes('--json');
  const captures = loadCaptures();
  const haveTshark = haveTool('tshark');
  const haveNfdump = haveTool('nfdump', '-V') && haveTool('nfcapd', '-V');
  if (!haveTshark) console.error('accuracy: tshark is not installed (apt-get install tshark, or .ci/install-deps); its columns are empty');
  if (!haveNfdump) console.error('accuracy: nfdump/nfcapd are not installed (apt-get install nfdump); its columns are empty');
  const tshark = haveTshark ? tsharkRows(captures) : new Map<number, RefRow[]>();
  const port = 20000 + (process.pid % 20000);
  const nfdump = haveNfdump ? await nfdumpRows(captures, port) : new Map<number, RefRow[]>();
  const disagreements: Disagreement[] = [];
  const table: { capture: string; records: number; tshark: Score | null; nfdump: Score | null }[] = [];
  captures.forEach((c, i) => {
    const ours = sealflowRows(c, i);
    const sflow = c.kind === 'sflow';
    table.push({
      capture: c.name,
      records: ours.length,
      tshark: haveTshark ? compare(c.name, 'tshark', ours, tshark.get(i) ?? [], sflow, disagreements) : null,
      nfdump: haveNfdump && !sflow ? compare(c.name, 'nfdump', ours, nfdump.get(i) ?? [], sflow, disagreements) : null,
    });
  });
  const unexplained = disagreements.filter((d) => d.reason === null);
  if (json) {
    console.log(JSON.stringify({ table, disagreements }, null, 1));
    return unexplained.length > 0 ? 1 : 0;
  }
  const cell = (s: Score | null): string => (s === null ? '–' : `${s.agree}/${s.records}${s.documented > 0 ? ` (+${s.documented} doc.)` : ''}${s.unexplained > 0 ? ` **${s.unexplained} unexplained**` : ''}`);
  console.log('| capture | sealflow records | tshark: agree/compared | nfdump: agree/compared |');
  console.log('| --- | ---: | --- | --- |');
  for (const t of table) console.log(`| ${t.capture} | ${t.records} | ${cell(t.tshark)} | ${cell(t.nfdump)} |`);
  const sum = (f: 'tshark' | 'nfdump', k: keyof Score): number => table.reduce((n, t) => n + (t[f]?.[k] ?? 0), 0);
  console.log(`| **total** | ${table.reduce((n, t) => n + t.records, 0)} | ${sum('tshark', 'agree')}/${sum('tshark', 'records')} (+${sum('tshark', 'documented')} doc., ${sum('tshark', 'unexplained')} unexpl.) | ${sum('nfdump', 'agree')}/${sum('nfdump', 'records')} (+${sum('nfdump', 'documented')} doc., ${sum('nfdump', 'unexplained')} unexpl.) |`);
  const reasons = new Map<string, number>();
  for (const d of disagreements) if (d.reason !== null) reasons.set(`${d.reference} ${d.field}: ${d.reason}`, (reasons.get(`${d.reference} ${d.field}: ${d.reason}`) ?? 0) + 1);
  if (reasons.size > 0) {
    console.log('\nDocumented differences (count × reason):');
    for (const [r, n] of reasons) console.log(`- ${n} × ${r}`);
  }
  if (unexplained.length > 0) {
    console.log('\nUnexplained disagreements:');
    for (const d of unexplained.slice(0, 200)) console.log(`- ${d.capture} vs ${d.reference}, ${d.field}: sealflow ${d.sealflow}, ${d.reference} ${d.theirs}`);
  }
  return unexplained.length > 0 ? 1 : 0;
}

process.exitCode = await main();
