/**
 * `sealflow drain --once` in-process with a terminal-like stderr: the live progress line is
 * drawn (carriage return + clear line) while a rate-capped drain runs, then the summary.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { main } from '../../src/commands/drain.js';
import { fillSpool, openTempSpool, startTestSim } from '../support/drain-fixtures.js';

class Capture extends Writable {
  text = '';
  isTTY: boolean;
  constructor(tty: boolean) {
    super();
    this.isTTY = tty;
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

test('drain --once on a terminal shows a progress line, then one summary line', async () => {
  const env = await startTestSim();
  const t = await openTempSpool();
  try {
    fillSpool(t.spool, 6, 500);
    t.spool.close();
    const caFile = join(t.dir, 'ca.pem');
    await writeFile(caFile, env.caPem);
    const stdout = new Capture(false);
    const stderr = new Capture(true);
    const code = await main(['--once'], {
      stdout,
      stderr,
      env: {
        SEALFLOW_FUSION_NETOSECRET: env.sim.netosecret,
        SEALFLOW_SPOOL_KEK: Buffer.from(t.kek).toString('base64'),
        SEALFLOW_SPOOL__DIR: t.dir,
        SEALFLOW_DRAIN__FUSION__UPLOAD_URL: env.sim.uploadUrl,
        SEALFLOW_DRAIN__FUSION__CA_FILE: caFile,
        // 3000 records at 1000/s (one second of burst): ~2 s, long enough to draw.
        SEALFLOW_DRAIN__MAX_RECORDS_PER_SECOND: '1000',
        SEALFLOW_DRAIN__CONCURRENCY: '1',
      },
    });
    assert.equal(code, 0, stderr.text);
    const CLEAR_LINE = '\r\x1b[K';
    assert.ok(stderr.text.includes(`${CLEAR_LINE}drain: `), 'a progress line was drawn');
    assert.match(stderr.text, /drain: \d+ delivered, \d+ left, \d+ rec\/s, eta /);
    assert.ok(stderr.text.endsWith(CLEAR_LINE), 'the progress line is cleared before the summary');
    assert.match(stdout.text, /^drain: done, delivered 3000 records in 6 batches/);
    assert.equal(env.sim.records.length, 3000);
  } finally {
    await t.cleanup();
    await env.cleanup();
  }
});
