/**
 * The attestation's TLS/DTLS floor check against live listeners: `sealflow run` with its TLS and
 * DTLS listeners (the development PKI) refuses a TLS 1.0/1.1 and a DTLS 1.0 handshake, so the
 * check passes; a TLS server that answers TLS 1.1 (an older or misconfigured collector on the
 * configured port) fails it; with nothing listening the check is a warning, never a pass.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:tls';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { checkTransportVersions } from '../../src/attest/posture.js';
import { devFiles, embeddedDefaults } from '../../src/config/embedded-defaults.js';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { freeTcpPort, freeUdpPort, startProbe } from '../support/probe.js';

test('TLS/DTLS floors probed live: refused by sealflow run (pass), TLS 1.1 answered (fail), nothing listening (warn)', { timeout: 180_000 }, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sealflow-attest-tls-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const adminPort = await freeTcpPort();
  const c = embeddedDefaults(dir) as { listeners: { udp: { port: number }[]; tls: { port: number }; dtls: { port: number } }; admin: Record<string, unknown>; stats: Record<string, unknown> };
  for (const u of c.listeners.udp) u.port = await freeUdpPort();
  c.listeners.tls.port = await freeTcpPort();
  c.listeners.dtls.port = await freeUdpPort();
  c.admin.port = adminPort;
  c.stats.intervalSeconds = 0;
  const file = path.join(dir, 'sealflow.yaml');
  writeFileSync(file, stringify(c));
  const { config } = await loadConfig({ configPath: file, env: {} });

  const idle = await checkTransportVersions(config);
  assert.equal(idle.status, 'warn', idle.detail);
  assert.match(idle.detail, /not probed live/);

  const probe = await startProbe({ args: ['--config', file], adminPort });
  try {
    const live = await checkTransportVersions(config);
    assert.equal(live.status, 'pass', live.detail);
    assert.match(live.detail, /TLS 1\.0\/1\.1 refused/);
    assert.match(live.detail, /DTLS 1\.0 refused/);
  } finally {
    assert.equal(await probe.stop('SIGTERM'), 0, probe.output().slice(-2000));
  }

  // A collector on the TLS port that still speaks TLS 1.1 (mutual authentication on, as ours).
  const pki = devFiles(dir);
  const old = createServer({ cert: readFileSync(pki.certFile), key: readFileSync(pki.keyFile), ca: readFileSync(pki.caFile), minVersion: 'TLSv1', ciphers: 'DEFAULT:@SECLEVEL=0', requestCert: true, rejectUnauthorized: true }, (s) => s.end());
  old.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => old.listen(0, '127.0.0.1', resolve));
  t.after(() => old.close());
  const port = (old.address() as { port: number }).port;
  const l = config.listeners;
  const pointed = { ...config, listeners: { ...l, tls: { ...l.tls, address: '127.0.0.1', port }, dtls: { ...l.dtls, enabled: false } } } as Config;
  const bad = await checkTransportVersions(pointed);
  assert.equal(bad.status, 'fail', bad.detail);
  assert.match(bad.detail, /accepted/);
});
