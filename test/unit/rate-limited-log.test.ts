/**
 * RateLimitedLog: the per-key budget, the global budget per event kind (a flood from thousands
 * of sources writes a bounded number of lines), the "N suppressed from M sources" summary, and
 * memory bounded whatever the number of keys and kinds.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_KINDS, RateLimitedLog } from '../../src/observability/rate-limited-log.js';
import { testLogger } from '../support/udp-harness.js';

const MSG = 'dropped UDP datagram from a source not in the exporter allowlist';

function limiter(o: { burst?: number; kindBurst?: number; maxKeys?: number; windowMs?: number } = {}): { log: RateLimitedLog; lines: ReturnType<typeof testLogger>['lines']; advance: (ms: number) => void } {
  const { logger, lines } = testLogger();
  let clock = 1_000_000;
  const log = new RateLimitedLog(logger, { windowMs: o.windowMs ?? 60_000, burst: o.burst ?? 5, maxKeys: o.maxKeys ?? 10_000, kindBurst: o.kindBurst ?? 20, now: () => clock });
  return { log, lines, advance: (ms) => (clock += ms) };
}

describe('RateLimitedLog', () => {
  test('per key: a burst of lines, then suppression reported on the key\'s next line after the window', () => {
    const { log, lines, advance } = limiter({ burst: 3 });
    for (let i = 0; i < 10; i++) log.log('warn', '192.0.2.1', { source: '192.0.2.1' }, MSG);
    assert.equal(lines.filter((l) => l.msg === MSG).length, 3);
    advance(60_001);
    log.log('warn', '192.0.2.1', { source: '192.0.2.1' }, MSG);
    assert.equal(lines.filter((l) => l.msg === MSG).at(-1)?.suppressed, 7);
  });

  test('global cap per kind: 6,000 lines from 3,000 sources write 20 lines and one summary of the other 5,980 from 3,000 sources', () => {
    const { log, lines } = limiter();
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 3000; i++) {
        const source = `127.0.${i >> 8}.${i & 255}`;
        log.log('warn', source, { source }, MSG, 'udp.source_rejected');
      }
    }
    assert.equal(lines.filter((l) => l.msg === MSG).length, 20);
    assert.equal(lines.filter((l) => l.event === 'log.suppressed').length, 0, 'the summary waits for the end of the period');
    log.flush();
    const summaries = lines.filter((l) => l.event === 'log.suppressed');
    assert.equal(summaries.length, 1);
    const summary = summaries[0];
    assert.ok(summary !== undefined);
    assert.equal(summary.kind, 'udp.source_rejected');
    assert.equal(summary.suppressed, 5980);
    assert.equal(summary.sources, 3000);
    assert.equal(summary.level, 40);
    assert.match(summary.msg, /^5980 log lines suppressed from 3000 sources in \d+ s: udp\.source_rejected$/);
    log.flush();
    assert.equal(lines.filter((l) => l.event === 'log.suppressed').length, 1, 'a flush with nothing suppressed writes nothing');
  });

  test('kinds are budgeted separately: a flood of one kind does not silence another', () => {
    const { log, lines } = limiter({ kindBurst: 2 });
    for (let i = 0; i < 50; i++) log.log('warn', `a${i}`, { event: 'tls.auth_failed' }, 'exporter rejected');
    log.log('warn', 'b', { event: 'tls.limit_hit' }, 'TLS listener limit hit');
    assert.equal(lines.filter((l) => l.event === 'tls.auth_failed').length, 2);
    assert.equal(lines.filter((l) => l.event === 'tls.limit_hit').length, 1);
  });

  test('the summary is written once the period is over: on the next line of any kind, or by its timer', async () => {
    const { log, lines, advance } = limiter({ kindBurst: 1 });
    log.log('warn', 'x', {}, MSG);
    log.log('warn', 'y', {}, MSG);
    log.log('warn', 'y', {}, MSG);
    advance(60_000);
    log.log('info', 'z', { event: 'other' }, 'something else');
    const summary = lines.find((l) => l.event === 'log.suppressed');
    assert.equal(summary?.suppressed, 2);
    assert.equal(summary.sources, 1);

    const { logger, lines: timed } = testLogger();
    const real = new RateLimitedLog(logger, { windowMs: 50, burst: 1, maxKeys: 100, kindBurst: 1 });
    for (let i = 0; i < 5; i++) real.log('warn', `s${i}`, {}, MSG);
    assert.equal(timed.length, 1);
    await new Promise((r) => setTimeout(r, 150));
    assert.deepEqual(timed.filter((l) => l.event === 'log.suppressed').map((l) => [l.suppressed, l.sources]), [[4, 4]]);
  });

  test('memory is bounded: 100,000 sources and 500 kinds keep at most maxKeys keys and sources and MAX_KINDS kinds', () => {
    const { log, lines } = limiter({ maxKeys: 1000 });
    for (let i = 0; i < 100_000; i++) log.log('warn', `k${i}`, {}, MSG);
    for (let i = 0; i < 500; i++) log.log('warn', 'one', { event: `kind${i}` }, 'varied');
    const size = log.size();
    assert.ok(size.keys <= 1000, `keys ${size.keys}`);
    assert.ok(size.summarySources <= 1000, `summary sources ${size.summarySources}`);
    assert.ok(size.kinds <= MAX_KINDS, `kinds ${size.kinds}`);
    log.flush();
    const summary = lines.find((l) => l.event === 'log.suppressed' && l.kind === MSG);
    assert.equal(summary?.suppressed, 100_000 - 20);
    assert.equal(summary.sourcesAtLeast, true, 'beyond maxKeys the number of sources is a lower bound');
    assert.equal(log.size().summarySources, 0, 'a summary forgets its sources');
  });
});
