import { test } from 'node:test';
import assert from 'node:assert/strict';
import { drainFor, fillSpool, openTempSpool, receivedSeq, startTestSim } from '../support/drain-fixtures.js';

test('drainOnce delivers a real spool to the stand-in, oldest first, and empties it', async () => {
  const env = await startTestSim();
  const t = await openTempSpool();
  try {
    const total = fillSpool(t.spool, 12, 250);
    const drain = drainFor(env, t.spool.reader, { concurrency: 1, encoder: { maxRecordsPerRequest: 100 } });
    const res = await drainOnce(drain);
    assert.equal(res.complete, true);
    assert.equal(res.stats.deliveredBatches, 12);
    assert.equal(res.stats.deliveredRecords, total);
    assert.deepEqual(receivedSeq(env.sim), Array.from({ length: total }, (_, i) => i));
    assert.equal(t.spool.inspector.status().batches, 0);
    // 250 records per batch in chunks of 100: 3 requests per batch, each with its own key.
    assert.equal(env.sim.stats.uploadsAccepted, 36);
    assert.equal(env.sim.acceptedKeys.size, 36);
    assert.equal(env.sim.stats.tokensIssued, 1);
  } finally {
    await t.cleanup();
    await env.cleanup();
  }
});

async function drainOnce(d: ReturnType<typeof drainFor>) {
  return d.drainOnce();
}
