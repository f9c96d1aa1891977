/**
 * `sealflow evidence` after a real run and a real attestation: the archive extracts with the
 * system's tar, its manifest verifies with OpenSSL alone and every file with its SHA-256, and
 * `sealflow evidence verify` (only the public key) checks it all — and fails on an altered
 * file or another key. The control map names only evidence that is in the pack and tests that
 * exist in this repository.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { DeviceKey, publicKeyPem } from '../../src/audit/device-key.js';
import { CONTROL_MAP } from '../../src/evidence/control-map.js';
import { freeTcpPort, freeUdpPort, startProbe } from '../support/probe.js';
import { repoRoot } from '../support/softflowd.js';

function cli(args: readonly string[]): { code: number | null; stdout: string; stderr: string } {
  const quoted = ['--import', 'tsx', 'src/main.ts', ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
  const r = spawnSync('sh', ['-c', `ulimit -c 0 && exec '${process.execPath}' ${quoted}`], { cwd: repoRoot, encoding: 'utf8', timeout: 180_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

test('the evidence pack verifies offline with only the public key, and fails when any file is altered', { timeout: 300_000 }, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sealflow-evidence-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const keys = path.join(dir, 'keys');
  mkdirSync(keys, { mode: 0o700 });
  writeFileSync(path.join(keys, 'kek'), randomBytes(32).toString('base64'), { mode: 0o600 });
  writeFileSync(path.join(keys, 'signing'), randomBytes(32).toString('base64'), { mode: 0o600 });
  const adminPort = await freeTcpPort();
  const config = path.join(dir, 'sealflow.yaml');
  writeFileSync(
    config,
    stringify({
      dataDir: path.join(dir, 'data'),
      log: { level: 'warn', format: 'json' },
      listeners: { allowlist: ['127.0.0.1'], udp: [{ name: 'flows', address: '127.0.0.1', port: await freeUdpPort() }] },
      spool: { kek: { file: path.join(keys, 'kek') } },
      drain: { enabled: false },
      admin: { address: '127.0.0.1', port: adminPort },
      audit: { signingKey: { file: path.join(keys, 'signing') } },
      stats: { intervalSeconds: 0 },
    }),
  );
  // A real run (config.loaded, start, stop), then an attestation.
  const probe = await startProbe({ args: ['--config', config], adminPort });
  assert.equal(await probe.stop('SIGTERM'), 0, probe.output());
  const at = cli(['attest', '--config', config]);
  assert.equal(at.code, 0, `${at.stdout}\n${at.stderr}`);

  const pack = path.join(dir, 'evidence.tar');
  const ev = cli(['evidence', '--config', config, '--out', pack]);
  assert.equal(ev.code, 0, ev.stderr);
  const pub = cli(['audit', 'pubkey', '--config', config]).stdout.split('\n')[0] ?? '';

  // sealflow, offline, with only the public key.
  const ok = cli(['evidence', 'verify', '--pubkey', pub, pack]);
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, /configuration: matches the trail's last config\.loaded/);
  assert.match(ok.stdout, /attestation: signature valid; it says PASSED/);
  assert.match(ok.stdout, /^VERIFIED$/m);

  // The system's tar and OpenSSL, without sealflow.
  const x = path.join(dir, 'x');
  mkdirSync(x);
  assert.equal(spawnSync('tar', ['-xf', pack, '-C', x]).status, 0);
  writeFileSync(path.join(dir, 'pub.pem'), readFileSync(path.join(x, 'device-public-key.pem')));
  const osl = spawnSync('openssl', ['pkeyutl', '-verify', '-pubin', '-inkey', path.join(dir, 'pub.pem'), '-rawin', '-in', path.join(x, 'MANIFEST.json'), '-sigfile', path.join(x, 'MANIFEST.sig')], { encoding: 'utf8' });
  assert.match(osl.stdout, /Signature Verified Successfully/, osl.stderr);
  const manifest = JSON.parse(readFileSync(path.join(x, 'MANIFEST.json'), 'utf8')) as { files: { path: string; sha256: string }[]; configHash: string };
  for (const f of manifest.files) assert.equal(sha256(readFileSync(path.join(x, f.path))), f.sha256, f.path);
  assert.equal(sha256(readFileSync(path.join(x, 'config/effective.json'))), manifest.configHash, 'sha256sum of the effective configuration is its configHash');
  for (const p of ['attest/report.json', 'attest/report.html', 'audit/trail.jsonl', 'audit/digests.jsonl', 'audit/VERIFY.md', 'sbom/sbom.cdx.json', 'versions.json', 'controls/control-map.md']) assert.ok(existsSync(path.join(x, p)), p);

  // What the pack says, checked against the real thing.
  const sbom = JSON.parse(readFileSync(path.join(x, 'sbom/sbom.cdx.json'), 'utf8')) as { bomFormat: string; components: { name: string }[] };
  assert.equal(sbom.bomFormat, 'CycloneDX');
  for (const dep of ['better-sqlite3', 'libsodium-wrappers', 'undici']) assert.ok(sbom.components.some((c) => c.name === dep), dep);
  const versions = JSON.parse(readFileSync(path.join(x, 'versions.json'), 'utf8')) as Record<string, string>;
  assert.equal(versions.node, process.versions.node);
  assert.equal(versions.openssl, process.versions.openssl);
  assert.match(versions.sqlite ?? '', /^3\.\d+\.\d+$/);
  assert.match(versions.libsodium ?? '', /^1\.0\.\d+$/);
  const digests = readFileSync(path.join(x, 'audit/digests.jsonl'), 'utf8');
  assert.match(digests, /"type":"receipt"/, 'the attestation\'s shredded canary epoch has a signed deletion receipt');

  // The control map: every control the issue names; evidence in the pack; tests that exist.
  for (const [fw, ctl] of [['PCI DSS 4.0', '3.2.1'], ['PCI DSS 4.0', '3.5'], ['PCI DSS 4.0', '10.5'], ['HIPAA', '164.312(a)(2)(iv)'], ['HIPAA', '164.312(e)(2)(ii)'], ['GDPR', 'Art. 25'], ['GDPR', 'Art. 32'], ['DORA RTS (EU) 2024/1774', 'Art. 12']] as const) {
    assert.ok(CONTROL_MAP.some((c) => c.framework === fw && c.control === ctl), `${fw} ${ctl}`);
  }
  for (const c of CONTROL_MAP) {
    for (const e of c.evidence) assert.ok(existsSync(path.join(x, e)), `${c.control}: evidence ${e} is not in the pack`);
    for (const tt of c.tests) assert.ok(readFileSync(path.join(repoRoot, tt.file), 'utf8').includes(tt.name), `${c.control}: no test "${tt.name}" in ${tt.file}`);
  }

  // An altered file, and another key, fail.
  const buf = readFileSync(pack);
  const at2 = buf.indexOf(Buffer.from('"quotaBytes":'));
  assert.ok(at2 > 0);
  const altered = Buffer.from(buf);
  altered[at2 + 14] = altered[at2 + 14] === 0x31 ? 0x32 : 0x31;
  writeFileSync(path.join(dir, 'altered.tar'), altered);
  const bad = cli(['evidence', 'verify', '--pubkey', pub, path.join(dir, 'altered.tar')]);
  assert.equal(bad.code, 1);
  assert.match(bad.stdout, /config\/effective\.json: its SHA-256 differs from the manifest/);
  const other = await DeviceKey.fromSeed(randomBytes(32));
  writeFileSync(path.join(dir, 'other.pem'), publicKeyPem(other.publicKey));
  const wrongKey = cli(['evidence', 'verify', '--pubkey', path.join(dir, 'other.pem'), pack]);
  assert.equal(wrongKey.code, 1);
  assert.match(wrongKey.stdout, /MANIFEST\.sig does not verify with the given public key/);
});
