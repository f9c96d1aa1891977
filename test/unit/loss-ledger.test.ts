import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import type { LossReport } from '../../src/flow/loss.js';
import { LossLedger, type LossSample } from '../../src/observability/loss-ledger.js';
import { LOSS_LEDGER_FILE, readLedgerFile } from '../../src/observability/loss-ledger-file.js';
import { smallFilesystem } from '../support/small-filesystem.js';
import { testLogger } from '../support/udp-harness.js';

const disk = (value: number | null, source = 'ingest-worker'): LossSample => ({ unit: 'records', reason: 'disk_full', source, value });
const kernel = (value: number | null, source: string): LossSample => ({ unit: 'packets', reason: 'kernel_drop', source, value });

function tempDir(): { dir: string; file: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), 'sealflow-ledger-'));
  return { dir, file: path.join(dir, LOSS_LEDGER_FILE), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

describe('loss ledger', () => {
  test('adds what each source gained since its last reading; a source that reads lower restarted; null is no figure', () => {
    const ledger = new LossLedger({ path: null, logger: testLogger().logger });
    ledger.observe([disk(10), kernel(3, 'udp:a'), kernel(null, 'udp:b')]);
    ledger.observe([disk(25), kernel(3, 'udp:a'), kernel(4, 'udp:b')]);
    assert.equal(ledger.totals().records.disk_full, 25);
    assert.equal(ledger.totals().packets.kernel_drop, 7);
    // udp:a closed (null: its last figure stays counted), the worker restarted from 0 and counted 5.
    ledger.observe([disk(5), kernel(null, 'udp:a'), kernel(4, 'udp:b')]);
    assert.equal(ledger.totals().records.disk_full, 30);
    assert.equal(ledger.totals().packets.kernel_drop, 7);
    assert.equal(ledger.totals().records.filter, 0, 'every reason present, zero when nothing was lost');
  });

  test('the totals continue across restarts from spool.loss; a torn newest slot falls back to the other', () => {
    const { file, cleanup } = tempDir();
    try {
      let now = 1_000_000;
      const first = new LossLedger({ path: file, logger: testLogger().logger, now: () => now });
      assert.equal(readLedgerFile(file).state?.sinceMs, now, 'created at open');
      first.observe([disk(100)]);
      first.flush();
      first.observe([disk(140)]);
      first.close();
      const read = readLedgerFile(file);
      assert.equal(read.state?.counts.records.disk_full, 140);
      assert.equal(readFileSync(file).length, 4096, 'fixed size: written in place');

      now += 60_000;
      const second = new LossLedger({ path: file, logger: testLogger().logger, now: () => now });
      second.observe([disk(7)]);
      assert.equal(second.totals().records.disk_full, 147);
      assert.equal(second.totals().sinceMs, 1_000_000);
      second.close();

      // A power cut tears the newest slot: the reader takes the one before it.
      const bytes = readFileSync(file);
      const newest = readLedgerFile(file).state?.seq ?? -1;
      const slot = (JSON.parse(bytes.subarray(0, 2048).toString().trim()) as { seq: number }).seq === newest ? 0 : 1;
      bytes.fill(0x20, slot * 2048 + 40, slot * 2048 + 80);
      writeFileSync(file, bytes);
      const torn = readLedgerFile(file).state;
      assert.ok(torn !== null);
      assert.equal(torn.seq, newest - 1);
      assert.equal(torn.counts.records.disk_full, 140);
    } finally {
      cleanup();
    }
  });

  test('a damaged file (both slots) is moved aside and counting starts again, loudly', () => {
    const { dir, file, cleanup } = tempDir();
    try {
      writeFileSync(file, Buffer.alloc(4096, 0x41));
      const { logger, lines } = testLogger();
      const ledger = new LossLedger({ path: file, logger });
      ledger.close();
      assert.ok(lines.some((l) => l.event === 'loss.ledger_damaged'));
      assert.equal(readdirSync(dir).filter((n) => n.startsWith(`${LOSS_LEDGER_FILE}.damaged-`)).length, 1);
      assert.equal(readLedgerFile(file).state?.counts.records.disk_full, 0);
    } finally {
      cleanup();
    }
  });

  test('a report per period: what was lost by reason, to the subscribers and the log (warn, or info when only filters dropped records)', () => {
    let now = 0;
    const { logger, lines } = testLogger();
    const ledger = new LossLedger({ path: null, logger, now: () => now, reportIntervalMs: 60_000 });
    const reports: LossReport[] = [];
    ledger.onReport((r) => reports.push(r));
    ledger.observe([{ unit: 'records', reason: 'filter', source: 'w', value: 4 }]);
    now = 30_000;
    ledger.flush();
    assert.equal(reports.length, 0, 'not before the interval');
    now = 60_000;
    ledger.flush();
    assert.deepEqual(reports.map((r) => [r.fromMs, r.toMs, r.lost]), [[0, 60_000, { records: { filter: 4 }, packets: {} }]]);
    assert.equal(lines.filter((l) => l.event === 'loss.report').map((l) => l.level).join(), '30');
    ledger.observe([disk(9), kernel(2, 'udp:a')]);
    now = 90_000;
    ledger.close();
    const second = reports.at(1);
    assert.ok(second !== undefined);
    assert.deepEqual(second.lost, { records: { disk_full: 9 }, packets: { kernel_drop: 2 } });
    assert.equal(second.totals.records.filter, 4);
    assert.equal(lines.filter((l) => l.event === 'loss.report').at(-1)?.level, 40);
    ledger.close();
    assert.equal(reports.length, 2, 'close is idempotent; nothing lost since: no report');
  });

  test('on a full disk the ledger file is still written (in place), and the totals survive', (t) => {
    const fs = smallFilesystem(t, 1024 * 1024);
    if (fs === null) return;
    try {
      const file = path.join(fs.dir, LOSS_LEDGER_FILE);
      const ledger = new LossLedger({ path: file, logger: testLogger().logger });
      fs.fill();
      assert.throws(() => writeFileSync(path.join(fs.dir, 'x'), Buffer.alloc(8192)), { code: 'ENOSPC' });
      for (let v = 1; v <= 50; v++) {
        ledger.observe([disk(v * 1000)]);
        ledger.flush();
        assert.equal(readLedgerFile(file).state?.counts.records.disk_full, v * 1000);
      }
      ledger.close();
      assert.equal(readLedgerFile(file).state?.counts.records.disk_full, 50_000);
      assert.ok(existsSync(file));
    } finally {
      fs.remove();
    }
  });
});
