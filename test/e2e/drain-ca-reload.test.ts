/**
 * The uplink behind a private CA, as an operator meets it: `sealflow run` (child process) drains
 * to a real local HTTPS Fusion stand-in whose certificate drain.fusion.caFile does not hold.
 * The drain's error (in /stats and in the log) names drain.fusion.caFile; records wait in the
 * spool. Once the configuration names a file holding the right CA, SIGHUP makes the drain read
 * it and deliver before its backoff would have let it retry; nothing is lost or sent twice.
 * (test/integration/drain-tls.test.ts covers the same path re-read and an unusable file.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createDevCertificate } from '../../src/fusion-sim/dev-certificate.js';
import { startFusionSim } from '../../src/fusion-sim/fusion-sim.js';
import { fusionProbeConfig } from '../support/fusion-probe-config.js';
import { startProbe } from '../support/probe.js';
import { corpora } from '../support/softflowd.js';
import { until } from '../support/udp-harness.js';

interface DrainView {
  deliveredRecords: number;
  lastError: string | null;
  backoffRemainingSeconds: number;
  auth: { failures: { tls: number } };
}
interface Stats {
  decode: { records: number } | null;
  spool: { records: number } | null;
  drain: DrainView | null;
}

test('drain.fusion.caFile: an untrusted Fusion certificate is named in /stats and the log; SIGHUP reads the file the setting now names and the drain delivers at once', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sealflow-ca-reload-'));
  const fusionCert = await createDevCertificate();
  const otherCert = await createDevCertificate();
  const sim = await startFusionSim({ host: '127.0.0.1', port: 0, certPem: fusionCert.certPem, keyPem: fusionCert.keyPem });
  try {
    const caFile = path.join(dir, 'fusion-ca.pem');
    // Another self-signed certificate: the stand-in's chain is not trusted (DEPTH_ZERO_SELF_SIGNED_CERT).
    writeFileSync(caFile, otherCert.certPem);
    // Upload retries a minute apart: only the reload can make the drain deliver within the test's wait.
    const { file, udpPort, adminPort } = await fusionProbeConfig(dir, sim, { caFile, retry: { initialDelayMs: 60_000, maxDelayMs: 60_000 } });
    const probe = await startProbe({ args: ['--config', file], adminPort });
    const stats = async (): Promise<Stats> => (await probe.getJson('/stats')) as Stats;
    try {
      const udp = createSocket('udp4');
      for (const f of ['ipfix_test_openbsd_pflow_tpl.dat', 'ipfix_test_openbsd_pflow_data.dat']) {
        const m = readFileSync(path.join(corpora, 'logstash-codec-netflow', f));
        await new Promise<void>((resolve, reject) => udp.send(m, udpPort, '127.0.0.1', (e) => (e ? reject(e) : resolve())));
      }
      udp.close();
      await until(async () => ((await stats()).spool?.records ?? 0) > 0, 'records committed to the spool', 20_000);
      const records = (await stats()).decode?.records ?? 0;
      assert.ok(records > 0);

      // A failed attempt, and the drain backing off for a while (the auth backoff starts at 5–10 s,
      // uploads retry up to a minute apart): longer than the reload needs to deliver.
      let failed: Stats | null = null;
      await until(async () => {
        failed = await stats();
        return (failed.drain?.backoffRemainingSeconds ?? 0) > 10;
      }, `a failed attempt and a backoff over 10 s; output:\n${probe.output().slice(-3000)}`, 60_000);
      const drain = (failed as unknown as Stats).drain;
      const error = drain?.lastError ?? '';
      assert.match(error, /DEPTH_ZERO_SELF_SIGNED_CERT/, error);
      assert.match(error, /in the PEM file named by drain\.fusion\.caFile, then reload \(SIGHUP\)/, error);
      assert.match(probe.output(), /drain\.fusion\.caFile, then reload/, 'the log line names the setting too');
      assert.ok((drain?.auth.failures.tls ?? 0) > 0);
      assert.equal(drain?.deliveredRecords, 0);
      assert.equal(sim.records.length, 0);

      // The operator puts the right CA in a new file and points the setting at it.
      const fusionCa = path.join(dir, 'fusion-private-ca.pem');
      writeFileSync(fusionCa, fusionCert.certPem);
      writeFileSync(file, readFileSync(file, 'utf8').replace(caFile, fusionCa));
      const backoffMs = ((await stats()).drain?.backoffRemainingSeconds ?? 0) * 1000;
      const hupAt = Date.now();
      probe.child.kill('SIGHUP');
      await until(() => sim.records.length >= records, `${records} records at the stand-in after SIGHUP; output:\n${probe.output().slice(-3000)}`, backoffMs);
      const tookMs = Date.now() - hupAt;
      assert.ok(tookMs < backoffMs, `delivered ${tookMs} ms after SIGHUP, before the backoff (${backoffMs} ms) ended`);
      await until(async () => (await stats()).drain?.deliveredRecords === records, 'the drain counts the delivery', 10_000);
      assert.equal(sim.records.length, records, 'each record once');
      assert.match(probe.output(), /SIGHUP: reloading [^\n]*drain\.fusion\.caFile/);
    } finally {
      const code = await probe.stop('SIGTERM');
      assert.equal(code, 0, `clean exit on SIGTERM; output:\n${probe.output().slice(-3000)}`);
    }
  } finally {
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
