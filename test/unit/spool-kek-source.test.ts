import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../../src/flow/errors.js';
import { kekSourceFromEnv, parseKekCommand, parseKekText, resolveKek } from '../../src/spool/kek-source.js';
import { tempDir } from '../support/spool-fixtures.js';

const KEY = Buffer.alloc(32, 0xab);
const B64 = KEY.toString('base64');

function isConfigError(setting: string, pattern: RegExp) {
  return (e: unknown): boolean => e instanceof ConfigError && e.setting === setting && e.code === 'ERR_CONFIG_SECRET' && pattern.test(e.message) && !e.message.includes(B64);
}

test('parseKekText accepts 32 bytes of standard or URL-safe base64 only', () => {
  assert.deepEqual(parseKekText(`  ${B64}\n`), new Uint8Array(KEY));
  assert.deepEqual(parseKekText(B64.replace(/=+$/, '')), new Uint8Array(KEY));
  const urlSafe = Buffer.alloc(32, 0xfb).toString('base64url');
  assert.deepEqual(parseKekText(urlSafe), new Uint8Array(Buffer.alloc(32, 0xfb)));
  for (const bad of ['', 'abc', Buffer.alloc(31).toString('base64'), Buffer.alloc(33).toString('base64'), `${B64.slice(0, 20)}!${B64.slice(21)}`]) assert.equal(parseKekText(bad), null, bad);
});

test('kekSourceFromEnv: exactly one of the three variables', () => {
  assert.throws(() => kekSourceFromEnv({}), isConfigError('SEALFLOW_SPOOL_KEK', /not set: set SEALFLOW_SPOOL_KEK \(base64\), SEALFLOW_SPOOL_KEK_FILE .*'sealflow keygen'/));
  assert.throws(() => kekSourceFromEnv({ SEALFLOW_SPOOL_KEK: B64, SEALFLOW_SPOOL_KEK_FILE: '/x' }), isConfigError('SEALFLOW_SPOOL_KEK', /only one/));
  assert.deepEqual(kekSourceFromEnv({ SEALFLOW_SPOOL_KEK_FILE: '/run/secrets/kek' }), { kind: 'file', setting: 'SEALFLOW_SPOOL_KEK_FILE', path: '/run/secrets/kek' });
  assert.deepEqual(kekSourceFromEnv({ X_COMMAND: 'vault kv get -field=kek secret/x' }, 'X'), { kind: 'command', setting: 'X_COMMAND', argv: ['vault', 'kv', 'get', '-field=kek', 'secret/x'] });
  assert.deepEqual(parseKekCommand('S', '["my tool", "a b"]'), ['my tool', 'a b']);
  assert.throws(() => parseKekCommand('S', '[1]'), isConfigError('S', /must name a command/));
  assert.throws(() => parseKekCommand('S', '[oops'), isConfigError('S', /JSON array/));
});

test('resolveKek from a value, a file (base64 or raw) and a command run without a shell', async () => {
  const { dir, cleanup } = tempDir();
  try {
    assert.deepEqual(await resolveKek({ kind: 'value', setting: 'V', value: B64 }), new Uint8Array(KEY));
    await assert.rejects(resolveKek({ kind: 'value', setting: 'V', value: 'short' }), isConfigError('V', /32 bytes encoded as base64/));
    writeFileSync(join(dir, 'b64'), `${B64}\n`);
    writeFileSync(join(dir, 'raw'), KEY);
    writeFileSync(join(dir, 'bad'), 'not a key');
    assert.deepEqual(await resolveKek({ kind: 'file', setting: 'F', path: join(dir, 'b64') }), new Uint8Array(KEY));
    assert.deepEqual(await resolveKek({ kind: 'file', setting: 'F', path: join(dir, 'raw') }), new Uint8Array(KEY));
    await assert.rejects(resolveKek({ kind: 'file', setting: 'F', path: join(dir, 'bad') }), isConfigError('F', /must hold 32 bytes/));
    await assert.rejects(resolveKek({ kind: 'file', setting: 'F', path: join(dir, 'missing') }), isConfigError('F', /cannot read the key file .*ENOENT/));
    const node = process.execPath;
    assert.deepEqual(await resolveKek({ kind: 'command', setting: 'C', argv: [node, '-e', `process.stdout.write(${JSON.stringify(B64)})`] }), new Uint8Array(KEY));
    // No shell: metacharacters are plain arguments.
    await assert.rejects(resolveKek({ kind: 'command', setting: 'C', argv: ['echo', B64, '|', 'cat'] }), isConfigError('C', /did not print 32 bytes/));
    await assert.rejects(resolveKek({ kind: 'command', setting: 'C', argv: [node, '-e', `process.stdout.write(${JSON.stringify(B64)}); process.exit(3)`] }), isConfigError('C', /failed \(exit status 3\)/));
    await assert.rejects(resolveKek({ kind: 'command', setting: 'C', argv: [node, '-e', 'setTimeout(() => {}, 10000)'], timeoutMs: 200 }), isConfigError('C', /timed out/));
    await assert.rejects(resolveKek({ kind: 'command', setting: 'C', argv: [join(dir, 'no-such-tool')] }), isConfigError('C', /ENOENT/));
  } finally {
    cleanup();
  }
});
