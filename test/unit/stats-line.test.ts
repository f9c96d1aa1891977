import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createLogger } from '../../src/observability/logger.js';
import { formatBytes, formatDuration, formatStatsLine, StatsLine, type StatsSummary } from '../../src/observability/stats-line.js';

function summary(over: Partial<StatsSummary> = {}): StatsSummary {
  return { exporters: 0, records: 0, lost: { records: {}, packets: {} }, spoolRecords: 0, spoolBytes: 0, drainLagMs: null, uploaded: 0, ...over };
}

describe('stats line', () => {
  test('rates come from counter differences over the elapsed time', () => {
    const prev = { summary: summary({ records: 1000, uploaded: 500 }), atMs: 10_000 };
    const now = summary({ exporters: 3, records: 13_000, uploaded: 6500, lost: { records: { filter: 7 }, packets: {} }, spoolRecords: 2048, spoolBytes: 3 * 1024 * 1024 + 512 * 1024, drainLagMs: 2100, drainState: 'ok' });
    const line = formatStatsLine(now, prev, 70_000);
    assert.equal(line.fields.recordsPerSecond, 200);
    assert.equal(line.fields.uploadedPerSecond, 100);
    assert.equal(line.text, 'exporters 3 | in 200 rec/s | out 100 rec/s | lost 7 rec (filter 7) 0 pkt | spool 2048 rec 3.5 MiB | drain lag 2.1s (ok)');
  });

  test('loss: the loss ledger\'s totals per unit with the two largest reasons; every non-zero reason in the fields', () => {
    const lost = { records: { filter: 5, disk_full: 320_000, quota_eviction: 40_000, parked: 0 }, packets: { kernel_drop: 3 } };
    const line = formatStatsLine(summary({ lost }), null, 0);
    assert.match(line.text, /\| lost 360005 rec \(disk_full 320000, quota_eviction 40000, \+1 more\) 3 pkt \(kernel_drop 3\) \|/);
    assert.equal(line.fields.lostRecords, 360_005);
    assert.equal(line.fields.lostPackets, 3);
    assert.deepEqual(line.fields.lostByReason, { filter: 5, disk_full: 320_000, quota_eviction: 40_000, kernel_drop: 3 });
  });

  test('first tick and counters that went backwards give 0, not nonsense', () => {
    assert.equal(formatStatsLine(summary({ records: 50 }), null, 1000).fields.recordsPerSecond, 0);
    const back = formatStatsLine(summary({ records: 10 }), { summary: summary({ records: 100 }), atMs: 0 }, 1000);
    assert.equal(back.fields.recordsPerSecond, 0);
    assert.match(formatStatsLine(summary(), null, 0).text, /drain lag none$/);
  });

  test('units', () => {
    assert.equal(formatBytes(512), '512 B');
    assert.equal(formatBytes(1536), '1.5 KiB');
    assert.equal(formatBytes(10 * 1024 ** 3), '10.0 GiB');
    assert.equal(formatDuration(250), '250ms');
    assert.equal(formatDuration(61_000), '1m01s');
    assert.equal(formatDuration(3 * 3600_000 + 5 * 60_000), '3h05m');
  });

  test('StatsLine logs one info line per tick with structured fields, and the interval timer runs', async () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'info', pretty: false }, { write: (s: string) => lines.push(s) });
    let records = 0;
    let clock = 0;
    const seen: string[] = [];
    const sl = new StatsLine({ intervalSeconds: 10, summary: () => summary({ exporters: 1, records }), logger, now: () => clock, onLine: (l) => seen.push(l.text) });
    sl.start();
    records = 500;
    clock = 10_000;
    const line = sl.tick();
    assert.equal(line?.fields.recordsPerSecond, 50);
    const entry = JSON.parse(lines[0] ?? '{}') as { level: number; msg: string; stats: { recordsPerSecond: number } };
    assert.equal(entry.level, 30);
    assert.equal(entry.msg, 'stats: exporters 1 | in 50 rec/s | out 0 rec/s | lost 0 rec 0 pkt | spool 0 rec 0 B | drain lag none');
    assert.equal(entry.stats.recordsPerSecond, 50);
    assert.deepEqual(seen, [line.text]);
    sl.close();
    sl.close();

    // A short real interval proves the timer path; bounded wait.
    const timed = new StatsLine({ intervalSeconds: 0.05, summary: () => summary(), logger, onLine: (l) => seen.push(l.text) });
    timed.start();
    for (let i = 0; i < 100 && seen.length < 3; i++) await new Promise((r) => setTimeout(r, 10));
    timed.close();
    assert.ok(seen.length >= 3, `timer ticked ${seen.length - 1} times`);
  });

  test('interval 0 disables; a failing summary is logged, not thrown', () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'info', pretty: false }, { write: (s: string) => lines.push(s) });
    const off = new StatsLine({ intervalSeconds: 0, summary: () => summary(), logger });
    off.start();
    off.close();
    const bad = new StatsLine({
      intervalSeconds: 60,
      summary: () => {
        throw new Error('spool closed');
      },
      logger,
    });
    assert.equal(bad.tick(), null);
    assert.match(lines.join(''), /stats summary failed/);
  });
});
