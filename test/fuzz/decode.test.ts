/**
 * Fuzzing the decode service with mutated real captures and generated packets. Properties,
 * for every input:
 * - DecodeService.decode() never throws, and every reported problem is a DecodeError;
 * - output is bounded by input: records ≤ payload bytes + bytes held from earlier packets;
 * - every record has the FlowRecord shape and decodeElements() on its raw bytes never throws;
 * - importState() on mutated state throws nothing but DecodeError.
 * The PRNG is seeded (SEALFLOW_FUZZ_SEED to reproduce); the case count is SEALFLOW_FUZZ_CASES
 * (default 120 000 mutation cases + 20 000 fast-check cases).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { DecodeService } from '../../src/decode/decode-service.js';
import type { DecodeOutcome } from '../../src/decode/decode-service.js';
import { decodeElements } from '../../src/decode/decode-elements.js';
import { DecodeError } from '../../src/flow/errors.js';
import { newFlowRecord } from '../../src/flow/flow-record.js';
import {
  VARLEN,
  dataSet,
  exporterPacket,
  ipfixMessage,
  ipfixOptionsTemplateSet,
  ipfixTemplateSet,
  v9OptionsTemplateFlowSet,
  v9Packet,
  v9TemplateFlowSet,
} from '../support/ipfix-builder.js';
import type { FieldDef } from '../support/ipfix-builder.js';
import { corpora } from '../support/corpora.js';

const SEED = Number(process.env.SEALFLOW_FUZZ_SEED ?? 20261122);
const CASES = Number(process.env.SEALFLOW_FUZZ_CASES ?? 120_000);
const FC_RUNS = 20_000;

/** xorshift32: small, seeded, reproducible. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

function seeds(): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const dir of ['logstash-codec-netflow', 'goflow2', 'logstash-codec-sflow']) {
    for (const f of readdirSync(path.join(corpora, dir)).sort()) out.push(readFileSync(path.join(corpora, dir, f)));
  }
  const file = readFileSync(path.join(corpora, 'ipfixcol2/example_flows.ipfix'));
  for (let off = 0, i = 0; off + 4 <= file.length && i < 8; i++) {
    const len = file.readUInt16BE(off + 2);
    out.push(file.subarray(off, off + len));
    off += len;
  }
  const fields: FieldDef[] = [
    { id: 8, length: 4 },
    { id: 27, length: 16 },
    { id: 82, length: VARLEN },
    { id: 1, length: 8 },
    { id: 2, length: 3 },
    { id: 22, length: 4 },
    { id: 152, length: 8 },
    { id: 4315, length: 4, enterprise: 9 },
    { id: 291, length: VARLEN },
  ];
  const rec = ['10.0.0.1', '2001:db8::1', 'eth0', 1n << 60n, 5, 1000, 1_700_000_000_000, 7, Uint8Array.of(255, 0, 1, 2)];
  const opt: FieldDef[] = [{ id: 149, length: 4 }, { id: 34, length: 4 }, { id: 160, length: 8 }];
  out.push(ipfixMessage({ sequence: 1 }, [ipfixTemplateSet([{ id: 256, fields }]), ipfixOptionsTemplateSet([{ id: 257, fields: opt }]), dataSet(257, opt, [[0, 10, 1_699_000_000_000]]), dataSet(256, fields, [rec, rec])]));
  out.push(v9Packet({ uptimeMs: 5000 }, [v9TemplateFlowSet([{ id: 256, fields: fields.filter((f) => f.enterprise === undefined) }]), v9OptionsTemplateFlowSet([{ id: 258, fields: [{ id: 1, length: 4 }, { id: 34, length: 4 }] }])]));
  return out;
}

/** Mutations of the kinds the brief and RFC parsing risks call for. */
function mutate(src: Uint8Array, rnd: () => number, pool: readonly Uint8Array[]): Uint8Array {
  let b = src.slice();
  const ops = 1 + (rnd() % 3);
  for (let k = 0; k < ops; k++) {
    const kind = rnd() % 8;
    if (b.length === 0) break;
    const at = rnd() % b.length;
    switch (kind) {
      case 0: // truncation
        b = b.subarray(0, at);
        break;
      case 1: // bit flips
        for (let i = rnd() % 8; i >= 0; i--) {
          const p = rnd() % b.length;
          b[p] = (b[p] ?? 0) ^ (1 << (rnd() % 8));
        }
        break;
      case 2: // a 16-bit field (lengths, counts, ids) to an extreme
      case 3: {
        const extremes = [0, 1, 2, 3, 4, 255, 256, 0x7fff, 0x8000, 0xfffe, 0xffff, b.length, b.length - at];
        const v = extremes[rnd() % extremes.length] ?? 0;
        const p = at & ~1;
        if (p + 1 < b.length) {
          b[p] = (v >>> 8) & 0xff;
          b[p + 1] = v & 0xff;
        }
        break;
      }
      case 4: // random byte
        b[at] = rnd() & 0xff;
        break;
      case 5: {
        // splice the tail of another seed
        const other = pool[rnd() % pool.length] ?? b;
        const from = other.length === 0 ? 0 : rnd() % other.length;
        const joined = new Uint8Array(at + other.length - from);
        joined.set(b.subarray(0, at));
        joined.set(other.subarray(from), at);
        b = joined;
        break;
      }
      case 6: {
        // duplicate a chunk (repeated sets/records)
        const len = 1 + (rnd() % 64);
        const chunk = b.slice(at, at + len);
        const out = new Uint8Array(b.length + chunk.length);
        out.set(b.subarray(0, at + chunk.length));
        out.set(chunk, at + chunk.length);
        out.set(b.subarray(at + chunk.length), at + 2 * chunk.length);
        b = out;
        break;
      }
      default: {
        // delete a chunk
        const len = Math.min(1 + (rnd() % 16), b.length - at);
        const out = new Uint8Array(b.length - len);
        out.set(b.subarray(0, at));
        out.set(b.subarray(at + len), at);
        b = out;
      }
    }
  }
  return b;
}

const SHAPE = Object.keys(newFlowRecord('netflow', 0, 'udp', '', null, 0, 0)).join(',');

function check(svc: DecodeService, payload: Uint8Array, sessionKey: string, nowMs: number, transport: 'udp' | 'tls'): DecodeOutcome {
  const heldBefore = svc.stats().pendingBytes;
  let o: DecodeOutcome;
  try {
    o = svc.decode(exporterPacket(payload, { sessionKey, receivedAtMs: nowMs, transport }));
  } catch (err) {
    assert.fail(`decode threw ${String(err)} on ${Buffer.from(payload).toString('hex')}`);
  }
  for (const e of o.errors) {
    assert.ok(e instanceof DecodeError, `non-DecodeError in outcome: ${String(e)}`);
    // decode() converts unexpected exceptions into 'decoder failure' errors so the probe keeps
    // running; here any such conversion is a bug (a RangeError escaping a bounds check).
    assert.ok(!e.message.startsWith('decoder failure'), `${e.message} on ${Buffer.from(payload).toString('hex')}`);
  }
  assert.ok(o.records.length <= payload.length + heldBefore, `records ${o.records.length} exceed input ${payload.length} + held ${heldBefore}`);
  return o;
}

describe('fuzz: DecodeService on mutated captures', () => {
  const pool = seeds();

  test(`${CASES} mutation cases (seed ${SEED})`, () => {
    const rnd = prng(SEED);
    const limits = { maxSessions: 64, maxTemplatesPerSession: 256 };
    const svc = new DecodeService(limits);
    // Differential: the per-field loop must agree with the compiled decoders on every input.
    const generic = new DecodeService(limits, { compiledDecoders: false });
    let records = 0;
    let errors = 0;
    let now = 1_700_000_000_000;
    for (let i = 0; i < CASES; i++) {
      const base = pool[rnd() % pool.length] ?? new Uint8Array(0);
      const sessionKey = `s${rnd() % 8}`;
      now += rnd() % 50;
      // Feed the unmutated seed now and then so data sets meet live templates.
      if (rnd() % 4 === 0) {
        check(svc, base, sessionKey, now, 'udp');
        check(generic, base, sessionKey, now, 'udp');
      }
      const input = mutate(base, rnd, pool);
      const transport = rnd() % 5 === 0 ? 'tls' : 'udp';
      const o = check(svc, input, sessionKey, now, transport);
      const g = check(generic, input, sessionKey, now, transport);
      assert.equal(g.records.length, o.records.length, 'compiled and generic decoders agree on the record count');
      if (i % 13 === 0) {
        const strip = (rs: typeof o.records) => rs.map((r) => ({ ...r, raw: null }));
        assert.deepEqual(strip(g.records), strip(o.records), `compiled vs generic on ${Buffer.from(input).toString('hex')}`);
      }
      records += o.records.length;
      errors += o.errorCount;
      if (i % 97 === 0) {
        for (const r of o.records.slice(0, 4)) {
          assert.equal(Object.keys(r).join(','), SHAPE, 'records keep the FlowRecord shape');
          assert.ok(r.srcAddr === null || typeof r.srcAddr === 'number' || r.srcAddr.length === 16);
          if (r.raw !== null) decodeElements(r.raw);
        }
      }
      if (i % 1000 === 0) {
        svc.expire(now);
        generic.expire(now);
      }
    }
    const s = svc.stats();
    assert.ok(records > 0 && errors > 0, `exercised both paths: ${records} records, ${errors} errors`);
    assert.ok(s.sessions <= 64);
    assert.ok(s.templatesLive <= 64 * 256);
  });

  test('fast-check: arbitrary bytes behind valid IPFIX and v9 headers', () => {
    const svc = new DecodeService();
    const ipfixHead = ipfixMessage({}, []).subarray(0, 16);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.boolean(), (body, v9) => {
        let payload: Uint8Array;
        if (v9) {
          payload = new Uint8Array(20 + body.length);
          payload.set(v9Packet({}, []));
          payload.set(body, 20);
        } else {
          payload = new Uint8Array(16 + body.length);
          payload.set(ipfixHead);
          payload.set(body, 16);
          payload[2] = (payload.length >>> 8) & 0xff;
          payload[3] = payload.length & 0xff;
        }
        check(svc, payload, 'fc', 1_700_000_000_000, 'udp');
      }),
      { numRuns: FC_RUNS, seed: SEED },
    );
  });

  test('importState: mutated snapshots are rejected with DecodeError or accepted, nothing else', () => {
    const rnd = prng(SEED ^ 0x5eed);
    const svc = new DecodeService();
    for (const p of pool) check(svc, p, 'snap', 1_700_000_000_000, 'udp');
    const state = svc.exportState();
    assert.ok(state.length > 100);
    for (let i = 0; i < 3000; i++) {
      const fresh = new DecodeService({ maxTemplatesPerSession: 64 });
      try {
        fresh.importState(mutate(state, rnd, [state]));
      } catch (err) {
        assert.ok(err instanceof DecodeError, `importState threw ${String(err)}`);
      }
    }
  });
});
