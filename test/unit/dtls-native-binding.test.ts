import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IngestError } from '../../src/flow/errors.js';
import { loadDtlsAddon, loadDtlsAddonFrom } from '../../src/ingest/dtls/native-binding.js';

/*
 * The load-time check: the addon resolves its OpenSSL symbols against the node binary. A
 * node that does not export them is simulated by a shared object that needs an OpenSSL-like
 * symbol no node exports; it must fail at load with ERR_INGEST_NATIVE saying why.
 */

const dir = mkdtempSync(join(tmpdir(), 'sealflow-dtls-native-'));
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

const haveCc = spawnSync('cc', ['--version']).status === 0;
if (!haveCc && process.env.CI !== undefined) throw new Error('C compiler missing in CI (node-gyp needs it too)');

describe('DTLS addon loading', () => {
  test('the built addon loads and runs on the node binary\'s own OpenSSL', () => {
    const addon = loadDtlsAddon();
    assert.ok(addon.opensslVersion.includes(process.versions.openssl));
    assert.equal(typeof addon.Context, 'function');
    assert.equal(addon.verifyErrors.certRevoked, 23);
  });

  test('a missing addon file is an IngestError ERR_INGEST_NATIVE, not a crash', () => {
    assert.throws(() => loadDtlsAddonFrom(join(dir, 'nope.node')), (err: unknown) => err instanceof IngestError && err.code === 'ERR_INGEST_NATIVE');
  });

  test('unresolvable OpenSSL symbols fail at load with a message naming the cause', { skip: haveCc ? false : 'no C compiler' }, () => {
    const src = join(dir, 'needs-ssl.c');
    const so = join(dir, 'needs-ssl.node');
    writeFileSync(src, 'extern int SSL_sealflow_missing_symbol(void);\nint probe(void) { return SSL_sealflow_missing_symbol(); }\n');
    const cc = spawnSync('cc', ['-shared', '-fPIC', '-o', so, src], { encoding: 'utf8' });
    assert.equal(cc.status, 0, cc.stderr);
    assert.throws(() => loadDtlsAddonFrom(so), (err: unknown) => {
      assert.ok(err instanceof IngestError);
      assert.equal(err.code, 'ERR_INGEST_NATIVE');
      assert.match(err.message, /does not export OpenSSL/);
      assert.match(err.message, /SSL_sealflow_missing_symbol/);
      return true;
    });
  });
});
