/**
 * Fuzzing the sFlow v5 and NetFlow v5 decoders and the capture file readers: random bytes,
 * mutations of real datagrams (truncation, bit flips, 32-bit words set to extremes), and
 * structured datagrams generated from random values whose decoding must give those values
 * back. Invariants: only DecodeError is ever thrown, a failed decode appends nothing, and a
 * successful one is internally consistent. Every property runs at least 30 000 cases.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { decodeSflow } from '../../src/decode/sflow/sflow.js';
import { decodeNetflow5 } from '../../src/decode/netflow5/netflow5.js';
import { parseSampledHeader } from '../../src/decode/packet/header-parser.js';
import { DecodeError } from '../../src/flow/errors.js';
import type { ExporterPacket } from '../../src/flow/exporter-packet.js';
import type { FlowRecord } from '../../src/flow/flow-record.js';
import { ipToString } from '../../src/flow/ip.js';
import { readCaptureFile } from '../../src/ingest/file/capture-file.js';
import { buildPcap } from '../support/pcap-builder.js';
import * as sf from '../support/sflow-builder.js';
import { corpora } from '../support/corpora.js';

const CASES = 30_000;

function corpusFiles(dir: string, prefix: string): Uint8Array[] {
  return readdirSync(path.join(corpora, dir))
    .filter((f) => f.startsWith(prefix) && !f.startsWith('sflow__'))
    .map((f) => new Uint8Array(readFileSync(path.join(corpora, dir, f))));
}

const SFLOW_SEEDS = [...corpusFiles('goflow2', 'sflow_'), ...corpusFiles('logstash-codec-sflow', 'sflow_')];
const V5_SEEDS = [...corpusFiles('goflow2', 'nfv5_'), ...corpusFiles('logstash-codec-netflow', 'netflow5_test_')];

function packetOf(payload: Uint8Array): ExporterPacket {
  return { payload, exporter: '192.0.2.1', exporterPort: 6343, transport: 'udp', sessionKey: 'k', identity: null, receivedAtMs: 1_700_000_000_000 };
}

type Decoder = (p: ExporterPacket, out: FlowRecord[]) => unknown;

/** Runs a decoder; asserts the error contract. Returns the records on success, null on DecodeError. */
function run(decoder: Decoder, bytes: Uint8Array): FlowRecord[] | null {
  const out: FlowRecord[] = [];
  try {
    decoder(packetOf(bytes), out);
    return out;
  } catch (e) {
    if (!(e instanceof DecodeError)) throw e;
    assert.equal(out.length, 0, 'a failed decode appends nothing');
    assert.ok(Number.isInteger(e.offset) && e.offset >= 0 && e.offset <= bytes.length, `offset ${e.offset} within ${bytes.length}`);
    return null;
  }
}

/** A mutation of a seed: truncate, flip bits, set 32-bit words to extremes, or append junk. */
const EXTREMES = [0, 1, 2, 3, 4, 0x7f, 0x3fffffff, 0x7fffffff, 0x80000000, 0xfffffff0, 0xffffffff];
function mutated(seeds: readonly Uint8Array[]): fc.Arbitrary<Uint8Array> {
  return fc
    .tuple(
      fc.integer({ min: 0, max: seeds.length - 1 }),
      fc.array(
        fc.oneof(
          fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
          fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
          fc.record({ kind: fc.constant('word' as const), at: fc.nat(), value: fc.constantFrom(...EXTREMES) }),
          fc.record({ kind: fc.constant('append' as const), junk: fc.uint8Array({ maxLength: 16 }) }),
        ),
        { minLength: 1, maxLength: 4 },
      ),
    )
    .map(([i, ops]) => {
      let b = seeds[i]!.slice();
      for (const op of ops) {
        if (b.length === 0) break;
        switch (op.kind) {
          case 'truncate':
            b = b.slice(0, op.at % b.length);
            break;
          case 'flip':
            b[op.at % b.length]! ^= 1 << op.bit;
            break;
          case 'word': {
            const at = (op.at % Math.max(1, b.length >> 2)) * 4;
            if (at + 4 <= b.length) new DataView(b.buffer, b.byteOffset).setUint32(at, op.value);
            break;
          }
          case 'append': {
            const n = new Uint8Array(b.length + op.junk.length);
            n.set(b);
            n.set(op.junk, b.length);
            b = n;
            break;
          }
        }
      }
      return b;
    });
}

function checkSflowRecords(records: FlowRecord[]): void {
  for (const r of records) {
    assert.equal(r.flowtype, 'sflow');
    assert.equal(r.packets, 1);
    assert.ok(r.samplingInterval >= 1);
    assert.ok(typeof r.octets === 'number' && r.octets >= 0 && r.octets <= 0xffffffff);
    if (r.inputIf !== null) assert.ok(r.inputIf >= 0 && r.inputIf < 0xffffffff);
  }
}

describe('fuzz: sFlow v5', () => {
  test(`random bytes behind a valid sFlow header (${CASES} cases)`, () => {
    const head = sf.u32(5, 1, 0xc0000201, 0, 1, 1000);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1000 }), fc.uint8Array({ maxLength: 512 }), (count, tail) => {
        const b = sf.concat([head, sf.u32(count), tail]);
        const records = run(decodeSflow, b);
        if (records !== null) checkSflowRecords(records);
      }),
      { numRuns: CASES },
    );
  });

  test(`mutations of the real sFlow datagrams (${CASES} cases)`, () => {
    fc.assert(
      fc.property(mutated(SFLOW_SEEDS), (b) => {
        const records = run(decodeSflow, b);
        if (records !== null) checkSflowRecords(records);
      }),
      { numRuns: CASES },
    );
  });

  const flowArb = fc.record({
    expanded: fc.boolean(),
    samplingRate: fc.integer({ min: 1, max: 0xffffffff }),
    input: fc.integer({ min: 0, max: 0x3ffffffe }),
    frameLength: fc.integer({ min: 0, max: 0xffffffff }),
    src: fc.ipV4(),
    dst: fc.ipV4(),
    protocol: fc.constantFrom(6, 17),
    srcPort: fc.integer({ min: 0, max: 65535 }),
    dstPort: fc.integer({ min: 0, max: 65535 }),
    vlan: fc.option(fc.integer({ min: 0, max: 4095 }), { nil: null }),
    headerCut: fc.integer({ min: 0, max: 80 }),
    gatewayPath: fc.array(fc.integer({ min: 1, max: 0xffffffff }), { maxLength: 6 }),
  });

  test(`generated datagrams decode to the values they were built from (${CASES} cases)`, () => {
    fc.assert(
      fc.property(fc.ipV6(), fc.array(flowArb, { maxLength: 6 }), fc.integer({ min: 0, max: 3 }), (agent, flows, counters) => {
        const samples = flows.map((f) => {
          const l4 = f.protocol === 6 ? sf.tcpHeader(f.srcPort, f.dstPort, 0x18) : sf.udpHeader(f.srcPort, f.dstPort);
          const frame = sf.ethernetFrame(0x0800, sf.ipv4Packet({ src: f.src, dst: f.dst, protocol: f.protocol, l4 }), f.vlan === null ? [] : [[0x8100, f.vlan]]);
          const records = [sf.rawHeaderRecord(1, f.frameLength, frame.subarray(0, Math.max(0, frame.length - f.headerCut)))];
          if (f.gatewayPath.length > 0) {
            records.push(sf.extendedGatewayRecord({ nextHop: f.dst, as: 1, srcAs: 2, srcPeerAs: 3, path: [f.gatewayPath], communities: [], localPref: 0 }));
          }
          return sf.flowSample({ expanded: f.expanded, samplingRate: f.samplingRate, input: f.expanded ? [0, f.input] : f.input, records });
        });
        for (let i = 0; i < counters; i++) samples.splice(i % (samples.length + 1), 0, sf.counterSample([sf.genericInterfaceCounters({ ifIndex: i })], i % 2 === 0));
        const out: FlowRecord[] = [];
        const info = decodeSflow(packetOf(sf.datagram({ agent, samples })), out);
        assert.equal(info.flowSamples, flows.length);
        assert.equal(info.counterSamples, counters);
        assert.equal(info.interfaceCounters.length, counters);
        assert.equal(out.length, flows.length);
        flows.forEach((f, i) => {
          const r = out[i]!;
          assert.equal(r.exporter, ipToString(sf.ipBytes(agent)));
          assert.equal(r.samplingInterval, f.samplingRate);
          assert.equal(r.inputIf, f.input);
          const headerLen = 14 + (f.vlan === null ? 0 : 4) + 20 + (f.protocol === 6 ? 20 : 8) - f.headerCut;
          // Byte convention 'ip': the IPv4 total length once the header reaches it, else the frame length.
          assert.equal(r.octets, headerLen >= 14 + (f.vlan === null ? 0 : 4) + 20 ? 20 + (f.protocol === 6 ? 20 : 8) : f.frameLength);
          // VLAN ID 0 is the null VLAN ID (priority tag only): no VLAN.
          if (f.vlan !== null && headerLen >= 18) assert.equal(r.srcVlan, f.vlan === 0 ? null : f.vlan);
          const l3 = 14 + (f.vlan === null ? 0 : 4);
          if (headerLen >= l3 + 20) {
            assert.equal(ipToString(r.srcAddr!), f.src);
            assert.equal(ipToString(r.dstAddr!), f.dst);
            assert.equal(r.protocol, f.protocol);
          } else {
            assert.equal(r.srcAddr, null);
          }
          if (headerLen >= l3 + 24) assert.deepEqual([r.srcPort, r.dstPort], [f.srcPort, f.dstPort]);
          else assert.equal(r.srcPort, null);
          if (f.gatewayPath.length > 0) assert.equal(r.dstAs, f.gatewayPath[f.gatewayPath.length - 1]);
        });
      }),
      { numRuns: CASES },
    );
  });

  test(`sampled header parser on random bytes never throws (${CASES} cases)`, () => {
    fc.assert(
      fc.property(fc.constantFrom(1, 11, 12, 2, 0xffffffff), fc.uint8Array({ maxLength: 160 }), (proto, h) => {
        const info = parseSampledHeader(proto, h);
        assert.ok(info.vlans.length <= 8);
      }),
      { numRuns: CASES },
    );
  });
});

describe('fuzz: NetFlow v5', () => {
  test(`random bytes behind a v5 version field (${CASES} cases)`, () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1600 }), (tail) => {
        const b = sf.concat([Uint8Array.from([0, 5]), tail]);
        const records = run(decodeNetflow5, b);
        if (records !== null) {
          const count = b.length >= 4 ? (b[2]! << 8) | b[3]! : -1;
          assert.equal(records.length, count);
          assert.ok(24 + count * 48 <= b.length);
          for (const r of records) assert.ok(r.startMs !== null && r.startMs <= (r.exportTime + 1) * 1000);
        }
      }),
      { numRuns: CASES },
    );
  });

  test(`mutations of the real v5 datagrams (${CASES} cases)`, () => {
    fc.assert(
      fc.property(mutated(V5_SEEDS), (b) => {
        run(decodeNetflow5, b);
      }),
      { numRuns: CASES },
    );
  });
});

describe('fuzz: capture file readers', () => {
  const pcapSeed = buildPcap([
    { payload: SFLOW_SEEDS[0]!, src: '192.0.2.1', dst: '192.0.2.2', srcPort: 1, dstPort: 6343, timestampMs: 1 },
    { payload: V5_SEEDS[0]!, src: '2001:db8::1', dst: '2001:db8::2', srcPort: 2, dstPort: 2055, timestampMs: 2, vlans: [5] },
  ]);
  const ipfixSeed = new Uint8Array(readFileSync(path.join(corpora, 'ipfixcol2/example_flows.ipfix'))).subarray(0, 4096);
  const rawSeed = new Uint8Array(readFileSync(path.join(corpora, 'logstash-codec-netflow/netflow5.dat')));

  test(`mutated pcap, IPFIX and raw files: never throw, payloads stay inside the file (${CASES} cases)`, () => {
    const names = ['x.pcap', 'x.ipfix', 'x.dat'];
    fc.assert(
      fc.property(mutated([pcapSeed, ipfixSeed, rawSeed]), fc.integer({ min: 0, max: 2 }), (b, n) => {
        const r = readCaptureFile(b, names[n]!, { exporterOverride: null, defaultExporter: '0.0.0.0', defaultReceivedAtMs: 0, sessionKeyFor: (e) => e });
        for (const p of r.packets) {
          assert.ok(p.fileOffset >= 0 && p.fileOffset + p.packet.payload.length <= b.length);
          assert.equal(p.packet.payload.buffer, b.buffer);
        }
        for (const e of r.problems) assert.ok(e instanceof DecodeError && e.offset >= 0 && e.offset <= b.length);
      }),
      { numRuns: CASES },
    );
  });
});
