import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import { stringify } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { ExporterTrust, trustSettingsFromConfig } from '../../src/ingest/trust/exporter-trust.js';
import { createTestPki } from '../support/test-pki.js';

// The path from a configuration file to the listeners' trust: identities bound to source
// prefixes and observation domains must arrive in the trust policy (config key
// `observationDomains`, trust field `observationDomainIds`), for TLS and for DTLS, which
// inherits TLS's trust settings.
test('identity bindings in the configuration reach the TLS and DTLS trust policy', async () => {
  const pki = await createTestPki();
  const dir = mkdtempSync(path.join(tmpdir(), 'sealflow-trust-config-'));
  try {
    const file = path.join(dir, 'sealflow.yaml');
    writeFileSync(file, stringify({
      listeners: {
        tls: {
          enabled: true,
          certFile: pki.collector.certFile,
          keyFile: pki.collector.keyFile,
          caFile: pki.caFile,
          crlFiles: [...pki.crlFiles],
          identities: [{ name: 'exporter1.test', sources: ['127.0.0.1/32'], observationDomains: [7, 9] }],
        },
        dtls: { enabled: true },
      },
      spool: { kek: { env: 'KEK' } },
      drain: { enabled: false },
    }));
    const { config } = await loadConfig({ configPath: file, env: { KEK: 'x' }, compileFilters: null });
    const cert = new X509Certificate(readFileSync(pki.exporters.valid.certFile));
    for (const which of ['tls', 'dtls'] as const) {
      const trust = ExporterTrust.load(trustSettingsFromConfig(config.listeners[which]), `listeners.${which}`);
      assert.deepEqual(trust.checkExporter(cert, '127.0.0.1'), { ok: true, identity: 'exporter1.test' }, which);
      assert.deepEqual(trust.checkExporter(cert, '127.0.0.2'), { ok: false, reason: 'source_not_bound' }, `${which}: bound source`);
      assert.equal(trust.domainAllowed('exporter1.test', 7), true, `${which}: bound domain`);
      assert.equal(trust.domainAllowed('exporter1.test', 8), false, `${which}: other domain`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await pki.cleanup();
  }
});
