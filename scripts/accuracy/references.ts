/**
 * What the reference decoders make of a capture's datagrams, as comparable rows. tshark reads
 * a pcap of the datagrams (-T json --no-duplicate-keys, so repeated elements stay in order);
 * nfdump reads what nfcapd stored after the datagrams were sent to it over loopback UDP. Every
 * capture is sent from its own loopback address (127.1.x.y), so one run of each tool serves
 * all captures and template state never crosses captures.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildPcap } from '../../test/support/pcap-builder.js';
import type { Capture } from './captures.js';

/** One flow as a reference decoder printed it; null where it printed nothing. */
export interface RefRow {
  src: string | null;
  dst: string | null;
  sport: number | null;
  dport: number | null;
  proto: number | null;
  octets: number | null;
  packets: number | null;
  /** sFlow: the sample's sampling rate; nfdump: the counters are already multiplied by it. */
  samplerate: number | null;
}

export function sourceOf(index: number): string {
  return `127.1.${Math.floor(index / 250)}.${(index % 250) + 1}`;
}

export const NETFLOW_PORT = 2055;
export const SFLOW_PORT = 6343;

export function haveTool(name: string, arg = '--version'): boolean {
  return spawnSync(name, [arg], { stdio: 'ignore' }).status === 0;
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const first = (v: unknown): string | null => (Array.isArray(v) ? first(v[0]) : typeof v === 'string' ? v : null);
const num = (v: unknown): number | null => {
  const s = first(v);
  return s === null ? null : Number(s);
};
/** The last value of a repeated key (the innermost header of a tunnelled packet). */
const last = (v: unknown): string | null => (Array.isArray(v) ? last(v[v.length - 1]) : typeof v === 'string' ? v : null);

/** Finds every object under `o` whose key matches `want`, depth first in document order. */
function collect(o: unknown, want: (key: string) => boolean, out: Json[] = []): Json[] {
  if (Array.isArray(o)) for (const x of o) collect(x, want, out);
  else if (isObj(o)) {
    for (const [k, v] of Object.entries(o)) {
      if (want(k)) for (const x of Array.isArray(v) ? v : [v]) if (isObj(x)) out.push(x);
      collect(v, want, out);
    }
  }
  return out;
}

function deepFirst(o: unknown, key: string): unknown {
  if (Array.isArray(o)) {
    for (const x of o) {
      const v = deepFirst(x, key);
      if (v !== undefined) return v;
    }
  } else if (isObj(o)) {
    if (key in o) return o[key];
    for (const v of Object.values(o)) {
      const r = deepFirst(v, key);
      if (r !== undefined) return r;
    }
  }
  return undefined;
}

/** Every value of `key` under `o`, in document order. */
function deepAll(o: unknown, key: string, out: unknown[] = []): unknown[] {
  if (Array.isArray(o)) for (const x of o) deepAll(x, key, out);
  else if (isObj(o)) {
    for (const [k, v] of Object.entries(o)) {
      if (k === key) {
        if (Array.isArray(v)) for (const x of v as unknown[]) out.push(x);
        else out.push(v);
      }
      else deepAll(v, key, out);
    }
  }
  return out;
}

const OCTETS = ['cflow.octets', 'cflow.octets64', 'cflow.permanent_octets', 'cflow.octets_exp'];
const PACKETS = ['cflow.packets', 'cflow.packets64', 'cflow.permanent_packets', 'cflow.packets_exp'];

function cflowRow(flow: Json): RefRow | null {
  // Options records (scope fields) are not flows.
  if (Object.keys(flow).some((k) => k.startsWith('cflow.scope'))) return null;
  const pick = (keys: readonly string[]): number | null => {
    for (const k of keys) if (k in flow) return num(flow[k]);
    return null;
  };
  // A packet report (PSAMP) carries no flow keys, only a packet section, which tshark dissects
  // as Ethernet / IP / TCP-UDP inside the flow: its keys are that packet's.
  const section = (k: string): unknown => deepAll(flow, k)[0];
  const l4 = (k: string): number | null => num(section(`tcp.${k}`) ?? section(`udp.${k}`));
  return {
    src: first(flow['cflow.srcaddr'] ?? flow['cflow.srcaddrv6'] ?? section('ip.src') ?? section('ipv6.src')),
    dst: first(flow['cflow.dstaddr'] ?? flow['cflow.dstaddrv6'] ?? section('ip.dst') ?? section('ipv6.dst')),
    sport: num(flow['cflow.srcport']) ?? l4('srcport'),
    dport: num(flow['cflow.dstport']) ?? l4('dstport'),
    proto: num(flow['cflow.protocol'] ?? section('ip.proto') ?? section('ipv6.nxt')),
    octets: pick(OCTETS),
    packets: pick(PACKETS),
    samplerate: null,
  };
}

function sflowRows(sflow: unknown): RefRow[] {
  const rows: RefRow[] = [];
  for (const sample of collect(sflow, (k) => /^(Expanded )?[Ff]low sample/.test(k))) {
    const header = collect(sample, (k) => k === 'sflow_245.header_tree')[0];
    const ips = header === undefined ? [] : deepAll(header, 'ip.src');
    const l4 = (name: string): number | null => (header === undefined ? null : num(deepAll(header, name).at(-1)));
    rows.push({
      src: last(ips.length > 0 ? ips : deepFirst(sample, 'sflow_245.ipv4_src')),
      dst: header === undefined ? null : last(deepAll(header, 'ip.dst')),
      sport: l4('tcp.srcport') ?? l4('udp.srcport'),
      dport: l4('tcp.dstport') ?? l4('udp.dstport'),
      proto: header === undefined ? null : num(deepAll(header, 'ip.proto').at(-1)),
      octets: header === undefined ? null : num(deepAll(header, 'ip.len').at(-1)),
      packets: 1,
      samplerate: num(deepFirst(sample, 'sflow.flow_sample.sampling_rate')),
    });
  }
  return rows;
}

/** tshark's rows per capture index. */
export function tsharkRows(captures: readonly Capture[]): Map<number, RefRow[]> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sealflow-accuracy-'));
  try {
    const datagrams = captures.flatMap((c, i) =>
      c.datagrams.map((payload, j) => ({ payload, src: sourceOf(i), dst: '127.0.0.1', srcPort: 40000, dstPort: c.kind === 'sflow' ? SFLOW_PORT : NETFLOW_PORT, timestampMs: 1_700_000_000_000 + i * 1000 + j })),
    );
    const file = path.join(dir, 'all.pcap');
    writeFileSync(file, buildPcap(datagrams));
    const res = spawnSync('tshark', ['-r', file, '-d', `udp.port==${NETFLOW_PORT},cflow`, '-d', `udp.port==${SFLOW_PORT},sflow`, '-T', 'json', '--no-duplicate-keys'], { encoding: 'utf8', maxBuffer: 512 * 1024 * 1024 });
    if (res.status !== 0) throw new Error(`tshark failed: ${res.stderr}`);
    const frames = JSON.parse(res.stdout) as { _source: { layers: Json } }[];
    const out = new Map<number, RefRow[]>();
    for (const f of frames) {
      const layers = f._source.layers;
      const src = first(deepFirst(layers.ip, 'ip.src'));
      const index = captures.findIndex((_, i) => sourceOf(i) === src);
      if (index < 0) continue;
      const rows = out.get(index) ?? [];
      if (captures[index]?.kind === 'sflow') rows.push(...sflowRows(layers.sflow));
      else for (const flow of collect(layers.cflow, (k) => /^(Flow \d+( \(.*\))?|pdu \d+\/\d+)$/.test(k))) {
        const row = cflowRow(flow);
        if (row !== null) rows.push(row);
      }
      out.set(index, rows);
    }
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** nfdump's rows per capture index (NetFlow/IPFIX captures only), via nfcapd on a loopback port. */
export async function nfdumpRows(captures: readonly Capture[], port: number): Promise<Map<number, RefRow[]>> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sealflow-accuracy-nfcapd-'));
  const nfcapd = spawn('nfcapd', ['-p', String(port), '-b', '127.0.0.1', '-w', dir], { stdio: 'ignore' });
  try {
    await new Promise((r) => setTimeout(r, 1000));
    for (const [i, c] of captures.entries()) {
      if (c.kind !== 'netflow') continue;
      const s = createSocket('udp4');
      await new Promise<void>((resolve, reject) => s.bind(0, sourceOf(i), () => resolve()).once('error', reject));
      for (const d of c.datagrams) {
        await new Promise<void>((resolve, reject) => s.send(d, port, '127.0.0.1', (err) => (err ? reject(err) : resolve())));
        // nfcapd reads one socket: paced, no datagram overruns its receive buffer.
        await new Promise((r) => setTimeout(r, 2));
      }
      s.close();
    }
    await new Promise((r) => setTimeout(r, 500));
    nfcapd.kill('SIGTERM');
    await new Promise((r) => nfcapd.once('exit', r));
    const files = readdirSync(dir).filter((f) => f.startsWith('nfcapd.') && !f.includes('current'));
    if (process.env.ACCURACY_DEBUG) console.error('nfcapd files', readdirSync(dir));
    const out = new Map<number, RefRow[]>();
    for (const f of files) {
      const res = spawnSync('nfdump', ['-r', path.join(dir, f), '-o', 'csv', '-q'], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
      if (res.status !== 0) throw new Error(`nfdump failed: ${res.stderr}`);
      for (const line of res.stdout.split('\n')) {
        const c = line.split(',');
        if (c.length < 45) continue;
        // csv: ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,opkt,obyt,...,ra at index 44
        const index = captures.findIndex((_, i) => sourceOf(i) === c[44]?.trim());
        if (index < 0) continue;
        const rows = out.get(index) ?? [];
        const proto = c[7]?.trim() ?? '';
        rows.push({
          src: c[3]?.trim() ?? null,
          dst: c[4]?.trim() ?? null,
          sport: Number(c[5]),
          dport: Number(c[6]),
          proto: /^\d+$/.test(proto) ? Number(proto) : (PROTO_NAMES[proto] ?? null),
          octets: Number(c[12]),
          packets: Number(c[11]),
          samplerate: null,
        });
        out.set(index, rows);
      }
    }
    return out;
  } finally {
    if (nfcapd.exitCode === null) nfcapd.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

/** nfdump prints well-known protocols by name. */
const PROTO_NAMES: Record<string, number> = { ICMP: 1, IGMP: 2, IPIP: 4, TCP: 6, UDP: 17, IPv6: 41, RSVP: 46, GRE: 47, ESP: 50, AH: 51, ICMP6: 58, OSPF: 89, PIM: 103, VRRP: 112, L2TP: 115, SCTP: 132 };
