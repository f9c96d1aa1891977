import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeElements } from '../../src/decode/decode-elements.js';
import { IE_TABLE_SIZE, lookupIe, lookupV9Field, NETFLOW_PEN, REVERSE_PEN, V9_SCOPE_PEN } from '../../src/decode/ie/ie-table.js';
import { encodeValue, VARLEN } from '../support/ipfix-builder.js';
import type { FieldDef, FieldValue } from '../support/ipfix-builder.js';

function raw(fields: FieldDef[], values: FieldValue[]) {
  const parts = values.map((v, i) => encodeValue(fields[i]!, v));
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    bytes.set(p, off);
    off += p.length;
  }
  return { fields: fields.map((f) => ({ id: f.id, enterprise: f.enterprise ?? 0, length: f.length })), bytes };
}

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

describe('IE table', () => {
  test('the committed table is what scripts/gen-ie-table.ts generates from scripts/information-elements', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sealflow-ie-'));
    try {
      const out = path.join(dir, 'ie-table.generated.ts');
      const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/gen-ie-table.ts', 'scripts/information-elements', out], { cwd: repoRoot, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(readFileSync(out, 'utf8'), readFileSync(path.join(repoRoot, 'src/decode/ie/ie-table.generated.ts'), 'utf8'), 'generated table drifted: run npm run gen:ie');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the product does not read the XML definitions at run time', () => {
    const src = readFileSync(path.join(repoRoot, 'src/decode/ie/ie-table.ts'), 'utf8') + readFileSync(path.join(repoRoot, 'src/decode/ie/ie-table.generated.ts'), 'utf8');
    assert.doesNotMatch(src, /from 'node:fs'|readFileSync|information-elements/);
  });

  test('generated table covers IANA and the enterprise files', () => {
    assert.ok(IE_TABLE_SIZE > 1000);
    assert.deepEqual(lookupIe(0, 1), { id: 1, enterprise: 0, name: 'octetDeltaCount', type: 'unsigned64', semantics: 'deltaCounter', units: 'octets' });
    assert.equal(lookupIe(9, 4315)?.name, 'tcpWindowSizeMin');
    assert.equal(lookupIe(5951, 128)?.enterprise, 5951);
    assert.equal(lookupIe(REVERSE_PEN, 1)?.name, 'reverseOctetDeltaCount');
    assert.equal(lookupIe(6871, 14 | 0x4000)?.name, 'reverseInitialTCPFlags');
    assert.equal(lookupIe(0, 40000), undefined);
    assert.equal(lookupIe(123456, 1), undefined);
    assert.equal(lookupIe(0, -1), undefined);
  });

  test('v9 field types: IANA numbers first, then the NetFlow tables; scope fields apart', () => {
    assert.equal(lookupV9Field(8)?.name, 'sourceIPv4Address');
    assert.equal(lookupV9Field(40000)?.name, 'userName');
    assert.equal(lookupV9Field(33002)?.enterprise, 4294967295);
    assert.equal(lookupIe(V9_SCOPE_PEN, 1)?.name, 'scopeSystem');
    assert.equal(NETFLOW_PEN, 2 ** 32 - 2);
  });
});

describe('decodeElements', () => {
  test('every abstract data type the table uses', () => {
    const fields: FieldDef[] = [
      { id: 1, length: 8 }, // unsigned64
      { id: 4, length: 1 }, // unsigned8
      { id: 56, length: 6 }, // macAddress
      { id: 82, length: VARLEN }, // string
      { id: 8, length: 4 }, // ipv4Address
      { id: 27, length: 16 }, // ipv6Address
      { id: 150, length: 4 }, // dateTimeSeconds
      { id: 152, length: 8 }, // dateTimeMilliseconds
      { id: 154, length: 8 }, // dateTimeMicroseconds
      { id: 276, length: 1 }, // dataRecordsReliability: boolean
      { id: 320, length: 8 }, // absoluteError: float64
      { id: 313, length: VARLEN }, // ipHeaderPacketSection: octetArray
      { id: 291, length: VARLEN }, // basicList (kept as bytes)
      { id: 434, length: 4 }, // mibObjectValueInteger: signed32
    ];
    const mac = Uint8Array.of(0x00, 0x50, 0x56, 0xc0, 0x00, 0x01);
    const f64 = new Uint8Array(8);
    new DataView(f64.buffer).setFloat64(0, 1.5);
    const ntp = (BigInt(1_700_000_000 + 2208988800) << 32n) | 0x80000000n;
    const values: FieldValue[] = [(1n << 63n) + 5n, 17, mac, 'ge-0/0/0', '10.1.2.3', '2001:db8::7', 1_700_000_000, 1_700_000_000_123, ntp, 2, f64, Uint8Array.of(1, 2, 3), Uint8Array.of(255, 0, 1), 0xfffffffe];
    const els = decodeElements(raw(fields, values));
    const byName = Object.fromEntries(els.map((e) => [e.name, e]));
    assert.equal(byName.octetDeltaCount?.value, (1n << 63n) + 5n);
    assert.equal(byName.protocolIdentifier?.value, 17);
    assert.equal(byName.sourceMacAddress?.value, '00:50:56:c0:00:01');
    assert.equal(byName.interfaceName?.value, 'ge-0/0/0');
    assert.equal(byName.sourceIPv4Address?.value, '10.1.2.3');
    assert.equal(byName.sourceIPv6Address?.value, '2001:db8::7');
    assert.equal(byName.flowStartSeconds?.value, 1_700_000_000_000);
    assert.equal(byName.flowStartMilliseconds?.value, 1_700_000_000_123);
    assert.equal(byName.flowStartMicroseconds?.value, 1_700_000_000_500);
    assert.equal(byName.dataRecordsReliability?.value, false);
    assert.equal(byName.absoluteError?.value, 1.5);
    assert.deepEqual(byName.ipHeaderPacketSection?.value, Uint8Array.of(1, 2, 3));
    assert.equal(byName.basicList?.type, 'basicList');
    assert.equal(byName.mibObjectValueInteger?.value, -2);
    assert.equal(els.length, fields.length);
  });

  test('unexpected lengths fall back to octetArray; a truncated record yields what fits', () => {
    const r = raw([{ id: 8, length: 3 }, { id: 82, length: VARLEN }], [Uint8Array.of(1, 2, 3), 'abc']);
    const els = decodeElements(r);
    assert.equal(els[0]?.type, 'octetArray');
    const cut = decodeElements({ fields: r.fields, bytes: r.bytes.subarray(0, 5) });
    assert.equal(cut.length, 1);
  });
});
