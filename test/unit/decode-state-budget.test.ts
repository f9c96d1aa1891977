import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { DecodeService, type DecodeOutcome } from '../../src/decode/decode-service.js';
import { heldSetCost, STATE_COST, templateCost } from '../../src/decode/state-budget.js';
import { DecodeErrorCode } from '../../src/flow/errors.js';
import { dataSet, exporterPacket, ipfixMessage, ipfixTemplateSet, ipfixWithdrawalSet, type FieldDef, type PacketOptions } from '../support/ipfix-builder.js';

/**
 * The decoder's state budget (src/decode/state-budget.ts): every session, domain, template,
 * sampler and held set is charged before it is allocated, per exporter address and in total;
 * what does not fit evicts sessions of the exporter that holds the most (never a small one), or
 * is refused; both are counted by reason. Memory is measured in child processes.
 */

const T0 = 1_700_000_000_000;
const V4: FieldDef[] = [{ id: 8, length: 4 }, { id: 12, length: 4 }, { id: 7, length: 2 }, { id: 11, length: 2 }, { id: 4, length: 1 }, { id: 1, length: 8 }, { id: 2, length: 8 }];
const V4_RECORD = [0x0a000001, 0x0a000002, 1234, 80, 6, 1500n, 3n];
/** One session with one domain and n templates of V4's 7 fields. */
const perSession = (n: number): number => STATE_COST.session + STATE_COST.domain + n * templateCost(V4.length);

function from(address: string, port: number, o: PacketOptions = {}): PacketOptions {
  return { sessionKey: `udp|${address}|${port}|4739`, exporter: address, receivedAtMs: T0, ...o };
}

function templates(ids: readonly number[]): Uint8Array {
  return ipfixMessage({}, [ipfixTemplateSet(ids.map((id) => ({ id, fields: V4 })))]);
}

const DATA = ipfixMessage({}, [dataSet(256, V4, [V4_RECORD])]);

function send(svc: DecodeService, payload: Uint8Array, o: PacketOptions): DecodeOutcome {
  return svc.decode(exporterPacket(payload, o), o.receivedAtMs ?? T0);
}

const codes = (o: DecodeOutcome): string[] => o.errors.map((e) => e.code);
const ids = (n: number, first = 256): number[] => Array.from({ length: n }, (_, i) => first + i);

describe('decoder state budget', () => {
  test('charges sessions, domains and templates, and gives them back on expiry and withdrawal', () => {
    const svc = new DecodeService({ templateLifetimeMs: 1000 });
    send(svc, templates(ids(3)), from('192.0.2.1', 1000));
    assert.equal(svc.stats().stateBytes, perSession(3));
    send(svc, templates(ids(2, 300)), from('192.0.2.1', 1000, { receivedAtMs: T0 + 900 }));
    assert.equal(svc.stats().stateBytes, perSession(5));
    // A refresh of the same layout costs nothing more; a changed layout replaces the charge.
    send(svc, ipfixMessage({}, [ipfixTemplateSet([{ id: 256, fields: V4 }, { id: 257, fields: V4.slice(0, 3) }])]), from('192.0.2.1', 1000, { receivedAtMs: T0 + 900 }));
    assert.equal(svc.stats().stateBytes, perSession(5) - (V4.length - 3) * STATE_COST.templateField);
    // Template 258 was learned at T0 and not refreshed: it expires first.
    svc.expire(T0 + 1500);
    assert.equal(svc.stats().templatesLive, 4);
    assert.equal(svc.stats().stateBytes, perSession(4) - (V4.length - 3) * STATE_COST.templateField);
    // The rest, and the session with them (idle for a template lifetime).
    svc.expire(T0 + 2000);
    assert.equal(svc.stats().sessions, 0);
    assert.equal(svc.stats().stateBytes, 0);
    assert.equal(svc.stats().stateExporters, 0);

    const tls = new DecodeService();
    send(tls, templates(ids(4)), from('192.0.2.2', 1000, { transport: 'tls' }));
    send(tls, ipfixMessage({}, [ipfixWithdrawalSet([257])]), from('192.0.2.2', 1000, { transport: 'tls' }));
    assert.equal(tls.stats().templatesWithdrawn, 1);
    assert.equal(tls.stats().stateBytes, perSession(3));
    tls.endSession('udp|192.0.2.2|1000|4739');
    assert.equal(tls.stats().stateBytes, 0);
  });

  test('held data is charged until it is decoded or dropped', () => {
    const svc = new DecodeService({ pendingHoldMs: 1000 });
    const o = send(svc, DATA, from('192.0.2.1', 1000));
    assert.equal(o.pendingHeld, 1);
    const held = svc.stats().pendingBytes;
    assert.equal(svc.stats().stateBytes, STATE_COST.session + STATE_COST.domain + heldSetCost(held));
    const later = send(svc, templates([256]), from('192.0.2.1', 1000));
    assert.equal(later.records.length, 1);
    assert.equal(svc.stats().stateBytes, perSession(1));
    send(svc, ipfixMessage({}, [dataSet(999, V4, [V4_RECORD])]), from('192.0.2.1', 1000));
    assert.ok(svc.stats().stateBytes > perSession(1));
    svc.expire(T0 + 5000);
    assert.equal(svc.stats().pendingExpired, 1);
    assert.equal(svc.stats().stateBytes, perSession(1));
  });

  test("one address flooding from many source ports evicts only its own sessions; a second exporter keeps decoding", () => {
    const budget = perSession(40) * 3;
    const svc = new DecodeService({ maxStateBytesPerExporter: budget });
    send(svc, templates([256]), from('198.51.100.7', 50000));
    for (let port = 1024; port < 1124; port++) {
      send(svc, templates(ids(40)), from('203.0.113.9', port));
      assert.equal(send(svc, DATA, from('198.51.100.7', 50000)).records.length, 1, `the well-behaved exporter decodes (flood port ${port})`);
      assert.ok(svc.stats().stateBytes <= budget + perSession(1), 'the flood stays within its exporter budget');
    }
    const s = svc.stats();
    assert.equal(s.sessions, 1 + 3);
    assert.equal(s.stateBudget.evictions.exporter, 97);
    assert.equal(s.stateBudget.evictions.total, 0);
    assert.equal(s.sessionsEvicted, 97);
    assert.equal(s.errorsByCode[DecodeErrorCode.StateEvicted], 97);
  });

  test('over the total, the exporter holding the most is evicted, never one below the fair share', () => {
    // Room for 6 sessions of 40 templates; each flooding address holds one.
    const total = perSession(40) * 6 + perSession(2);
    const svc = new DecodeService({ maxStateBytes: total });
    send(svc, templates([256, 257]), from('198.51.100.7', 50000));
    // One heavier exporter (two sessions), then many addresses of one session each.
    send(svc, templates(ids(40)), from('203.0.113.1', 1));
    send(svc, templates(ids(40)), from('203.0.113.1', 2));
    for (let i = 0; i < 50; i++) {
      const o = send(svc, templates(ids(40)), from(`10.0.${i}.1`, 4000));
      assert.ok(svc.stats().stateBytes <= total);
      assert.equal(send(svc, DATA, from('198.51.100.7', 50000)).records.length, 1, `the small exporter is never evicted (round ${i})`);
      if (i === 4) assert.deepEqual(codes(o), [DecodeErrorCode.StateEvicted], 'the first eviction takes from the heaviest exporter');
    }
    const s = svc.stats();
    assert.ok(s.stateBudget.evictions.total >= 45, JSON.stringify(s.stateBudget));
    assert.equal(s.stateBudget.evictions.exporter, 0);
  });

  test('state that can never fit is refused and counted; other state is untouched', () => {
    const svc = new DecodeService({ maxStateBytesPerExporter: perSession(10), maxTemplatesPerSession: 4096 });
    send(svc, templates(ids(5)), from('198.51.100.7', 50000));
    const o = send(svc, templates(ids(20, 1000)), from('203.0.113.9', 1));
    assert.equal(o.templatesLearned, 10);
    assert.equal(o.errorCount, 10);
    assert.deepEqual(new Set(codes(o)), new Set([DecodeErrorCode.StateBudget]));
    assert.match(o.errors[0]?.message ?? '', /maxStateBytesPerExporter/);
    const s = svc.stats();
    assert.equal(s.stateBudget.refusals.exporter, 10);
    assert.equal(s.templatesLive, 15);
    // Held data beyond the budget is dropped and counted as an unknown-template set.
    const h = send(svc, ipfixMessage({}, [dataSet(5000, V4, [V4_RECORD])]), from('203.0.113.9', 1));
    assert.equal(h.unknownTemplateSets, 1);
    assert.deepEqual(codes(h), [DecodeErrorCode.StateBudget]);
  });

  test('maxSessions evicts from the exporter with the most sessions, not the least recently seen one', () => {
    const svc = new DecodeService({ maxSessions: 50 });
    send(svc, templates([256]), from('198.51.100.7', 50000));
    for (let port = 1; port <= 200; port++) send(svc, templates([256]), from('203.0.113.9', port, { receivedAtMs: T0 + port }));
    const s = svc.stats();
    assert.equal(s.sessions, 50);
    assert.equal(s.stateBudget.evictions.sessions, 151);
    assert.equal(send(svc, DATA, from('198.51.100.7', 50000, { receivedAtMs: T0 + 1000 })).records.length, 1, 'the quiet exporter kept its session');
  });

  test('restored state is charged, and what does not fit is left out', () => {
    const a = new DecodeService();
    for (let port = 1; port <= 4; port++) send(a, templates(ids(40)), from('203.0.113.9', port));
    const saved = a.exportState();
    const b = new DecodeService({ maxStateBytesPerExporter: perSession(40) * 2 + 100 });
    b.importState(saved);
    const s = b.stats();
    assert.equal(s.sessions, 2);
    assert.equal(s.stateBytes, perSession(40) * 2);
    assert.equal(s.stateBudget.evictions.exporter, 2);
  });

  test('the cost estimates are upper bounds of what V8 keeps (heap measured in a child process)', { timeout: 120_000 }, () => {
    const m = JSON.parse(execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', CHILD, 'costs'], { encoding: 'utf8' })) as Record<string, number>;
    for (const fields of [1, 15, 60, 250]) {
      const heap = m[`template${fields}`] ?? Infinity;
      assert.ok(heap < templateCost(fields), `a ${fields}-field template keeps ${heap.toFixed(0)} B, charged ${templateCost(fields)}`);
    }
    assert.ok((m.biflow ?? Infinity) < templateCost(11), `a biflow template keeps ${m.biflow} B`);
    assert.ok((m.session ?? Infinity) < STATE_COST.session + STATE_COST.domain, `a session with a domain keeps ${m.session} B`);
    assert.ok((m.heldSet ?? Infinity) < STATE_COST.heldSet, `a held set keeps ${m.heldSet} B beyond its bytes`);
    assert.equal(m.heldSetHeld, 5000);
  });

  test('a template flood from one address and from many keeps RSS under the budget plus a fixed overhead while another exporter decodes', { timeout: 180_000 }, () => {
    const budget = 16 * 1024 * 1024;
    // V8's young generation, the bounded caches of compiled decoders, code space: measured ~21 MiB.
    const fixedMiB = 32;
    const r = JSON.parse(execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', CHILD, 'flood', String(budget), String(budget / 4), '1500', '1500'], { encoding: 'utf8' })) as {
      growthMiB: number; goodRounds: number; goodRecords: number; stateBytes: number; templatesLearned: number; evictions: Record<string, number>; floodPortsStateBytes: number;
    };
    // Unbounded (the code before the budget), the 120,000 templates grew RSS by 340 MiB.
    assert.equal(r.templatesLearned, 120_052);
    assert.ok(r.growthMiB < budget / 1024 / 1024 + fixedMiB, `RSS grew ${r.growthMiB.toFixed(1)} MiB (budget 16 MiB + ${fixedMiB} MiB)`);
    assert.ok(r.stateBytes <= budget);
    assert.ok(r.floodPortsStateBytes <= budget / 4 + perSession(2), `after the port flood ${r.floodPortsStateBytes} B (the flooding address's budget and the other exporter's state)`);
    assert.equal(r.goodRecords, r.goodRounds, 'the well-behaved exporter decoded every round');
    assert.ok((r.evictions.exporter ?? 0) > 1000 && (r.evictions.total ?? 0) > 1000, JSON.stringify(r.evictions));
  });
});

const CHILD = fileURLToPath(new URL('../support/decode-state-memory.ts', import.meta.url));
