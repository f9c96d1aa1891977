/**
 * Crash during drain: a child process draining a real spool is SIGKILLed while uploads are in
 * flight. After a restart nothing is lost (every record reaches the stand-in) and nothing acked
 * is resent (the restarted drain sends exactly one request per batch still in the spool; the
 * only duplicates are requests that were in flight at the kill, deduplicated by key).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { drainFor, fillSpool, openTempSpool, receivedSeq, startTestSim, waitFor } from '../support/drain-fixtures.js';

const repoRoot = resolve(import.meta.dirname, '../..');
const BATCHES = 30;
const PER_BATCH = 100;
const CONCURRENCY = 2;

test('SIGKILL mid-upload: after restart nothing is lost and nothing acked is resent', async () => {
  const env = await startTestSim();
  const t = await openTempSpool();
  try {
    fillSpool(t.spool, BATCHES, PER_BATCH);
    t.spool.close();
    const caFile = join(t.dir, 'ca.pem');
    await writeFile(caFile, env.caPem);
    // Every upload is held 150 ms after its body arrived: the child is always mid-upload.
    await env.sim.setFault({ kind: 'slow', delayMs: 150 });
    const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'test/support/drain-crash-child.ts')], {
      cwd: repoRoot,
      env: {
        PATH: process.env.PATH,
        CRASH_SPOOL_DIR: t.dir,
        CRASH_KEK: Buffer.from(t.kek).toString('base64'),
        CRASH_NETOSECRET: env.sim.netosecret,
        CRASH_UPLOAD_URL: env.sim.uploadUrl,
        CRASH_CA_FILE: caFile,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<NodeJS.Signals | null>((r) => child.on('exit', (_code, signal) => r(signal)));
    assert.ok(await waitFor(() => env.sim.stats.uploadsAccepted >= 8, 30_000), `child made progress; stderr: ${stderr}`);
    // Kill while requests are in flight (the stand-in holds each for 150 ms).
    assert.ok(await waitFor(() => env.sim.stats.uploadRequests > env.sim.uploads.length, 5000), 'an upload is in flight');
    child.kill('SIGKILL');
    assert.equal(await exited, 'SIGKILL');
    await env.sim.setFault(null);
    // Let requests the stand-in already held finish on its side (their responses are lost).
    await new Promise((r) => setTimeout(r, 300));

    const spool = await t.reopen();
    const remaining = spool.inspector.status().batches;
    const acceptedBefore = env.sim.stats.uploadsAccepted;
    assert.ok(remaining > 0 && remaining < BATCHES, `remaining ${remaining}`);
    const uploadsBefore = env.sim.uploads.length;

    const res = await drainFor(env, spool.reader, { concurrency: CONCURRENCY }).drainOnce();
    assert.equal(res.complete, true);
    assert.equal(spool.inspector.status().batches, 0);
    const after = env.sim.uploads.slice(uploadsBefore);
    assert.equal(after.length, remaining, 'exactly one request per unacked batch: nothing acked was resent');
    const dups = after.filter((u) => u.duplicate).length;
    assert.ok(dups <= CONCURRENCY, `duplicates only for the in-flight uploads: ${dups}`);
    assert.equal(env.sim.stats.uploadsAccepted, acceptedBefore + remaining - dups);
    const got = receivedSeq(env.sim);
    assert.equal(got.length, BATCHES * PER_BATCH, 'every record stored exactly once');
    assert.deepEqual([...got].sort((a, b) => a - b), Array.from({ length: BATCHES * PER_BATCH }, (_, i) => i));
  } finally {
    await t.cleanup();
    await env.cleanup();
  }
});
