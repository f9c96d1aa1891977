/**
 * The two commands as real processes: `sealflow fusion-sim` (generated dev certificate and
 * netosecret) and `sealflow drain --once` draining a real spool into it; bad credentials give
 * exit 78 with a message naming the setting and not the value.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Agent, request } from 'undici';
import { Spool } from '../../src/spool/spool.js';
import { fillSpool, numberedRecords } from '../support/drain-fixtures.js';
import { appendRecords } from '../support/spool-records.js';

const repoRoot = resolve(import.meta.dirname, '../..');
const MAIN = join(repoRoot, 'src/main.ts');

function sealflow(args: string[], env: NodeJS.ProcessEnv): ChildProcessWithoutNullStreams {
  return spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: repoRoot, env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env } });
}

async function run(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = sealflow(args, env);
  let stdout = '';
  let stderr = '';
  p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((r) => p.on('close', r));
  return { code, stdout, stderr };
}

test('fusion-sim + drain --once as processes: a real spool is delivered; bad netosecret exits 78 naming the setting', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sealflow-cli-'));
  const caOut = join(dir, 'sim.pem');
  const sim = sealflow(['fusion-sim', '--port', '0', '--ca-out', caOut], {});
  try {
    let out = '';
    let err = '';
    sim.stdout.on('data', (d: Buffer) => (out += d.toString()));
    sim.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const deadline = Date.now() + 30_000;
    while (!(/SEALFLOW_FUSION_NETOSECRET=\S+\n/.test(out) && /upload URL\s+(\S+)/.test(err)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const netosecret = /SEALFLOW_FUSION_NETOSECRET=(\S+)\n/.exec(out)?.[1];
    const uploadUrl = /upload URL\s+(\S+)/.exec(err)?.[1];
    assert.ok(netosecret !== undefined && uploadUrl !== undefined, `sim output: ${out} ${err}`);
    assert.match(err, /DEVELOPMENT ONLY/);

    const kek = randomBytes(32);
    const dataDir = join(dir, 'data');
    // `sealflow run` keeps its spool in <dataDir>/spool; `drain --data-dir` must find it there.
    const spoolDir = join(dataDir, 'spool');
    const spool = await Spool.open({ dir: spoolDir, kek: new Uint8Array(kek) });
    fillSpool(spool, 5, 300);
    spool.close();

    const env = {
      SEALFLOW_FUSION_NETOSECRET: netosecret,
      SEALFLOW_SPOOL_KEK: kek.toString('base64'),
      SEALFLOW_DRAIN__FUSION__UPLOAD_URL: uploadUrl,
      SEALFLOW_DRAIN__FUSION__CA_FILE: caOut,
    };
    const ok = await run(['drain', '--once', '--data-dir', dataDir], env);
    assert.equal(ok.code, 0, ok.stderr + ok.stdout);
    assert.match(ok.stdout, /drain: done, delivered 1500 records in 5 batches/);
    assert.equal(ok.stdout.trim().split('\n').length, 1, 'one summary line off a terminal');

    const dispatcher = new Agent({ connect: { ca: readFileSync(caOut, 'utf8') } });
    const stats = (await (await request(uploadUrl.replace(/\/api\/v1\/flows$/, '/_sim/stats'), { dispatcher })).body.json()) as { recordsAccepted: number };
    await dispatcher.close();
    assert.equal(stats.recordsAccepted, 1500);

    const again = await run(['drain', '--once', '--data-dir', dataDir, '--json'], env);
    assert.equal(again.code, 0);
    assert.equal((JSON.parse(again.stdout) as { deliveredRecords: number }).deliveredRecords, 0, 'nothing acked is resent');

    // A batch Fusion rejects (a port out of range) is parked: exit 1, and the summary says so.
    const poisoned = await Spool.open({ dir: spoolDir, kek: new Uint8Array(kek) });
    const bad1 = numberedRecords(5000, 3);
    bad1[1]!.srcPort = 70_000;
    appendRecords(poisoned.writer, bad1);
    fillSpool(poisoned, 1, 10, 6000);
    poisoned.close();
    const parked = await run(['drain', '--once', '--data-dir', dataDir], env);
    assert.equal(parked.code, 1, parked.stderr);
    assert.match(parked.stdout, /delivered 10 records in 1 batches.*parked 1 batches \(3 records\).*last error: .*HTTP 400/);

    const secretish = Buffer.from('{"url":"https://x.test","shortname":"a","appname":"b","sharedsecret":"TOPSECRET"}').toString('base64');
    const bad = await run(['drain', '--once', '--data-dir', dataDir], { ...env, SEALFLOW_FUSION_NETOSECRET: secretish });
    assert.equal(bad.code, 78, bad.stderr);
    assert.match(bad.stderr, /SEALFLOW_FUSION_NETOSECRET/);
    assert.match(bad.stderr, /"appkey"/);
    assert.ok(!bad.stderr.includes('TOPSECRET') && !bad.stderr.includes(secretish.slice(0, 12)));

    const usage = await run(['drain'], env);
    assert.equal(usage.code, 64);
  } finally {
    sim.kill('SIGTERM');
    await new Promise((r) => sim.on('close', r));
    await rm(dir, { recursive: true, force: true });
  }
});
