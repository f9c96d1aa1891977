/**
 * Decode throughput on one core: an IPFIX stream with a typical 15-field IPv4 template
 * (addresses, ports, protocol, tos, flags, interfaces, 64-bit counters, millisecond times,
 * next hop, masks), 30 records per message — about what a router puts in a 1500-byte MTU.
 * Packets are built once and decoded repeatedly for a few seconds, with compiled per-template
 * decoders and with the generic per-field loop for comparison. Then the ingest worker's
 * fused path (record bytes → the open batch's bytes, no FlowRecord; src/ingest-worker/fused-writer.ts)
 * on the same template and on its IPv6 twin (IPv6 addresses and next hop).
 */
import { DecodeService } from '../src/decode/decode-service.js';
import { Batcher } from '../src/ingest-worker/batcher.js';
import { FusedSetWriter } from '../src/ingest-worker/fused-writer.js';
import { CapturedBatches } from '../test/support/batch-capture.js';
import { dataSet, exporterPacket, ipfixMessage, ipfixTemplateSet } from '../test/support/ipfix-builder.js';
import type { FieldDef, FieldValue } from '../test/support/ipfix-builder.js';

const TEMPLATE_ID = 256;
const RECORDS_PER_MESSAGE = 30;
const MESSAGES = 64;
const RUN_MS = 3000;

const FIELDS: FieldDef[] = [
  { id: 8, length: 4 }, // sourceIPv4Address
  { id: 12, length: 4 }, // destinationIPv4Address
  { id: 7, length: 2 }, // sourceTransportPort
  { id: 11, length: 2 }, // destinationTransportPort
  { id: 4, length: 1 }, // protocolIdentifier
  { id: 5, length: 1 }, // ipClassOfService
  { id: 6, length: 1 }, // tcpControlBits (reduced size)
  { id: 10, length: 4 }, // ingressInterface
  { id: 14, length: 4 }, // egressInterface
  { id: 1, length: 8 }, // octetDeltaCount
  { id: 2, length: 8 }, // packetDeltaCount
  { id: 152, length: 8 }, // flowStartMilliseconds
  { id: 153, length: 8 }, // flowEndMilliseconds
  { id: 15, length: 4 }, // ipNextHopIPv4Address
  { id: 9, length: 1 }, // sourceIPv4PrefixLength
];

/** FIELDS with IPv6 addresses and next hop (27, 28, 62) and IPv6 prefix length (29). */
const FIELDS_V6: FieldDef[] = FIELDS.map((f) => ({ 8: { id: 27, length: 16 }, 12: { id: 28, length: 16 }, 15: { id: 62, length: 16 }, 9: { id: 29, length: 1 } })[f.id] ?? f);

function buildStream(v6 = false): Uint8Array[] {
  const fields = v6 ? FIELDS_V6 : FIELDS;
  const messages: Uint8Array[] = [ipfixMessage({ sequence: 0 }, [ipfixTemplateSet([{ id: TEMPLATE_ID, fields }])])];
  let seq = 0;
  for (let m = 0; m < MESSAGES; m++) {
    const records: FieldValue[][] = [];
    for (let i = 0; i < RECORDS_PER_MESSAGE; i++) {
      const n = m * RECORDS_PER_MESSAGE + i;
      records.push([
        v6 ? `2001:db8:${(n >> 16) & 255}::${(n & 0xffff).toString(16)}` : `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`,
        v6 ? `2001:db8:ffff::${(n & 255).toString(16)}` : `192.0.2.${n & 255}`,
        1024 + (n % 60000),
        443,
        6,
        0,
        0x18,
        1 + (n % 16),
        17,
        1500 * (n % 1000) + 40,
        1 + (n % 1000),
        1_700_000_000_000 + n,
        1_700_000_001_000 + n,
        v6 ? '2001:db8:100::1' : '198.51.100.1',
        v6 ? 64 : 24,
      ]);
    }
    messages.push(ipfixMessage({ sequence: seq, exportTime: 1_700_000_002 }, [dataSet(TEMPLATE_ID, fields, records)]));
    seq += RECORDS_PER_MESSAGE;
  }
  return messages;
}

interface Measurement {
  /** Records per second of wall time. */
  recordsPerSecond: number;
  /** Records per second of this process's CPU time: the per-core rate, robust to other load on the machine. */
  recordsPerCpuSecond: number;
  records: number;
}


function measure(compiled: boolean, stream: readonly Uint8Array[], fused = false): Measurement {
  const fusedSink = fused ? new FusedSetWriter(new Batcher(new CapturedBatches(false), { queued: true, maxRecords: 1e12, maxBytes: 1 << 20, setTimer: () => null, clearTimer: () => undefined })) : null;
  const svc = new DecodeService({}, { compiledDecoders: compiled, fused: fusedSink, rawRecords: !fused });
  const packets = stream.map((p) => exporterPacket(p));
  const [first, ...data] = packets;
  if (first === undefined) throw new Error('empty stream');
  svc.decode(first);
  // Warm up so the JIT has optimised the hot path before timing.
  for (let i = 0; i < 200; i++) for (const p of data) svc.decode(p);
  let records = 0;
  let fusedCount = 0;
  let sink = 0;
  const start = process.hrtime.bigint();
  const cpuStart = process.cpuUsage();
  let elapsedMs = 0;
  while (elapsedMs < RUN_MS) {
    for (const p of data) {
      const o = svc.decode(p);
      records += o.records.length + o.fusedRecords;
      fusedCount += o.fusedRecords;
      sink += o.errorCount;
    }
    elapsedMs = Number(process.hrtime.bigint() - start) / 1e6;
  }
  const cpu = process.cpuUsage(cpuStart);
  if (sink !== 0) throw new Error(`decode errors in the benchmark stream: ${sink}`);
  if (fused && fusedCount !== records) throw new Error(`the fused path took ${fusedCount} of ${records} records`);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  return { recordsPerSecond: (records / elapsedMs) * 1000, recordsPerCpuSecond: (records / cpuMs) * 1000, records };
}

export async function run(): Promise<void> {
  const stream = buildStream();
  const bytesPerRecord = FIELDS.reduce((n, f) => n + f.length, 0);
  console.log(`IPFIX, 15-field IPv4 template (${bytesPerRecord} bytes/record), ${RECORDS_PER_MESSAGE} records/message, ${RUN_MS / 1000} s each, one core`);
  for (const compiled of [true, false]) {
    const r = measure(compiled, stream);
    const label = compiled ? 'compiled decoders ' : 'generic field loop';
    console.log(`  ${label}: ${(r.recordsPerCpuSecond / 1e6).toFixed(2)} M records/s per CPU-second (${(r.recordsPerSecond / 1e6).toFixed(2)} M/s wall, ${r.records} records)`);
  }
  for (const [label, s] of [['IPv4', stream], ['IPv6', buildStream(true)]] as const) {
    const r = measure(true, s, true);
    console.log(`  fused → batch bytes, ${label}: ${(r.recordsPerCpuSecond / 1e6).toFixed(2)} M records/s per CPU-second (${(1e9 / r.recordsPerCpuSecond).toFixed(0)} ns CPU per record, ${r.records} records)`);
  }
  await Promise.resolve();
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) await run();
