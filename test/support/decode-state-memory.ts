/**
 * Child process for test/unit/decode-state-budget.test.ts (run with --expose-gc): measures what
 * decoder state costs on the heap, or drives a template flood and reports memory. Prints one
 * JSON line. Scenarios (argv[2]):
 *   costs  heap bytes per template (several field counts, biflow), per session with one
 *          domain, per held data set beyond its bytes — against the state budget's estimates
 *   flood  a well-behaved exporter decoding every round while one address floods templates from
 *          many source ports, then many addresses flood from one port each; budget from argv
 */
import { DecodeService } from '../../src/decode/decode-service.js';
import { dataSet, exporterPacket, ipfixMessage, ipfixTemplateSet, type FieldDef } from './ipfix-builder.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with --expose-gc');
const T0 = 1_700_000_000_000;

function settle(): void {
  gc?.();
  gc?.();
}

/** A template of `n` fields whose layout differs with `salt` (so each compiles its own decoder, as a flood's would). */
function template(id: number, n: number, salt: number): { id: number; fields: FieldDef[] } {
  const fields: FieldDef[] = [];
  for (let i = 0; i < n; i++) fields.push({ id: 1 + ((salt * 7 + i * 13) % 400), length: 1 + ((salt + i) % 8) });
  return { id, fields };
}

function biflowTemplate(id: number, salt: number): { id: number; fields: FieldDef[] } {
  const fields: FieldDef[] = [
    { id: 8, length: 4 }, { id: 12, length: 4 }, { id: 7, length: 2 }, { id: 11, length: 2 }, { id: 4, length: 1 },
    { id: 1, length: 8 }, { id: 2, length: 8 },
    { id: 1, enterprise: 29305, length: 8 }, { id: 2, enterprise: 29305, length: 8 },
    { id: 100 + (salt % 50), length: 1 + (salt % 4) }, { id: 200 + ((salt >> 6) % 50), length: 1 + ((salt >> 3) % 4) },
  ];
  return { id, fields };
}

function heapPer(n: number, run: () => void): number {
  settle();
  const before = process.memoryUsage().heapUsed;
  run();
  settle();
  return (process.memoryUsage().heapUsed - before) / n;
}

function costs(): Record<string, number> {
  const out: Record<string, number> = {};
  const big = { maxStateBytes: 16 * 1024 ** 3, maxStateBytesPerExporter: 16 * 1024 ** 3, maxSessions: 1_000_000, maxTemplatesPerSession: 65_536, pendingHoldMs: 600_000, maxPendingRecordsPerSession: 1_000_000 };
  let salt = 0;
  for (const fields of [1, 15, 60, 250]) {
    const svc = new DecodeService(big);
    const n = fields > 100 ? 500 : 2000;
    const packets = Array.from({ length: n }, (_, i) => exporterPacket(ipfixMessage({}, [ipfixTemplateSet([template(256 + (i % 100), fields, ++salt)])]), { sessionKey: `udp|192.0.2.1|${1000 + Math.floor(i / 100)}|4739`, exporter: '192.0.2.1' }));
    out[`template${fields}`] = heapPer(n, () => {
      for (const p of packets) svc.decode(p, T0);
    });
    out[`template${fields}Charged`] = svc.stats().stateBytes / n;
  }
  {
    const svc = new DecodeService(big);
    const n = 2000;
    const packets = Array.from({ length: n }, (_, i) => exporterPacket(ipfixMessage({}, [ipfixTemplateSet([biflowTemplate(256 + (i % 100), ++salt)])]), { sessionKey: `udp|192.0.2.2|${1000 + Math.floor(i / 100)}|4739`, exporter: '192.0.2.2' }));
    out.biflow = heapPer(n, () => {
      for (const p of packets) svc.decode(p, T0);
    });
    out.biflowCharged = svc.stats().stateBytes / n;
  }
  {
    // A session with one domain: a message with no sets.
    const svc = new DecodeService(big);
    const n = 5000;
    const packets = Array.from({ length: n }, (_, i) => exporterPacket(ipfixMessage({ domain: i }, []), { sessionKey: `udp|192.0.2.3|${i}|4739`, exporter: '192.0.2.3' }));
    out.session = heapPer(n, () => {
      for (const p of packets) svc.decode(p, T0);
    });
    out.sessionCharged = svc.stats().stateBytes / n;
  }
  {
    // Held sets of 100 bytes: the overhead beyond their bytes.
    const svc = new DecodeService(big);
    const n = 5000;
    const fields: FieldDef[] = [{ id: 1, length: 4 }];
    const rows = Array.from({ length: 25 }, (_, i) => [i]);
    const packets = Array.from({ length: n }, (_, i) => exporterPacket(ipfixMessage({}, [dataSet(256 + (i % 1000), fields, rows)]), { sessionKey: `udp|192.0.2.4|${1000 + (i % 10)}|4739`, exporter: '192.0.2.4' }));
    for (let i = 0; i < 10; i++) svc.decode(exporterPacket(ipfixMessage({}, []), { sessionKey: `udp|192.0.2.4|${1000 + i}|4739`, exporter: '192.0.2.4' }), T0);
    const held0 = svc.stats().pendingBytes;
    out.heldSet = heapPer(n, () => {
      for (const p of packets) svc.decode(p, T0);
    }) - (svc.stats().pendingBytes - held0) / n;
    out.heldSetHeld = svc.stats().pendingSets;
  }
  return out;
}

function rssMiB(): number {
  settle();
  return process.memoryUsage().rss / 1024 / 1024;
}

function flood(maxStateBytes: number, perExporter: number, ports: number, addresses: number): Record<string, unknown> {
  const svc = new DecodeService({ maxStateBytes, maxStateBytesPerExporter: perExporter, maxSessions: 100_000, maxTemplatesPerSession: 4096 });
  const good: FieldDef[] = [{ id: 8, length: 4 }, { id: 12, length: 4 }, { id: 7, length: 2 }, { id: 11, length: 2 }, { id: 4, length: 1 }, { id: 1, length: 8 }, { id: 2, length: 8 }];
  const goodKey = { sessionKey: 'udp|198.51.100.7|50000|4739', exporter: '198.51.100.7' };
  const goodTemplates = exporterPacket(ipfixMessage({}, [ipfixTemplateSet([{ id: 300, fields: good }, { id: 301, fields: good.slice(0, 5) }])]), goodKey);
  const goodData = exporterPacket(ipfixMessage({}, [dataSet(300, good, [[0x0a000001, 0x0a000002, 3, 4, 6, 100n, 1n]])]), goodKey);
  let now = T0;
  svc.decode(goodTemplates, now);
  let goodRecords = 0;
  let goodRounds = 0;
  let goodMisses = 0;
  const goodRound = (): void => {
    goodRounds++;
    const o = svc.decode(goodData, now);
    if (o.records.length === 1) goodRecords++;
    else goodMisses++;
  };
  // Warm up: the code paths and a few compilations, so the baseline holds the fixed part.
  for (let i = 0; i < 50; i++) {
    svc.decode(exporterPacket(ipfixMessage({}, [ipfixTemplateSet([template(256, 15, 10_000_000 + i)])]), { sessionKey: `udp|192.0.2.200|${i}|4739`, exporter: '192.0.2.200' }), now);
    goodRound();
  }
  for (let i = 0; i < 50; i++) svc.endSession(`udp|192.0.2.200|${i}|4739`);
  const base = rssMiB();
  let peak = base;
  let salt = 0;
  const wave = (who: (i: number) => { sessionKey: string; exporter: string }, count: number): void => {
    for (let i = 0; i < count; i++) {
      const key = who(i);
      // 40 templates of 15 fields in one datagram, as the field report's flood.
      const templates = Array.from({ length: 40 }, (_, k) => template(256 + k, 15, ++salt));
      now += 1;
      svc.decode(exporterPacket(ipfixMessage({}, [ipfixTemplateSet(templates)]), key), now);
      goodRound();
      if (i % 50 === 49) peak = Math.max(peak, rssMiB());
    }
    peak = Math.max(peak, rssMiB());
  };
  wave((i) => ({ sessionKey: `udp|203.0.113.9|${1024 + i}|4739`, exporter: '203.0.113.9' }), ports);
  const afterPorts = svc.stats();
  wave((i) => ({ sessionKey: `udp|10.${(i >> 8) & 255}.${i & 255}.1|4000|4739`, exporter: `10.${(i >> 8) & 255}.${i & 255}.1` }), addresses);
  const s = svc.stats();
  return {
    baseMiB: base,
    peakMiB: peak,
    growthMiB: peak - base,
    goodRounds,
    goodRecords,
    goodMisses,
    stateBytes: s.stateBytes,
    templatesLive: s.templatesLive,
    templatesLearned: s.templatesLearned,
    floodPortsStateBytes: afterPorts.stateBytes,
    evictions: s.stateBudget.evictions,
    refusals: s.stateBudget.refusals,
    errorsByCode: s.errorsByCode,
  };
}

const scenario = process.argv[2];
if (scenario === 'costs') console.log(JSON.stringify(costs()));
else if (scenario === 'flood') console.log(JSON.stringify(flood(Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5]), Number(process.argv[6]))));
else throw new Error(`unknown scenario ${String(scenario)}`);
