import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { resolveSecret } from '../../src/config/secrets.js';
import { ConfigError } from '../../src/flow/errors.js';

const SECRET = 'Zm9vYmFyLXNlY3JldC1rZXktdmFsdWU=';

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sealflow-secrets-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Asserts a ConfigError for `setting` whose message matches and never contains the secret. */
async function rejectsWith(p: Promise<unknown>, setting: string, message: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.equal(err.code, 'ERR_CONFIG_SECRET');
    assert.equal(err.setting, setting);
    assert.match(err.message, message);
    assert.ok(!err.message.includes(SECRET) && !JSON.stringify(err.context).includes(SECRET));
    return true;
  });
}

describe('resolveSecret', () => {
  test('env: value, trimmed', async () => {
    const v = await resolveSecret({ env: 'MY_KEK' }, 'spool.kek', { env: { MY_KEK: `  ${SECRET}\n` } });
    assert.equal(v.toString(), SECRET);
  });

  test('env: unset or blank is an error naming the setting and variable', async () => {
    await rejectsWith(resolveSecret({ env: 'MY_KEK' }, 'spool.kek', { env: {} }), 'spool.kek', /^spool\.kek: environment variable MY_KEK is not set$/);
    await rejectsWith(resolveSecret({ env: 'MY_KEK' }, 'spool.kek', { env: { MY_KEK: ' \n' } }), 'spool.kek', /^spool\.kek: environment variable MY_KEK is empty$/);
  });

  test('file: contents trimmed; a 0600 file gives no warning', async () => {
    const f = join(dir, 'kek');
    await writeFile(f, SECRET + '\n', { mode: 0o600 });
    await chmod(f, 0o600);
    const warnings: string[] = [];
    const v = await resolveSecret({ file: f }, 'spool.kek', { warn: (m) => warnings.push(m) });
    assert.equal(v.toString(), SECRET);
    assert.deepEqual(warnings, []);
  });

  test('file: group/other-readable is warned about with the mode, not the value', async () => {
    const f = join(dir, 'loose');
    await writeFile(f, SECRET);
    await chmod(f, 0o644);
    const warnings: string[] = [];
    const v = await resolveSecret({ file: f }, 'drain.fusion.netosecret', { warn: (m) => warnings.push(m) });
    assert.equal(v.toString(), SECRET);
    assert.deepEqual(warnings, [`drain.fusion.netosecret: secret file ${f} has mode 644 and is readable by group/other users; chmod 600 it (or 400)`]);
  });

  test('file: missing, a directory, empty, unreadable', async () => {
    await rejectsWith(resolveSecret({ file: join(dir, 'nope') }, 'admin.token'), 'admin.token', /secret file .*nope does not exist$/);
    const d = join(dir, 'adir');
    await mkdir(d);
    await rejectsWith(resolveSecret({ file: d }, 'admin.token'), 'admin.token', /is not a regular file$/);
    const empty = join(dir, 'empty');
    await writeFile(empty, '\n\n', { mode: 0o600 });
    await rejectsWith(resolveSecret({ file: empty }, 'admin.token'), 'admin.token', /secret file .*empty is empty$/);
    if (process.getuid?.() !== 0) {
      const locked = join(dir, 'locked');
      await writeFile(locked, SECRET);
      await chmod(locked, 0o000);
      await rejectsWith(resolveSecret({ file: locked }, 'admin.token'), 'admin.token', /is not readable by this user$/);
    }
  });

  test('command: stdout trimmed, run without a shell', async () => {
    const v = await resolveSecret({ command: [process.execPath, '-e', `process.stdout.write(${JSON.stringify(SECRET + '\n')})`] }, 'spool.kek');
    assert.equal(v.toString(), SECRET);
    // Shell syntax is passed through literally as an argument, not interpreted.
    const literal = await resolveSecret({ command: [process.execPath, '-e', 'process.stdout.write(process.argv[1] ?? "")', '$(echo injected);x'] }, 'spool.kek');
    assert.equal(literal.toString(), '$(echo injected);x');
  });

  test('command: runs with PATH, LANG and the variables its passEnv names only; no other secret of the environment reaches it', async () => {
    const dump = join(dir, 'child-env.json');
    const script = `require('fs').writeFileSync(${JSON.stringify(dump)}, JSON.stringify(process.env)); process.stdout.write('ok')`;
    const env = { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8', SEALFLOW_SPOOL_KEK: SECRET, SEALFLOW_FUSION_NETOSECRET: SECRET, VAULT_ADDR: 'https://vault.test', HOME: '/root', OTHER: 'x' };
    await resolveSecret({ command: [process.execPath, '-e', script] }, 'drain.fusion.netosecret', { env });
    const seen = JSON.parse(await readFile(dump, 'utf8')) as Record<string, string>;
    assert.equal(seen.PATH, '/usr/bin:/bin');
    assert.equal(seen.LANG, 'C.UTF-8');
    assert.deepEqual(Object.keys(seen).filter((k) => !['PATH', 'LANG'].includes(k) && !k.startsWith('NODE_') && k !== '_'), []);
    assert.ok(!JSON.stringify(seen).includes(SECRET));
    await resolveSecret({ command: [process.execPath, '-e', script], passEnv: ['VAULT_ADDR', 'UNSET_ONE'] }, 'drain.fusion.netosecret', { env });
    const named = JSON.parse(await readFile(dump, 'utf8')) as Record<string, string>;
    assert.equal(named.VAULT_ADDR, 'https://vault.test');
    assert.ok(!('UNSET_ONE' in named) && !('OTHER' in named) && !('HOME' in named));
    assert.ok(!JSON.stringify(named).includes(SECRET));
  });

  test('command: failure, timeout, not found, empty output; output never echoed', async () => {
    await rejectsWith(
      resolveSecret({ command: [process.execPath, '-e', `process.stdout.write(${JSON.stringify(SECRET)}); process.exit(3)`] }, 'spool.kek'),
      'spool.kek',
      /^spool\.kek: secret command .* exited with status 3$/,
    );
    await rejectsWith(resolveSecret({ command: [process.execPath, '-e', 'setTimeout(() => {}, 10000)'] }, 'spool.kek', { timeoutMs: 300 }), 'spool.kek', /did not finish within 300 ms$/);
    await rejectsWith(resolveSecret({ command: ['/nonexistent/sealflow-kms-helper'] }, 'spool.kek'), 'spool.kek', /secret command \/nonexistent\/sealflow-kms-helper was not found/);
    await rejectsWith(resolveSecret({ command: [process.execPath, '-e', ''] }, 'spool.kek'), 'spool.kek', /output of secret command .* is empty$/);
  });
});
