/**
 * Sampling as exporters declare it (issue 20, item 5): PSAMP selectors (RFC 5476/5477: IE
 * 302 selectorId in the data record, options with 304 selectorAlgorithm and its parameters
 * 305/306, 309/310, 311), RFC 7014 flow selection (396/397), NetFlow v9 sampler options
 * (48/49/50) with several samplers per exporter, and the interval-plus-space form carried in
 * the data record. samplingInterval is the 1-in-N that applies to each record; a sampler no
 * options described stays 1 and is counted (samplerUnknown). Built from readable values and
 * checked against tshark's dissection of the same bytes; the fused path writes the same bytes.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { DecodeService } from '../../src/decode/decode-service.js';
import { dataSet, exporterPacket, ipfixMessage, ipfixOptionsTemplateSet, ipfixTemplateSet, v9OptionsTemplateFlowSet, v9Packet, v9TemplateFlowSet, type FieldDef } from '../support/ipfix-builder.js';
import { requireTool } from '../support/softflowd.js';
import { haveTshark } from '../support/tshark-fields.js';
import { tsharkOn } from '../support/tshark-check.js';

const SELECTOR_OPTIONS: FieldDef[] = [{ id: 302, length: 4 }, { id: 304, length: 2 }, { id: 305, length: 4 }, { id: 306, length: 4 }, { id: 309, length: 4 }, { id: 310, length: 4 }];
const DATA: FieldDef[] = [{ id: 8, length: 4 }, { id: 12, length: 4 }, { id: 2, length: 4 }, { id: 302, length: 4 }];

// Selector 1: systematic count-based, 1 of every 1 + 99 → 1:100. Selector 2: random 1 out of
// 1000 (it also sends a stray interval/space, which its algorithm does not use). Selector 3:
// systematic time-based (no packet rate). Selector 9: never described.
const psamp = ipfixMessage({ exportTime: 1_700_000_100, sequence: 0, domain: 1 }, [
  ipfixOptionsTemplateSet([{ id: 400, fields: SELECTOR_OPTIONS, scopeCount: 1 }]),
  dataSet(400, SELECTOR_OPTIONS, [[1, 1, 1, 99, 0, 0], [2, 3, 1, 9, 1, 1000], [3, 2, 0, 0, 0, 0]]),
  ipfixTemplateSet([{ id: 300, fields: DATA }]),
  dataSet(300, DATA, [['10.0.0.1', '10.0.0.2', 5, 1], ['10.0.0.3', '10.0.0.4', 6, 2], ['10.0.0.5', '10.0.0.6', 7, 3], ['10.0.0.7', '10.0.0.8', 8, 9]]),
]);

function decode(msgs: readonly Uint8Array[]): { rates: number[]; unknown: number } {
  const svc = new DecodeService();
  const rates: number[] = [];
  let unknown = 0;
  for (const m of msgs) {
    const o = svc.decode(exporterPacket(m));
    assert.deepEqual(o.errors, []);
    rates.push(...o.records.map((r) => r.samplingInterval));
    unknown += o.samplerUnknown;
  }
  assert.equal(svc.stats().samplerUnknown, unknown);
  return { rates, unknown };
}

describe('sampling as exporters declare it', () => {
  test('tshark reads the selector report and the per-record selector ids of the same bytes', (t) => {
    if (!requireTool(t, haveTshark(), 'tshark')) return;
    const [row] = tsharkOn([psamp], 4739, 'cflow', ['cflow.selector_id', 'cflow.selector_algorithm', 'cflow.sampling_packet_interval', 'cflow.sampling_packet_space', 'cflow.sampling_size', 'cflow.sampling_population']);
    assert.ok(row !== undefined);
    assert.deepEqual(row['cflow.selector_id'], ['1', '2', '3', '1', '2', '3', '9']);
    assert.deepEqual(row['cflow.selector_algorithm'], ['1', '3', '2']);
    assert.deepEqual([row['cflow.sampling_packet_interval'], row['cflow.sampling_packet_space']], [['1', '1', '0'], ['99', '9', '0']]);
    assert.deepEqual([row['cflow.sampling_size'], row['cflow.sampling_population']], [['0', '1', '0'], ['0', '1000', '0']]);
  });

  test('PSAMP selectors: each record takes its selector\'s rate by its algorithm; a time-based or undescribed selector stays 1 and is counted', () => {
    assert.deepEqual(decode([psamp]), { rates: [100, 1000, 1, 1], unknown: 2 });
  });

  test('NetFlow v9 sampler options (48 id, 49 mode, 50 interval): two samplers on one exporter, each record its own', () => {
    const opt: FieldDef[] = [{ id: 1, length: 4 }, { id: 48, length: 2 }, { id: 49, length: 1 }, { id: 50, length: 4 }];
    const data: FieldDef[] = [{ id: 8, length: 4 }, { id: 12, length: 4 }, { id: 2, length: 4 }, { id: 48, length: 2 }];
    const pkt = v9Packet({ uptimeMs: 1000, unixSecs: 1_700_000_100 }, [
      v9OptionsTemplateFlowSet([{ id: 260, fields: opt, scopeCount: 1 }]),
      dataSet(260, opt, [[0, 1, 2, 100], [0, 2, 2, 512]]),
      v9TemplateFlowSet([{ id: 261, fields: data }]),
      dataSet(261, data, [['10.0.0.1', '10.0.0.2', 1, 2], ['10.0.0.3', '10.0.0.4', 1, 1], ['10.0.0.5', '10.0.0.6', 1, 7]]),
    ]);
    assert.deepEqual(decode([pkt]), { rates: [512, 100, 1], unknown: 1 });
  });

  test('the interval-plus-space form in the data record itself (305/306): 1 of 1 + 31 → 32', () => {
    const F: FieldDef[] = [{ id: 8, length: 4 }, { id: 2, length: 4 }, { id: 305, length: 4 }, { id: 306, length: 4 }];
    const msg = ipfixMessage({ exportTime: 1_700_000_100, sequence: 0 }, [ipfixTemplateSet([{ id: 300, fields: F }]), dataSet(300, F, [['10.0.0.1', 3, 1, 31], ['10.0.0.2', 3, 4, 4]])]);
    assert.deepEqual(decode([msg]).rates, [32, 2]);
  });

  test('RFC 7014 flow selection by count (396 samplingFlowInterval, 397 samplingFlowSpacing) gives the domain\'s rate', () => {
    const opt: FieldDef[] = [{ id: 149, length: 4 }, { id: 390, length: 1 }, { id: 396, length: 4 }, { id: 397, length: 4 }];
    const F: FieldDef[] = [{ id: 8, length: 4 }, { id: 2, length: 4 }];
    const msg = ipfixMessage({ exportTime: 1_700_000_100, sequence: 0 }, [
      ipfixOptionsTemplateSet([{ id: 400, fields: opt, scopeCount: 1 }]),
      dataSet(400, opt, [[1, 1, 1, 9]]),
      ipfixTemplateSet([{ id: 300, fields: F }]),
      dataSet(300, F, [['10.0.0.1', 3]]),
    ]);
    assert.deepEqual(decode([msg]).rates, [10]);
  });
});
