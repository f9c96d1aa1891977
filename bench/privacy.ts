/**
 * The cost of pseudonymisation (privacy.pseudonymize) on the ingest worker, target ≤ 0.3 µs
 * per pseudonymised address:
 * 1. the fused path (IPFIX record bytes → batch bytes) with the policy off and on, alternated
 *    in one run, for the decode bench's 15-field IPv4 template and its IPv6 twin: per record,
 *    the source address is pseudonymised (10.0.0.0/8, 2001:db8::/40) and the destination and
 *    next hop are looked up and kept; the difference per pseudonymised address is the figure;
 * 2. the pseudonymiser alone: a cache hit, a miss (one Crypto-PAn computation: an AES-ECB call
 *    over 24 or 88 blocks), and the per-address cost over working sets around the cache size.
 * CPU time of this process, one core.
 */
import { DecodeService } from '../src/decode/decode-service.js';
import { Batcher } from '../src/ingest-worker/batcher.js';
import { FusedSetWriter } from '../src/ingest-worker/fused-writer.js';
import { compilePseudonymPolicy, type PseudonymPolicyConfig } from '../src/privacy/policy.js';
import { Pseudonymizer } from '../src/privacy/pseudonymizer.js';
import { CapturedBatches } from '../test/support/batch-capture.js';
import { dataSet, exporterPacket, ipfixMessage, ipfixTemplateSet, type FieldDef, type FieldValue } from '../test/support/ipfix-builder.js';

const RUN_MS = Number(process.env.BENCH_PRIVACY_MS ?? '2000');
const ROUNDS = Number(process.env.BENCH_PRIVACY_ROUNDS ?? '3');
const RECORDS_PER_MESSAGE = 30;
const MESSAGES = 64;

const POLICY: PseudonymPolicyConfig = {
  fields: ['srcip', 'dstip', 'nexthop', 'bgpnexthop'],
  rules: [
    { name: 'servers', action: 'keep', prefixes: ['10.20.0.0/16', '2001:db8:ff::/48'] },
    { name: 'clients', action: 'pseudonymize', prefixes: ['10.0.0.0/8', '2001:db8::/40'] },
  ],
};
const KEY = Uint8Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff);

const FIELDS: FieldDef[] = [
  { id: 8, length: 4 }, { id: 12, length: 4 }, { id: 7, length: 2 }, { id: 11, length: 2 }, { id: 4, length: 1 }, { id: 5, length: 1 }, { id: 6, length: 1 },
  { id: 10, length: 4 }, { id: 14, length: 4 }, { id: 1, length: 8 }, { id: 2, length: 8 }, { id: 152, length: 8 }, { id: 153, length: 8 }, { id: 15, length: 4 }, { id: 9, length: 1 },
];
const FIELDS_V6: FieldDef[] = FIELDS.map((f) => ({ 8: { id: 27, length: 16 }, 12: { id: 28, length: 16 }, 15: { id: 62, length: 16 }, 9: { id: 29, length: 1 } })[f.id] ?? f);

function stream(v6: boolean): Uint8Array[] {
  const fields = v6 ? FIELDS_V6 : FIELDS;
  const out = [ipfixMessage({ sequence: 0 }, [ipfixTemplateSet([{ id: 256, fields }])])];
  for (let m = 0; m < MESSAGES; m++) {
    const rows: FieldValue[][] = [];
    for (let i = 0; i < RECORDS_PER_MESSAGE; i++) {
      const n = m * RECORDS_PER_MESSAGE + i;
      rows.push([
        v6 ? `2001:db8:${(n >> 8) & 255}::${(n & 0xffff).toString(16)}` : `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`,
        v6 ? `2001:db8:ffff::${(n & 255).toString(16)}` : `192.0.2.${n & 255}`,
        1024 + (n % 60000), 443, 6, 0, 0x18, 1 + (n % 16), 17, 1500 * (n % 1000) + 40, 1 + (n % 1000), 1_700_000_000_000 + n, 1_700_000_001_000 + n,
        v6 ? '2001:db8:ff::1' : '198.51.100.1',
        v6 ? 64 : 24,
      ]);
    }
    out.push(ipfixMessage({ sequence: m * RECORDS_PER_MESSAGE, exportTime: 1_700_000_002 }, [dataSet(256, fields, rows)]));
  }
  return out;
}

function cpuNs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}

/** ns of CPU per record on the fused path, with or without the policy; and addresses pseudonymised per record. */
function fusedNsPerRecord(packets: readonly Uint8Array[], pseudonymize: boolean): { ns: number; pseudonymizedPerRecord: number } {
  const pz = pseudonymize ? new Pseudonymizer({ policy: compilePseudonymPolicy(POLICY), masterKey: KEY, rotation: 'daily', epochSeconds: 3600, cacheEntries: 65_536 }, Date.now()) : null;
  const batcher = new Batcher(new CapturedBatches(false), { queued: true, maxRecords: 1e12, maxBytes: 1 << 20, setTimer: () => null, clearTimer: () => undefined, ...(pz === null ? {} : { keyStamp: () => pz.stamp }) });
  const svc = new DecodeService({}, { fused: new FusedSetWriter(batcher, null, pz), rawRecords: false });
  const ps = packets.map((p) => exporterPacket(p));
  const [first, ...data] = ps;
  if (first === undefined) throw new Error('empty stream');
  svc.decode(first);
  for (let i = 0; i < 200; i++) for (const p of data) svc.decode(p);
  const before = pz?.stats().pseudonymized ?? 0;
  let records = 0;
  const start = cpuNs();
  const wallStart = Date.now();
  while (Date.now() - wallStart < RUN_MS) {
    for (const p of data) {
      const o = svc.decode(p);
      if (o.fusedRecords !== RECORDS_PER_MESSAGE) throw new Error('a record left the fused path');
      records += o.fusedRecords;
    }
  }
  const ns = (cpuNs() - start) / records;
  return { ns, pseudonymizedPerRecord: pz === null ? 0 : ((pz.stats().pseudonymized - before) / records) };
}

/** ns per a4/a6 call over `distinct` addresses cycled, with `cacheEntries` slots; and the hit rate. */
function lookupNs(distinct: number, v6: boolean, cacheEntries = 65_536): { ns: number; hitRate: number } {
  const pz = new Pseudonymizer({ policy: compilePseudonymPolicy(POLICY), masterKey: KEY, rotation: 'never', epochSeconds: 3600, cacheEntries }, Date.now());
  const v4s = new Uint32Array(distinct);
  // IPv6 addresses back to back in one buffer, looked up in place as the fused writers do (a6at).
  const v6buf = new Uint8Array(v6 ? distinct * 16 : 0);
  const v6view = new DataView(v6buf.buffer);
  for (let i = 0; i < distinct; i++) {
    const x = Math.imul(i, 2654435761) >>> 8;
    v4s[i] = (0x0a000000 | (x & 0xffffff)) >>> 0;
    if (v6) v6buf.set([0x20, 0x01, 0x0d, 0xb8, 0, i >> 16, (i >> 8) & 255, i & 255, x & 255, 0, 0, 0, 0, 0, (x >> 8) & 255, 1], i * 16);
  }
  const lookup = (j: number): number => (v6 ? pz.a6at(v6view, j * 16) : pz.a4(v4s[j] ?? 0));
  // Warm: every address once (the misses of a working set's first sight are not steady state unless it exceeds the cache).
  for (let i = 0; i < distinct; i++) lookup(i);
  const s0 = pz.stats();
  let calls = 0;
  let sink = 0;
  const start = cpuNs();
  const wallStart = Date.now();
  while (Date.now() - wallStart < RUN_MS / 2) {
    for (let i = 0; i < distinct && i < 200_000; i++) {
      const j = (calls + i * 7919) % distinct;
      sink += lookup(j);
    }
    calls += Math.min(distinct, 200_000);
  }
  const ns = (cpuNs() - start) / calls;
  const s1 = pz.stats();
  if (sink === -1) console.log('');
  return { ns, hitRate: (s1.cacheHits - s0.cacheHits) / Math.max(1, s1.cacheHits - s0.cacheHits + s1.cacheMisses - s0.cacheMisses) };
}

export async function run(): Promise<void> {
  console.log(`pseudonymisation cost on the ingest worker (CPU time, one core; ${ROUNDS} rounds of ${RUN_MS / 1000} s per variant, off/on alternated); target ≤ 300 ns per pseudonymised address`);
  for (const v6 of [false, true]) {
    const packets = stream(v6);
    const off: number[] = [];
    const on: number[] = [];
    let perRecord = 0;
    for (let r = 0; r < ROUNDS; r++) {
      off.push(fusedNsPerRecord(packets, false).ns);
      const m = fusedNsPerRecord(packets, true);
      on.push(m.ns);
      perRecord = m.pseudonymizedPerRecord;
    }
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
    const dOff = median(off);
    const dOn = median(on);
    console.log(
      `  fused path ${v6 ? 'IPv6' : 'IPv4'} (15 fields; src pseudonymised, dst + next hop kept): off ${dOff.toFixed(0)} ns/record, on ${dOn.toFixed(0)} ns/record ` +
        `→ +${(dOn - dOff).toFixed(0)} ns per record, ${((dOn - dOff) / Math.max(perRecord, 1e-9)).toFixed(0)} ns per pseudonymised address (${perRecord.toFixed(2)} per record; rounds off ${off.map((x) => x.toFixed(0)).join('/')}, on ${on.map((x) => x.toFixed(0)).join('/')})`,
    );
  }
  for (const v6 of [false, true]) {
    const hit = lookupNs(1024, v6);
    const miss = lookupNs(1 << 20, v6, 1024);
    console.log(`  ${v6 ? 'IPv6' : 'IPv4'} pseudonymiser alone: cache hit ${hit.ns.toFixed(0)} ns (hit rate ${(hit.hitRate * 100).toFixed(0)}%), miss ${miss.ns.toFixed(0)} ns (Crypto-PAn, hit rate ${(miss.hitRate * 100).toFixed(1)}%)`);
    for (const distinct of [16_384, 65_536, 262_144]) {
      const r = lookupNs(distinct, v6);
      console.log(`    ${String(distinct).padStart(7)} distinct addresses cycled, 65,536 cache slots: ${r.ns.toFixed(0)} ns per address, hit rate ${(r.hitRate * 100).toFixed(1)}%`);
    }
  }
  await Promise.resolve();
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) await run();
